"""A deposit made under an e-CPS session is signed by the establishment certificate of the
workstation that opened the session (docs/psc.md), through the host's real deposit route and
the real test PKI: accepted there only; on a card session, from another workstation, from an
untrusted or a revoked establishment certificate it is refused with its own code, and nothing
is stored."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import insert

from host.pki import SANDBOX_WORKSTATION, init_pki, issue_workstation, revoke
from host.store.schema import sessions
from tests.host.documents_support import (
    FHIR,
    OPTICIAN_CARD,
    PDF,
    deposit_bundle,
    entry_for,
    open_dossier,
)
from tests.host.harness import InProcessHost
from tests.host.test_documents_deposit import counts, error_code, refused
from wire import dsg


@dataclass(frozen=True)
class EstablishmentKey:
    """A workstation's establishment certificate and key, as `deposit_bundle` signs with."""

    key: rsa.RSAPrivateKey
    der: bytes

    @classmethod
    def load(cls, cert: Path, key: Path) -> EstablishmentKey:
        private = serialization.load_pem_private_key(key.read_bytes(), None)
        assert isinstance(private, rsa.RSAPrivateKey)
        certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        return cls(private, certificate.public_bytes(serialization.Encoding.DER))

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def certificate(self) -> bytes:
        return self.der

    @property
    def sha256(self) -> str:
        return hashes_hex(self.der)


def hashes_hex(der: bytes) -> str:
    import hashlib

    return hashlib.sha256(der).hexdigest()


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    host = InProcessHost(db_url, tmp_path)
    init_pki(host.settings.pki_dir)  # health, establishment and session CAs, a workstation
    host.clock.now = dt.datetime.now(dt.UTC)  # the workstation was issued now
    open_dossier(host)
    return host


def workstation(host: InProcessHost, name: str = SANDBOX_WORKSTATION) -> EstablishmentKey:
    pki = host.settings.pki_dir
    return EstablishmentKey.load(pki / "workstations" / f"{name}.pem",
                                 pki / "workstations" / f"{name}.key")


def ecps_session(host: InProcessHost, opened_by: EstablishmentKey) -> str:
    """An e-CPS session row (no card) opened from ``opened_by``; its fingerprint."""
    who, fingerprint, now = OPTICIAN_CARD, uuid.uuid4().hex * 2, host.clock()
    with host.app.state.engine.begin() as connection:
        connection.execute(insert(sessions).values(
            id=str(uuid.uuid4()), cert_sha256=fingerprint, cert_serial="2",
            id_nat_ps=who.id_nat_ps, last_name=who.last_name, first_name=who.first_name,
            profession=who.profession, specialty=who.specialty, structure_id=who.structure_id,
            card_serial="", workstation_sha256=opened_by.sha256, created_at=now,
            not_after=now + dt.timedelta(hours=1), auth_means="e-cps"))
    return fingerprint


def post_as(host: InProcessHost, fingerprint: str, bundle: dict[str, object]) -> object:
    client = host.client(**{"x-test-session": fingerprint})
    return client.post("/fhir", content=json.dumps(bundle), headers=FHIR)


def test_an_e_cps_deposit_signed_by_its_workstation_is_accepted(host: InProcessHost) -> None:
    station = workstation(host)
    deposit = deposit_bundle(station, [(entry_for(PDF), PDF)], signer="establishment")
    _entry, signature = deposit.documents[-1]
    assert isinstance(signature, bytes)
    assert dsg.verify(signature).signer == dsg.SIGNER_ESTABLISHMENT  # the set says so
    answer = post_as(host, ecps_session(host, station), deposit.bundle)
    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    assert counts(host) == (2, 1)


def test_an_establishment_signature_on_a_card_session_is_refused(host: InProcessHost) -> None:
    deposit = deposit_bundle(workstation(host), [(entry_for(PDF), PDF)], signer="establishment")
    refused(host, deposit.bundle, 403, "signature-establishment-card-session")


def _refused_on_ecps(host: InProcessHost, opened_by: EstablishmentKey,
                     signed_by: EstablishmentKey, code: str) -> None:
    deposit = deposit_bundle(signed_by, [(entry_for(PDF), PDF)], signer="establishment")
    answer = post_as(host, ecps_session(host, opened_by), deposit.bundle)
    assert (answer.status_code, error_code(answer)) == (403, code), \
        answer.text  # type: ignore[attr-defined]
    assert counts(host) == (0, 0)


def test_another_workstation_s_certificate_is_refused(host: InProcessHost) -> None:
    issue_workstation(host.settings.pki_dir, "accueil-2", _warn=False)
    _refused_on_ecps(host, workstation(host), workstation(host, "accueil-2"),
                     "signature-establishment-other-workstation")


def test_an_untrusted_establishment_certificate_is_refused(host: InProcessHost,
                                                           tmp_path: Path) -> None:
    elsewhere = init_pki(tmp_path / "elsewhere").root  # another establishment CA
    foreign = EstablishmentKey.load(elsewhere / "workstations" / f"{SANDBOX_WORKSTATION}.pem",
                                    elsewhere / "workstations" / f"{SANDBOX_WORKSTATION}.key")
    _refused_on_ecps(host, foreign, foreign, "signature-establishment-untrusted")


def test_a_revoked_establishment_certificate_is_refused(host: InProcessHost) -> None:
    station = workstation(host)
    revoke(host.settings.pki_dir / "establishment-ca",
           x509.load_der_x509_certificate(station.der))
    _refused_on_ecps(host, station, station, "signature-establishment-revoked")


def test_an_establishment_certificate_passed_for_a_card_s_is_refused(host: InProcessHost
                                                                      ) -> None:
    """Without the signed Signer property it is judged as a card's: not from the health CA."""
    station = workstation(host)
    deposit = deposit_bundle(station, [(entry_for(PDF), PDF)])
    answer = post_as(host, ecps_session(host, station), deposit.bundle)
    assert error_code(answer) == "signature-cert-untrusted"
    assert counts(host) == (0, 0)
