"""A change of state wakes the outbox whatever its backoff (issue 11): the worker's `wake`
with a scripted `send`, and the response hook that tells it the host answered. The same,
through the real host, pcscd and `dmp-agent run`: tests/agent/test_outbox_wake_live.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agent.outbox import (
    Cause,
    Item,
    ItemState,
    Outbox,
    OutboxWake,
    OutboxWorker,
    RetryPolicy,
    SealedFileKeyStore,
    SendResult,
)
from agent.outbox.sender import HOST_CAUSES, SESSION_CAUSES

LONG = RetryPolicy(base=60.0, maximum=600.0, jitter=0.0)  # a backoff no test could outwait


class Host:
    """A scripted host: while ``state`` names a cause, every attempt fails with it."""

    def __init__(self, state: Cause | None) -> None:
        self.state = state
        self.attempts: list[str] = []

    def __call__(self, item: Item) -> SendResult:
        self.attempts.append(item.unique_id)
        if item.unique_id.endswith("refused"):
            return SendResult.refused("400 bad document", 400)
        if self.state is not None:
            return SendResult.retry(f"{self.state} down", cause=self.state)
        return SendResult.stored()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox" / "outbox.sqlite3",
                 keys=SealedFileKeyStore(tmp_path / "credentials", tmp_path / "keys"))
    yield box
    box.close()


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


def _worker(outbox: Outbox, host: Host) -> OutboxWorker:
    return OutboxWorker(outbox, host, threading.Event(), policy=LONG).start()


def _held(outbox: Outbox, item_id: int, cause: Cause) -> Item:
    """Wait until the item failed once for ``cause`` and sleeps in its backoff."""
    _until(lambda: outbox.get(item_id).cause is cause
           and outbox.get(item_id).state is ItemState.PENDING)
    item = outbox.get(item_id)
    assert item.next_attempt - time.time() > 30  # the backoff today's code would sleep
    return item


@pytest.mark.parametrize(("cause", "ended"), [(Cause.NO_SESSION, SESSION_CAUSES),
                                               (Cause.NETWORK, HOST_CAUSES),
                                               (Cause.HOST, HOST_CAUSES)])
def test_a_change_of_state_sends_a_held_deposit_at_once_whatever_its_backoff(
        outbox: Outbox, cause: Cause, ended: frozenset[Cause]) -> None:
    host = Host(cause)
    worker = _worker(outbox, host)
    try:
        item_id = outbox.add("urn:uuid:held", "INS-1", b"bundle")
        worker.wakeup.set()
        _held(outbox, item_id, cause)
        host.state = None
        started = time.monotonic()
        assert worker.wake(ended)
        _until(lambda: outbox.get(item_id).state is ItemState.DONE)
        assert time.monotonic() - started < 1.5
        assert host.attempts == ["urn:uuid:held"] * 2  # one failure, one send: no more
    finally:
        worker.stop()


def test_the_host_answering_leaves_deposits_waiting_for_a_session_and_refused_ones(
        outbox: Outbox) -> None:
    host = Host(Cause.NO_SESSION)
    worker = _worker(outbox, host)
    try:
        # The refusal first: a transient failure ends the pass and pauses the sender.
        refused = outbox.add("urn:uuid:refused", "INS-2", b"two")
        waiting = outbox.add("urn:uuid:waiting", "INS-1", b"one")
        worker.wakeup.set()
        before = _held(outbox, waiting, Cause.NO_SESSION)
        _until(lambda: outbox.get(refused).state is ItemState.FAILED)
        host.state = None  # would be sent, were it tried
        worker.wake(HOST_CAUSES)
        _until(lambda: not worker.wakeup.is_set())  # the pass it asked for ran
        time.sleep(0.3)
        assert outbox.get(waiting).next_attempt == before.next_attempt
        assert outbox.get(refused).state is ItemState.FAILED
        assert host.attempts.count("urn:uuid:refused") == 1  # a refusal is not retried
        assert not worker.wake(HOST_CAUSES)  # nothing waits for the host: no pass at all
        assert worker.wake(SESSION_CAUSES)
        _until(lambda: outbox.get(waiting).state is ItemState.DONE)
    finally:
        worker.stop()


class Recorder:
    """Stands for the worker: records what `OutboxWake` tells it."""

    def __init__(self) -> None:
        self.woken: list[frozenset[Cause]] = []

    def wake(self, causes: frozenset[Cause]) -> bool:
        self.woken.append(frozenset(causes))
        return True


@pytest.mark.parametrize(("status", "up"), [(200, True), (201, True), (404, True),
                                             (403, True), (500, False), (503, False),
                                             (408, False), (429, False)])
def test_every_answer_on_a_watched_client_that_shows_the_host_up_wakes_the_outbox(
        status: int, up: bool) -> None:
    recorder = Recorder()
    wake = OutboxWake(recorder)  # type: ignore[arg-type]
    client = httpx.Client(base_url="https://host.test",
                          transport=httpx.MockTransport(lambda _: httpx.Response(status)))
    with client:
        wake.session_opened(client)  # a session: the host answered, and its client watched
        assert recorder.woken == [SESSION_CAUSES | HOST_CAUSES]
        wake.watch(client)  # twice: still one hook
        client.get("/dossier")
    assert recorder.woken[1:] == ([HOST_CAUSES] if up else [])
