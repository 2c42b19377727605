"""Authorizations, care team and médecins traitants (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from host import patient
from host.actors import SessionActor
from host.errors import HostError
from host.store.schema import access_log
from policies import NORMAL, Action, Document, ReasonCode
from tests.host.harness import GP, GP2, OTHER_GP, PHARMACIST, START, InProcessHost, Professional

CLAIRE = "284057511402396"
BASE = f"/dossiers/{CLAIRE}"


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    h = InProcessHost(db_url, tmp_path)
    assert h.client(PHARMACIST).post(BASE, json={"consent": True}).status_code == 201
    return h


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def authorization(host: InProcessHost, who: Professional) -> str:
    return host.client(who).get(BASE).json()["authorization"]


def grant(host: InProcessHost, who: Professional, **body: Any) -> Any:
    return host.client(who).put(f"{BASE}/authorizations/{who.id_nat_ps}", json=body)


def may_read(host: InProcessHost, who: Professional) -> ReasonCode:
    """The guard's decision on reading a synthesis written by someone else."""
    actor = SessionActor("s", who.id_nat_ps, who.last_name, who.first_name, who.profession,
                         who.specialty, who.structure_id, START + dt.timedelta(days=999))
    document = Document("11", "60591-5", author_id="810000000001", deposited_at=START)
    with host.app.state.engine.connect() as connection:
        return host.app.state.guard.decide(connection, ins=CLAIRE, actor=actor,
                                           action=Action.READ, mode=NORMAL,
                                           document=document).reason


def test_a_professional_records_the_authorization_given_to_them(host: InProcessHost) -> None:
    assert authorization(host, GP) == "none"
    response = grant(host, GP)
    assert response.status_code == 201
    body = response.json()
    assert (body["idNatPs"], body["structureId"], body["status"], body["grantedBy"]) == (
        GP.id_nat_ps, GP.structure_id, "valid", GP.id_nat_ps)
    assert authorization(host, GP) == "valid"
    assert grant(host, GP).status_code == 200  # renewed, not duplicated
    assert may_read(host, GP) is ReasonCode.ALLOWED_AUTHORISED


def test_nobody_records_an_authorization_for_someone_else(host: InProcessHost) -> None:
    response = host.client(GP).put(f"{BASE}/authorizations/{OTHER_GP.id_nat_ps}", json={})
    assert response.status_code == 403 and code_of(response) == "patient-only"
    assert authorization(host, OTHER_GP) == "none"
    with host.app.state.engine.connect() as connection:
        row = connection.execute(select(access_log).where(access_log.c.action == "grant")).one()
    assert (row.actor_id, row.outcome, row.reason) == (GP.id_nat_ps, "refused", "PATIENT_ONLY")


def test_an_authorization_expires(host: InProcessHost) -> None:
    assert grant(host, GP, expiresAt=(START + dt.timedelta(hours=1)).isoformat()).json()[
        "expiresAt"] == "2026-11-27T10:00:00Z"
    assert may_read(host, GP2) is ReasonCode.ALLOWED_CARE_TEAM
    host.clock.advance(hours=2)
    assert authorization(host, GP) == "expired"
    assert may_read(host, GP) is ReasonCode.AUTHORISATION_EXPIRED
    assert may_read(host, GP2) is ReasonCode.NO_AUTHORISATION  # the care team went with it
    assert grant(host, GP).status_code == 200  # granted again, without expiry
    assert authorization(host, GP) == "valid"


def test_bad_grant_bodies_are_refused(host: InProcessHost) -> None:
    for body in ({"expiresAt": START.isoformat()}, {"expiresAt": "2030-01-01T00:00:00"},
                 {"expiresAt": "tomorrow"}, {"structureId": "12"}):
        response = grant(host, GP, **body)
        assert response.status_code == 400, body
    assert host.client(GP).put(f"{BASE}/authorizations/1234", json={}).status_code == 400
    assert authorization(host, GP) == "none"


def test_a_grant_for_another_structure_is_refused_and_traced(host: InProcessHost) -> None:
    # Attack (issue 16, hole 3): naming another practice's structure to join its care team.
    refused = grant(host, GP, structureId="3750300016")
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "structure-not-session"
    assert authorization(host, GP) == "none"
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(select(access_log.c.action, access_log.c.outcome,
                                         access_log.c.reason)).all()
    assert ("grant", "refused", "STRUCTURE_NOT_SESSION") in [tuple(r) for r in rows]
    assert grant(host, GP, structureId=GP.structure_id).json()["structureId"] == GP.structure_id
    assert may_read(host, GP2) is ReasonCode.ALLOWED_CARE_TEAM


def test_the_care_team_is_the_structure_of_an_authorised_professional(
    host: InProcessHost,
) -> None:
    assert may_read(host, GP2) is ReasonCode.NO_AUTHORISATION
    grant(host, GP)
    assert may_read(host, GP2) is ReasonCode.ALLOWED_CARE_TEAM  # same practice
    assert may_read(host, OTHER_GP) is ReasonCode.NO_AUTHORISATION  # another practice
    assert authorization(host, GP2) == "none"  # the existence test speaks of one's own grant


def test_revoking_and_listing_belong_to_the_patient(host: InProcessHost) -> None:
    grant(host, GP)
    gp = host.client(GP)
    for response in (gp.delete(f"{BASE}/authorizations/{GP.id_nat_ps}"),
                     gp.get(f"{BASE}/authorizations"),
                     gp.delete(f"{BASE}/medecins-traitants/{GP.id_nat_ps}")):
        assert response.status_code == 403 and code_of(response) == "patient-only"
    guard = host.app.state.guard
    listing = patient.authorizations(guard, CLAIRE)
    assert [a["idNatPs"] for a in listing["authorizations"]] == [GP.id_nat_ps]
    revoked = patient.revoke(guard, CLAIRE, GP.id_nat_ps)
    assert revoked["status"] == "revoked" and revoked["revokedAt"] == "2026-11-27T09:00:00Z"
    assert authorization(host, GP) == "none"
    assert may_read(host, GP2) is ReasonCode.NO_AUTHORISATION
    with pytest.raises(HostError, match="no authorization to revoke"):
        patient.revoke(guard, CLAIRE, GP.id_nat_ps)
    with host.app.state.engine.connect() as connection:
        actions = [(r.action, r.outcome) for r in connection.execute(
            select(access_log).where(access_log.c.actor_id == GP.id_nat_ps))]
    assert ("list_authorizations", "refused") in actions
    assert ("end_medecin_traitant", "refused") in actions


def test_medecins_traitants(host: InProcessHost) -> None:
    for doctor in (GP, GP2):  # several are allowed
        response = host.client(doctor).put(f"{BASE}/medecins-traitants/{doctor.id_nat_ps}")
        assert response.status_code == 201
        assert host.client(doctor).get(BASE).json()["medecinTraitant"] is True
    assert host.client(GP).put(
        f"{BASE}/medecins-traitants/{GP.id_nat_ps}").status_code == 200
    assert may_read(host, GP) is ReasonCode.ALLOWED_MEDECIN_TRAITANT
    pharmacist = host.client(PHARMACIST).put(
        f"{BASE}/medecins-traitants/{PHARMACIST.id_nat_ps}")
    assert pharmacist.status_code == 403 and code_of(pharmacist) == "not-a-doctor"
    someone_else = host.client(GP).put(f"{BASE}/medecins-traitants/{OTHER_GP.id_nat_ps}")
    assert someone_else.status_code == 403 and code_of(someone_else) == "patient-only"
    guard = host.app.state.guard
    listing = patient.authorizations(guard, CLAIRE)["medecinsTraitants"]
    assert sorted(m["idNatPs"] for m in listing) == sorted([GP.id_nat_ps, GP2.id_nat_ps])
    patient.end_medecin_traitant(guard, CLAIRE, GP.id_nat_ps)
    assert host.client(GP).get(BASE).json()["medecinTraitant"] is False
    assert host.client(GP2).get(BASE).json()["medecinTraitant"] is True
    assert may_read(host, GP) is ReasonCode.NO_AUTHORISATION


def test_no_authorization_on_an_absent_or_closed_dmp(host: InProcessHost) -> None:
    thomas = host.client(GP).put(f"/dossiers/179116912304566/authorizations/{GP.id_nat_ps}")
    assert thomas.status_code == 403 and code_of(thomas) == "dossier-absent"
    patient.close(host.app.state.guard, CLAIRE, "pause")
    closed = grant(host, GP)
    assert closed.status_code == 403 and code_of(closed) == "dossier-closed"


def test_emergency_modes_record_no_authorization(host: InProcessHost) -> None:
    response = host.client(GP, **{"x-dmp-access-mode": "bris_de_glace",
                                  "x-dmp-justification": "coma"}).put(
        f"{BASE}/authorizations/{GP.id_nat_ps}", json={})
    assert response.status_code == 403 and code_of(response) == "action-not-in-emergency-mode"
