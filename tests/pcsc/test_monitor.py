"""Reader and card events through the real pcscd + vpcd, including a pcscd crash."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest

from cardreader.atr import CardKind
from cardreader.pcsc import EventKind, Monitor, SlotEvent, list_readers
from cardreader.virtual.faulty import UnknownCard
from cardreader.virtual.filesystem import DedicatedFile, FileSystemCard

pytestmark = pytest.mark.pcsc

VITALE_ATR = bytes.fromhex("3B751300004709EA9000")


class BareCard(FileSystemCard):
    atr = VITALE_ATR

    def __init__(self) -> None:
        super().__init__(DedicatedFile(0x3F00))


class Events:
    def __init__(self) -> None:
        self.queue: queue.Queue[SlotEvent] = queue.Queue()
        self.seen: list[SlotEvent] = []

    def __call__(self, event: SlotEvent) -> None:
        self.queue.put(event)

    def wait_for(self, kind: EventKind, reader: str | None = None, timeout: float = 8) -> SlotEvent:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind} event within {timeout}s; saw {self.seen}")
            try:
                event = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if event.kind is kind and (reader is None or event.reader == reader):
                return event


@pytest.fixture
def events(pcscd) -> Iterator[tuple[Events, Monitor]]:
    sink = Events()
    monitor = Monitor(sink).start()
    assert monitor.ready.wait(5)
    yield sink, monitor
    monitor.stop()


def test_readers_are_reported_at_start(events) -> None:
    _, monitor = events
    names = list_readers()
    assert len(names) == 2
    assert set(monitor.readers) == set(names)


def test_insert_and_remove_say_which_slot_holds_what(events, insert_card) -> None:
    sink, monitor = events
    second = list_readers()[1]
    link = insert_card(BareCard(), slot=1)
    inserted = sink.wait_for(EventKind.CARD_INSERTED, second)
    assert inserted.card is CardKind.VITALE and inserted.atr == VITALE_ATR
    link.stop()
    sink.wait_for(EventKind.CARD_REMOVED, second)
    assert monitor.readers[second] is None


def test_unknown_card_is_reported_as_unknown(events, insert_card) -> None:
    sink, _ = events
    insert_card(UnknownCard(), slot=0)
    event = sink.wait_for(EventKind.CARD_INSERTED, list_readers()[0])
    while event.card is not CardKind.UNKNOWN:  # a previous test's card, seen before removal
        event = sink.wait_for(EventKind.CARD_INSERTED, list_readers()[0])
    assert event.label


def test_pcscd_killed_and_restarted_is_recovered_without_restarting(
    events, insert_card, pcscd
) -> None:
    sink, monitor = events
    reader = list_readers()[0]
    insert_card(BareCard(), slot=0, stay_inserted=True)
    sink.wait_for(EventKind.CARD_INSERTED, reader)

    pcscd.stop(kill=True)
    try:
        # The service is reported lost, and the card and reader gone. Usually the cause comes
        # before its effects, but pcscd may still report the card gone while it is being
        # killed: the order is not asserted here (the agent's notice is, in
        # tests/fault_injection/test_pcscd_stop.py).
        sink.wait_for(EventKind.SERVICE_LOST)
        assert any(e.kind is EventKind.CARD_REMOVED and e.reader == reader for e in sink.seen) \
            or sink.wait_for(EventKind.CARD_REMOVED, reader)
        sink.wait_for(EventKind.READER_REMOVED, reader)
        assert monitor.readers == {}
    finally:
        # Whatever happened, pcscd runs again: later tests share it.
        pcscd.start()
    sink.wait_for(EventKind.SERVICE_BACK)
    sink.wait_for(EventKind.READER_ADDED, reader)
    back = sink.wait_for(EventKind.CARD_INSERTED, reader)
    assert back.card is CardKind.VITALE
    assert monitor.readers[reader] == VITALE_ATR


def test_monitor_sleeps_while_nothing_happens(events) -> None:
    _, monitor = events
    time.sleep(1.0)  # let pcscd finish reporting the cards earlier tests removed
    before = monitor.wakeups
    time.sleep(1.5)
    assert monitor.wakeups == before  # blocked in SCardGetStatusChange, no polling
