"""What the daily workflows cost on the link to the host (issue 18's budgets), counted by a
relay between `dmp-agent run` and the host (tests/relay.py): round trips, not times (the
times at RTT 0.5 and 3 s are bench/latency.py's). Real cards in the real pcscd, the real
host over mutual TLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.core.deposit import INLINE_MAX
from cardreader.virtual.vitale import VirtualVitale
from tests.live import LiveWorld, qualify, until
from tests.localapi.test_workflows import _remove
from tests.relay import Relay, relayed_world

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def relayed(tmp_path_factory: pytest.TempPathFactory,
            pcscd: object) -> Iterator[tuple[LiveWorld, Relay]]:
    with relayed_world(tmp_path_factory.mktemp("relayed")) as world:
        yield world


def counted(relay: Relay, action: Callable[[], Any]) -> int:
    relay.reset()
    action()
    return relay.round_trips


def test_the_round_trip_budgets(relayed: tuple[LiveWorld, Relay], insert_card: Any) -> None:
    live, relay = relayed
    agent = live.agent
    relay.reset()
    insert_card(live.cps("pharmacist"), slot=0)
    agent.wait_for(lambda s: s["session"]["state"] == "locked")
    # The CPS in: the host's challenge is fetched while the PIN is typed (TLS, challenge).
    assert until(lambda: relay.round_trips >= 2)

    def patient(profile: str) -> Callable[[], Any]:
        def insert() -> None:
            inserted.append(insert_card(VirtualVitale.from_profile(profile), slot=1))
            agent.wait_for(lambda s: s["patient"]["state"] in ("ready", "error"))
        return insert

    inserted: list[Any] = []
    with agent.client() as api:
        # The PIN typed: the card's statement, one round trip on the connection the
        # challenge came by (the session's own connection then opens in the background).
        relay.reset()
        api.post("/api/session", json={"pin": "1234"}).raise_for_status()
        assert relay.warm_round_trips == 1
        assert until(lambda: relay.round_trips >= 3)  # the session's connection: warm
        # A patient without a DMP: the identity, then the dossier (no documents: absent).
        assert counted(relay, patient("test")) == 2
        assert api.get("/api/status").json()["patient"]["dmp"]["status"] == "absent"
        # The creation after "no DMP" was shown: one round trip (no second existence
        # test, no reload: the host's answer carries the creator's state).
        assert counted(relay, lambda: api.post("/api/dmp", json={"consent": True})
                       .raise_for_status()) == 1
        shown = api.get("/api/status").json()["patient"]
        assert shown["dmp"]["status"] == "open" and shown["state"] == "ready"

        # The next patient, on the warm connection: the identity, then the dossier and its
        # documents in one answer: two round trips.
        inserted.pop().stop()
        _remove(1)
        assert counted(relay, patient("single")) == 2
        status = api.get("/api/status").json()["patient"]
        assert status["state"] == "ready" and status["dmp"]["status"] == "absent"
        assert counted(relay, lambda: api.post("/api/dmp", json={"consent": True})
                       .raise_for_status()) == 1
        # Practice software asking for the documents the agent already holds: none.
        assert counted(relay, lambda: api.get("/api/documents").raise_for_status()) == 0

        # Deposits, until the held list shows them: a small document travels inside its
        # bundle (one round trip), a large one is streamed first (two); then the list is
        # loaded again (one: the dossier and its documents).
        code = api.get("/api/deposit-types").json()[0]["code"]
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)

        def deposit(size: int) -> Callable[[], Any]:
            # A text file of ``size`` bytes, deposited as a level 1 CDA: its base64 body
            # makes the document about 4/3 of that (docs/cda.md).
            def run() -> None:
                answer = api.post("/api/deposits", params={"typeCode": code, "title": "Bilan"},
                                  content=b"x" * size,
                                  headers={"content-type": "text/plain"})
                assert answer.status_code == 202, answer.text
                unique_id = answer.json()["uniqueId"]
                agent.wait_for(lambda s: any(
                    d["uniqueId"] == unique_id for d in s["patient"]["documents"]))
            return run

        assert counted(relay, deposit(100_000)) == 1 + 1
        assert counted(relay, deposit(INLINE_MAX * 3 // 4 - 16_384)) == 1 + 1  # CDA < limit
        assert counted(relay, deposit(INLINE_MAX * 3 // 4 + 1)) == 2 + 1  # CDA > limit
