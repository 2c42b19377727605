"""Card-rooted sessions through the real TLS server, on SQLite and PostgreSQL: a virtual CPS
signs the statement, the host issues a session certificate, later calls use it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.client.session import SessionError
from cardreader.virtual.pki import TestHealthCA
from host.pki import issue_workstation, revoke
from host.store.schema import sessions
from tests.host.harness import GP, NURSE, PHARMACIST, START, InProcessHost
from tests.host.tls_harness import TlsHost, make_pki, tls_host


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, pki: Path, tmp_path: Path):
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def test_open_use_and_close_a_session(host: TlsHost) -> None:
    session = host.session("gp")
    me = session.client.get("/session")
    assert me.status_code == 200
    assert me.json()["idNatPs"] == "810001234565" and me.json()["profession"] == "10"
    assert me.json()["structureId"]
    assert dt.datetime.fromisoformat(me.json()["notAfter"]) == session.not_after
    session.close()
    with pytest.raises(RuntimeError, match="closed"):  # no call after closing, locally
        session.client.get("/session")


def test_closed_session_certificate_is_refused(host: TlsHost) -> None:
    session = host.session("pharmacist")
    client = session.client
    assert client.delete("/session").status_code == 204
    refused = client.get("/session")
    assert refused.status_code == 401
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "session-revoked"


def test_one_tls_handshake_for_many_calls(host: TlsHost) -> None:
    session = host.session("optician")
    handshakes = set()
    for _ in range(5):
        response = session.client.get("/session")
        assert response.status_code == 200
        handshakes.add(id(response.extensions["network_stream"]))
    assert len(handshakes) == 1  # one kept-alive connection
    session.close()


def test_workstation_certificate_cannot_call_the_api(host: TlsHost) -> None:
    with host.anonymous() as client:
        refused = client.get("/session")
    assert refused.status_code == 401
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_session_certificate_cannot_open_another_session(host: TlsHost) -> None:
    session = host.session("gp")
    refused = session.client.post("/session/challenge")
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "not-a-workstation"


def _code(error: pytest.ExceptionInfo[SessionError]) -> str:
    return error.value.code


def test_card_from_another_health_ca_is_refused(host: TlsHost) -> None:
    from cardreader.apdu import ApduProtocol
    from cardreader.cps import CpsCard
    from cardreader.virtual.cps import VirtualCps
    from cardreader.virtual.direct import DirectConnection

    foreign = VirtualCps.from_profile("gp", ca=TestHealthCA.create())
    card = CpsCard(ApduProtocol(DirectConnection(foreign)))
    card.verify_pin("1234")
    with pytest.raises(SessionError) as refused:
        host.open_session(card)
    assert _code(refused) == "card-cert-untrusted" and refused.value.status == 403


def test_expired_card_is_refused(host: TlsHost) -> None:
    card = host.card("nurse", not_after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                     not_before=dt.datetime(2022, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(SessionError) as refused:
        host.open_session(card)
    assert _code(refused) == "card-cert-expired"


def test_revoked_card_is_refused(host: TlsHost, pki: Path) -> None:
    from cardreader.cps import CpsKey

    card = host.card("orthoptist")
    revoke(pki / "health-ca", card.certificate(CpsKey.AUTHENTICATION))
    with pytest.raises(SessionError) as refused:
        host.open_session(card)
    assert _code(refused) == "card-cert-revoked"


def test_real_card_is_refused_by_a_test_host(host: TlsHost) -> None:
    with pytest.raises(SessionError) as refused:
        host.open_session(host.card("gp", is_test_card=False))
    assert _code(refused) == "real-card-refused"


def test_test_card_is_refused_by_a_production_host(db_url, pki, tmp_path) -> None:
    with (
        tls_host(db_url, pki, tmp_path / "blobs", mode="production") as production,
        pytest.raises(SessionError) as refused,
    ):
        production.session("gp")
    assert _code(refused) == "test-card-refused"


def test_statement_signed_for_another_structure_still_names_it(host: TlsHost) -> None:
    card = host.card("gp")
    second = card.read_situations()[1].structure_id
    session = host.open_session(card, structure_id=second)
    assert session.client.get("/session").json()["structureId"] == second


# -- POST /session/$revoke: the workstation ends its sessions (issue 18) ---------------------

WORKSTATION = "0" * 64  # the workstation of the harness's session rows
OTHER_WORKSTATION = "1" * 64


@pytest.fixture
def in_process(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def _row(host: InProcessHost, fingerprint: str) -> Any:
    with host.app.state.engine.connect() as connection:
        return connection.execute(
            select(sessions).where(sessions.c.cert_sha256 == fingerprint)).one()


def _revoke(host: InProcessHost, body: object, workstation: str = WORKSTATION) -> Any:
    client = host.client(**{"x-test-workstation": workstation})
    return client.post("/session/$revoke", content=json.dumps(body),
                       headers={"content-type": "application/json"})


def _whoami(host: InProcessHost, fingerprint: str) -> Any:
    return host.client(**{"x-test-session": fingerprint}).get("/session")


def test_the_opening_workstation_revokes_its_sessions(in_process: InProcessHost) -> None:
    removed, locked = in_process.session_for(GP), in_process.session_for(PHARMACIST)
    first, second = _row(in_process, removed).id, _row(in_process, locked).id
    body = {"sessions": [{"sessionId": first, "reason": "card-removed"},
                         {"sessionId": second, "reason": "logout"},
                         {"sessionId": "no-such-session", "reason": "card-removed"}]}
    answer = _revoke(in_process, body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"revoked": 2, "alreadyEnded": 0, "unknown": 1}
    assert _row(in_process, removed).revoked_reason == "card-removed"
    assert _row(in_process, locked).revoked_reason == "logout"
    assert _row(in_process, removed).revoked_at is not None
    for fingerprint in (removed, locked):
        refused = _whoami(in_process, fingerprint)
        assert refused.status_code == 401
        assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "session-revoked"
    # Idempotent: sent again (the agent retries until it has an answer), nothing changes.
    in_process.clock.advance(minutes=1)
    again = _revoke(in_process, {"sessions": [{"sessionId": first, "reason": "other"},
                                              {"sessionId": second}]})
    assert again.json() == {"revoked": 0, "alreadyEnded": 2, "unknown": 0}
    row = _row(in_process, removed)
    assert row.revoked_reason == "card-removed"
    assert row.revoked_at.replace(tzinfo=dt.UTC) == START  # the first revocation's time


def test_another_workstation_changes_nothing_and_learns_nothing(
        in_process: InProcessHost) -> None:
    live = in_process.session_for(GP)
    ended = in_process.session_for(NURSE)
    ended_id = _row(in_process, ended).id
    assert _revoke(in_process, {"sessions": [{"sessionId": ended_id}]}).json()["revoked"] == 1
    answer = _revoke(in_process, {"sessions": [
        {"sessionId": _row(in_process, live).id, "reason": "card-removed"},
        {"sessionId": ended_id, "reason": "card-removed"},
        {"sessionId": "no-such-session", "reason": "card-removed"}]},
        workstation=OTHER_WORKSTATION)
    # Another workstation's sessions, live or ended, are as unknown as an invented id.
    assert answer.json() == {"revoked": 0, "alreadyEnded": 0, "unknown": 3}
    assert _row(in_process, live).revoked_at is None
    assert _whoami(in_process, live).status_code == 200
    assert _row(in_process, ended).revoked_reason == "closed"


def test_an_expired_session_is_already_ended(in_process: InProcessHost) -> None:
    short = in_process.session_for(GP, lifetime=dt.timedelta(minutes=5))
    in_process.clock.advance(minutes=6)
    answer = _revoke(in_process, {"sessions": [{"sessionId": _row(in_process, short).id,
                                                "reason": "card-removed"}]})
    assert answer.json() == {"revoked": 0, "alreadyEnded": 1, "unknown": 0}
    assert _row(in_process, short).revoked_at is None  # it ended on its own


def test_an_empty_list_revokes_nothing(in_process: InProcessHost) -> None:
    answer = _revoke(in_process, {"sessions": []})
    assert answer.status_code == 200
    assert answer.json() == {"revoked": 0, "alreadyEnded": 0, "unknown": 0}


@pytest.mark.parametrize("body", [
    "not json", [], {}, {"sessions": "x"}, {"sessions": [1]}, {"sessions": [{}]},
    {"sessions": [{"sessionId": 3}]}, {"sessions": [{"sessionId": ""}]},
    {"sessions": [{"sessionId": "a" * 65}]},
    {"sessions": [{"sessionId": "ID", "reason": "r" * 65}]},
    {"sessions": [{"sessionId": "ID", "reason": ""}]},
    {"sessions": [{"sessionId": "ID", "reason": 7}]},
    {"sessions": [{"sessionId": "ID", "reason": "\x1b[2Jcard-removed"}]},
    {"sessions": [{"sessionId": "ID", "reason": "card\u202eremoved"}]},
    {"sessions": [{"sessionId": "ID\r\n", "reason": "card-removed"}]},
    {"sessions": [{"sessionId": "ID", "reason": "card-removed"}] * 101},
], ids=lambda body: repr(body)[:40])
def test_a_malformed_revocation_is_refused_and_changes_nothing(
        in_process: InProcessHost, body: object) -> None:
    fingerprint = in_process.session_for(GP)
    session_id = _row(in_process, fingerprint).id
    text = json.dumps(body).replace('"ID', f'"{session_id}') if body != "not json" else body
    client = in_process.client(**{"x-test-workstation": WORKSTATION})
    answer = client.post("/session/$revoke", content=text,
                         headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert _row(in_process, fingerprint).revoked_at is None
    assert _whoami(in_process, fingerprint).status_code == 200


def test_a_revocation_needs_a_workstation(in_process: InProcessHost) -> None:
    answer = in_process.client().post("/session/$revoke", json={"sessions": []})
    assert answer.status_code == 401


def test_the_workstation_certificate_revokes_a_session_over_tls(host: TlsHost,
                                                                pki: Path) -> None:
    """The real boundary: the workstation's own certificate, not the session's."""
    session = host.session("gp")
    assert session.client.get("/session").status_code == 200
    body = {"sessions": [{"sessionId": session.session_id, "reason": "card-removed"}]}
    # A session certificate is not a workstation's.
    assert session.client.post("/session/$revoke", json=body).status_code == 403
    other = issue_workstation(pki, "other-workstation")
    with host.anonymous(client_cert=other) as stranger:
        assert stranger.post("/session/$revoke", json=body).json() == {
            "revoked": 0, "alreadyEnded": 0, "unknown": 1}
    assert session.client.get("/session").status_code == 200
    with host.anonymous() as own:
        assert own.post("/session/$revoke", json=body).json() == {
            "revoked": 1, "alreadyEnded": 0, "unknown": 0}
    refused = session.client.get("/session")
    assert refused.status_code == 401
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "session-revoked"
    session.client.close()
