"""The deposit outbox (agent.outbox): durability, order, backoff, refusals, retry by hand,
the background worker, and a real crash test (SIGKILL at random instants, real HTTP host)."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import random
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from agent.outbox import (
    Item,
    ItemState,
    Outbox,
    OutboxBusyError,
    OutboxError,
    OutboxWorker,
    Outcome,
    Progress,
    RetryPolicy,
    SealedFileKeyStore,
    Sender,
    SendResult,
)

REPO = Path(__file__).resolve().parents[2]


def keys(root: Path) -> SealedFileKeyStore:
    """The outbox key's sealed file under ``root`` (never beside the outbox)."""
    return SealedFileKeyStore(root / "credentials", root / "keys")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox" / "outbox.sqlite3", keys=keys(tmp_path), clock=clock) as box:
        yield box


def recorder(answer: Callable[[Item], SendResult] | None = None
             ) -> tuple[list[str], Callable[[Item], SendResult]]:
    sent: list[str] = []

    def send(item: Item) -> SendResult:
        item.read_payload()
        sent.append(item.unique_id)
        return answer(item) if answer else SendResult.stored("201 Created", 201)

    return sent, send


NO_JITTER = RetryPolicy(base=10.0, maximum=100.0, jitter=0.0)


# -- adding ------------------------------------------------------------------------------------


def test_add_keeps_the_bundle_and_metadata_and_is_idempotent_on_the_unique_id(
    outbox: Outbox,
) -> None:
    first = outbox.add("1.2.3.1", "INS-A", b"bundle one", {"title": "CR", "size": 10})
    again = outbox.add("1.2.3.1", "INS-A", b"bundle one", {"title": "CR", "size": 10})
    assert again == first
    item = outbox.get(first)
    assert item.state is ItemState.PENDING and item.attempts == 0
    assert item.read_payload() == b"bundle one"
    assert item.metadata == {"title": "CR", "size": 10}
    with pytest.raises(OutboxError, match="other content"):
        outbox.add("1.2.3.1", "INS-A", b"another bundle")
    assert [p.name for p in outbox.bundles.iterdir()] == [item.payload_path.name]  # type: ignore[union-attr]


def test_add_from_a_file_copies_it_so_the_caller_may_delete_it(
    outbox: Outbox, tmp_path: Path
) -> None:
    source = tmp_path / "bundle.json"
    data = os.urandom(3 * (1 << 20) + 7)  # several copy chunks
    source.write_bytes(data)
    item_id = outbox.add("1.2.3.2", "INS-A", source)
    source.unlink()
    assert outbox.get(item_id).read_payload() == data


@pytest.mark.parametrize("call", [
    lambda o: o.add("", "INS", b"x"),
    lambda o: o.add("u", " ", b"x"),
    lambda o: o.add("u", "INS", "a str is not a path"),
    lambda o: o.add("u", "INS", b"x", {"when": object()}),
])
def test_bad_arguments_are_refused_and_leave_nothing(
    outbox: Outbox, call: Callable[[Outbox], int]
) -> None:
    with pytest.raises(OutboxError):
        call(outbox)
    assert outbox.counts().pending == 0
    assert list(outbox.bundles.iterdir()) == []


def test_files_are_owner_only(outbox: Outbox) -> None:
    item = outbox.get(outbox.add("u1", "INS-A", b"secret health data"))
    assert stat.S_IMODE(outbox.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(outbox.bundles.stat().st_mode) == 0o700
    assert stat.S_IMODE(outbox.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(item.payload_path.stat().st_mode) == 0o600  # type: ignore[union-attr]


def test_a_second_process_cannot_open_the_same_outbox(outbox: Outbox, tmp_path: Path) -> None:
    with pytest.raises(OutboxBusyError):
        Outbox(outbox.path, keys=keys(tmp_path))
    code = ("import sys; from agent.outbox import Outbox, OutboxBusyError, SealedFileKeyStore\n"
            "try: Outbox(sys.argv[1], keys=SealedFileKeyStore(sys.argv[2], sys.argv[2]))\n"
            "except OutboxBusyError as e: print('busy:', e); sys.exit(3)\n")
    run = subprocess.run([sys.executable, "-c", code, str(outbox.path), str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 3, run.stderr
    assert "autre agent DMP" in run.stdout


# -- sending -----------------------------------------------------------------------------------


def test_items_go_in_order_and_an_acknowledged_item_is_done_and_its_copy_removed(
    outbox: Outbox, clock: Clock
) -> None:
    ids = [outbox.add(f"u{n}", f"INS-{n % 2}", f"bundle {n}".encode()) for n in range(5)]
    paths = [outbox.get(i).payload_path for i in ids]
    sent, send = recorder()
    report = Sender(outbox, NO_JITTER, clock=clock).send_pending(send)
    assert sent == [f"u{n}" for n in range(5)]
    assert report.sent == 5
    assert outbox.pending() == [] and len(outbox.done()) == 5
    done = outbox.get(ids[0])
    assert done.acknowledgement == "stored: 201 Created" and done.acknowledged == clock.now
    assert all(not p.exists() for p in paths if p)  # the host has it: no local copy lingers
    assert Sender(outbox, NO_JITTER, clock=clock).send_pending(send).sent == 0  # nothing twice


def test_backoff_doubles_up_to_the_maximum_and_nothing_is_sent_before_it_is_due(
    outbox: Outbox, clock: Clock
) -> None:
    item_id = outbox.add("u1", "INS-A", b"x")
    sent, send = recorder(lambda item: SendResult.from_status(503, "maintenance"))
    sender = Sender(outbox, NO_JITTER, clock=clock)
    assert sender.send_pending(send).retried == 1  # the first attempt, at once
    due = clock.now + 10
    for delay in (20, 40, 80, 100, 100):
        assert outbox.get(item_id).next_attempt == pytest.approx(due)
        assert sender.next_due() == pytest.approx(due)
        clock.now = due - 0.01
        assert sender.send_pending(send).retried == 0  # not yet due: not sent
        clock.now = due
        assert sender.send_pending(send).retried == 1
        due += delay
    item = outbox.get(item_id)
    assert item.state is ItemState.PENDING and item.attempts == 6
    assert item.last_error == "503 maintenance"
    assert len(sent) == 6


def test_jitter_spreads_the_delay_within_its_fraction_and_retry_after_is_honoured() -> None:
    policy = RetryPolicy(base=10.0, maximum=100.0, jitter=0.2)
    assert policy.delay(1, lambda: 0.0) == pytest.approx(8.0)
    assert policy.delay(1, lambda: 1.0) == pytest.approx(12.0)
    assert policy.delay(3, lambda: 0.5) == pytest.approx(40.0)
    assert policy.delay(50, lambda: 1.0) == 100.0  # never past the maximum
    assert policy.delay(10_000, lambda: 0.0) == pytest.approx(80.0)  # no overflow
    assert policy.delay(1, lambda: 0.5, retry_after=30) == pytest.approx(30.0)
    assert policy.delay(1, lambda: 0.5, retry_after=3600) == 100.0
    with pytest.raises(ValueError):
        RetryPolicy(base=10.0, maximum=5.0)


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.STORED), (201, Outcome.STORED), (400, Outcome.REFUSED),
    (403, Outcome.REFUSED), (404, Outcome.REFUSED), (409, Outcome.REFUSED),
    (413, Outcome.REFUSED), (408, Outcome.RETRY), (429, Outcome.RETRY), (500, Outcome.RETRY),
    (502, Outcome.RETRY), (503, Outcome.RETRY), (302, Outcome.RETRY),
])
def test_http_status_classification(status: int, outcome: Outcome) -> None:
    assert SendResult.from_status(status).outcome is outcome
    assert SendResult.from_status(200, already_stored=True).outcome is Outcome.ALREADY_STORED


def test_a_refused_item_is_kept_with_its_reason_does_not_block_others_and_is_retried_by_hand(
    outbox: Outbox, clock: Clock
) -> None:
    refused_id = outbox.add("bad", "INS-A", b"the signed bundle")
    outbox.add("good", "INS-B", b"another")
    answers = {"bad": SendResult.from_status(403, "author-mismatch")}
    sent, send = recorder(lambda item: answers.get(item.unique_id, SendResult.stored()))
    sender = Sender(outbox, NO_JITTER, clock=clock)
    report = sender.send_pending(send)
    assert (report.sent, report.failed) == (1, 1)
    failed = outbox.failed()
    assert [f.id for f in failed] == [refused_id]
    assert failed[0].last_error == "403 author-mismatch"
    assert failed[0].read_payload() == b"the signed bundle"
    clock.now += 10_000
    assert sender.send_pending(send).sent == 0  # never retried on its own
    assert sent == ["bad", "good"]

    with pytest.raises(OutboxError, match="only a failed item"):
        outbox.retry(outbox.done()[0].id)
    with pytest.raises(OutboxError, match="no item"):
        outbox.retry(12345)
    answers.clear()  # the cause was fixed
    requeued = outbox.retry(refused_id)
    assert requeued.state is ItemState.PENDING and requeued.attempts == 0
    assert sender.send_pending(send).sent == 1
    assert outbox.get(refused_id).state is ItemState.DONE


def test_one_patient_stays_in_order_while_another_patient_overtakes_a_failing_item(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.add("a1", "INS-A", b"original")
    outbox.add("a2", "INS-A", b"replacement of a1")
    outbox.add("b1", "INS-B", b"other patient")
    failures = {"a1": 2}

    def answer(item: Item) -> SendResult:
        if failures.get(item.unique_id, 0) > 0:
            failures[item.unique_id] -= 1
            return SendResult.from_status(500, "boom")
        return SendResult.stored()

    sent, send = recorder(answer)
    sender = Sender(outbox, NO_JITTER, clock=clock)
    for _ in range(6):
        sender.send_pending(send)
        clock.now += 200
    assert sent == ["a1", "b1", "a1", "a1", "a2"]
    assert outbox.pending() == []


def test_a_raising_send_is_a_transient_failure_and_a_damaged_bundle_fails_the_item(
    outbox: Outbox, clock: Clock
) -> None:
    item_id = outbox.add("u1", "INS-A", b"bundle")

    def broken(item: Item) -> SendResult:
        raise ConnectionResetError("peer reset")

    assert Sender(outbox, NO_JITTER, clock=clock).send_pending(broken).retried == 1
    item = outbox.get(item_id)
    assert item.state is ItemState.PENDING and "ConnectionResetError" in (item.last_error or "")
    item.payload_path.write_bytes(b"bundlX")  # type: ignore[union-attr]
    clock.now += 1000
    sent, send = recorder()
    Sender(outbox, NO_JITTER, clock=clock).send_pending(send)
    assert sent == []
    item = outbox.get(item_id)
    assert item.state is ItemState.FAILED and "damaged" in (item.last_error or "")


def test_a_clock_set_back_does_not_freeze_the_queue(outbox: Outbox, clock: Clock) -> None:
    item_id = outbox.add("u1", "INS-A", b"x")
    Sender(outbox, NO_JITTER, clock=clock).send_pending(
        lambda item: SendResult.from_status(503))
    clock.now -= 86_400  # the clock jumped a day back: the due time is a day + 10 s away
    sent, send = recorder()
    sender = Sender(outbox, NO_JITTER, clock=clock)
    assert sender.next_due() == pytest.approx(clock.now + NO_JITTER.maximum)
    sender.send_pending(send)
    assert sent == ["u1"] and outbox.get(item_id).state is ItemState.DONE


def test_progress_reports_each_step_and_a_failing_callback_stops_nothing(
    outbox: Outbox, clock: Clock
) -> None:
    outbox.add("u1", "INS-A", b"x")
    outbox.add("u2", "INS-A", b"y")
    seen: list[tuple[str, str, int]] = []

    def on_progress(progress: Progress) -> None:
        seen.append((progress.kind, progress.item.unique_id, progress.counts.pending))
        raise RuntimeError("a buggy view")

    _, send = recorder()
    Sender(outbox, NO_JITTER, clock=clock, on_progress=on_progress).send_pending(send)
    assert seen == [("sending", "u1", 1), ("done", "u1", 1),
                    ("sending", "u2", 0), ("done", "u2", 0)]


# -- restart after a crash -----------------------------------------------------------------


def test_opening_repairs_what_a_crash_left(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path, keys=keys(tmp_path), clock=clock) as box:
        sending = box.add("in-flight", "INS-A", b"sent when the process died")
        lost = box.add("lost", "INS-B", b"its file vanished")
        box._claim(clock.now, 100)  # "in-flight" is now sending
        lost_file = box.get(lost).payload_path
        bundles = box.bundles
    lost_file.unlink()  # type: ignore[union-attr]
    (bundles / ".tmp-123").write_bytes(b"half a bundle")
    (bundles / "0123abcd.bundle").write_bytes(b"renamed, row never committed")

    with Outbox(path, keys=keys(tmp_path), clock=clock) as box:
        assert sorted(p.name for p in bundles.iterdir()) == [
            box.get(sending).payload_path.name]  # type: ignore[union-attr]
        item = box.get(sending)
        assert item.state is ItemState.PENDING and item.attempts == 1
        assert box.get(lost).state is ItemState.FAILED
        assert box.get(lost).last_error == "outbox: bundle file missing"
        # The host had stored it before the crash: it says so, and that is an acknowledgement.
        sent, send = recorder(lambda item: SendResult.from_status(200, already_stored=True))
        Sender(box, NO_JITTER, clock=clock).send_pending(send)
        assert sent == ["in-flight"]
        assert box.get(sending).state is ItemState.DONE
        assert box.get(sending).acknowledgement == "already-stored: already stored"


# -- the worker thread -----------------------------------------------------------------------


def test_worker_sleeps_until_woken_or_due_without_polling(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3", keys=keys(tmp_path)) as box:
        claims = collections.Counter[str]()
        original = box._claim

        def counting_claim(now: float, horizon: float) -> Item | None:
            claims["calls"] += 1
            return original(now, horizon)

        box._claim = counting_claim  # type: ignore[method-assign]
        events: list[tuple[str, str]] = []
        done = threading.Event()
        failures = {"u1": 1}

        def send(item: Item) -> SendResult:
            if failures.pop(item.unique_id, 0):
                return SendResult.from_status(503)
            return SendResult.stored()

        def on_progress(progress: Progress) -> None:
            events.append((progress.kind, progress.item.unique_id))
            if progress.kind == "done":
                done.set()

        wakeup = threading.Event()
        worker = OutboxWorker(box, send, wakeup, on_progress=on_progress,
                              policy=RetryPolicy(base=0.3, maximum=1.0, jitter=0.0)).start()
        try:
            time.sleep(0.3)
            assert claims["calls"] == 1  # one pass at start, then asleep: nothing due
            box.add("u1", "INS-A", b"x")
            started = time.monotonic()
            wakeup.set()
            assert done.wait(5)
            # The 503 was retried by the worker's own timer, after the backoff, no wakeup.
            assert time.monotonic() - started >= 0.25
            assert events == [("sending", "u1"), ("retry", "u1"), ("sending", "u1"),
                              ("done", "u1")]
            calls = claims["calls"]
            time.sleep(0.3)
            assert claims["calls"] == calls  # idle again
        finally:
            worker.stop()
        assert not worker.alive


# -- the real crash test -----------------------------------------------------------------------

CHILD = r"""
import hashlib, http.client, sys, threading
from pathlib import Path
from agent.outbox import Outbox, OutboxWorker, RetryPolicy, SealedFileKeyStore, SendResult

path, port, round_no, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])


def content(uid):
    seed = hashlib.sha256(uid.encode()).digest()
    return seed * (1 + int.from_bytes(seed[:3], "big") % 6000)  # 32 B to ~190 KB


def send(item):
    body = item.read_payload()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("PUT", "/documents/" + item.unique_id, body=body)
        answer = connection.getresponse()
        text = answer.read().decode()
    finally:
        connection.close()
    return SendResult.from_status(answer.status, text, already_stored=answer.status == 200)


idle = threading.Event()


def progress(step):
    if step.counts.pending == 0 and step.counts.sending == 0:
        idle.set()


root = Path(path).parents[2]
outbox = Outbox(path, keys=SealedFileKeyStore(root / "credentials", root / "keys"))
wakeup = threading.Event()
worker = OutboxWorker(outbox, send, wakeup, on_progress=progress,
                      policy=RetryPolicy(base=0.01, maximum=0.05, jitter=0.5)).start()
for k in range(count):
    uid = f"r{round_no}-{k}"
    outbox.add(uid, f"INS-{k % 3}", content(uid), {"round": round_no})
    print("added", uid, flush=True)
    wakeup.set()
while outbox.pending():
    idle.wait(0.05)
    idle.clear()
print("finished", flush=True)
worker.stop()
outbox.close()
"""


def _content(uid: str) -> bytes:
    seed = hashlib.sha256(uid.encode()).digest()
    return seed * (1 + int.from_bytes(seed[:3], "big") % 6000)


class IdempotentHost:
    """A tiny host: stores a document once per uniqueId, answers a replay "already stored"
    (200), a reused uniqueId with other content 409, and every 7th delivery 503."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}
        self.stores = collections.Counter[str]()
        self.deliveries = collections.Counter[str]()
        self.already_answers = collections.Counter[str]()
        self.total = 0
        self.app = Starlette(routes=[Route("/documents/{uid}", self.put, methods=["PUT"])])

    async def put(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        try:
            body = await request.body()
        except ClientDisconnect:
            return Response(status_code=400)  # the sender died mid-body: nothing stored
        self.total += 1
        self.deliveries[uid] += 1
        if self.total % 7 == 0:
            return Response("maintenance", status_code=503)
        digest = hashlib.sha256(body).hexdigest()
        if uid in self.stored:
            if self.stored[uid] != digest:
                return Response("uniqueId used with other content", status_code=409)
            self.already_answers[uid] += 1
            return Response("already stored", status_code=200)
        self.stored[uid] = digest
        self.stores[uid] += 1
        # Stored, not yet acknowledged: the window where a crash makes the agent send again.
        await asyncio.sleep(0.03)
        return Response("stored", status_code=201)


@pytest.fixture
def host() -> Iterator[tuple[IdempotentHost, int]]:
    app = IdempotentHost()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app.app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield app, sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_sigkill_at_random_instants_loses_nothing_and_stores_each_document_once(
    tmp_path: Path, host: tuple[IdempotentHost, int]
) -> None:
    app, port = host
    path = tmp_path / "data" / "outbox" / "outbox.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(20240131)
    added: set[str] = set()
    killed = 0

    def run(round_no: str, count: int, kill_after: float | None) -> str:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(port), round_no, str(count)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = child.communicate(timeout=kill_after if kill_after else 30)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            out, err = child.communicate()
        # Whole lines only: a kill may cut the last one short.
        added.update(re.findall(r"^added (\S+)\n", out, re.MULTILINE))
        assert child.returncode in (0, -signal.SIGKILL), err
        return out

    for round_no in range(30):
        out = run(str(round_no), 8, rng.uniform(0.05, 0.9))
        killed += "finished" not in out
    final = run("final", 0, None)
    assert "finished" in final

    assert killed >= 10  # the kills did land mid-way, in many rounds
    assert added  # and items were durably added before them
    with Outbox(path, keys=keys(tmp_path)) as box:
        items = box.done()
        assert box.pending() == [] and box.failed() == []
        assert list(box.bundles.iterdir()) == []  # no orphan, no copy of an acknowledged one
    in_outbox = {item.unique_id for item in items}
    assert added <= in_outbox  # every add that returned reached the outbox...
    assert set(app.stored) == in_outbox  # ...and the host, and nothing else did
    assert all(count == 1 for count in app.stores.values())
    for uid, digest in app.stored.items():
        assert digest == hashlib.sha256(_content(uid)).hexdigest()
    # The crash window was hit: some documents were delivered again after the host stored
    # them, answered "already stored", and the outbox took that as the acknowledgement.
    assert sum(app.already_answers.values()) > 0
    print(f"killed {killed}/30, added {len(added)}, stored {len(app.stored)}, deliveries "
          f"{sum(app.deliveries.values())}, replays {sum(app.already_answers.values())}")
    for item in items:
        replayed = app.already_answers[item.unique_id] > 0
        assert item.acknowledgement is not None
        assert item.acknowledgement.startswith("already-stored") == replayed, item
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(DISTINCT unique_id) = COUNT(*) FROM items").fetchone()[0]
