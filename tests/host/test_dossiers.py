"""The DMP lifecycle: existence test, creation, closure, reactivation (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from host import patient
from host.dossiers.lifecycle import access_code_digest
from host.store.schema import access_log, documents, dossiers, notifications
from tests.host.harness import GP, OPTICIAN, PHARMACIST, REGULATOR, START, InProcessHost

CLAIRE = "284057511402396"  # the "single" Vitale card
THOMAS = "179116912304566"
TEST_IDENTITY = "167017505618766"
BTG = {"x-dmp-access-mode": "bris_de_glace"}


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def create(host: InProcessHost, ins: str = CLAIRE, who: Any = PHARMACIST, **body: Any) -> Any:
    return host.client(who).post(f"/dossiers/{ins}", json={"consent": True, **body})


def existence(host: InProcessHost, ins: str = CLAIRE, who: Any = GP, **headers: str) -> Any:
    return host.client(who, **headers).get(f"/dossiers/{ins}")


def log_rows(host: InProcessHost, ins: str = CLAIRE) -> list[Any]:
    with host.app.state.engine.connect() as connection:
        return connection.execute(
            select(access_log).where(access_log.c.ins == ins).order_by(access_log.c.at)
        ).all()


def notes(host: InProcessHost, ins: str = CLAIRE) -> list[Any]:
    with host.app.state.engine.connect() as connection:
        return connection.execute(select(notifications).where(notifications.c.ins == ins)).all()


def test_creation_needs_the_patients_consent(host: InProcessHost) -> None:
    client = host.client(PHARMACIST)
    for body in ({}, {"consent": False}, {"consent": "yes"}):
        response = client.post(f"/dossiers/{CLAIRE}", json=body)
        assert response.status_code == 400 and code_of(response) == "consent-required"
    assert existence(host).json()["status"] == "absent"


def test_creation_returns_the_secrets_sheet_once_and_stores_only_a_digest(
    host: InProcessHost,
) -> None:
    response = create(host, emergency={"breakTheGlass": False, "emergencySeesMasked": False})
    assert response.status_code == 201
    sheet = response.json()
    assert sheet["ins"] == CLAIRE and sheet["identifier"] == CLAIRE
    assert sheet["createdBy"] == PHARMACIST.id_nat_ps
    assert sheet["createdAt"] == "2026-11-27T09:00:00Z"
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}",
                        sheet["accessCode"])
    assert sheet["consents"] == {"consentAt": "2026-11-27T09:00:00Z", "regulationCentre": True,
                                 "breakTheGlass": False, "emergencySeesMasked": False}
    with host.app.state.engine.connect() as connection:
        row = connection.execute(select(dossiers).where(dossiers.c.ins == CLAIRE)).one()
    assert row.secret_sha256 == access_code_digest(sheet["accessCode"])
    assert sheet["accessCode"].replace("-", "") not in str(tuple(row))
    assert (row.consent_regulation_centre, row.consent_break_the_glass,
            row.consent_emergency_sees_masked) == (True, False, False)


def test_emergency_consents_default_to_checked(host: InProcessHost) -> None:
    consents = create(host).json()["consents"]
    assert consents["regulationCentre"] and consents["breakTheGlass"]
    assert consents["emergencySeesMasked"]


def test_access_codes_differ_between_dossiers(host: InProcessHost) -> None:
    assert create(host).json()["accessCode"] != create(host, THOMAS).json()["accessCode"]


def test_creating_twice_is_answered_without_a_second_dossier_or_code(
    host: InProcessHost,
) -> None:
    first = create(host).json()
    host.clock.advance(minutes=5)
    again = create(host, who=GP, emergency={"breakTheGlass": False})
    assert again.status_code == 200
    body = again.json()
    assert body["code"] == "already-exists" and "accessCode" not in body
    assert body["status"] == "open" and body["createdBy"] == PHARMACIST.id_nat_ps
    assert body["consents"]["breakTheGlass"] is True  # the first creation's consents stand
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(select(dossiers).where(dossiers.c.ins == CLAIRE)).all()
    assert len(rows) == 1 and rows[0].secret_sha256 == access_code_digest(first["accessCode"])
    assert [(r.action, r.outcome, r.reason) for r in log_rows(host)] == [
        ("create", "allowed", "ALLOWED_DOSSIER_LIFECYCLE"),
        ("create", "refused", "DOSSIER_EXISTS"),
    ]


def test_only_an_ins_the_identity_service_knows_gets_a_dmp(host: InProcessHost) -> None:
    unknown = create(host, "184057511402349")  # well-formed, not in the identity service
    assert unknown.status_code == 404 and code_of(unknown) == "identity-unknown"
    malformed = create(host, "284057511402300")  # wrong key
    assert malformed.status_code == 400 and code_of(malformed) == "bad-ins"


def test_a_production_host_creates_no_dmp_for_a_test_identity(
    db_url: str, tmp_path: Path
) -> None:
    production = InProcessHost(db_url, tmp_path, mode="production")
    response = create(production, TEST_IDENTITY)
    assert response.status_code == 403 and code_of(response) == "test-identity-refused"
    assert create(production, CLAIRE).status_code == 201


def test_creation_is_refused_in_emergency_mode(host: InProcessHost) -> None:
    response = host.client(GP, **BTG, **{"x-dmp-justification": "coma"}).post(
        f"/dossiers/{CLAIRE}", json={"consent": True})
    assert response.status_code == 403 and code_of(response) == "action-not-in-emergency-mode"


def test_existence_test_of_an_absent_dmp(host: InProcessHost) -> None:
    response = existence(host)
    assert response.status_code == 200
    assert response.json() == {"ins": CLAIRE, "status": "absent", "closedAt": None,
                               "closureReason": None, "retentionUntil": None,
                               "authorization": "none", "medecinTraitant": False,
                               "lastConsultation": None}
    assert existence(host, who=None).status_code == 401


def test_existence_test_tells_each_caller_their_own_rights(host: InProcessHost) -> None:
    create(host)
    gp = host.client(GP)
    expiry = (START + dt.timedelta(days=1)).isoformat()
    assert gp.put(f"/dossiers/{CLAIRE}/authorizations/{GP.id_nat_ps}",
                  json={"expiresAt": expiry}).status_code == 201
    assert gp.put(f"/dossiers/{CLAIRE}/medecins-traitants/{GP.id_nat_ps}").status_code == 201
    assert gp.get(f"/dossiers/{CLAIRE}").json()["authorization"] == "valid"
    assert gp.get(f"/dossiers/{CLAIRE}").json()["medecinTraitant"] is True
    other = existence(host, who=OPTICIAN).json()
    assert (other["status"], other["authorization"], other["medecinTraitant"]) == (
        "open", "none", False)
    host.clock.advance(days=2)
    assert existence(host).json()["authorization"] == "expired"
    patient.block(host.app.state.guard, CLAIRE, OPTICIAN.id_nat_ps)
    assert existence(host, who=OPTICIAN).json()["authorization"] == "forbidden"


def test_break_the_glass_existence_test(host: InProcessHost) -> None:
    create(host)
    no_reason = existence(host, **BTG)
    assert no_reason.status_code == 403 and code_of(no_reason) == "justification-required"
    assert notes(host) == []
    why = "Patient inconscient aux urgences, allergie à vérifier"
    answered = existence(host, **BTG, **{"x-dmp-justification": urllib.parse.quote(why)})
    assert answered.status_code == 200 and answered.json()["status"] == "open"
    [note] = notes(host)
    assert note.kind == "emergency-access" and note.payload["mode"] == "bris_de_glace"
    assert note.payload["actor"] == "Claire MARTIN" and note.payload["justification"] == why
    refused, allowed = [row for row in log_rows(host) if row.action == "test_existence"]
    assert (refused.outcome, refused.reason, refused.mode) == (
        "refused", "JUSTIFICATION_REQUIRED", "bris_de_glace")
    assert (allowed.outcome, allowed.justification, allowed.mode) == (
        "allowed", why, "bris_de_glace")


def test_break_the_glass_existence_test_after_the_patient_opted_out(
    host: InProcessHost,
) -> None:
    create(host, emergency={"breakTheGlass": False})
    response = existence(host, **BTG, **{"x-dmp-justification": "urgence vitale"})
    assert response.status_code == 403 and code_of(response) == "break-the-glass-opted-out"
    assert notes(host) == []
    assert existence(host).status_code == 200  # normal mode is unaffected
    patient.set_consents(host.app.state.guard, CLAIRE, break_the_glass=True)
    assert existence(host, **BTG, **{"x-dmp-justification": "urgence vitale"}).status_code == 200


def test_centre_15_existence_test_notifies_the_patient(host: InProcessHost) -> None:
    create(host)
    assert existence(host, who=REGULATOR, **{"x-dmp-access-mode": "centre_15"}
                     ).status_code == 200
    assert [note.kind for note in notes(host)] == ["emergency-access"]
    patient.set_consents(host.app.state.guard, CLAIRE, regulation_centre=False)
    refused = existence(host, who=REGULATOR, **{"x-dmp-access-mode": "centre_15"})
    assert refused.status_code == 403 and code_of(refused) == "centre-15-opted-out"


def test_only_a_registered_regulation_centre_may_use_centre_15(host: InProcessHost) -> None:
    # Attack (issue 16, hole 1): a GP in a practice sends the centre 15 header.
    create(host)
    refused = existence(host, **{"x-dmp-access-mode": "centre_15"})
    assert refused.status_code == 403 and code_of(refused) == "regulation-centre-only"
    assert notes(host) == []
    assert [(r.actor_id, r.mode, r.outcome, r.reason) for r in log_rows(host)
            if r.mode == "centre_15"] == [
        (GP.id_nat_ps, "centre_15", "refused", "REGULATION_CENTRE_ONLY")]


def _document_row(ins: str) -> dict[str, Any]:
    return dict(
        ins=ins, id="doc-1", unique_id="1.2.3.4", status="current", class_code="11",
        type_code="60591-5", format_code="urn:ihe:iti:xds-sd:pdf:2008",
        mime_type="application/pdf", author_id=GP.id_nat_ps, deposited_at=START, size=3,
        sha256="0" * 64, sha1_b64="A" * 28, submission_set_id="ss-1", resource={"x": 1},
    )


def test_closure_belongs_to_the_patient_and_keeps_everything(host: InProcessHost) -> None:
    create(host)
    with host.app.state.engine.begin() as connection:
        connection.execute(insert(documents).values(**_document_row(CLAIRE)))
        before = connection.execute(select(documents)).all()
    refused = host.client(GP).post(f"/dossiers/{CLAIRE}/$close", json={"reason": "déménage"})
    assert refused.status_code == 403 and code_of(refused) == "patient-only"
    assert host.client(GP).post(f"/dossiers/{CLAIRE}/$close", json={}).status_code == 400

    host.clock.advance(days=30)
    closed = patient.close(host.app.state.guard, CLAIRE, "Je ne souhaite plus de DMP")
    assert closed["status"] == "closed" and closed["closedAt"] == "2026-12-27T09:00:00Z"
    assert closed["retentionUntil"] == "2036-12-27T09:00:00Z"  # + 3653 days: 10 years
    state = existence(host).json()
    assert (state["status"], state["closedAt"], state["closureReason"]) == (
        "closed", "2026-12-27T09:00:00Z", "Je ne souhaite plus de DMP")
    with host.app.state.engine.connect() as connection:
        assert connection.execute(select(documents)).all() == before  # nothing deleted
    # A closed DMP is not created again: it is reactivated.
    again = create(host)
    assert again.status_code == 403 and code_of(again) == "dossier-closed"
    assert [(r.action, r.actor_kind, r.outcome) for r in log_rows(host) if r.action == "close"
            ] == [("close", "professional", "refused"), ("close", "professional", "refused"),
                  ("close", "patient", "allowed")]


def test_a_professional_closes_at_the_patients_request_and_the_patient_is_told(
        host: InProcessHost) -> None:
    create(host)
    closed = host.client(GP).post(f"/dossiers/{CLAIRE}/$close", json={
        "reason": "ne souhaite plus de DMP", "patientRequest": True})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert existence(host).json()["closureReason"] == "ne souhaite plus de DMP"
    assert [(r.action, r.actor_id, r.outcome) for r in log_rows(host)
            if r.action.startswith("close")] == [
        ("close_at_patient_request", GP.id_nat_ps, "allowed")]
    told = [n for n in notes(host) if n.payload.get("action") == "close_at_patient_request"]
    assert len(told) == 1 and told[0].payload["actor"]
    again = host.client(GP).post(f"/dossiers/{CLAIRE}/$reactivate", json={"consent": True})
    assert again.status_code == 200 and existence(host).json()["status"] == "open"


def test_retention_follows_the_hosts_setting(host: InProcessHost) -> None:
    create(host)
    closed = patient.close(host.app.state.guard, CLAIRE, "test",
                           retention=dt.timedelta(days=1))
    assert closed["retentionUntil"] == "2026-11-28T09:00:00Z"


def test_reactivation_with_the_patients_consent(host: InProcessHost) -> None:
    create(host)
    gp = host.client(GP)
    not_closed = gp.post(f"/dossiers/{CLAIRE}/$reactivate", json={"consent": True})
    assert not_closed.status_code == 403 and code_of(not_closed) == "dossier-not-closed"
    patient.close(host.app.state.guard, CLAIRE, "pause")
    no_consent = gp.post(f"/dossiers/{CLAIRE}/$reactivate", json={})
    assert no_consent.status_code == 400 and code_of(no_consent) == "consent-required"
    host.clock.advance(days=400)
    gp = host.client(GP)  # sessions last hours: a new one
    response = gp.post(f"/dossiers/{CLAIRE}/$reactivate", json={"consent": True})
    assert response.status_code == 200 and response.json()["status"] == "open"
    state = existence(host).json()
    assert state["status"] == "open" and state["closedAt"] is None
    absent = gp.post(f"/dossiers/{THOMAS}/$reactivate", json={"consent": True})
    assert absent.status_code == 403 and code_of(absent) == "dossier-absent"


def test_the_patient_reactivates_too(host: InProcessHost) -> None:
    create(host)
    guard = host.app.state.guard
    patient.close(guard, CLAIRE, "pause")
    assert patient.reactivate(guard, CLAIRE)["status"] == "open"


def test_every_lifecycle_call_is_traced_with_who_and_mode(host: InProcessHost) -> None:
    existence(host, who=PHARMACIST)
    host.clock.advance(seconds=1)
    create(host)
    host.clock.advance(seconds=1)
    host.client(GP).post(f"/dossiers/{CLAIRE}/$close", json={"reason": "x"})
    rows = log_rows(host)
    assert [(r.action, r.actor_id, r.profession, r.structure_id, r.mode, r.outcome)
            for r in rows] == [
        ("test_existence", PHARMACIST.id_nat_ps, "21", PHARMACIST.structure_id, "normal",
         "allowed"),
        ("create", PHARMACIST.id_nat_ps, "21", PHARMACIST.structure_id, "normal", "allowed"),
        ("close", GP.id_nat_ps, "10", GP.structure_id, "normal", "refused"),
    ]
    assert [r.at for r in rows] == [START + dt.timedelta(seconds=s) for s in (0, 1, 2)]
    assert rows[0].actor_name == f"{PHARMACIST.first_name} {PHARMACIST.last_name}"


def test_openapi_documents_every_endpoint_with_its_error_codes(host: InProcessHost) -> None:
    paths = host.client().get("/openapi.json").json()["paths"]
    assert set(paths["/dossiers/{ins}"]) == {"get", "post"}
    assert "identity-ambiguous" in paths["/identity/$resolve"]["post"]["responses"]["409"][
        "description"]
    assert "consent-required" in paths["/dossiers/{ins}"]["post"]["responses"]["400"][
        "description"]
    for path in ("/dossiers/{ins}/$close", "/dossiers/{ins}/$reactivate",
                 "/dossiers/{ins}/authorizations", "/dossiers/{ins}/authorizations/{idNatPs}",
                 "/dossiers/{ins}/medecins-traitants/{idNatPs}"):
        assert path in paths
        for operation in paths[path].values():
            assert operation["summary"] and operation["responses"]


def test_a_malformed_request_is_traced_as_refused_and_changes_nothing(
    host: InProcessHost,
) -> None:
    host.client(PHARMACIST).post(f"/dossiers/{CLAIRE}", json={"consent": False})
    with host.app.state.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(dossiers)).scalar() == 0
        rows = connection.execute(select(access_log.c.action, access_log.c.outcome,
                                         access_log.c.reason)).all()
    assert [tuple(r) for r in rows] == [("create", "refused", "CONSENT_REQUIRED")]


def test_the_existence_answer_says_when_the_caller_last_consulted_the_dossier(
        host: InProcessHost) -> None:
    # The ANS's incremental consultation: what is new since this professional's last look.
    create(host)
    gp = host.client(GP)
    assert gp.put(f"/dossiers/{CLAIRE}/authorizations/{GP.id_nat_ps}",
                  json={"expiresAt": (START + dt.timedelta(days=30)).isoformat()}
                  ).status_code == 201
    first = gp.get(f"/dossiers/{CLAIRE}", params={"documents": "current"}).json()
    assert first["lastConsultation"] is None  # never: the search of this answer not counted
    looked = host.clock.now
    host.clock.advance(hours=1)
    again = gp.get(f"/dossiers/{CLAIRE}").json()
    assert dt.datetime.fromisoformat(again["lastConsultation"]) == looked
    # Another professional's consultation is not the GP's; a refused one is nobody's.
    assert existence(host, who=OPTICIAN).json()["lastConsultation"] is None
    host.client(OPTICIAN).get("/fhir/DocumentReference", params={
        "patient": f"Patient/{CLAIRE}", "status": "current"})
    assert existence(host, who=OPTICIAN).json()["lastConsultation"] is None
    # The patient's block: the answer is "forbidden", with no consultation time.
    patient.block(host.app.state.guard, CLAIRE, GP.id_nat_ps)
    assert "lastConsultation" not in gp.get(f"/dossiers/{CLAIRE}").json()
