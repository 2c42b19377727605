"""The host's state, honestly (issue 17): when the host stops answering, `/api/status` says
so (unreachable since when, in words, with what to do), the patient's list stays with the
time it was fetched and that it could not be refreshed, and all comes back when the host
does. The real agent, the real host in its own process, real cards in the real pcscd."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.live import LiveWorld
from tests.localapi.test_session_end import _open_session_with_a_patient

pytestmark = pytest.mark.pcsc


def test_the_host_down_is_said_with_since_when_and_the_list_keeps_its_time(
    live: LiveWorld, insert_card: Any
) -> None:
    _open_session_with_a_patient(live, insert_card)
    agent = live.agent
    before = agent.wait_for(lambda s: s["host"]["state"] == "reachable")
    listed = before["patient"]
    assert listed["fetchedAt"] and listed["stale"] == ""

    live.host.stop()
    stopped = dt.datetime.now(dt.UTC)
    try:
        with agent.client() as api:
            answer = api.post("/api/patient/reload")
            assert answer.status_code == 200, answer.text
        status = agent.wait_for(lambda s: s["host"]["state"] == "unreachable")
        host = status["host"]
        assert "injoignable" in host["reason"] and "connexion internet" in host["fix"]
        assert "Error" not in host["reason"]  # words, not a Python class name
        assert dt.datetime.fromisoformat(host["since"]) >= stopped - dt.timedelta(seconds=1)
        assert dt.datetime.fromisoformat(host["lastOk"]) <= stopped  # its last answer
        patient = status["patient"]
        # The list held stays, from when it was fetched, said not refreshed.
        assert patient["state"] == "ready" and patient["stale"]
        assert patient["fetchedAt"] == listed["fetchedAt"]
        assert patient["documents"] == listed["documents"]
    finally:
        live.host.start()
    with agent.client() as api:
        assert api.post("/api/patient/reload").status_code == 200
    status = agent.wait_for(lambda s: s["host"]["state"] == "reachable"
                            and s["patient"]["stale"] == "")
    assert status["patient"]["fetchedAt"] > listed["fetchedAt"]
