"""Workstation enrolment (agent.install.enrol): from the test PKI and from PKCS#12, the key never in
clear on disk, owner-only files, usable after a restart for a real mutual-TLS handshake with
the host's server context, and useless elsewhere."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from agent.config import CONFIG_ENV, AgentConfig
from agent.install import enrol as enrol_module
from agent.install.enrol import (
    EnrolmentError,
    add_enrol_command,
    current_enrolment,
    enrol_from_pkcs12,
    enrol_from_pki,
    load_workstation,
)
from host import pki
from tests.host.tls_harness import handshake


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(pki.PASSPHRASE_ENV, raising=False)
        pki.init_pki(directory)
    return directory


@pytest.fixture(autouse=True)
def _no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pki.PASSPHRASE_ENV, raising=False)


@pytest.fixture
def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(credentials_dir=tmp_path / "config" / "workstation",
                       data_dir=tmp_path / "data")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_enrolment_from_the_pki_stores_an_encrypted_key_owner_only(
    pki_dir: Path, config: AgentConfig
) -> None:
    enrolment = enrol_from_pki(pki_dir, "sandbox", config=config)
    key_pem = enrolment.key_path.read_bytes()
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):  # "password was not given but private key is encrypted"
        serialization.load_pem_private_key(key_pem, password=None)
    original_key = (pki_dir / "workstations" / "sandbox.key").read_bytes()
    assert original_key not in key_pem
    stored = x509.load_pem_x509_certificate(enrolment.certificate_path.read_bytes())
    assert stored == x509.load_pem_x509_certificate(
        (pki_dir / "workstations" / "sandbox.pem").read_bytes())
    assert "CN=sandbox" in enrolment.subject
    secrets_dir = config.data_dir / "keys"
    assert _mode(config.credentials_dir) == 0o700 and _mode(secrets_dir) == 0o700
    for file in [*config.credentials_dir.iterdir(), *secrets_dir.iterdir()]:
        assert _mode(file) == 0o600, file
    # The password's secret is not beside the key: copying the config directory is not enough.
    assert not any(p.suffix == ".secret" for p in config.credentials_dir.iterdir())


def test_after_a_restart_the_workstation_opens_a_real_mutual_tlshandshake(
    pki_dir: Path, config: AgentConfig
) -> None:
    enrol_from_pki(pki_dir, "sandbox", config=config)
    # A new process would build everything again from disk: nothing typed, nothing cached.
    workstation = load_workstation(AgentConfig(**{**config.__dict__}))
    assert workstation.host_ca == config.credentials_dir / "host-ca.pem"
    assert workstation.host_ca.read_bytes() == (pki_dir / "server" / "ca.pem").read_bytes()
    subject = handshake(pki_dir, workstation)
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sandbox"


def test_the_key_does_not_open_without_the_secret_or_on_another_machine(
    pki_dir: Path, config: AgentConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    enrol_from_pki(pki_dir, "sandbox", config=config)
    monkeypatch.setattr(enrol_module, "machine_id", lambda: "another-machine-id")
    with pytest.raises(EnrolmentError, match="autre machine"):
        load_workstation(config)
    monkeypatch.undo()
    # Only the config directory copied (another data directory: no secret there).
    elsewhere = AgentConfig(credentials_dir=config.credentials_dir, data_dir=tmp_path / "other")
    with pytest.raises(EnrolmentError, match="réenrôlez"):
        load_workstation(elsewhere)


def test_a_new_enrolment_replaces_the_old_and_a_crash_midway_keeps_the_old_usable(
    pki_dir: Path, config: AgentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = enrol_from_pki(pki_dir, "sandbox", config=config)
    pki.issue_workstation(pki_dir, "poste-2", _warn=False)
    real_write = enrol_module.write_private_file

    def crash_on_commit(path: Path, data: bytes) -> None:
        if path.name == "enrolment.json":
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(enrol_module, "write_private_file", crash_on_commit)
    with pytest.raises(OSError):
        enrol_from_pki(pki_dir, "poste-2", config=config)
    monkeypatch.undo()
    assert current_enrolment(config) == first
    load_workstation(config)  # still opens

    second = enrol_from_pki(pki_dir, "poste-2", config=config)
    assert "CN=poste-2" in second.subject
    assert not first.key_path.exists() and not first.certificate_path.exists()
    assert len(list((config.data_dir / "keys").iterdir())) == 2  # the crashed one's, + new
    handshake(pki_dir, load_workstation(config))


def test_a_pki_key_encrypted_under_the_passphrase_needs_it(
    pki_dir: Path, config: AgentConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # What `dmp-host pki issue-workstation` writes with DMP_PKI_PASSPHRASE set.
    locked = tmp_path / "locked-pki" / "workstations"
    locked.mkdir(parents=True)
    key = serialization.load_pem_private_key(
        (pki_dir / "workstations" / "sandbox.key").read_bytes(), password=None)
    (locked / "sandbox.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pki secret")))
    (locked / "sandbox.pem").write_bytes((pki_dir / "workstations" / "sandbox.pem").read_bytes())
    with pytest.raises(EnrolmentError, match="DMP_PKI_PASSPHRASE"):
        enrol_from_pki(locked.parent, "sandbox", config=config)
    monkeypatch.setenv(pki.PASSPHRASE_ENV, "pki secret")
    assert "CN=sandbox" in enrol_from_pki(locked.parent, "sandbox", config=config).subject


def test_refusals_missing_files_foreign_key_expired_certificate(
    pki_dir: Path, config: AgentConfig, tmp_path: Path
) -> None:
    with pytest.raises(EnrolmentError, match="issue-workstation"):
        enrol_from_pki(pki_dir, "nobody", config=config)
    with pytest.raises(EnrolmentError, match="n'est pas enrôlé"):
        load_workstation(config)
    mixed = tmp_path / "mixed"
    (mixed / "workstations").mkdir(parents=True)
    (mixed / "workstations" / "x.pem").write_bytes(
        (pki_dir / "workstations" / "sandbox.pem").read_bytes())
    (mixed / "workstations" / "x.key").write_bytes(
        (pki_dir / "server" / "key.pem").read_bytes())
    with pytest.raises(EnrolmentError, match="n'appartient pas"):
        enrol_from_pki(mixed, "x", config=config)
    now = dt.datetime.now(dt.UTC)
    pki.issue_workstation(pki_dir, "old", not_before=now - dt.timedelta(days=400),
                          not_after=now - dt.timedelta(days=1), _warn=False)
    with pytest.raises(EnrolmentError, match="expiré"):
        enrol_from_pki(pki_dir, "old", config=config)
    assert not (config.credentials_dir / "enrolment.json").exists()


def _pkcs12(pki_dir: Path, tmp_path: Path, password: bytes) -> Path:
    key = serialization.load_pem_private_key(
        (pki_dir / "workstations" / "sandbox.key").read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate(
        (pki_dir / "workstations" / "sandbox.pem").read_bytes())
    ca = x509.load_pem_x509_certificate(
        (pki_dir / "establishment-ca" / "ca.pem").read_bytes())
    data = pkcs12.serialize_key_and_certificates(
        b"sandbox", key, certificate, [ca],  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(password))
    file = tmp_path / "poste.p12"
    file.write_bytes(data)
    return file


def test_enrolment_from_pkcs12_keeps_the_chain_and_uses_the_configured_host_ca(
    pki_dir: Path, config: AgentConfig, tmp_path: Path
) -> None:
    file = _pkcs12(pki_dir, tmp_path, b"mot de passe")
    with pytest.raises(EnrolmentError, match="mot de passe erroné"):
        enrol_from_pkcs12(file, "wrong", config=config)
    enrolment = enrol_from_pkcs12(file, "mot de passe", config=config)
    assert enrolment.key_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    assert len(x509.load_pem_x509_certificates(enrolment.certificate_path.read_bytes())) == 2
    with pytest.raises(EnrolmentError, match=r"host\.ca"):
        load_workstation(config)  # a PKCS#12 does not say which CA the host's server has
    configured = AgentConfig(**{**config.__dict__, "host_ca": pki_dir / "server" / "ca.pem"})
    handshake(pki_dir, load_workstation(configured))
    not_pkcs12 = tmp_path / "junk.p12"
    not_pkcs12.write_bytes(b"\x30\x03\x02\x01\x00")
    with pytest.raises(EnrolmentError):
        enrol_from_pkcs12(not_pkcs12, "x", config=config)


def test_the_enrol_command(
    pki_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(f'[paths]\ncredentials_dir = "{tmp_path / "cred"}"\n'
                    f'data_dir = "{tmp_path / "data"}"\n'
                    f'[host]\nca = "{pki_dir / "server" / "ca.pem"}"\n')
    monkeypatch.setenv(CONFIG_ENV, str(file))
    parser = argparse.ArgumentParser(prog="dmp-agent")
    add_enrol_command(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["enrol", "--from-pki", str(pki_dir)])
    assert args.run(args) == 0
    assert "CN=sandbox" in capsys.readouterr().out
    assert (tmp_path / "cred" / "enrolment.json").exists()

    p12 = _pkcs12(pki_dir, tmp_path, b"pw")
    monkeypatch.setattr("sys.stdin", io.StringIO("bad\n"))
    args = parser.parse_args(["enrol", "--pkcs12", str(p12), "--password-stdin"])
    assert args.run(args) == 1
    assert "mot de passe erroné" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert args.run(args) == 0
    assert load_workstation().host_ca == pki_dir / "server" / "ca.pem"
    with pytest.raises(SystemExit):
        parser.parse_args(["enrol", "--from-pki", str(pki_dir), "--pkcs12", str(p12)])



def test_enrol_alone_explains_the_three_ways_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(f'[paths]\ncredentials_dir = "{tmp_path / "cred"}"\n')
    monkeypatch.setenv(CONFIG_ENV, str(file))
    parser = argparse.ArgumentParser(prog="dmp-agent")
    add_enrol_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["enrol"])
    assert args.run(args) == 2
    said = capsys.readouterr().err
    assert "/etc/dmp-agent" in said and "--pkcs12" in said and "--from-pki" in said
    assert not (tmp_path / "cred").exists()
