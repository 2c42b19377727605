"""The patient's own actions (block, consents, access log, notifications) and their CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from host import patient
from host.actors import session_for_fingerprint
from host.errors import HostError
from host.patient_cli import add_patient_commands
from policies import NORMAL, Action, ReasonCode
from tests.host.harness import GP, GP2, NURSE, PHARMACIST, START, InProcessHost

CLAIRE = "284057511402396"
BASE = f"/dossiers/{CLAIRE}"


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    h = InProcessHost(db_url, tmp_path)
    assert h.client(PHARMACIST).post(BASE, json={"consent": True}).status_code == 201
    return h


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def test_a_blocked_professional_is_refused_everything_and_traced(host: InProcessHost) -> None:
    gp = host.client(GP)
    assert gp.put(f"{BASE}/authorizations/{GP.id_nat_ps}", json={}).status_code == 201
    guard = host.app.state.guard
    blocked = patient.block(guard, CLAIRE, GP.id_nat_ps)
    assert blocked["status"] == "forbidden" and blocked["blocked"] is True
    host.clock.advance(seconds=1)

    assert gp.get(BASE).json()["authorization"] == "forbidden"  # told, not served
    calls = [
        gp.put(f"{BASE}/authorizations/{GP.id_nat_ps}", json={}),
        gp.put(f"{BASE}/medecins-traitants/{GP.id_nat_ps}"),
        gp.post(f"{BASE}/$close", json={"reason": "x"}),
        gp.post(BASE, json={"consent": True}),
        host.client(GP, **{"x-dmp-access-mode": "bris_de_glace",
                           "x-dmp-justification": "urgence"}).get(f"{BASE}/authorizations"),
    ]
    for response in calls:
        assert response.status_code == 403 and code_of(response) == "blocked"
    with guard.engine.connect() as connection:
        session = session_for_fingerprint(guard.engine, host.session_for(GP), host.clock())
        assert guard.decide(connection, ins=CLAIRE, actor=session, action=Action.GRANT,
                            mode=NORMAL).reason is ReasonCode.BLOCKED
    log = [e for e in patient.access_log(guard, CLAIRE) if e["actorId"] == GP.id_nat_ps
           and e["at"] == "2026-11-27T09:00:01Z"]
    assert len(log) == 6
    assert {(e["outcome"], e["reason"]) for e in log} == {("refused", "BLOCKED")}
    assert {e["mode"] for e in log} == {"normal", "bris_de_glace"}

    patient.unblock(guard, CLAIRE, GP.id_nat_ps)
    assert gp.get(BASE).json()["authorization"] == "valid"  # the authorization stood


def test_blocking_a_professional_without_authorization(host: InProcessHost) -> None:
    guard = host.app.state.guard
    patient.block(guard, CLAIRE, NURSE.id_nat_ps)
    nurse = host.client(NURSE)
    assert nurse.get(BASE).json()["authorization"] == "forbidden"
    response = nurse.put(f"{BASE}/authorizations/{NURSE.id_nat_ps}", json={})
    assert response.status_code == 403 and code_of(response) == "blocked"
    patient.unblock(guard, CLAIRE, NURSE.id_nat_ps)
    assert nurse.get(BASE).json()["authorization"] == "none"
    with pytest.raises(HostError) as error:
        patient.unblock(guard, CLAIRE, NURSE.id_nat_ps)
    assert error.value.code == "not-blocked"


def test_the_access_log_says_who_when_what_and_which_mode(host: InProcessHost) -> None:
    guard = host.app.state.guard
    host.clock.advance(minutes=1)
    host.client(GP).get(BASE)
    host.clock.advance(minutes=1)
    host.client(GP2, **{"x-dmp-access-mode": "bris_de_glace",
                        "x-dmp-justification": "malaise"}).get(BASE)
    host.clock.advance(minutes=1)
    patient.set_consents(guard, CLAIRE, emergency_sees_masked=False)
    host.clock.advance(minutes=1)
    log = patient.access_log(guard, CLAIRE)
    reader, consents, emergency, normal, creation = log
    assert (reader["actorKind"], reader["action"], reader["at"]) == (
        "patient", "read_access_log", "2026-11-27T09:04:00Z")
    assert (consents["actorKind"], consents["actorId"], consents["action"],
            consents["actorName"]) == ("patient", CLAIRE, "set_consents", "CLAIRE MARTIN")
    assert emergency == {
        "at": "2026-11-27T09:02:00Z", "actorKind": "professional", "actorId": GP2.id_nat_ps,
        "actorName": "Paul BERNARD", "profession": "10", "structureId": GP2.structure_id,
        "action": "test_existence", "mode": "bris_de_glace", "justification": "malaise",
        "documentId": None, "outcome": "allowed", "reason": "ALLOWED_EXISTENCE_TEST",
        "authMeans": "card",  # how the professional authenticated (docs/psc.md)
    }
    assert (normal["actorId"], normal["mode"], normal["at"]) == (
        GP.id_nat_ps, "normal", "2026-11-27T09:01:00Z")
    assert (creation["action"], creation["profession"], creation["structureId"]) == (
        "create", "21", PHARMACIST.structure_id)


def test_emergency_accesses_notify_the_patient(host: InProcessHost) -> None:
    guard = host.app.state.guard
    host.client(GP).get(BASE)  # a normal existence test notifies nobody
    assert patient.notifications(guard, CLAIRE) == []
    host.client(GP, **{"x-dmp-access-mode": "bris_de_glace",
                       "x-dmp-justification": "arr%C3%AAt cardiaque"}).get(BASE)
    [note] = patient.notifications(guard, CLAIRE)
    assert note["kind"] == "emergency-access" and note["sentAt"] is None
    assert note["payload"]["actor"] == "Claire MARTIN"
    assert note["payload"]["justification"] == "arrêt cardiaque"


def test_consents_change_only_what_is_given(host: InProcessHost) -> None:
    guard = host.app.state.guard
    consents = patient.set_consents(guard, CLAIRE, break_the_glass=False)
    assert (consents["regulationCentre"], consents["breakTheGlass"],
            consents["emergencySeesMasked"]) == (True, False, True)
    with pytest.raises(HostError):
        patient.set_consents(guard, CLAIRE)


def test_patient_actions_follow_the_dossiers_state(host: InProcessHost) -> None:
    guard = host.app.state.guard
    with pytest.raises(HostError) as absent:
        patient.block(guard, "179116912304566", GP.id_nat_ps)
    assert absent.value.code == "dossier-absent"
    patient.close(guard, CLAIRE, "pause")
    with pytest.raises(HostError) as closed:
        patient.access_log(guard, CLAIRE)  # a closed DMP serves nothing, not even the log
    assert closed.value.code == "dossier-closed"
    patient.reactivate(guard, CLAIRE)
    refused = [e for e in patient.access_log(guard, CLAIRE) if e["outcome"] == "refused"]
    assert [(e["actorKind"], e["action"], e["reason"]) for e in refused] == [
        ("patient", "read_access_log", "DOSSIER_CLOSED")]
    with pytest.raises(HostError) as bad:
        patient.block(guard, "bad", GP.id_nat_ps)
    assert bad.value.code == "bad-ins"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="dmp-host")
    add_patient_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_patient_commands(
    host: InProcessHost, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = host.settings.database_url
    code, out, _ = run_cli(["patient", "block", CLAIRE, GP.id_nat_ps, "--database", url],
                           capsys)
    assert code == 0 and json.loads(out)["status"] == "forbidden"
    assert host.client(GP).get(BASE).json()["authorization"] == "forbidden"
    monkeypatch.setenv("DMP_HOST_DATABASE", url)
    code, out, _ = run_cli(["patient", "access-log", CLAIRE, "--json"], capsys)
    entries = json.loads(out)
    assert code == 0 and {e["action"] for e in entries} >= {"create", "block", "test_existence"}
    code, out, _ = run_cli(["patient", "access-log", CLAIRE], capsys)
    assert "professional Claire MARTIN [10] @ 581234567800015: test_existence" in out
    code, out, _ = run_cli(["patient", "consents", CLAIRE, "--break-the-glass", "no"], capsys)
    assert json.loads(out)["breakTheGlass"] is False
    code, out, _ = run_cli(["patient", "notifications", CLAIRE], capsys)
    assert code == 0 and out.strip() == "(no notification)"
    code, _, err = run_cli(["patient", "unblock", "179116912304566", GP.id_nat_ps], capsys)
    assert code == 1 and "dossier-absent" in err
    monkeypatch.delenv("DMP_HOST_DATABASE")
    code, _, err = run_cli(["patient", "authorizations", CLAIRE], capsys)
    assert code == 2 and "DMP_HOST_DATABASE" in err


def test_the_access_log_is_read_newest_first(host: InProcessHost) -> None:
    for minutes in range(3):
        host.clock.now = START + dt.timedelta(minutes=minutes + 1)
        host.client(GP).get(BASE)
    times = [e["at"] for e in patient.access_log(host.app.state.guard, CLAIRE)]
    assert times == sorted(times, reverse=True)


def test_a_flood_of_accesses_never_hides_a_refused_read(host: InProcessHost) -> None:
    # Attack (issue 16, hole 7): a refused read, then 1,100 cheap requests to bury it.
    guard = host.app.state.guard
    nurse = host.client(NURSE)
    assert nurse.get(f"/fhir/DocumentReference?patient=Patient/{CLAIRE}&status=current"
                     ).status_code == 200  # nothing visible to her, traced as her search
    from host.guard import record_access

    for _ in range(1100):
        record_access(guard.engine, ins=CLAIRE, at=host.clock(), actor_kind="professional",
                      actor_id=GP.id_nat_ps, action="test_existence", mode=NORMAL,
                      allowed=True, reason="ALLOWED_EXISTENCE_TEST")
    everything = patient.access_log(guard, CLAIRE)
    assert len(everything) > 1100
    assert any(e["actorId"] == NURSE.id_nat_ps for e in everything)  # paged to the end
    hers = patient.access_log(guard, CLAIRE, actor_id=NURSE.id_nat_ps)
    assert hers and all(e["actorId"] == NURSE.id_nat_ps for e in hers)
    first = patient.access_log_page(guard, CLAIRE, limit=500)
    second = patient.access_log_page(guard, CLAIRE, limit=500, after=first["next"])
    assert first["next"] and len(first["entries"]) == 500 and len(second["entries"]) == 500
    refused = patient.access_log(guard, CLAIRE, outcome="refused")
    assert all(e["outcome"] == "refused" for e in refused)
    with pytest.raises(HostError):
        patient.access_log_page(guard, CLAIRE, after="not a cursor")


def test_the_access_log_view_escapes_what_others_wrote(host: InProcessHost, capsys) -> None:
    from host.guard import record_access
    from host.patient_cli import _print_log
    from policies import AccessMode

    # A row written before the host refused control characters (or by another host).
    record_access(host.app.state.guard.engine, ins=CLAIRE, at=host.clock(),
                  actor_kind="professional", actor_id=GP.id_nat_ps, action="search",
                  # (no NUL: PostgreSQL cannot store one in a text column anyway)
                  mode=AccessMode.break_the_glass("coma\x1b]0;pwn\x07\r\nforged line\x7f"),
                  allowed=True, reason="ALLOWED_BREAK_THE_GLASS", actor_name="Dr\x1b[2J X")
    _print_log(patient.access_log(host.app.state.guard, CLAIRE))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x7f" not in out and "\r" not in out
    assert "\\x1b]0;pwn\\x07\\x0d\\x0aforged line\\x7f" in out
    assert not any(line.startswith("forged line") for line in out.splitlines())
