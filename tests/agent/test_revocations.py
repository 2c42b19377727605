"""The queue of session revocations the host has not acknowledged (a small JSON file, written
atomically, set aside when unreadable) and their delivery in the background, through the
real host over TLS: the session's own DELETE first, then the workstation's POST
/session/$revoke with a backoff, before any new challenge, and at start (issue 18)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.client.revocations import (
    EXPIRY_MARGIN,
    REVOCATIONS_FILE,
    RevocationQueue,
    Revoker,
)
from agent.client.session import Opening
from host.app import create_app
from host.settings import HostSettings
from host.store.schema import sessions
from host.tls import running_server, server_ssl_context
from tests.host.tls_harness import TlsHost, make_pki, workstation
from tests.live import until

WAIT = 15.0  # seconds a test waits for what must happen (a bound, not a measure)
NOW = dt.datetime.now(dt.UTC)
LATER = NOW + dt.timedelta(hours=4)
REVOCATION_REQUESTS = {("DELETE", "/session"), ("POST", "/session/$revoke")}




# -- the queue file -------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / REVOCATIONS_FILE


def _ids(queue: RevocationQueue) -> list[str]:
    return [e.session_id for e in queue.pending()]


def test_the_queue_keeps_ids_reasons_and_times_only(path: Path) -> None:
    queue = RevocationQueue(path)
    assert queue.pending() == [] and not path.exists()
    queue.add("s-1", "card-removed", LATER)
    queue.add("s-2", "logout")
    document = json.loads(path.read_bytes())
    assert set(document) == {"format", "pending"}
    assert [set(entry) for entry in document["pending"]] == [
        {"sessionId", "reason", "endedAt", "notAfter"}] * 2
    assert document["pending"][0]["reason"] == "card-removed"
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # What another run (or process) reads back.
    again = RevocationQueue(path)
    assert _ids(again) == ["s-1", "s-2"]
    assert again.pending()[0].not_after == LATER
    again.delivered(["s-1", "unknown"])
    assert _ids(queue) == ["s-2"]
    queue.delivered(["s-2"])
    assert queue.pending() == [] and not path.exists()  # nothing pending: no file


def test_the_write_is_atomic(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = RevocationQueue(path)
    queue.add("s-1", "card-removed", LATER)
    before = path.read_bytes()

    def refused(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refused)
    queue.add("s-2", "card-removed", LATER)  # the write fails: said, never raised
    assert path.read_bytes() == before  # the old file whole, not a part of the new one
    assert sorted(p.name for p in path.parent.iterdir()) == [
        REVOCATIONS_FILE, f"{REVOCATIONS_FILE}.lock"]  # no temporary file left behind
    assert _ids(queue) == ["s-1", "s-2"]  # kept in memory: still delivered
    monkeypatch.undo()
    queue.add("s-3", "logout", LATER)
    assert _ids(RevocationQueue(path)) == ["s-1", "s-2", "s-3"]


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe\x00", b"[]", b'{"format": 2, "pending": []}',
    b'{"format": 1, "pending": {}}', b'{"format": 1, "pending": [{"sessionId": 3}]}',
    b'{"format": 1, "pending": [{"sessionId": "s", "reason": "r", "endedAt": "x"}]}',
    b'{"format": 1, "pending": [{"sessionId": "s", "reason": "r", '
    b'"endedAt": "2026-01-01T00:00:00"}]}',  # no time zone
], ids=lambda content: content[:24].decode(errors="replace"))
def test_a_corrupt_file_is_set_aside(path: Path, content: bytes,
                                     caplog: pytest.LogCaptureFixture) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    queue = RevocationQueue(path)
    with caplog.at_level(logging.ERROR, logger="agent.client.revocations"):
        assert queue.pending() == []
    assert "set aside" in caplog.text
    assert not path.exists()
    assert path.with_name(REVOCATIONS_FILE + ".corrupt").read_bytes() == content
    queue.add("s-1", "card-removed", LATER)  # and the queue goes on
    assert _ids(RevocationQueue(path)) == ["s-1"]


def test_an_expired_session_needs_no_revocation(path: Path) -> None:
    queue = RevocationQueue(path)
    long_ago = NOW - EXPIRY_MARGIN - dt.timedelta(minutes=1)
    queue.add("expired", "card-removed", long_ago, now=long_ago - dt.timedelta(hours=4))
    queue.add("unknown-expiry", "logout", None, now=NOW - dt.timedelta(days=2))
    queue.add("live", "logout", LATER)
    assert _ids(queue) == ["live"]
    assert [e["sessionId"] for e in json.loads(path.read_bytes())["pending"]] == ["live"]


def test_two_processes_share_the_file(path: Path) -> None:
    run, command = RevocationQueue(path), RevocationQueue(path)  # `dmp-agent run`, a command
    run.add("from-run", "card-removed", LATER)
    command.add("from-command", "agent-stopped", LATER)
    run.add("again-from-run", "logout", LATER)
    assert _ids(command) == ["from-run", "from-command", "again-from-run"]
    command.delivered(["from-run"])
    assert _ids(run) == ["from-command", "again-from-run"]


def test_a_reason_is_kept_as_the_host_takes_it(path: Path) -> None:
    queue = RevocationQueue(path)
    queue.add("s-1", "card\x1b[2J\u202eremoved" + "x" * 100, LATER)
    reason = queue.pending()[0].reason
    assert reason.isprintable() and len(reason) == 64 and reason.startswith("card?")


# -- delivery, through the real host --------------------------------------------------------


class Gate:
    """ASGI middleware in front of the host: notes the requests in order; the revocation
    requests are answered (``up``), refused with 503 (``down``) or held (``hang``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str] = []
        self.mode = "up"
        self.held = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{scope['method']} {scope['path']}")
            if (scope["method"], scope["path"]) in REVOCATION_REQUESTS:
                self.held += 1
                while self.mode == "hang":
                    await asyncio.sleep(0.01)
                self.held -= 1
                if self.mode == "down":
                    await send({"type": "http.response.start", "status": 503,
                                "headers": [(b"content-length", b"0")]})
                    await send({"type": "http.response.body", "body": b""})
                    return
        await self.app(scope, receive, send)

    def attempts(self) -> int:
        return sum(1 for seen in self.seen
                   if tuple(seen.split(" ", 1)) in REVOCATION_REQUESTS)


class Host:
    def __init__(self, tls: TlsHost, gate: Gate) -> None:
        self.tls, self.gate = tls, gate

    @property
    def url(self) -> str:
        return self.tls.base_url

    def revoked(self, session_id: str) -> str | None:
        """The reason the host holds for the session's end, None while it is live."""
        with self.tls.app.state.engine.connect() as connection:
            return connection.execute(select(sessions.c.revoked_reason)
                                      .where(sessions.c.id == session_id)).scalar_one()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, _migrated_templates: Any) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("revocations")
    pki = make_pki(root / "pki")
    shutil.copyfile(_migrated_templates["sqlite"], root / "host.db")
    settings = HostSettings(database_url=f"sqlite:///{root / 'host.db'}",
                            blob_dir=root / "blobs", pki_dir=pki)
    app = create_app(settings)
    gate = Gate(app)
    with running_server(gate, server_ssl_context(pki)) as url:
        yield Host(TlsHost(url, pki, settings, app), gate)


@pytest.fixture
def gate(host: Host) -> Iterator[Gate]:
    host.gate.mode = "up"
    host.gate.seen.clear()
    yield host.gate
    host.gate.mode = "up"


@contextlib.contextmanager
def revoker(host: Host, queue: RevocationQueue, **options: Any) -> Iterator[Revoker]:
    made = Revoker(host.url, workstation(host.tls.pki), queue, **options)
    try:
        yield made
    finally:
        made.stop()


def test_the_session_tells_the_host_itself_when_it_can(host: Host, gate: Gate,
                                                        path: Path) -> None:
    session = host.tls.session("gp")
    queue = RevocationQueue(path)
    gate.seen.clear()  # the opening's requests
    with revoker(host, queue) as delivery:
        delivery.revoke(session, "card-removed")
        assert session.session_id in _ids(queue)  # recorded before it returns
        assert delivery.wait_delivered([session.session_id], WAIT)
    assert gate.seen == ["DELETE /session"]  # one request, the session's own
    assert host.revoked(session.session_id) == "card-removed"
    assert session.client.is_closed  # the session's key went with its client
    assert queue.pending() == [] and not path.exists()


def test_a_failed_revocation_is_retried_until_the_host_has_it(host: Host, gate: Gate,
                                                              path: Path) -> None:
    session = host.tls.session("gp")
    queue = RevocationQueue(path)
    gate.mode = "down"
    gate.seen.clear()
    with revoker(host, queue, backoff_first=0.05, backoff_max=0.2) as delivery:
        delivery.revoke(session, "card-removed")
        # The session's own try, then the workstation's, again and again.
        assert until(lambda: gate.seen.count("POST /session/$revoke") >= 3)
        assert gate.seen[0] == "DELETE /session"
        assert session.client.is_closed  # not kept for the retries
        assert host.revoked(session.session_id) is None
        assert _ids(RevocationQueue(path)) == [session.session_id]  # on disk meanwhile
        gate.mode = "up"
        assert delivery.wait_delivered([session.session_id], WAIT)
    assert host.revoked(session.session_id) == "card-removed"
    assert not path.exists()


def test_what_a_previous_run_left_goes_at_start(host: Host, gate: Gate, path: Path) -> None:
    ended = [host.tls.session("gp"), host.tls.session("nurse")]
    queue = RevocationQueue(path)
    for session, reason in zip(ended, ("card-removed", "service-lost"), strict=True):
        session.client.close()  # the process died with the keys
        queue.add(session.session_id, reason, session.not_after)
    gate.seen.clear()
    with revoker(host, RevocationQueue(path)) as delivery:  # the next run
        delivery.start()
        assert delivery.wait_delivered(None, WAIT)
    assert gate.seen == ["POST /session/$revoke"]  # one request for both
    assert [host.revoked(s.session_id) for s in ended] == ["card-removed", "service-lost"]
    assert not path.exists()


def test_an_opening_sends_the_pending_revocations_before_its_challenge(
        host: Host, gate: Gate, path: Path) -> None:
    earlier = host.tls.session("gp")
    earlier.client.close()
    queue = RevocationQueue(path)
    queue.add(earlier.session_id, "card-removed", earlier.not_after)
    gate.seen.clear()
    with revoker(host, queue) as delivery:  # never started: no background delivery
        opening = Opening(host.url, workstation(host.tls.pki), before=delivery.flush).start()
        try:
            opening.take()
        finally:
            opening.close()
    assert gate.seen == ["POST /session/$revoke", "POST /session/challenge"]
    assert host.revoked(earlier.session_id) == "card-removed"
    assert queue.pending() == []


def test_many_revocations_go_by_batches_of_a_hundred(host: Host, gate: Gate,
                                                     path: Path) -> None:
    queue = RevocationQueue(path)
    for n in range(150):
        queue.add(str(uuid.uuid4()), f"test {n}", LATER)  # ids the host does not know
    with revoker(host, queue) as delivery:
        delivery.start()
        assert delivery.wait_delivered(None, WAIT)
    assert gate.seen == ["POST /session/$revoke"] * 2
    assert not path.exists()


def test_stopping_does_not_wait_for_a_host_that_hangs(host: Host, gate: Gate,
                                                      path: Path) -> None:
    session = host.tls.session("gp")
    queue = RevocationQueue(path)
    gate.mode = "hang"
    delivery = Revoker(host.url, workstation(host.tls.pki), queue, timeout=60.0)
    delivery.revoke(session, "agent-stopped")
    assert until(lambda: gate.held >= 1)
    started = time.monotonic()
    delivery.stop()
    stopped = time.monotonic() - started
    assert stopped < 3.0, stopped  # ~1 s: what is left waits in the file
    assert _ids(RevocationQueue(path)) == [session.session_id]
    gate.mode = "up"
    with revoker(host, RevocationQueue(path)) as next_run:
        next_run.start()
        assert next_run.wait_delivered(None, WAIT)
    assert host.revoked(session.session_id) == "agent-stopped"


def test_a_host_that_refuses_keeps_them_pending(host: Host, gate: Gate, path: Path) -> None:
    """A host that answers the revocations with an error (in trouble: 503; an older host
    without the route: 404) does not lose them, nor refuse the next opening."""
    queue = RevocationQueue(path)
    queue.add("refused", "card-removed", LATER)
    gate.mode = "down"
    with revoker(host, queue) as delivery:
        opening = Opening(host.url, workstation(host.tls.pki), before=delivery.flush)
        try:
            opening.take()  # the challenge is still asked, and given
        finally:
            opening.close()
    assert gate.seen == ["POST /session/$revoke", "POST /session/challenge"]
    assert _ids(queue) == ["refused"]
