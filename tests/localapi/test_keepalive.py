"""A session's connection outlives the pauses of a consultation (issue 18): the agent keeps
it open with keep-alive calls, so the patient who comes after a pause costs no new TCP and
TLS handshake. Counted by the relay (tests/relay.py) between `dmp-agent run` and the real
host, which here closes a connection idle for 2 s (`dmp-host serve --keep-alive 2`)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cardreader.virtual.vitale import VirtualVitale
from tests.live import until
from tests.relay import relayed_world

pytestmark = pytest.mark.pcsc

HOST_IDLE = 2  # seconds the host keeps an idle connection in this test


@pytest.mark.parametrize(("keepalive", "kept"), [
    (0.5, True),  # the keep-alive calls come within the host's idle limit: the same connection
    (0, False),  # none: the host closed it during the pause, the patient pays a new one
])
def test_a_pause_longer_than_the_hosts_idle_limit_costs_no_handshake_when_kept_alive(
    tmp_path: Any, pcscd: object, insert_card: Any, keepalive: float, kept: bool
) -> None:
    with relayed_world(tmp_path, host_args=("--keep-alive", str(HOST_IDLE)),
                       agent_host_config=f"keepalive_seconds = {keepalive}") as (live, relay):
        agent = live.agent
        insert_card(live.cps("pharmacist"), slot=0)
        agent.wait_for(lambda s: s["session"]["state"] == "locked")
        with agent.client() as api:
            api.post("/api/session", json={"pin": "1234"}).raise_for_status()
            assert until(lambda: relay.round_trips >= 3)  # the session's connection warmed
            time.sleep(3 * HOST_IDLE)  # a pause: the host would close an idle connection
            relay.reset()
            insert_card(VirtualVitale.from_profile("single"), slot=1)
            agent.wait_for(lambda s: s["patient"]["state"] in ("ready", "error"))
            if kept:
                # The session's connection carried the patient's calls; a call overlapping
                # another (the INS lookup beside the dossier's load) may still open one more.
                assert relay.warm_round_trips >= 1 and relay.connections <= 1
            else:
                assert relay.warm_round_trips == 0 and relay.connections >= 1
