"""The CPS profile against the virtual CPS3 through the real pcscd and vpcd."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cardreader.apdu import ApduProtocol
from cardreader.atr import CardKind, identify
from cardreader.cps import CpsCard, CpsKey
from cardreader.errors import PinBlockedError, SecurityStatusError, WrongPinError
from cardreader.pcsc import EventKind, Monitor, PcscConnection, SlotEvent, list_readers
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PROFILES
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vpcd import VpcdLink

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def ca() -> TestHealthCA:
    return TestHealthCA.create()


def _wait(events: queue.Queue[SlotEvent], kind: EventKind, timeout: float = 8) -> None:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            if events.get(timeout=remaining).kind is kind:
                return
        except queue.Empty:
            break
    raise AssertionError(f"pcscd reported no {kind.value} within {timeout}s")


@pytest.fixture(scope="module")
def slot0(pcscd) -> Iterator[tuple[str, Monitor, queue.Queue[SlotEvent]]]:
    """One monitor for the module: the first reader, and the events pcscd reports for it."""
    reader = list_readers()[0]
    events: queue.Queue[SlotEvent] = queue.Queue()

    def listener(event: SlotEvent) -> None:
        if event.reader == reader:
            events.put(event)

    with Monitor(listener) as monitor:
        assert monitor.ready.wait(5)
        yield reader, monitor, events


def insert_and_wait(
    insert: Callable[[VirtualCps], VpcdLink], slot: tuple[str, Monitor, queue.Queue[SlotEvent]],
    card: VirtualCps,
) -> VpcdLink:
    """Insert the card once the slot is seen empty, and return once pcscd reports it (events
    from SCardGetStatusChange, not polling): a previous card may still be reported present
    for a moment after its removal."""
    reader, monitor, events = slot
    if monitor.readers.get(reader) is not None:
        _wait(events, EventKind.CARD_REMOVED)
    while not events.empty():
        events.get_nowait()
    link = insert(card)
    _wait(events, EventKind.CARD_INSERTED)
    return link


@pytest.fixture
def use_card(insert_card, slot0) -> Callable[[VirtualCps], AbstractContextManager[CpsCard]]:
    @contextmanager
    def use(card: VirtualCps) -> Iterator[CpsCard]:
        link = insert_and_wait(lambda c: insert_card(c, slot=0), slot0, card)
        connection = PcscConnection(slot0[0])
        try:
            assert identify(connection.atr)[0] is CardKind.CPS
            yield CpsCard(ApduProtocol(connection))
        finally:
            connection.close()
            link.stop()

    return use


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_identity_is_what_the_card_was_built_with(name, use_card, ca) -> None:
    virtual = VirtualCps.from_profile(name, ca=ca)
    with use_card(virtual) as card:
        assert card.read_identity() == PROFILES[name].identity
        assert card.pin_tries_left() == 3


def test_wrong_pins_count_down_then_block_even_after_reinsertion(
    use_card, ca, tmp_path: Path
) -> None:
    state = tmp_path / "card"
    with use_card(VirtualCps.from_profile("nurse", ca=ca, state_dir=state)) as card:
        with pytest.raises(WrongPinError) as first:
            card.verify_pin("0000")
        assert first.value.tries_left == 2
        assert card.pin_tries_left() == 2
        with pytest.raises(WrongPinError) as second:
            card.verify_pin("9999")
        assert second.value.tries_left == 1
        with pytest.raises(PinBlockedError):
            card.verify_pin("1111")
        assert card.pin_tries_left() == 0
        with pytest.raises(PinBlockedError):
            card.verify_pin("1234")
    # Same card (same state directory) inserted again: still blocked.
    with use_card(VirtualCps.from_profile("nurse", ca=ca, state_dir=state)) as card:
        assert card.pin_tries_left() == 0
        with pytest.raises(PinBlockedError):
            card.verify_pin("1234")
        card.unblock_pin("12345678", "4321")
        assert card.pin_tries_left() == 3
        card.verify_pin("4321")


def test_signatures_verify_against_the_matching_certificate(use_card, ca) -> None:
    with use_card(VirtualCps.from_profile("gp", ca=ca)) as card:
        card.verify_pin("1234")
        for key in CpsKey:
            for data in (b"", b"short statement", bytes(range(256)) * 5):
                signature = card.sign(key, data)
                card.certificate(key).public_key().verify(
                    signature, data, padding.PKCS1v15(), hashes.SHA256()
                )
        auth, sign = card.certificate(CpsKey.AUTHENTICATION), card.certificate(CpsKey.SIGNATURE)
        assert auth.public_key().public_numbers() != sign.public_key().public_numbers()


def test_situations_and_signatures_need_the_pin(use_card, ca) -> None:
    with use_card(VirtualCps.from_profile("gp", ca=ca)) as card:
        with pytest.raises(SecurityStatusError):
            card.read_situations()
        with pytest.raises(SecurityStatusError):
            card.sign(CpsKey.AUTHENTICATION, b"challenge")
        card.verify_pin("1234")
        assert card.read_situations() == PROFILES["gp"].situations
