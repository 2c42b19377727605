"""The DMP's pace through the real outbox (issue 18): the sender holds a burst of deposits
to at most 4 a second per establishment, says so in the outbox status while it does (and
only then), never fails an item for it, and lets the agent stop at once during a wait.
The send itself is a stub: the subject is the pacing (the limiter alone:
tests/unit/test_throttle.py; figures: bench/outbox_throttle.py)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.client.dmp import PatientContext
from agent.client.provide import DepositMetadata
from agent.config import AgentConfig
from agent.core.deposit import queue_deposit
from agent.outbox import (
    Item,
    ItemState,
    Outbox,
    OutboxWorker,
    SealedFileKeyStore,
    Sender,
    SendResult,
    Throttle,
    open_outbox,
    process_throttle,
    structure_of,
)
from agent.outbox.report import EMPTY_JSON, outbox_json, outbox_lines
from agent.outbox.throttle import SLICE, UNKNOWN_STRUCTURE
from tests.faults import FAKE_SIGNER, SETTING
from wire.mhd import Author


class FakeTime:
    """The throttle's monotonic clock, moved only by the sender's pauses."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def outbox(tmp_path: Path, fake: FakeTime) -> Iterator[Outbox]:
    keys = SealedFileKeyStore(tmp_path / "credentials", tmp_path / "keys")
    with Outbox(tmp_path / "outbox" / "outbox.sqlite3", keys=keys,
                throttle=Throttle(4, clock=fake)) as box:
        yield box


def queue(outbox: Outbox, n: int, structures: tuple[str, ...] = ("S1",)) -> list[int]:
    """``n`` items, each its own patient (no order between them), for ``structures`` in
    turn."""
    return [outbox.add(f"2.25.{k + 1}", f"INS-{k}", b"{}", {
        "title": f"doc {k}", "structure": structures[k % len(structures)]}) for k in range(n)]


def test_a_burst_of_12_is_paced_and_the_status_says_so_while_it_waits(
        outbox: Outbox, fake: FakeTime) -> None:
    queue(outbox, 12)
    started: list[float] = []
    seen: list[dict[str, Any] | None] = []

    def send(item: Item) -> SendResult:
        started.append(fake.now)
        return SendResult.stored("201 Created", 201)

    def pause(seconds: float) -> None:
        # What /api/outbox and /api/status would say while the sender waits its turn.
        seen.append(outbox_json(outbox, sending=None)["throttle"])
        fake.now += seconds

    report = Sender(outbox, pause=pause).send_pending(send)
    assert report.sent == 12 and report.failed == report.retried == 0
    assert outbox.counts().done == 12  # held back, never failed
    assert started[-1] - started[0] >= 11 * 0.25 - 1e-9
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(started))
    assert max(sum(1 for s in started if t <= s < t + 1) for t in started) <= 4
    # Shown while it applies: the rule, the pace, the rate, how many wait their turn.
    assert seen and all(s is not None for s in seen)
    first = seen[0]
    assert first is not None
    assert first["perSecond"] == 4 and first["waiting"] == 11  # the 2nd to the 12th
    assert 1 <= first["rate"] <= 4
    assert "règle du DMP" in first["message"] and "moins de 5" in first["message"]
    assert "11 en attente" in first["message"]
    last = seen[-1]
    assert last is not None and last["waiting"] == 1
    # ...and null once the burst is sent.
    assert outbox_json(outbox, sending=None)["throttle"] is None
    assert outbox.throttle is not None and outbox.throttle.status() is None


def test_the_status_is_null_between_deposits_the_pace_does_not_hold_back(
        outbox: Outbox, fake: FakeTime) -> None:
    queue(outbox, 3)
    seen: list[dict[str, Any] | None] = []

    def slow_send(item: Item) -> SendResult:
        seen.append(outbox_json(outbox, sending=None)["throttle"])
        fake.now += 0.5  # a slow link: slower than the pace, which then holds nothing
        return SendResult.stored("201 Created", 201)

    Sender(outbox, pause=lambda s: pytest.fail("no wait expected")).send_pending(slow_send)
    assert seen == [None, None, None]
    assert EMPTY_JSON["throttle"] is None


def test_each_establishment_keeps_its_own_pace_through_the_sender(
        outbox: Outbox, fake: FakeTime) -> None:
    queue(outbox, 12, structures=("S1", "S2"))
    started: dict[str, list[float]] = {"S1": [], "S2": []}

    def send(item: Item) -> SendResult:
        started[structure_of(item)].append(fake.now)
        return SendResult.stored("201 Created", 201)

    def pause(seconds: float) -> None:
        fake.now += seconds

    assert Sender(outbox, pause=pause).send_pending(send).sent == 12
    for times in started.values():
        assert len(times) == 6
        assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(times))
    # Two establishments side by side: 12 deposits in 1.25 s, not the 2.75 s of one.
    assert max(max(t) for t in started.values()) - 50.0 == pytest.approx(5 * 0.25)


def test_items_that_do_not_say_their_structure_share_one_pace(
        outbox: Outbox, fake: FakeTime) -> None:
    for k in range(5):  # queued before the structure was recorded
        outbox.add(f"2.25.{k + 1}", f"INS-{k}", b"{}", {"title": f"doc {k}"})
    assert {structure_of(i) for i in outbox.pending()} == {UNKNOWN_STRUCTURE}
    started: list[float] = []

    def pause(seconds: float) -> None:
        fake.now += seconds

    def send(item: Item) -> SendResult:
        started.append(fake.now)
        return SendResult.stored("201", 201)

    Sender(outbox, pause=pause).send_pending(send)
    assert started[-1] - started[0] >= 4 * 0.25 - 1e-9


def test_stopping_the_worker_ends_a_wait_at_once_and_the_item_stays_pending(
        tmp_path: Path) -> None:
    keys = SealedFileKeyStore(tmp_path / "credentials", tmp_path / "keys")
    # Time never moves for this throttle: after the first deposit, the next waits forever.
    with Outbox(tmp_path / "outbox" / "outbox.sqlite3", keys=keys,
                throttle=Throttle(4, clock=lambda: 0.0)) as box:
        queue(box, 3)
        sent: list[int] = []

        def send(item: Item) -> SendResult:
            sent.append(item.id)
            return SendResult.stored("201", 201)

        worker = OutboxWorker(box, send, threading.Event())
        worker.start()
        deadline = time.monotonic() + 10
        while outbox_json(box, sending=None)["throttle"] is None:
            assert time.monotonic() < deadline, "never held back"
            time.sleep(0.01)
        held = box.pending()
        assert len(sent) == 1 and [i.state for i in held] == [ItemState.SENDING,
                                                               ItemState.PENDING]
        told = time.monotonic()
        worker.stop()
        assert time.monotonic() - told < 0.2 and not worker.alive
        assert len(sent) == 1
        # Held back, never failed, and the attempt it did not make is not counted.
        after = box.pending()
        assert [(i.state, i.attempts) for i in after] == [(ItemState.PENDING, 0)] * 2
        assert outbox_json(box, sending=None)["throttle"] is None


def test_the_outbox_command_says_the_pace_while_it_holds_deposits_back(
        outbox: Outbox, fake: FakeTime) -> None:
    queue(outbox, 3)
    lines: list[list[str]] = []

    def pause(seconds: float) -> None:
        lines.append(outbox_lines(outbox))
        fake.now += seconds

    Sender(outbox, pause=pause).send_pending(lambda item: SendResult.stored("201", 201))
    pace = [line for line in lines[0] if line.startswith("Cadence :")]
    assert len(pace) == 1 and "règle du DMP" in pace[0] and "2 en attente" in pace[0]
    assert not any(line.startswith("Cadence") for line in outbox_lines(outbox))


def test_the_configured_pace_is_the_process_s_one_throttle(tmp_path: Path) -> None:
    config = AgentConfig(data_dir=tmp_path / "data", credentials_dir=tmp_path / "cred",
                         max_deposits_per_second=2)
    try:
        with open_outbox(config) as box:
            assert box.throttle is process_throttle(2) and box.throttle.per_second == 2
    finally:
        process_throttle(4)


def test_a_queued_deposit_records_its_establishment(tmp_path: Path) -> None:
    patient = PatientContext("279017512345678", "1.2.250.1.213.1.4.8", "CLAIRE", "MARTIN",
                             "19840517")
    author = Author("810001234567", "28", "structure1", "SM26", "OPTIQUE", "Olivier")
    keys = SealedFileKeyStore(tmp_path / "credentials", tmp_path / "keys")
    with Outbox(tmp_path / "outbox" / "outbox.sqlite3", keys=keys) as box:
        item_id = queue_deposit(box, patient, b"%PDF-1.4 report", DepositMetadata(
            "34810-2", "CR"), author=author, setting=SETTING, signer=FAKE_SIGNER)
        assert structure_of(box.get(item_id)) == "structure1"


def test_a_wait_is_sliced_so_any_stop_is_seen_soon(outbox: Outbox, fake: FakeTime) -> None:
    queue(outbox, 2)
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        fake.now += seconds

    Sender(outbox, pause=pause).send_pending(lambda item: SendResult.stored("201", 201))
    assert pauses and max(pauses) <= SLICE
