"""First-start enrolment (agent.install.first_start): what the administrator drops in the
provisioning directory enrols each user's agent on its first start, once; what is missing or
wrong is said in one sentence, never raised. A real test PKI from `dmp-host pki init`, a real
PKCS#12 made by openssl, a real TLS handshake with the host's server context afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from agent.client.session import Workstation
from agent.config import CONFIG_ENV, AgentConfig
from agent.install.enrol import EnrolmentError, current_enrolment, enrol_from_pki, load_workstation
from agent.install.first_start import PROVISIONING_ENV, enrol_if_needed
from host.pki import PASSPHRASE_ENV
from tests.host.tls_harness import handshake

pytestmark = pytest.mark.installer


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test PKI made by the command an administrator of the sandbox runs."""
    directory = tmp_path_factory.mktemp("made") / "pki"
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    subprocess.run([sys.executable, "-m", "host.cli", "pki", "init", str(directory)],
                   check=True, env=env, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def pkcs12_file(pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox workstation's key and certificate (with its CA) as openssl packs them."""
    directory = tmp_path_factory.mktemp("p12")
    password = directory / "pass"
    password.write_text("mot de passe à rallonge\n")
    out = directory / "workstation.p12"
    subprocess.run(
        ["openssl", "pkcs12", "-export", "-name", "poste",
         "-inkey", str(pki_dir / "workstations" / "sandbox.key"),
         "-in", str(pki_dir / "workstations" / "sandbox.pem"),
         "-certfile", str(pki_dir / "establishment-ca" / "ca.pem"),
         "-passout", f"file:{password}", "-out", str(out)],
        check=True, capture_output=True)
    return out


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (PROVISIONING_ENV, PASSPHRASE_ENV, CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(credentials_dir=tmp_path / "home" / "workstation",
                       data_dir=tmp_path / "home" / "data")


def _provision_pkcs12(directory: Path, p12: Path, password: str | None,
                      host_ca: Path | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(p12, directory / "workstation.p12")
    if password is not None:
        (directory / "workstation.pass").write_text(password + "\n")
    if host_ca is not None:
        shutil.copy(host_ca, directory / "host-ca.pem")
    return directory


def _common_name(pki_dir: Path, workstation: Workstation) -> str:
    """The client certificate's common name as the host's TLS server saw it."""
    subject = handshake(pki_dir, workstation)
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_test_pki_enrols_the_first_start_and_later_starts_change_nothing(
    pki_dir: Path, config: AgentConfig, tmp_path: Path
) -> None:
    provisioning = tmp_path / "etc-dmp-agent"
    shutil.copytree(pki_dir, provisioning / "pki")
    said = enrol_if_needed(config, provisioning)
    assert said is not None and "Poste enrôlé depuis" in said and "CN=sandbox" in said
    assert current_enrolment(config).source.startswith("pki:")
    assert _common_name(pki_dir, load_workstation(config)) == "sandbox"
    before = _files(tmp_path / "home")
    assert enrol_if_needed(config, provisioning) is None  # enrolled: nothing to do, nothing said
    assert _files(tmp_path / "home") == before


def test_a_pkcs12_with_its_password_and_the_host_ca_gives_a_working_workstation(
    pki_dir: Path, pkcs12_file: Path, config: AgentConfig, tmp_path: Path
) -> None:
    provisioning = _provision_pkcs12(tmp_path / "prov", pkcs12_file, "mot de passe à rallonge",
                                     host_ca=pki_dir / "server" / "ca.pem")
    shutil.copytree(pki_dir, provisioning / "pki")  # both there: the PKCS#12 wins
    said = enrol_if_needed(config, provisioning)
    assert said is not None and "workstation.p12" in said and "missing" not in said
    assert current_enrolment(config).source.startswith("pkcs12:")
    # The host's CA came with the provisioning: nothing to configure by hand.
    workstation = load_workstation(config)
    assert workstation.host_ca.read_bytes() == (pki_dir / "server" / "ca.pem").read_bytes()
    assert _common_name(pki_dir, workstation) == "sandbox"


def test_a_pkcs12_without_the_host_ca_enrols_and_says_the_ca_is_missing(
    pkcs12_file: Path, config: AgentConfig, tmp_path: Path
) -> None:
    provisioning = _provision_pkcs12(tmp_path / "prov", pkcs12_file, "mot de passe à rallonge")
    said = enrol_if_needed(config, provisioning)
    assert said is not None and "Poste enrôlé" in said
    assert "host-ca.pem" in said and "host.ca" in said
    with pytest.raises(EnrolmentError, match=r"host\.ca"):
        load_workstation(config)


def test_a_wrong_password_is_said_not_raised_and_fixing_it_enrols_at_the_next_start(
    pki_dir: Path, pkcs12_file: Path, config: AgentConfig, tmp_path: Path
) -> None:
    provisioning = _provision_pkcs12(tmp_path / "prov", pkcs12_file, "pas le bon",
                                     host_ca=pki_dir / "server" / "ca.pem")
    said = enrol_if_needed(config, provisioning)
    assert said is not None and "mot de passe erroné" in said and "redémarrez" in said
    with pytest.raises(EnrolmentError):
        current_enrolment(config)
    (provisioning / "workstation.pass").write_text("mot de passe à rallonge\r\n")
    assert "Poste enrôlé" in (enrol_if_needed(config, provisioning) or "")
    current_enrolment(config)


def test_a_missing_password_file_is_named(
    pkcs12_file: Path, config: AgentConfig, tmp_path: Path
) -> None:
    provisioning = _provision_pkcs12(tmp_path / "prov", pkcs12_file, None)
    said = enrol_if_needed(config, provisioning)
    assert said is not None and "workstation.pass est absent" in said
    with pytest.raises(EnrolmentError):
        current_enrolment(config)


def test_nothing_provisioned_says_what_to_drop_where(
    config: AgentConfig, tmp_path: Path
) -> None:
    absent = tmp_path / "nowhere"
    said = enrol_if_needed(config, absent)
    assert said is not None
    assert f"{absent} (absent)" in said and "workstation.p12" in said and "workstation.pass" in said
    empty = tmp_path / "empty"
    empty.mkdir()
    said = enrol_if_needed(config, empty)
    assert said is not None and f"dans {empty}." in said and "Poste non enrôlé" in said
    assert not config.credentials_dir.exists() or not any(config.credentials_dir.iterdir())


def test_the_environment_names_the_directory_and_the_default_config_is_used(
    pki_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provisioning = tmp_path / "elsewhere"
    shutil.copytree(pki_dir, provisioning / "pki")
    monkeypatch.setenv(PROVISIONING_ENV, str(provisioning))
    config_file = tmp_path / "agent.toml"
    config_file.write_text('[paths]\ncredentials_dir = "creds"\ndata_dir = "data"\n')
    monkeypatch.setenv(CONFIG_ENV, str(config_file))
    said = enrol_if_needed(provisioning=tmp_path / "empty-default")
    assert said is not None and str(provisioning / "pki") in said
    assert (tmp_path / "creds" / "enrolment.json").is_file()


def test_an_existing_enrolment_is_kept_whatever_is_provisioned(
    pki_dir: Path, pkcs12_file: Path, config: AgentConfig, tmp_path: Path
) -> None:
    enrol_from_pki(pki_dir, "sandbox", config=config)
    provisioning = _provision_pkcs12(tmp_path / "prov", pkcs12_file, "mot de passe à rallonge")
    before = _files(tmp_path / "home")
    assert enrol_if_needed(config, provisioning) is None
    assert _files(tmp_path / "home") == before
    assert current_enrolment(config).source.startswith("pki:")


def test_an_unreadable_configuration_is_said_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-such.toml"))
    said = enrol_if_needed(provisioning=tmp_path)
    assert said is not None and "no-such.toml" in said
