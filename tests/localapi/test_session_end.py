"""Issue 18, as people live it: `dmp-agent run` in its own process, real cards in the real
pcscd, the reference host in its own process. The CPS is pulled while the host cannot be
reached: the patient's data leave `/api/status` at once, the session's revocation waits in
the agent's data directory, and reaches the host once it is back."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.client.revocations import REVOCATIONS_FILE
from cardreader.virtual.vitale import VirtualVitale
from tests.live import LiveWorld, until

pytestmark = pytest.mark.pcsc

PIN = "1234"
WAIT = 15.0  # seconds the agent has to show what it must (a bound, not a measure)
DELIVERY_WAIT = 90.0  # the host back: the retries come at 1, 2, 4... s (at most 60 s)


class Blackhole:
    """The host's port held by a listener that accepts connections and never answers: what
    the agent sends there hangs, as on a dead link, until the agent's own timeouts."""

    def __init__(self, port: int) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._closed.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                connection, _ = self._listener.accept()
                self._held.append(connection)  # read nothing, answer nothing

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._thread.join(2)
        for connection in self._held:
            connection.close()
        self._listener.close()




def _open_session_with_a_patient(live: LiveWorld, insert_card: Any) -> tuple[Any, Any]:
    cps = insert_card(live.cps("gp"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        vitale = insert_card(VirtualVitale.from_profile("single"), slot=1)
        status = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
        if status["patient"]["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
            live.agent.wait_for(lambda s: s["patient"]["state"] == "ready"
                                and s["patient"]["dmp"]["status"] == "open")
    return cps, vitale


def _live_session(live: LiveWorld) -> str:
    with contextlib.closing(live.host.db()) as db:
        rows = db.execute("SELECT id FROM sessions WHERE revoked_at IS NULL").fetchall()
    assert len(rows) == 1, rows
    return str(rows[0][0])


def _revocation(live: LiveWorld, session_id: str) -> tuple[str | None, str | None]:
    with contextlib.closing(live.host.db()) as db:
        row = db.execute("SELECT revoked_at, revoked_reason FROM sessions WHERE id = ?",
                         (session_id,)).fetchone()
    return row[0], row[1]


def _pending(path: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads(path.read_bytes())["pending"])
    except FileNotFoundError:
        return []


def test_the_cps_pulled_with_the_host_unreachable(live: LiveWorld, insert_card: Any) -> None:
    cps, vitale = _open_session_with_a_patient(live, insert_card)
    shown = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
    assert shown["patient"]["ins"] and shown["dmp"]["status"] == "open"
    session_id = _live_session(live)
    queue = live.agent.root / "data" / "dmp-agent" / REVOCATIONS_FILE
    assert _pending(queue) == []

    live.host.stop()
    try:
        with Blackhole(live.host.port) as hole:
            cps.stop()
            # (a) The patient's data and the session leave the API, though the host never
            # answered anything since the card left (it cannot: nothing listens but the hole).
            status = live.agent.wait_for(lambda s: s["session"]["state"] != "open"
                                         and s["patient"]["patient"] is None, WAIT)
            assert status["session"]["state"] == "none"
            assert status["patient"]["dmp"] is None and status["patient"]["documents"] == []
            # The revocation waits on disk: the session id, the reason, times; no more.
            assert until(lambda: [e["sessionId"] for e in _pending(queue)] == [session_id])
            entry = _pending(queue)[0]
            assert entry["reason"] == "card-removed"
            assert set(entry) == {"sessionId", "reason", "endedAt", "notAfter"}
            assert until(lambda: hole.connections >= 1)  # the agent tried: unanswered
            # The next card event is not held behind the host: the Vitale card leaves, and
            # the card's own details go too.
            vitale.stop()
            live.agent.wait_for(lambda s: s["patient"]["state"] == "none", WAIT)
            assert [e["sessionId"] for e in _pending(queue)] == [session_id]
    finally:
        # (b) The host back on its port: the revocation reaches it, in the background.
        live.host.start()
    assert until(lambda: _revocation(live, session_id)[1] is not None, DELIVERY_WAIT)
    revoked_at, reason = _revocation(live, session_id)
    assert revoked_at is not None and reason == "card-removed"
    assert until(lambda: not queue.exists())
