"""The reference host's test PKI (host.pki, dmp-host pki): files, modes, chains, CRLs."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardreader.virtual.pki import CertificateSubject, TestHealthCA, new_rsa_key
from host import cli, pki, tls


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


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_the_documented_layout_with_private_keys_0600(pki_dir: Path) -> None:
    expected = {
        "health-ca": {"ca.pem", "ca.key", "root.pem", "crl.pem"},
        "establishment-ca": {"ca.pem", "ca.key", "crl.pem"},
        "session-ca": {"ca.pem", "ca.key", "crl.pem"},
        "server": {"cert.pem", "key.pem", "ca.pem"},
        "workstations": {"sandbox.pem", "sandbox.key"},
    }
    for folder, names in expected.items():
        assert {p.name for p in (pki_dir / folder).iterdir()} == names
    keys = [p for p in pki_dir.rglob("*") if p.suffix == ".key" or p.name == "key.pem"]
    assert len(keys) == 5
    for key in keys:
        assert _mode(key) == 0o600, key
        assert b"ENCRYPTED" not in key.read_bytes()  # no passphrase: in clear (test PKI)


def test_init_without_passphrase_warns_and_refuses_to_overwrite(
    pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["pki", "init", str(pki_dir)]) == 1
    assert "already holds a PKI" in capsys.readouterr().err
    pki.warn_if_unencrypted()
    assert pki.PASSPHRASE_ENV in capsys.readouterr().err


def test_health_ca_is_the_test_igc_sante_pair_and_loads_as_test_health_ca(pki_dir: Path) -> None:
    health = pki.load_health_ca(pki_dir)
    assert health.root is not None
    assert health.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "AC IGC-SANTE FORT PERSONNES TEST"
    )
    assert health.root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "AC RACINE IGC-SANTE TEST"
    )
    health.certificate.verify_directly_issued_by(health.root)
    health.root.verify_directly_issued_by(health.root)
    # dmp-vcard --ca DIR/health-ca reads the same files with the card layer's loader.
    loaded = TestHealthCA.load(pki_dir / "health-ca")
    assert loaded.certificate == health.certificate and loaded.root == health.root


def test_server_and_workstation_certificates_chain_to_the_establishment_ca(
    pki_dir: Path,
) -> None:
    establishment = pki.load_establishment_ca(pki_dir)
    paths = pki.PkiPaths(pki_dir)
    server = _cert(paths.server_cert)
    server.verify_directly_issued_by(establishment.certificate)
    assert _cert(paths.server_ca) == establishment.certificate
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        IPv4Address("127.0.0.1"), IPv6Address("::1"),
    }
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]

    workstation = _cert(paths.workstation("sandbox")[0])
    workstation.verify_directly_issued_by(establishment.certificate)
    eku = workstation.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key = pki.load_private_key(paths.workstation("sandbox")[1])
    assert key.public_key().public_numbers() == workstation.public_key().public_numbers()

    session = pki.load_session_ca(pki_dir)
    session.certificate.verify_directly_issued_by(session.certificate)  # a root
    assert session.certificate.subject != establishment.certificate.subject


def test_each_ca_has_a_current_empty_crl_it_signed(pki_dir: Path) -> None:
    now = datetime.now(UTC)
    for load in (pki.load_health_ca, pki.load_establishment_ca, pki.load_session_ca):
        ca = load(pki_dir)
        crl = ca.crl()
        assert crl.issuer == ca.certificate.subject
        assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
        assert crl.next_update_utc is not None and crl.next_update_utc > now
    assert len(pki.load_session_ca(pki_dir).crl()) == 0  # nothing revoked at birth


def test_revoke_lists_the_serial_once_and_numbers_the_crl(pki_dir: Path) -> None:
    cert_path, _ = pki.issue_workstation(pki_dir, "to-revoke")
    certificate = _cert(cert_path)
    ca_dir = pki.PkiPaths(pki_dir).establishment_ca
    before = pki.load_crl(ca_dir / "crl.pem")
    crl = pki.revoke(ca_dir, certificate, reason=x509.ReasonFlags.key_compromise)
    entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    assert entry is not None
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1

    again = pki.revoke(ca_dir, certificate)  # harmless, and the first entry is kept as it was
    serials = [e.serial_number for e in again]
    assert serials.count(certificate.serial_number) == 1
    kept = again.get_revoked_certificate_by_serial_number(certificate.serial_number)
    assert kept is not None and kept.revocation_date_utc == entry.revocation_date_utc
    reason = kept.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    # The file on disk is the new CRL.
    assert pki.load_crl(ca_dir / "crl.pem") == again


def test_revoke_refuses_a_certificate_from_another_ca(pki_dir: Path) -> None:
    workstation = _cert(pki.PkiPaths(pki_dir).workstation("sandbox")[0])
    with pytest.raises(pki.PkiError):
        pki.revoke(pki.PkiPaths(pki_dir).session_ca, workstation)


def test_refresh_crl_keeps_entries_and_extends_validity(pki_dir: Path) -> None:
    ca_dir = pki.PkiPaths(pki_dir).health_ca
    card = TestHealthCA.load(ca_dir)  # a card certificate, as dmp-vcard would issue one
    now = datetime.now(UTC)
    key = new_rsa_key()
    auth, _ = card.issue_card_certificates(
        CertificateSubject("810001234565", "MARTIN", "Claire", "10", None, True,
                           now - timedelta(days=1), now + timedelta(days=10)),
        key, key,
    )
    pki.revoke(ca_dir, auth)
    later = now + timedelta(days=25)
    crl = pki.refresh_crl(ca_dir, now=later, crl_lifetime=timedelta(days=30))
    assert crl.get_revoked_certificate_by_serial_number(auth.serial_number) is not None
    assert crl.next_update_utc is not None and crl.next_update_utc > now + timedelta(days=50)
    assert pki.issuer_directory(pki_dir, auth) == ca_dir


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x" * 65, "é"])
def test_workstation_names_cannot_escape_the_folder(pki_dir: Path, name: str) -> None:
    with pytest.raises(pki.PkiError):
        pki.issue_workstation(pki_dir, name)


def test_issue_workstation_honours_given_validity(pki_dir: Path) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    cert_path, key_path = pki.issue_workstation(
        pki_dir, "old", not_before=start, not_after=start + timedelta(days=1)
    )
    certificate = _cert(cert_path)
    assert certificate.not_valid_after_utc == start + timedelta(days=1)
    assert _mode(key_path) == 0o600


def test_passphrase_encrypts_keys_and_is_needed_to_read_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pki.PASSPHRASE_ENV, "correct horse")
    paths = pki.init_pki(tmp_path / "pki")
    for key in (paths.server_key, paths.establishment_ca / "ca.key"):
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
        assert _mode(key) == 0o600
    assert pki.load_establishment_ca(paths.root).key is not None
    assert tls.server_ssl_context(paths.root) is not None  # the server key is read with it

    monkeypatch.setenv(pki.PASSPHRASE_ENV, "wrong")
    with pytest.raises(pki.PkiError):
        pki.load_establishment_ca(paths.root)
    monkeypatch.delenv(pki.PASSPHRASE_ENV)
    with pytest.raises(pki.PkiError):
        pki.load_private_key(paths.server_key)


def test_cli_issue_and_revoke(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pki", "issue-workstation", str(pki_dir), "pc-accueil", "--days", "30"]) == 0
    cert_path = pki_dir / "workstations" / "pc-accueil.pem"
    certificate = _cert(cert_path)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert timedelta(days=29) < lifetime < timedelta(days=31)
    assert cli.main(["pki", "revoke", str(pki_dir), str(cert_path)]) == 0
    crl = pki.load_establishment_ca(pki_dir).crl()
    assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
    assert f"{certificate.serial_number:x}" in capsys.readouterr().out

    with pytest.raises(SystemExit):
        cli.main(["pki", "issue-workstation", str(pki_dir), "x", "--days", "0"])
    assert cli.main(["pki", "revoke", str(pki_dir), str(pki_dir / "missing.pem")]) == 1
