"""The deposit's IHE DSG signature through the real host (SQLite and PostgreSQL): signed by the
virtual CPS card it is accepted and stored as a DSG document; every refusal has its own code and
stores nothing (no row, no body)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree
from sqlalchemy import select

from cardreader.cps import CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from host.actors import SessionActor
from host.documents import signing
from host.store.schema import documents
from tests.host.documents_support import (
    FHIR,
    OPTICIAN_CARD,
    PATIENT,
    PDF,
    Card,
    Deposit,
    Pki,
    deposit_bundle,
    entry_for,
    install_pki,
    make_pki,
    open_dossier,
)
from tests.host.harness import InProcessHost
from tests.host.test_documents_deposit import counts, refused
from wire import codes, dsg
from wire.mhd import build_provide_bundle
from wire.signature import signature_entry

LETTER = b"%PDF-1.4\n% a second document\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture(scope="module")
def foreign_card() -> Card:
    """An optician's card, same idNat_PS, issued by another CA than the host trusts."""
    return Card.of(VirtualCps.from_profile("optician", ca=TestHealthCA.create()))


@pytest.fixture
def host(db_url: str, tmp_path: Path, pki: Pki) -> InProcessHost:
    # Documents may be larger than a signature document may: its own cap is what is tested.
    host = InProcessHost(db_url, tmp_path, max_document_size=4 * dsg.MAX_SIGNATURE_BYTES)
    install_pki(pki, host)
    open_dossier(host)
    return host


def with_signature(deposit: Deposit, data: bytes) -> dict[str, object]:
    """The same deposit with another signature document (its entry describing ``data``)."""
    old, _ = deposit.documents[-1]
    entry = signature_entry(data, deposit.submission_set, old.author,
                            unique_id=old.unique_id, creation_time=old.creation_time)
    return build_provide_bundle(deposit.submission_set, [*deposit.documents[:-1], (entry, data)])


def edited(deposit: Deposit, change: str) -> bytes:
    _, data = deposit.documents[-1]
    assert isinstance(data, bytes)
    root = etree.fromstring(data)
    if change == "signature-value":
        value = root.find("ds:SignatureValue", dsg.NSMAP)
        raw = bytearray(base64.b64decode(value.text or ""))
        raw[-1] ^= 1
        value.text = base64.b64encode(bytes(raw)).decode()
    elif change == "manifest-digest":
        value = root.find("ds:Object/ds:Manifest/ds:Reference/ds:DigestValue", dsg.NSMAP)
        value.text = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_the_virtual_cps_card_signs_a_dsg_that_verifies(pki: Pki) -> None:
    """Device level: CpsCard.sign(CpsKey.SIGNATURE, ...) over an APDU connection to the virtual
    card signs the canonical SignedInfo; the document verifies with the card's certificate,
    which the host's certificate checks accept."""
    calls: list[bytes] = []

    def card(data: bytes) -> bytes:
        calls.append(data)
        return pki.optician.profile.sign(CpsKey.SIGNATURE, data)

    report = entry_for(PDF)
    data = dsg.sign("urn:oid:1.2.250.1.999.7", PATIENT,
                    [dsg.SignedDocument(report.unique_id, report.sha256)], card,
                    pki.optician.certificate(CpsKey.SIGNATURE), signing_time=report.creation_time)
    assert len(calls) == 1  # one card operation a deposit
    signed = dsg.verify(data)
    assert signed.certificate == x509.load_der_x509_certificate(pki.optician.certificate())
    assert signed.documents == (dsg.SignedDocument(report.unique_id,
                                                   hashlib.sha256(PDF).hexdigest()),)
    signing.check_signer_certificate(signed.certificate, pki.directory, _actor(),
                                     dt.datetime.now(dt.UTC))


def _actor() -> SessionActor:  # the optician's session as check_signer_certificate sees it
    who = OPTICIAN_CARD
    return SessionActor("session", who.id_nat_ps, who.last_name, who.first_name, who.profession,
                        who.specialty, who.structure_id, dt.datetime.max.replace(tzinfo=dt.UTC))


def test_a_dsg_signed_deposit_is_stored_as_a_dsg_document(host: InProcessHost, pki: Pki) -> None:
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF), (entry_for(LETTER), LETTER)])
    response = host.client(OPTICIAN_CARD).post("/fhir", content=json.dumps(deposit.bundle),
                                               headers=FHIR)
    assert response.status_code == 200, response.text
    assert counts(host) == (3, 1)
    with host.app.state.engine.connect() as connection:
        row = connection.execute(select(documents).where(
            documents.c.type_code == codes.SIGNATURE_TYPE_CODE)).one()
    assert (row.format_code, row.mime_type, row.class_code) == (
        "urn:ihe:iti:dsg:detached:2014", "text/xml", "99")


def test_an_uploaded_signature_document_is_verified_too(host: InProcessHost, pki: Pki) -> None:
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    client = host.client(OPTICIAN_CARD)
    _, data = deposit.documents[-1]
    forged = edited(deposit, "signature-value")
    for body, status in ((forged, 403), (data, 200)):
        uploaded = client.post("/fhir/Binary", content=body,
                               headers={"content-type": "text/xml"})
        assert uploaded.status_code == 201
        entry = signature_entry(body, deposit.submission_set, deposit.documents[-1][0].author,
                                unique_id=deposit.documents[-1][0].unique_id,
                                creation_time=deposit.submission_set.submission_time)
        bundle = build_provide_bundle(deposit.submission_set, [deposit.documents[0],
                                                               (entry, uploaded.json()["id"])])
        response = client.post("/fhir", content=json.dumps(bundle), headers=FHIR)
        assert response.status_code == status, response.text


def test_an_altered_signature_value_is_refused(host: InProcessHost, pki: Pki) -> None:
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    refused(host, with_signature(deposit, edited(deposit, "signature-value")), 403,
            "bad-signature")


def test_a_tampered_manifest_digest_is_refused(host: InProcessHost, pki: Pki) -> None:
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    refused(host, with_signature(deposit, edited(deposit, "manifest-digest")), 403,
            "bad-signature")


def test_signed_bytes_other_than_received_are_refused(host: InProcessHost, pki: Pki) -> None:
    """The manifest is compared with the SHA-256 the host computed, not a declared one."""
    entry = entry_for(PDF)
    other = entry_for(LETTER, unique_id=entry.unique_id)  # same uniqueId, other bytes
    deposit = deposit_bundle(pki.optician, [(entry, PDF)], signed_documents=[other])
    refused(host, deposit.bundle, 403, "signature-manifest-mismatch")


def test_a_manifest_missing_a_document_is_refused(host: InProcessHost, pki: Pki) -> None:
    report, letter = entry_for(PDF), entry_for(LETTER)
    deposit = deposit_bundle(pki.optician, [(report, PDF), (letter, LETTER)],
                             signed_documents=[report])
    refused(host, deposit.bundle, 403, "signature-manifest-mismatch")


def test_a_manifest_naming_an_extra_document_is_refused(host: InProcessHost, pki: Pki) -> None:
    report, letter = entry_for(PDF), entry_for(LETTER)
    deposit = deposit_bundle(pki.optician, [(report, PDF)], signed_documents=[report, letter])
    refused(host, deposit.bundle, 403, "signature-manifest-mismatch")


def test_a_signature_of_another_submission_set_is_refused(host: InProcessHost,
                                                          pki: Pki) -> None:
    first = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    second = deposit_bundle(pki.optician, first.documents[:1])  # a new submission set uniqueId
    _, data = first.documents[-1]
    assert isinstance(data, bytes)
    refused(host, with_signature(second, data), 403, "signature-manifest-mismatch")


def test_an_untrusted_signer_is_refused(host: InProcessHost, foreign_card: Card) -> None:
    deposit = deposit_bundle(foreign_card, [(entry_for(PDF), PDF)])
    refused(host, deposit.bundle, 403, "signature-cert-untrusted")


def test_a_revoked_signer_is_refused(host: InProcessHost, pki: Pki) -> None:
    refused(host, deposit_bundle(pki.revoked, [(entry_for(PDF), PDF)]).bundle, 403,
            "signature-cert-revoked")


def test_a_signer_other_than_the_session_is_refused(host: InProcessHost, pki: Pki) -> None:
    refused(host, deposit_bundle(pki.gp, [(entry_for(PDF), PDF)]).bundle, 403,
            "signature-wrong-signer")


@pytest.mark.parametrize(("body", "code"), [
    (b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">&x;</ds:Signature>',
     "signature-dtd"),
    (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">'
     b']><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">&b;</ds:Signature>',
     "signature-dtd"),
    (b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'><ds:SignedInfo>",
     "signature-malformed"),
    (PDF, "signature-malformed"),
    (b"<" * (dsg.MAX_SIGNATURE_BYTES + 1), "signature-too-large"),
], ids=["xxe", "entities", "malformed-xml", "not-xml", "oversize"])
def test_a_bad_signature_document_is_refused(host: InProcessHost, pki: Pki, body: bytes,
                                             code: str) -> None:
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    refused(host, with_signature(deposit, body), 400, code)


def test_an_oversize_uploaded_signature_is_refused_unread(host: InProcessHost,
                                                          pki: Pki) -> None:
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    body = b" " * (dsg.MAX_SIGNATURE_BYTES + 1)
    client = host.client(OPTICIAN_CARD)
    uploaded = client.post("/fhir/Binary", content=body, headers={"content-type": "text/xml"})
    entry = signature_entry(body, deposit.submission_set, deposit.documents[-1][0].author,
                            unique_id=deposit.documents[-1][0].unique_id,
                            creation_time=deposit.submission_set.submission_time)
    bundle = build_provide_bundle(deposit.submission_set,
                                  [deposit.documents[0], (entry, uploaded.json()["id"])])
    response = client.post("/fhir", content=json.dumps(bundle), headers=FHIR)
    assert (response.status_code, response.json()["issue"][0]["details"]["coding"][0]["code"]
            ) == (400, "signature-too-large")
    assert counts(host) == (0, 0)
