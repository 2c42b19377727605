"""ITI-65 deposit on the reference host (SQLite and PostgreSQL): what is stored, what is
refused with which code, and that a refused deposit stores nothing."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from host.store.schema import access_log, documents, notifications, submission_sets
from tests.host.documents_support import (
    FHIR,
    GP_CARD,
    OPTICIAN_CARD,
    PATIENT,
    PDF,
    Pki,
    deposit_bundle,
    entry_for,
    install_pki,
    make_pki,
    open_dossier,
)
from tests.host.harness import OTHER_GP, InProcessHost
from wire.mhd import build_provide_bundle, parse_transaction_response


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture
def host(db_url: str, tmp_path: Path, pki: Pki) -> InProcessHost:
    host = InProcessHost(db_url, tmp_path, max_document_size=64 * 1024)
    install_pki(pki, host)
    return host


def post(host: InProcessHost, bundle: dict[str, Any], who=OPTICIAN_CARD) -> Any:
    return host.client(who).post("/fhir", content=json.dumps(bundle), headers=FHIR)


def counts(host: InProcessHost) -> tuple[int, int]:
    with host.app.state.engine.connect() as connection:
        return (connection.execute(select(func.count()).select_from(documents)).scalar_one(),
                connection.execute(select(func.count()).select_from(submission_sets))
                .scalar_one())


def blob_files(host: InProcessHost) -> list[Path]:
    root = host.settings.blob_dir
    return [p for p in root.glob("??/*") if p.is_file()]


def error_code(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def test_deposit_stores_rows_blob_log_and_notification(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    entry = entry_for(PDF)
    deposit = deposit_bundle(pki.optician, [(entry, PDF)])
    response = post(host, deposit.bundle)
    assert response.status_code == 200, response.text
    answer = parse_transaction_response(response.content)
    kinds = [e["resource"]["resourceType"] for e in deposit.bundle["entry"]]
    assert len(answer) == len(kinds)  # one answer entry per request entry, in order
    assert [a.location.split("/")[0] for a in answer] == kinds
    assert all(a.status == "201 Created" for a in answer)
    doc_id = answer[1].location.split("/")[1]
    assert counts(host) == (2, 1)  # the report and its signature document
    with host.app.state.engine.connect() as connection:
        row = connection.execute(select(documents).where(documents.c.id == doc_id)).one()
        log = connection.execute(select(access_log).where(access_log.c.document_id == doc_id)
                                 ).one()
        notes = connection.execute(select(notifications)).all()
    assert (row.unique_id, row.sha256, row.size, row.author_id) == (
        entry.unique_id, entry.sha256, len(PDF), OPTICIAN_CARD.id_nat_ps)
    assert host.app.state.blobs.exists(entry.sha256)
    assert (log.action, log.outcome, log.reason) == ("deposit", "allowed", "ALLOWED_DEPOSIT")
    # One new-document notification: the report, not the signature document.
    assert [(n.kind, n.payload["document"]) for n in notes] == [("new-document", doc_id)]


def test_same_deposit_twice_is_stored_once(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    first = post(host, deposit.bundle)
    second = post(host, deposit.bundle)
    assert first.status_code == second.status_code == 200
    assert [e.location for e in parse_transaction_response(first.content)] == [
        e.location for e in parse_transaction_response(second.content)]
    replay = second.json()["entry"][0]["response"]
    assert replay["status"] == "200 OK"
    assert "already stored" in replay["outcome"]["issue"][0]["diagnostics"]
    assert counts(host) == (2, 1)


def test_streamed_binary_then_bundle(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    client = host.client(OPTICIAN_CARD)
    uploaded = client.post("/fhir/Binary", content=PDF,
                           headers={"content-type": "application/pdf"})
    assert uploaded.status_code == 201
    binary_id = uploaded.json()["id"]
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), binary_id)])
    response = client.post("/fhir", content=json.dumps(deposit.bundle), headers=FHIR)
    assert response.status_code == 200, response.text
    assert counts(host) == (2, 1)
    # Someone else cannot reference that upload.
    other = deposit_bundle(pki.gp, [(entry_for(PDF, GP_CARD, type_code="11488-4"), binary_id)],
                           GP_CARD)
    assert error_code(post(host, other.bundle, GP_CARD)) == "unknown-binary"


def refused(host: InProcessHost, bundle: dict[str, Any], status: int, code: str,
            who=OPTICIAN_CARD) -> None:
    before = set(blob_files(host))
    response = post(host, bundle, who)
    assert (response.status_code, error_code(response)) == (status, code), response.text
    assert counts(host) == (0, 0)
    assert set(blob_files(host)) == before  # no body stored either


def tamper(bundle: dict[str, Any], index: int, path: list[Any], value: Any) -> dict[str, Any]:
    bundle = copy.deepcopy(bundle)
    node = bundle["entry"][index]["resource"]
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return bundle


def test_hash_mismatch_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    entry = entry_for(PDF, sha1_b64=base64.b64encode(b"\0" * 20).decode())
    refused(host, deposit_bundle(pki.optician, [(entry, PDF)]).bundle, 400, "hash-mismatch")
    # The SHA-256 the card signed is not the content's: the host computes it from the bytes
    # it received, and the signature's manifest does not match them.
    entry = entry_for(PDF, sha256="0" * 64)
    refused(host, deposit_bundle(pki.optician, [(entry, PDF)]).bundle, 403,
            "signature-manifest-mismatch")


def test_size_mismatch_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    entry = entry_for(PDF, size=len(PDF) + 1)
    refused(host, deposit_bundle(pki.optician, [(entry, PDF)]).bundle, 400, "size-mismatch")


def test_signature_over_other_documents_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    entry = entry_for(PDF)
    other = replace(entry, sha256="1" * 64)
    deposit = deposit_bundle(pki.optician, [(entry, PDF)], signed_documents=[other])
    refused(host, deposit.bundle, 403, "signature-manifest-mismatch")


def test_signature_by_another_card_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    deposit = deposit_bundle(pki.gp, [(entry_for(PDF), PDF)])  # the GP's card signs
    refused(host, deposit.bundle, 403, "signature-wrong-signer")


def test_signature_with_revoked_certificate_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    deposit = deposit_bundle(pki.revoked, [(entry_for(PDF), PDF)])
    refused(host, deposit.bundle, 403, "signature-cert-revoked")


def test_missing_signature_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    bundle = build_provide_bundle(deposit.submission_set, deposit.documents[:1])
    refused(host, bundle, 400, "signature-missing")


@pytest.mark.parametrize(("changes", "code"), [
    ({"class_code": "11"}, "class-type-mismatch"),
    ({"type_code": "99999-9"}, "unknown-type"),
    ({"format_code": "urn:example:format"}, "unknown-format"),
    ({"facility_type": "SA99"}, "unknown-facility-type"),
    ({"practice_setting": "NOWHERE"}, "unknown-practice-setting"),
])
def test_unknown_or_inconsistent_codes_are_refused(
    host: InProcessHost, pki: Pki, changes: dict[str, str], code: str
) -> None:
    open_dossier(host)
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF, **changes), PDF)])
    refused(host, deposit.bundle, 400, code)


def test_unknown_confidentiality_code_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    bundle = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)]).bundle
    labels = bundle["entry"][1]["resource"]["securityLabel"]
    labels[0]["coding"][0]["code"] = "SECRET"
    refused(host, bundle, 400, "unknown-confidentiality")


def test_author_not_the_sessions_professional_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    refused(host, deposit.bundle, 403, "author-mismatch", who=OTHER_GP)


@pytest.mark.parametrize(("status", "code"), [("closed", "dossier-closed"),
                                              (None, "dossier-absent")])
def test_closed_or_absent_dmp_is_refused(host: InProcessHost, pki: Pki, status: str | None,
                                         code: str) -> None:
    if status:
        open_dossier(host, status=status)
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)])
    refused(host, deposit.bundle, 403, code)
    with host.app.state.engine.connect() as connection:
        log = connection.execute(select(access_log)).all()
    if status:  # traced (a refused access is logged too)
        assert [(r.outcome, r.reason) for r in log] == [("refused", "DOSSIER_CLOSED")]


def test_oversize_document_is_refused(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    big = b"x" * (64 * 1024 + 1)
    deposit = deposit_bundle(pki.optician, [(entry_for(big), big)])
    refused(host, deposit.bundle, 413, "document-too-large")
    response = host.client(OPTICIAN_CARD).post("/fhir/Binary", content=big)
    assert response.status_code == 413
    assert blob_files(host) == []


def test_profession_may_not_write_this_type(host: InProcessHost, pki: Pki) -> None:
    open_dossier(host)
    deposit = deposit_bundle(pki.optician, [(entry_for(PDF, type_code="11488-4"), PDF)])
    refused(host, deposit.bundle, 403, "profession-may-not-write")


def test_malformed_bundle_is_a_400(host: InProcessHost) -> None:
    open_dossier(host)
    response = host.client(OPTICIAN_CARD).post("/fhir", content=b"{not json", headers=FHIR)
    assert (response.status_code, error_code(response)) == (400, "not-json")
    assert PATIENT.ins  # the dossier exists: the refusal is the bundle's
