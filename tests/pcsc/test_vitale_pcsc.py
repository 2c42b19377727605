"""The Vitale emulator read through the real pcscd and vpcd, as the agent reads a card."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest

from cardreader.apdu import ApduProtocol
from cardreader.atr import CardKind, identify
from cardreader.pcsc import EventKind, Monitor, PcscConnection, SlotEvent, list_readers
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vitale_profiles import PROFILES
from cardreader.virtual.vpcd import VpcdLink
from cardreader.vitale import Vitale2Profile

pytestmark = pytest.mark.pcsc


def _next(events: queue.Queue[SlotEvent], kind: EventKind, timeout: float = 8) -> None:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            if events.get(timeout=remaining).kind is kind:
                return
        except queue.Empty:
            break
    raise AssertionError(f"pcscd reported no {kind.value} within {timeout}s")


class Slots:
    """Card events per reader, from one monitor for the whole module (SCardGetStatusChange,
    not a polling loop)."""

    def __init__(self) -> None:
        self.events: dict[str, queue.Queue[SlotEvent]] = {}

    def __call__(self, event: SlotEvent) -> None:
        self.events.setdefault(event.reader, queue.Queue()).put(event)

    def queue(self, reader: str) -> queue.Queue[SlotEvent]:
        return self.events.setdefault(reader, queue.Queue())


@pytest.fixture(scope="module")
def slots(pcscd) -> Iterator[tuple[Slots, Monitor]]:
    sink = Slots()
    monitor = Monitor(sink).start()
    assert monitor.ready.wait(5)
    yield sink, monitor
    monitor.stop()


def _insert_and_wait(slots, insert_card, card: VirtualVitale, slot: int) -> tuple[VpcdLink, str]:
    """Insert the card once the slot is seen empty, and wait for pcscd to report it: the
    previous test's card may still be reported present for a moment after its removal."""
    sink, monitor = slots
    reader = list_readers()[slot]
    events = sink.queue(reader)
    if monitor.readers.get(reader) is not None:
        _next(events, EventKind.CARD_REMOVED)
    while not events.empty():  # what was reported before the insertion is stale
        events.get_nowait()
    link = insert_card(card, slot=slot)
    _next(events, EventKind.CARD_INSERTED)
    return link, reader


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_ready_card_reads_back_as_its_model(name: str, slots, insert_card) -> None:
    link, reader = _insert_and_wait(slots, insert_card, VirtualVitale.from_profile(name), slot=0)
    with PcscConnection(reader) as connection:
        assert identify(connection.atr)[0] is CardKind.VITALE
        protocol = ApduProtocol(connection)
        card = Vitale2Profile(protocol).read()
    assert card == PROFILES[name]
    # Two SELECTs and three whole-file reads, whatever the number of persons.
    assert protocol.apdu_count == 5 == link.apdu_count


def test_three_beneficiaries_in_the_second_slot(slots, insert_card) -> None:
    _, reader = _insert_and_wait(slots, insert_card, VirtualVitale.from_profile("family"), slot=1)
    with PcscConnection(reader) as connection:
        card = Vitale2Profile(ApduProtocol(connection)).read()
    assert [b.first_name for b in card.beneficiaries] == ["THOMAS", "SOPHIE", "LÉA"]
    assert card == PROFILES["family"]
