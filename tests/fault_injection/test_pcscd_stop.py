"""pcscd stops under an open session: the notice the user gets says the smart-card service
stopped, not that the card was taken out."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from cardreader.virtual.pcscd import Pcscd
from tests.fault_injection.world import PIN, Site, StartAgent
from tests.live import AgentProcess

pytestmark = pytest.mark.pcsc


class Notices:
    """The agent's `notice` events, read from its event stream on a thread."""

    def __init__(self, agent: AgentProcess) -> None:
        self.seen: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(agent,), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _read(self, agent: AgentProcess) -> None:
        with agent.client(timeout=None) as api, api.stream("GET", "/api/events") as stream:
            kind = ""
            for line in stream.iter_lines():
                self._ready.set()
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "notice":
                    self.seen.append(json.loads(line[6:]))

    def wait_for(self, title: str, timeout: float = 15) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for notice in self.seen:
                if notice["title"].startswith(title):
                    return notice
            time.sleep(0.05)
        raise AssertionError(f"no notice {title!r}; saw {self.seen}")

    def close(self) -> None:
        self._stop.set()


def test_pcscd_stopping_is_told_as_the_service_stopping_not_a_card_removed(
        site: Site, start_agent: StartAgent, insert_card: Any, pcscd: Pcscd) -> None:
    agent = start_agent()
    insert_card(site.cps("gp"), slot=0)
    agent.wait_for(lambda s: s["session"]["state"] == "locked")
    notices = Notices(agent)
    try:
        with agent.client() as api:
            assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        notices.wait_for("Session DMP ouverte")
        pcscd.stop()
        try:
            closed = notices.wait_for("Session DMP fermée")
            status = agent.wait_for(lambda s: s["cards"]["service"] == "down")
        finally:
            pcscd.start()
    finally:
        notices.close()
    assert "service carte arrêté" in closed["text"], notices.seen
    assert not any("carte retirée" in n["text"] for n in notices.seen), notices.seen
    assert "pcscd" in status["problem"]
    with httpx.Client(base_url=agent.url, timeout=5) as api:  # the agent lives on
        assert api.get("/api/health").status_code == 200
