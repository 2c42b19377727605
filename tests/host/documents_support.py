"""Shared by the tests of the host's document endpoints: a health CA with a CRL, virtual CPS
cards that really sign (through CpsCard over an in-process connection), dossier rows, and
deposits built with `wire.mhd` exactly as the agent builds them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert

from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.direct import DirectConnection as InProcess
from cardreader.virtual.pki import TestHealthCA
from host.pki import CertificateAuthority
from host.store.schema import authorizations, dossiers, medecins_traitants
from tests.host.harness import GP, OPTICIAN, InProcessHost, Professional
from wire import codes
from wire.ins import IdentityReliability, InsIdentity
from wire.mhd import Author, DocumentEntry, Patient, SubmissionSet, build_provide_bundle
from wire.signature import sign_submission

# The optician's and the GP's virtual cards as the host sees them.
OPTICIAN_CARD = OPTICIAN
GP_CARD = GP
PATIENT = Patient("180017512345688", codes.INS_TEST_OID)
PDF = b"%PDF-1.4\n% eye test report\n" + bytes(range(256)) * 4




@dataclass
class Card:
    """A virtual CPS driven through the real profile code, PIN presented."""

    profile: CpsCard

    @classmethod
    def of(cls, virtual: VirtualCps) -> Card:
        profile = CpsCard(ApduProtocol(InProcess(virtual)))
        profile.verify_pin("1234")
        return cls(profile)

    def sign(self, data: bytes) -> bytes:
        return self.profile.sign(CpsKey.SIGNATURE, data)

    def certificate(self, key: CpsKey = CpsKey.SIGNATURE) -> bytes:
        return self.profile.certificate(key).public_bytes(serialization.Encoding.DER)


@dataclass
class Pki:
    directory: Path  # holds health-ca/
    optician: Card
    gp: Card
    revoked: Card


def make_pki(root: Path) -> Pki:
    """Health CA + CRL and three cards (the third one revoked). RSA is slow: once a module."""
    ca = TestHealthCA.create()
    ca.save(root / "health-ca")
    optician = Card.of(VirtualCps.from_profile("optician", ca=ca))
    gp = Card.of(VirtualCps.from_profile("gp", ca=ca))
    revoked = Card.of(VirtualCps.from_profile("optician", ca=ca))
    serial = x509.load_der_x509_certificate(revoked.certificate()).serial_number
    entry = (x509.RevokedCertificateBuilder().serial_number(serial)
             .revocation_date(dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).build())
    authority = CertificateAuthority(root / "health-ca", ca.certificate, ca.key, ca.root)
    crl = authority.sign_crl([entry], number=1,
                             now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                             lifetime=dt.timedelta(days=3650))
    (root / "health-ca" / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    (root / "health-ca" / "ca.key").unlink()  # the host needs no CA key
    return Pki(root, optician, gp, revoked)


def install_pki(pki: Pki, host: InProcessHost) -> None:
    shutil.copytree(pki.directory / "health-ca", host.settings.pki_dir / "health-ca")


def open_dossier(host: InProcessHost, ins: str = PATIENT.ins, *, status: str = "open") -> None:
    now = host.clock()
    with host.app.state.engine.begin() as connection:
        connection.execute(insert(dossiers).values(
            ins=ins, status=status, created_at=now, created_by="810001234565",
            consent_at=now, consent_break_the_glass=True, consent_regulation_centre=True,
            consent_emergency_sees_masked=False, secret_sha256="0" * 64,
            closed_at=now if status == "closed" else None,
        ))


def authorize(host: InProcessHost, who: Professional, ins: str = PATIENT.ins) -> None:
    with host.app.state.engine.begin() as connection:
        connection.execute(insert(authorizations).values(
            ins=ins, id_nat_ps=who.id_nat_ps, structure_id=None, status="valid",
            granted_at=host.clock(), granted_by=who.id_nat_ps, blocked=False))


def make_traitant(host: InProcessHost, who: Professional, ins: str = PATIENT.ins) -> None:
    with host.app.state.engine.begin() as connection:
        connection.execute(insert(medecins_traitants).values(
            ins=ins, id_nat_ps=who.id_nat_ps, designated_at=host.clock(), designated_by=ins))


def author_of(who: Professional) -> Author:
    return Author(who.id_nat_ps, who.profession, who.structure_id, who.specialty,
                  who.last_name, who.first_name)


def new_uid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def entry_for(content: bytes, who: Professional = OPTICIAN_CARD, **changes: Any
              ) -> DocumentEntry:
    base = DocumentEntry(
        unique_id=new_uid(), patient=PATIENT, class_code="10", type_code="34810-2",
        type_system=codes.LOINC_SYSTEM, format_code="urn:ihe:iti:xds-sd:pdf:2008",
        mime_type="application/pdf", title="Examen de la vue", author=author_of(who),
        creation_time=dt.datetime(2026, 11, 26, 15, 0, tzinfo=dt.UTC), size=len(content),
        sha1_b64=base64.b64encode(hashlib.sha1(content).digest()).decode(),
        sha256=hashlib.sha256(content).hexdigest(), facility_type="SA07",
        practice_setting="AMBULATOIRE",
    )
    return replace(base, **changes)


@dataclass
class Deposit:
    submission_set: SubmissionSet
    documents: list[tuple[DocumentEntry, bytes | str]]
    bundle: dict[str, Any] = field(default_factory=dict)


def deposit_bundle(
    card: Card,
    documents: list[tuple[DocumentEntry, bytes | str]],
    who: Professional = OPTICIAN_CARD,
    *,
    patient: Patient = PATIENT,
    signed_documents: list[DocumentEntry] | None = None,
    submission_uid: str | None = None,
    identity: tuple[InsIdentity, IdentityReliability] | None = None,
    signer: str = "card",
) -> Deposit:
    """A signed ITI-65 bundle; ``signed_documents`` lets a test sign other documents or digests
    than it sends (a forged manifest); ``signer``: "establishment" when ``card`` is a
    workstation's key (e-CPS, docs/psc.md); ``identity``: the patient's INS traits and RNIV status
    the submission set carries (docs/ins.md)."""
    submission = SubmissionSet(
        unique_id=submission_uid or new_uid(), source_id="urn:oid:1.2.250.1.999.1",
        patient=patient, submission_time=dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC),
        author=author_of(who), content_type_code="SA07",
        identity=identity[0] if identity else None,
        reliability=identity[1] if identity else None,
    )
    signed = signed_documents if signed_documents is not None else [e for e, _ in documents]
    signature, signature_xml = sign_submission(submission, signed, card.sign, card.certificate(),
                                               unique_id=new_uid(), signer=signer)
    docs = [*documents, (signature, signature_xml)]
    return Deposit(submission, docs, build_provide_bundle(submission, docs))


FHIR = {"content-type": "application/fhir+json"}
