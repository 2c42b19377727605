"""Search (ITI-67), retrieve (ITI-68), metadata changes (PATCH) and replacement on the
reference host, on SQLite and PostgreSQL: each caller sees only what the rules allow."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from host.store.schema import access_log, documents
from tests.host.documents_support import (
    FHIR,
    GP_CARD,
    OPTICIAN_CARD,
    PATIENT,
    PDF,
    Pki,
    authorize,
    deposit_bundle,
    entry_for,
    install_pki,
    make_pki,
    make_traitant,
    open_dossier,
)
from tests.host.harness import GP, GP2, NURSE, InProcessHost
from wire import codes
from wire.mhd import DocumentEntry, parse_search_bundle, parse_transaction_response

PATCH = {"content-type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture
def host(db_url: str, tmp_path: Path, pki: Pki) -> InProcessHost:
    host = InProcessHost(db_url, tmp_path, page_size=50)
    install_pki(pki, host)
    open_dossier(host)
    authorize(host, GP)  # GP: authorised, not médecin traitant
    authorize(host, GP2)
    make_traitant(host, GP2)  # GP2: médecin traitant (sees masked documents)
    return host


def deposit(host: InProcessHost, pki: Pki, *entries: tuple[DocumentEntry, bytes]) -> list[str]:
    """Deposit as the optician; the DocumentReference ids, in order."""
    bundle = deposit_bundle(pki.optician, list(entries)).bundle
    response = host.client(OPTICIAN_CARD).post("/fhir", content=json.dumps(bundle),
                                               headers=FHIR)
    assert response.status_code == 200, response.text
    return [e.location.split("/")[1] for e in parse_transaction_response(response.content)
            if e.location.startswith("DocumentReference/")][: len(entries)]


def search(host: InProcessHost, who: Any, query: str = "", status: str = "current"
           ) -> list[str]:
    url = f"/fhir/DocumentReference?patient=Patient/{PATIENT.ins}&status={status}{query}"
    response = host.client(who).get(url)
    assert response.status_code == 200, response.text
    return [entry.id for entry in parse_search_bundle(response.content).entries
            if not entry.is_signature]


def patch(host: InProcessHost, who: Any, doc_id: str, ops: list[dict[str, Any]]) -> Any:
    return host.client(who).patch(
        f"/fhir/DocumentReference?identifier={codes.DOCUMENT_ID_SYSTEM}|{doc_id}",
        content=json.dumps(ops), headers=PATCH)


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def test_search_shows_each_caller_what_the_rules_allow(host: InProcessHost, pki: Pki) -> None:
    plain, masked, hidden = deposit(
        host, pki,
        (entry_for(PDF), PDF),
        (entry_for(PDF + b"1", visibility=frozenset({codes.MASQUE_PS})), PDF + b"1"),
        (entry_for(PDF + b"2", visibility=frozenset({codes.INVISIBLE_PATIENT})), PDF + b"2"),
    )
    assert set(search(host, OPTICIAN_CARD)) == {plain, masked, hidden}  # the author
    assert set(search(host, GP)) == {plain, hidden}  # masked from professionals
    assert set(search(host, GP2)) == {plain, masked, hidden}  # the médecin traitant
    response = host.client(NURSE).get(
        f"/fhir/DocumentReference?patient=Patient/{PATIENT.ins}&status=current")
    assert response.status_code == 200  # no ground to consult: nothing, not an error
    assert parse_search_bundle(response.content).entries == ()
    with host.app.state.engine.connect() as connection:
        log = connection.execute(select(access_log).where(access_log.c.action == "search")
                                 .order_by(access_log.c.at)).all()
    assert len(log) == 4  # one line per search, not per document
    assert log[-1].outcome == "refused"


def test_search_filters(host: InProcessHost, pki: Pki) -> None:
    early = entry_for(PDF, creation_time=dt.datetime(2026, 1, 10, tzinfo=dt.UTC),
                      confidentiality="R")
    late = entry_for(PDF + b"x", type_code="DISPENSATION-OPTIQUE", class_code="43",
                     type_system="urn:dmp-agent:type-local")
    first, second = deposit(host, pki, (early, PDF), (late, PDF + b"x"))
    assert search(host, GP, "&type=http://loinc.org|34810-2") == [first]
    assert search(host, GP, "&category=43") == [second]
    assert search(host, GP, "&creation=le2026-06-01") == [first]
    assert search(host, GP, "&creation=ge2026-06-01&creation=le2026-12-31") == [second]
    assert search(host, GP, "&security-label=R") == [first]
    assert set(search(host, GP, f"&author={OPTICIAN_CARD.id_nat_ps}")) == {first, second}
    assert search(host, GP, f"&author={GP.id_nat_ps}") == []
    assert set(search(host, GP, "&format=urn:ihe:iti:xds-sd:pdf:2008")) == {first, second}
    assert set(search(host, GP, "&isArchived=false")) == {first, second}


def test_search_pages_with_a_next_link(host: InProcessHost, pki: Pki) -> None:
    ids = deposit(host, pki, *[(entry_for(PDF + bytes([i])), PDF + bytes([i]))
                               for i in range(5)])
    client = host.client(GP)
    url = (f"/fhir/DocumentReference?patient.identifier=urn:oid:{PATIENT.oid}|{PATIENT.ins}"
           "&status=current&type=34810-2&_count=2")
    seen: list[str] = []
    pages = 0
    while url:
        page = parse_search_bundle(client.get(url).content)
        assert len(page.entries) <= 2
        seen += [e.id for e in page.entries]  # type: ignore[misc]
        url = page.next_url.split("testserver", 1)[1] if page.next_url else ""
        pages += 1
    assert sorted(seen) == sorted(ids) and pages == 3


@pytest.mark.parametrize("query", [
    "status=current",  # no patient
    f"patient=Patient/{PATIENT.ins}",  # no status
    f"patient=Patient/{PATIENT.ins}&status=current&creation=yesterday",
])
def test_bad_search_is_a_400(host: InProcessHost, query: str) -> None:
    assert host.client(GP).get(f"/fhir/DocumentReference?{query}").status_code == 400


def test_an_unknown_search_parameter_is_reported_or_refused_when_strict(
        host: InProcessHost) -> None:
    # MHD: "additional parameters not supported should be ignored"; FHIR's strict handling.
    url = f"/fhir/DocumentReference?patient=Patient/{PATIENT.ins}&status=current&colour=blue"
    lenient = host.client(GP).get(url)
    assert lenient.status_code == 200
    outcomes = [e for e in lenient.json().get("entry", [])
                if e.get("search", {}).get("mode") == "outcome"]
    assert outcomes and "colour" in json.dumps(outcomes)
    strict = host.client(GP).get(url, headers={"prefer": "handling=strict"})
    assert strict.status_code == 400


def test_retrieve_returns_the_deposited_bytes(host: InProcessHost, pki: Pki) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    response = host.client(GP).get(f"/fhir/Binary/{doc_id}")
    assert response.status_code == 200
    assert response.content == PDF
    assert response.headers["content-type"] == "application/pdf"
    reference = host.client(GP).get(f"/fhir/DocumentReference/{doc_id}")
    assert reference.json()["content"][0]["attachment"]["url"] == f"Binary/{doc_id}"
    assert host.client(NURSE).get(f"/fhir/Binary/{doc_id}").status_code == 403
    assert host.client(GP).get(f"/fhir/Binary/{PATIENT.ins}.{'0' * 32}").status_code == 404
    with host.app.state.engine.connect() as connection:
        reads = connection.execute(select(access_log.c.outcome).where(
            access_log.c.action == "read")).scalars().all()
    # The probe for an unknown document of this patient is traced as a refused read too.
    assert sorted(reads) == ["allowed", "allowed", "refused", "refused"]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 70_001, 200_000])
def test_retrieve_as_a_fhir_binary_resource(host: InProcessHost, pki: Pki, size: int) -> None:
    """ITI-68 asked with Accept: application/fhir+json gives the same content as a Binary
    resource, streamed (its length exact whatever the size modulo 3); the document's own
    type, or no preference, still gives the bytes. Each read is one READ decision."""
    content = PDF + os.urandom(size)
    (doc_id,) = deposit(host, pki, (entry_for(content), content))
    gp = host.client(GP)
    answer = gp.get(f"/fhir/Binary/{doc_id}", headers={"accept": "application/fhir+json"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    assert int(answer.headers["content-length"]) == len(answer.content)
    resource = answer.json()
    assert (resource["resourceType"], resource["id"], resource["contentType"]) == (
        "Binary", doc_id, "application/pdf")
    assert base64.b64decode(resource["data"], validate=True) == content
    both = gp.get(f"/fhir/Binary/{doc_id}",
                  headers={"accept": "application/pdf, application/fhir+json;q=0.5"})
    assert both.content == content
    assert gp.get(f"/fhir/Binary/{doc_id}", headers={"accept": "*/*"}).content == content
    refused = host.client(NURSE).get(f"/fhir/Binary/{doc_id}",
                                     headers={"accept": "application/fhir+json"})
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"


def test_mask_and_unmask(host: InProcessHost, pki: Pki) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    label = {"coding": [{"system": codes.VISIBILITY_SYSTEM, "code": codes.MASQUE_PS}]}
    response = patch(host, OPTICIAN_CARD, doc_id, [{"op": "add", "path": "/securityLabel/-",
                                                   "value": label}])
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["versionId"] == "2"
    assert search(host, GP) == []
    assert search(host, GP2) == [doc_id]
    response = patch(host, OPTICIAN_CARD, doc_id, [{"op": "remove", "path": "/securityLabel/1"}])
    assert response.json()["meta"]["versionId"] == "3"
    assert search(host, GP) == [doc_id]


def test_only_the_author_masks(host: InProcessHost, pki: Pki) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    label = {"coding": [{"system": codes.VISIBILITY_SYSTEM, "code": codes.MASQUE_PS}]}
    response = patch(host, GP, doc_id, [{"op": "add", "path": "/securityLabel/-",
                                         "value": label}])
    assert (response.status_code, code_of(response)) == (403, "only-author")


def test_invisible_to_patient_sets_the_date(host: InProcessHost, pki: Pki) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    label = {"coding": [{"system": codes.VISIBILITY_SYSTEM, "code": codes.INVISIBLE_PATIENT}]}
    response = patch(host, OPTICIAN_CARD, doc_id, [{"op": "add", "path": "/securityLabel/-",
                                                   "value": label}])
    assert response.status_code == 200, response.text
    with host.app.state.engine.connect() as connection:
        row = connection.execute(select(documents).where(documents.c.id == doc_id)).one()
    assert row.invisible_to_patient
    assert row.visible_to_patient_from == dt.datetime(2026, 12, 27, 9, 0, tzinfo=dt.UTC)


def test_archive_then_unarchive(host: InProcessHost, pki: Pki) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    archive = [{"op": "replace", "path": "/extension/0/valueBoolean", "value": True}]
    assert patch(host, OPTICIAN_CARD, doc_id, archive).status_code == 200
    assert search(host, GP) == []  # not in a default search
    assert search(host, GP, "&isArchived=true") == [doc_id]  # asked for explicitly
    unarchive = [{"op": "replace", "path": "/extension/0/valueBoolean", "value": False}]
    assert patch(host, OPTICIAN_CARD, doc_id, unarchive).status_code == 200
    assert search(host, GP) == [doc_id]


def test_delete_is_logical_and_author_only(host: InProcessHost, pki: Pki) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    delete = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
    assert code_of(patch(host, GP, doc_id, delete)) == "only-author"
    response = patch(host, OPTICIAN_CARD, doc_id, delete)
    assert response.status_code == 200 and response.json()["status"] == "entered-in-error"
    assert search(host, OPTICIAN_CARD) == []
    assert search(host, OPTICIAN_CARD, status="entered-in-error") == []  # never shown
    assert host.client(OPTICIAN_CARD).get(f"/fhir/Binary/{doc_id}").status_code == 403
    with host.app.state.engine.connect() as connection:
        assert connection.execute(select(documents.c.status).where(
            documents.c.id == doc_id)).scalar_one() == "entered-in-error"


@pytest.mark.parametrize("ops", [
    [{"op": "replace", "path": "/content/0/attachment/title", "value": "Autre"}],
    [{"op": "add", "path": "/description", "value": "x"}],
    [{"op": "replace", "path": "/meta/versionId", "value": "9"}],
    [{"op": "add", "path": "/extension/-", "value": {"url": "urn:x", "valueBoolean": True}}],
])
def test_patch_of_other_elements_is_405(host: InProcessHost, pki: Pki,
                                        ops: list[dict[str, Any]]) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    response = patch(host, OPTICIAN_CARD, doc_id, ops)
    assert (response.status_code, code_of(response)) == (405, "not-modifiable")


@pytest.mark.parametrize("body", [b"{}", b"[", b'[{"op": "jump", "path": "/status"}]',
                                  b'[{"op": "replace", "path": "status", "value": 1}]',
                                  b'[{"op": "remove", "path": "/securityLabel/7"}]'])
def test_malformed_patch_is_400(host: InProcessHost, pki: Pki, body: bytes) -> None:
    (doc_id,) = deposit(host, pki, (entry_for(PDF), PDF))
    response = host.client(OPTICIAN_CARD).patch(
        f"/fhir/DocumentReference?identifier={codes.DOCUMENT_ID_SYSTEM}|{doc_id}",
        content=body, headers=PATCH)
    assert response.status_code == 400


def test_patch_by_unique_id_with_or_without_the_patient(host: InProcessHost, pki: Pki) -> None:
    entry = entry_for(PDF)
    deposit(host, pki, (entry, PDF))
    archive = json.dumps([{"op": "replace", "path": "/extension/0/valueBoolean",
                           "value": True}])
    client = host.client(OPTICIAN_CARD)
    url = f"/fhir/DocumentReference?identifier={codes.RFC3986}|{entry.unique_id}"
    response = client.patch(f"{url}&patient=Patient/{PATIENT.ins}", content=archive,
                            headers=PATCH)
    assert response.status_code == 200
    unarchive = archive.replace("true", "false")
    assert client.patch(url, content=unarchive, headers=PATCH).status_code == 200


def test_replace_supersedes_the_old_version(host: InProcessHost, pki: Pki) -> None:
    old = entry_for(PDF)
    (old_id,) = deposit(host, pki, (old, PDF))
    new = entry_for(PDF + b"v2", replaces=old.unique_id)
    (new_id,) = deposit(host, pki, (new, PDF + b"v2"))
    assert search(host, GP) == [new_id]
    assert search(host, GP, status="superseded") == [old_id]
    old_resource = host.client(GP).get(f"/fhir/DocumentReference/{old_id}").json()
    assert (old_resource["status"], old_resource["meta"]["versionId"]) == ("superseded", "2")
    # The superseded one cannot be replaced again.
    again = entry_for(PDF + b"v3", replaces=old.unique_id)
    bundle = deposit_bundle(pki.optician, [(again, PDF + b"v3")]).bundle
    response = host.client(OPTICIAN_CARD).post("/fhir", content=json.dumps(bundle),
                                               headers=FHIR)
    assert (response.status_code, code_of(response)) == (403, "document-state")


def test_only_the_author_replaces(host: InProcessHost, pki: Pki) -> None:
    old = entry_for(PDF)
    deposit(host, pki, (old, PDF))
    new = entry_for(PDF + b"v2", GP_CARD, type_code="34810-2", replaces=old.unique_id)
    bundle = deposit_bundle(pki.gp, [(new, PDF + b"v2")], GP_CARD).bundle
    response = host.client(GP_CARD).post("/fhir", content=json.dumps(bundle), headers=FHIR)
    assert (response.status_code, code_of(response)) == (403, "only-author")
