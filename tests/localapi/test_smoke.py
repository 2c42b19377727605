from __future__ import annotations

import pytest

from cardreader.virtual.vitale import VirtualVitale

pytestmark = pytest.mark.pcsc


def test_session_and_patient(live, insert_card) -> None:
    insert_card(live.cps("gp"), slot=0)
    status = live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        answer = api.post("/api/session", json={"pin": "1234"})
        assert answer.status_code == 200, answer.text
        insert_card(VirtualVitale.from_profile("single"), slot=1)
        status = live.agent.wait_for(lambda s: s["patient"]["state"] in ("ready", "error"))
        print(status["patient"])
        assert status["patient"]["state"] == "ready"
