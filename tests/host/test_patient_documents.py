"""The patient's documents (list, mask, unmask), the professionals their dossier knows and the
médecin traitant they declare (host/patient_documents.py), on SQLite and PostgreSQL: what
the patient sees, what professionals then see over the API, and what the log keeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from host import audit, patient, patient_documents
from host.errors import HostError
from host.store.schema import documents
from tests.host.documents_support import (
    FHIR,
    OPTICIAN_CARD,
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
from tests.host.harness import GP, GP2, NURSE, PHARMACIST, InProcessHost
from tests.host.test_patient import run_cli
from wire import codes
from wire.mhd import DocumentEntry, Patient, parse_search_bundle, parse_transaction_response

CLAIRE = Patient("284057511402396", codes.INS_NIR_OID)  # a seeded identity: named in the log
THOMAS = Patient("179116912304566", codes.INS_NIR_OID)
# An optical dispensation: the optician writes it, the GP and the pharmacist may read it.
DISPENSATION = {"type_code": "DISPENSATION-OPTIQUE", "class_code": "43",
                "type_system": "urn:dmp-agent:type-local"}
PATCH = {"content-type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture
def host(db_url: str, tmp_path: Path, pki: Pki) -> InProcessHost:
    host = InProcessHost(db_url, tmp_path)
    install_pki(pki, host)
    open_dossier(host, CLAIRE.ins)
    authorize(host, PHARMACIST, CLAIRE.ins)  # authorised, not the author
    make_traitant(host, GP, CLAIRE.ins)  # médecin traitant DMP
    return host


def deposit(host: InProcessHost, pki: Pki, content: bytes = PDF, **changes: Any) -> str:
    """One document deposited by the optician in Claire's DMP; its id."""
    entry: DocumentEntry = entry_for(content, patient=CLAIRE, **{**DISPENSATION, **changes})
    bundle = deposit_bundle(pki.optician, [(entry, content)], patient=CLAIRE).bundle
    response = host.client(OPTICIAN_CARD).post("/fhir", content=json.dumps(bundle),
                                               headers=FHIR)
    assert response.status_code == 200, response.text
    return next(e.location.split("/")[1] for e in parse_transaction_response(response.content)
                if e.location.startswith("DocumentReference/"))


def patch(host: InProcessHost, doc_id: str, ops: list[dict[str, Any]]) -> None:
    """The optician (the author) changes the document's metadata."""
    response = host.client(OPTICIAN_CARD).patch(
        f"/fhir/DocumentReference?identifier={codes.DOCUMENT_ID_SYSTEM}|{doc_id}",
        content=json.dumps(ops), headers=PATCH)
    assert response.status_code == 200, response.text


def search(host: InProcessHost, who: Any) -> list[str]:
    response = host.client(who).get(
        f"/fhir/DocumentReference?patient=Patient/{CLAIRE.ins}&status=current")
    assert response.status_code == 200, response.text
    return [entry.id for entry in parse_search_bundle(response.content).entries
            if not entry.is_signature]


def stored(host: InProcessHost, doc_id: str) -> Any:
    with host.app.state.engine.connect() as connection:
        return connection.execute(select(documents).where(documents.c.id == doc_id)).one()


def patient_log(host: InProcessHost, ins: str = CLAIRE.ins) -> list[dict[str, Any]]:
    """The patient's own entries (reading the log adds one: left out)."""
    return [e for e in patient.access_log(host.app.state.guard, ins)
            if e["actorKind"] == "patient" and e["action"] != "read_access_log"]


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def test_the_list_hides_what_the_patient_may_not_see_yet(host: InProcessHost, pki: Pki
                                                         ) -> None:
    guard = host.app.state.guard
    plain = deposit(host, pki)
    host.clock.advance(minutes=1)
    hidden = deposit(host, pki, PDF + b"h", visibility=frozenset({codes.INVISIBLE_PATIENT}))
    host.clock.advance(minutes=1)
    deleted = deposit(host, pki, PDF + b"d")
    patch(host, deleted, [{"op": "replace", "path": "/status", "value": "entered-in-error"}])

    [item] = patient_documents.documents(guard, CLAIRE.ins)
    assert item == {
        "id": plain, "versionId": 1, "title": "Examen de la vue",
        "typeCode": "DISPENSATION-OPTIQUE", "classCode": "43",
        "authorId": OPTICIAN_CARD.id_nat_ps, "authorName": "Sophie PETIT",
        "depositedAt": "2026-11-27T09:00:00Z", "masked": False, "status": "current",
        "maskable": True,
    }
    [listing] = [e for e in patient_log(host) if e["action"] == "list_documents"]
    assert (listing["outcome"], listing["actorName"]) == ("allowed", "CLAIRE MARTIN")

    # One month after its deposit the hidden document shows, newest first; it may not be
    # masked while it is flagged invisible to the patient (the rules).
    host.clock.advance(days=31)
    items = patient_documents.documents(guard, CLAIRE.ins)
    assert [i["id"] for i in items] == [hidden, plain]
    assert items[0]["maskable"] is False


def test_archived_documents_show_only_in_the_history(host: InProcessHost, pki: Pki) -> None:
    guard = host.app.state.guard
    doc_id = deposit(host, pki)
    patch(host, doc_id, [{"op": "replace", "path": "/extension/0/valueBoolean", "value": True}])
    assert patient_documents.documents(guard, CLAIRE.ins) == []
    [item] = patient_documents.documents(guard, CLAIRE.ins, include_history=True)
    assert (item["id"], item["status"], item["versionId"]) == (doc_id, "archived", 2)


def test_masking_hides_a_document_from_professionals_but_its_author_and_traitant(
    host: InProcessHost, pki: Pki
) -> None:
    guard = host.app.state.guard
    doc_id = deposit(host, pki)
    assert search(host, PHARMACIST) == [doc_id]

    item = patient_documents.set_masked(guard, CLAIRE.ins, doc_id, True)
    assert (item["masked"], item["versionId"], item["maskable"]) == (True, 2, True)
    assert search(host, PHARMACIST) == []  # authorised, not the author
    pharmacist = host.client(PHARMACIST)
    for url in (f"/fhir/DocumentReference/{doc_id}", f"/fhir/Binary/{doc_id}"):
        response = pharmacist.get(url)
        assert (response.status_code, code_of(response)) == (403, "masked")
    assert search(host, GP) == [doc_id]  # médecin traitant
    assert search(host, OPTICIAN_CARD) == [doc_id]  # the author
    # The new version is written as a professional's patch writes it.
    resource = host.client(OPTICIAN_CARD).get(f"/fhir/DocumentReference/{doc_id}").json()
    assert resource["meta"]["versionId"] == "2"
    assert any(coding["code"] == codes.MASQUE_PS
               for label in resource["securityLabel"] for coding in label["coding"])
    assert stored(host, doc_id).masked is True

    # Masking it again changes nothing (no new version).
    again = patient_documents.set_masked(guard, CLAIRE.ins, doc_id, True)
    assert again == item and stored(host, doc_id).version_id == 2

    item = patient_documents.set_masked(guard, CLAIRE.ins, doc_id, False)
    assert (item["masked"], item["versionId"]) == (False, 3)
    assert search(host, PHARMACIST) == [doc_id]
    assert host.client(PHARMACIST).get(f"/fhir/Binary/{doc_id}").content == PDF

    actions = sorted((e["action"], e["documentId"], e["outcome"]) for e in patient_log(host)
                     if e["action"] in ("mask", "unmask"))
    assert actions == [("mask", doc_id, "allowed"), ("mask", doc_id, "allowed"),
                       ("unmask", doc_id, "allowed")]


def test_another_patients_document_is_not_found(host: InProcessHost, pki: Pki) -> None:
    guard = host.app.state.guard
    open_dossier(host, THOMAS.ins)
    doc_id = deposit(host, pki)
    hidden = deposit(host, pki, PDF + b"h", visibility=frozenset({codes.INVISIBLE_PATIENT}))
    for ins, probe in ((THOMAS.ins, doc_id), (CLAIRE.ins, f"{CLAIRE.ins}.{'0' * 32}"),
                       (CLAIRE.ins, hidden), (CLAIRE.ins, "")):
        with pytest.raises(HostError) as error:
            patient_documents.set_masked(guard, ins, probe, True)
        assert (error.value.status, error.value.code) == (404, "document-not-found")
    assert (stored(host, doc_id).masked, stored(host, doc_id).version_id) == (False, 1)
    assert stored(host, hidden).masked is False
    # Traced in the log of the patient who asked, without the id (it names someone else).
    [probe] = patient_log(host, THOMAS.ins)
    assert (probe["action"], probe["outcome"], probe["reason"], probe["documentId"]) == (
        "mask", "refused", "DOCUMENT_NOT_FOUND", None)
    assert [e["reason"] for e in patient_log(host)] == ["DOCUMENT_NOT_FOUND"] * 3


def test_a_refused_mask_is_traced(host: InProcessHost, pki: Pki) -> None:
    guard = host.app.state.guard
    doc_id = deposit(host, pki)
    patch(host, doc_id, [{"op": "replace", "path": "/status", "value": "entered-in-error"}])
    with pytest.raises(HostError) as error:
        patient_documents.set_masked(guard, CLAIRE.ins, doc_id, True)
    assert (error.value.status, error.value.code) == (403, "document-deleted")
    [entry] = patient_log(host)
    assert (entry["action"], entry["documentId"], entry["outcome"], entry["reason"]) == (
        "mask", doc_id, "refused", "DOCUMENT_DELETED")
    assert stored(host, doc_id).version_id == 2  # the deletion's, nothing since


def test_a_change_made_meanwhile_is_a_conflict(host: InProcessHost, pki: Pki,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    doc_id = deposit(host, pki)
    decide = patient_documents._decide

    def decide_then_someone_changes_it(*args: Any, **kwargs: Any) -> Any:
        decision = decide(*args, **kwargs)
        with host.app.state.engine.begin() as connection:
            connection.execute(update(documents).where(documents.c.id == doc_id)
                               .values(version_id=documents.c.version_id + 1))
        return decision

    monkeypatch.setattr(patient_documents, "_decide", decide_then_someone_changes_it)
    with pytest.raises(HostError) as error:
        patient_documents.set_masked(host.app.state.guard, CLAIRE.ins, doc_id, True)
    assert (error.value.status, error.value.code) == (409, "concurrent-change")
    assert (stored(host, doc_id).masked, stored(host, doc_id).version_id) == (False, 2)
    [entry] = patient_log(host)
    assert (entry["action"], entry["outcome"], entry["reason"]) == (
        "mask", "refused", "CONCURRENT_CHANGE")


def test_the_professionals_the_dossier_knows(host: InProcessHost, pki: Pki) -> None:
    guard = host.app.state.guard
    deposit(host, pki)  # the optician: a deposit is an access
    host.clock.advance(minutes=1)
    assert host.client(GP).get(f"/dossiers/{CLAIRE.ins}").status_code == 200
    host.clock.advance(minutes=1)
    patient.block(guard, CLAIRE.ins, GP.id_nat_ps)
    authorize(host, NURSE, CLAIRE.ins)  # authorised, never came

    people = patient_documents.professionals(guard, CLAIRE.ins)
    # The most recent access first; those who never came, by idNatPs.
    assert [p["idNatPs"] for p in people] == [
        GP.id_nat_ps, OPTICIAN_CARD.id_nat_ps, PHARMACIST.id_nat_ps, NURSE.id_nat_ps]
    gp, optician, pharmacist, nurse = people
    assert gp == {
        "idNatPs": GP.id_nat_ps, "name": "Claire MARTIN", "profession": "10",
        "structureId": GP.structure_id, "lastAccessAt": "2026-11-27T09:01:00Z",
        "authorization": "none", "blocked": True, "medecinTraitant": True,
    }
    assert (optician["profession"], optician["authorization"], optician["blocked"]) == (
        "28", "none", False)
    assert (nurse["lastAccessAt"], nurse["authorization"]) == (None, "valid")
    assert (pharmacist["name"], pharmacist["authorization"]) == (None, "valid")
    [listing] = [e for e in patient_log(host) if e["action"] == "list_professionals"]
    assert listing["outcome"] == "allowed"


def test_the_patient_designates_a_doctor_the_dossier_knows(host: InProcessHost) -> None:
    guard = host.app.state.guard
    base = f"/dossiers/{CLAIRE.ins}"
    host.client(PHARMACIST).get(base)
    gp2 = host.client(GP2)
    assert gp2.get(base).json()["medecinTraitant"] is False

    with pytest.raises(HostError) as pharmacist:
        patient_documents.designate_medecin_traitant(guard, CLAIRE.ins, PHARMACIST.id_nat_ps)
    assert (pharmacist.value.status, pharmacist.value.code) == (400, "not-a-doctor")
    with pytest.raises(HostError) as stranger:
        patient_documents.designate_medecin_traitant(guard, CLAIRE.ins, "810000000017")
    assert (stranger.value.status, stranger.value.code) == (404, "not-a-known-doctor")

    designation = patient_documents.designate_medecin_traitant(guard, CLAIRE.ins,
                                                               GP2.id_nat_ps)
    assert designation == {"idNatPs": GP2.id_nat_ps, "designatedAt": "2026-11-27T09:00:00Z",
                           "designatedBy": CLAIRE.ins}
    assert gp2.get(base).json()["medecinTraitant"] is True
    # (one time for all: the log's order within one instant is not the calls' order)
    assert sorted((e["action"], e["outcome"], e["reason"]) for e in patient_log(host)) == [
        ("designate_medecin_traitant", "allowed", "ALLOWED_PATIENT"),
        ("designate_medecin_traitant", "refused", "NOT_A_DOCTOR"),
        ("designate_medecin_traitant", "refused", "NOT_A_KNOWN_DOCTOR"),
    ]
    # Ended, then declared again: the dossier knows them as its former médecin traitant.
    patient.end_medecin_traitant(guard, CLAIRE.ins, GP2.id_nat_ps)
    patient_documents.designate_medecin_traitant(guard, CLAIRE.ins, GP2.id_nat_ps)


def test_the_patient_acts_only_on_an_open_dossier(host: InProcessHost, pki: Pki) -> None:
    guard = host.app.state.guard
    doc_id = deposit(host, pki)
    patient.close(guard, CLAIRE.ins, "pause")
    calls = [
        lambda: patient_documents.documents(guard, CLAIRE.ins),
        lambda: patient_documents.set_masked(guard, CLAIRE.ins, doc_id, True),
        lambda: patient_documents.professionals(guard, CLAIRE.ins),
        lambda: patient_documents.designate_medecin_traitant(guard, CLAIRE.ins, GP.id_nat_ps),
    ]
    for call in calls:
        with pytest.raises(HostError) as error:
            call()
        assert (error.value.status, error.value.code) == (403, "dossier-closed")
    patient.reactivate(guard, CLAIRE.ins)
    refused = {(e["action"], e["reason"], e["documentId"]) for e in patient_log(host)
               if e["outcome"] == "refused"}
    assert refused == {("designate_medecin_traitant", "DOSSIER_CLOSED", None),
                       ("list_professionals", "DOSSIER_CLOSED", None),
                       ("mask", "DOSSIER_CLOSED", doc_id),
                       ("list_documents", "DOSSIER_CLOSED", None)}


def test_inside_a_portals_request_the_audit_hook_lets_decided_statements_through(
    host: InProcessHost, pki: Pki
) -> None:
    # A portal's requests under host/audit.py's middleware, on the host's engine (its hook
    # refuses any patient-table statement made before a decision): one function a request.
    guard, ins = host.app.state.guard, CLAIRE.ins
    doc_id = deposit(host, pki)
    host.client(GP2).get(f"/dossiers/{ins}")
    calls = {
        "documents": lambda: patient_documents.documents(guard, ins),
        "mask": lambda: patient_documents.set_masked(guard, ins, doc_id, True),
        "unknown": lambda: patient_documents.set_masked(guard, ins, "", True),
        "professionals": lambda: patient_documents.professionals(guard, ins),
        "designate": lambda: patient_documents.designate_medecin_traitant(guard, ins,
                                                                          GP2.id_nat_ps),
    }

    async def portal(request: Request) -> JSONResponse:
        try:
            return JSONResponse(calls[request.path_params["call"]]())
        except HostError as error:
            return JSONResponse({"code": error.code}, status_code=error.status)

    async def leaky(request: Request) -> JSONResponse:
        with guard.engine.connect() as connection:
            return JSONResponse({"n": len(connection.execute(select(documents)).all())})

    app = Starlette(routes=[Route("/leaky", leaky), Route("/{call}", portal)],
                    middleware=[Middleware(audit.AuditMiddleware)])
    app.state.guard = guard
    client = TestClient(app)
    for call in calls:
        response = client.get(f"/{call}")
        assert response.status_code == (404 if call == "unknown" else 200), response.text
    assert stored(host, doc_id).masked is True
    with pytest.raises(audit.UnguardedAccess):
        client.get("/leaky")  # the hook is on: an undecided read still fails


def test_the_patient_commands(host: InProcessHost, pki: Pki,
                              capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMP_HOST_DATABASE", host.settings.database_url)
    doc_id = deposit(host, pki)
    ins = CLAIRE.ins

    code, out, _ = run_cli(["patient", "documents", ins], capsys)
    assert code == 0
    assert out == (f"2026-11-27T09:00:00Z  {doc_id}  Examen de la vue  [class 43, type "
                   f"DISPENSATION-OPTIQUE] by Sophie PETIT  (can mask)\n")
    code, out, _ = run_cli(["patient", "mask", ins, doc_id], capsys)
    assert code == 0 and json.loads(out)["masked"] is True
    assert search(host, PHARMACIST) == []
    code, out, _ = run_cli(["patient", "documents", ins, "--json"], capsys)
    [item] = json.loads(out)
    assert (item["id"], item["masked"], item["versionId"]) == (doc_id, True, 2)
    code, out, _ = run_cli(["patient", "documents", ins], capsys)
    assert " MASKED " in out and "(can unmask)" in out
    code, out, _ = run_cli(["patient", "unmask", ins, doc_id], capsys)
    assert code == 0 and json.loads(out)["masked"] is False
    code, _, err = run_cli(["patient", "mask", ins, f"{THOMAS.ins}.{'0' * 32}"], capsys)
    assert code == 1 and "document-not-found" in err

    host.clock.advance(minutes=1)
    host.client(GP2).get(f"/dossiers/{ins}")
    code, out, _ = run_cli(["patient", "designate-medecin-traitant", ins, GP2.id_nat_ps],
                           capsys)
    assert code == 0 and json.loads(out)["idNatPs"] == GP2.id_nat_ps
    code, _, err = run_cli(["patient", "designate-medecin-traitant", ins, NURSE.id_nat_ps],
                           capsys)
    assert code == 1 and "not-a-known-doctor" in err
    code, out, _ = run_cli(["patient", "professionals", ins], capsys)
    lines = out.splitlines()
    assert lines[0] == (f"Paul BERNARD {GP2.id_nat_ps} [10] @ {GP2.structure_id}: last "
                        "access 2026-11-27T09:01:00Z, authorization none MEDECIN TRAITANT")
    assert any(line.startswith(f"{GP.id_nat_ps}: no access, authorization none")
               and line.endswith("MEDECIN TRAITANT") for line in lines)
    code, out, _ = run_cli(["patient", "professionals", ins, "--json"], capsys)
    assert {p["idNatPs"] for p in json.loads(out)} == {
        GP2.id_nat_ps, GP.id_nat_ps, OPTICIAN_CARD.id_nat_ps, PHARMACIST.id_nat_ps}


def test_the_lists_escape_what_others_wrote(capsys: pytest.CaptureFixture[str]) -> None:
    from host.patient_cli import _print_documents, _print_professionals

    _print_documents([{
        "id": "x", "title": "CR\x1b[2J\r\nforged", "typeCode": "t", "classCode": "c",
        "authorId": "8", "authorName": "Dr\x1b]0;pwn\x07", "depositedAt": "d",
        "masked": False, "status": "current", "maskable": False,
    }])
    _print_professionals([{
        "idNatPs": "8", "name": "X\x1b[2J", "profession": "10", "structureId": None,
        "lastAccessAt": None, "authorization": "none", "blocked": False,
        "medecinTraitant": False,
    }])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and len(out.splitlines()) == 2

