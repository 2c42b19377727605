"""Unblocking a CPS with its PUK (RESET RETRY COUNTER, `CpsCard.unblock_pin`) on the virtual
CPS3 through the real pcscd and vpcd: the right PUK, a wrong one (its tries left), a blocked
PUK, the new PIN working and the old one refused, a removal and reinsertion between."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardreader.errors import (
    InvalidPinFormatError,
    PinBlockedError,
    PukBlockedError,
    WrongPinError,
    WrongPukError,
)
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PIN, PUK
from cardreader.virtual.cps_state import MAX_PIN_TRIES, MAX_PUK_TRIES
from tests.pcsc.test_cps_pcsc import ca, use_card  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pcsc

NEW_PIN = "4321"
WRONG_PUK = "87654321"


def _blocked(ca, state: Path) -> VirtualCps:  # noqa: F811
    """The nurse's card with its PIN blocked (three wrong PINs), kept in ``state``."""
    card = VirtualCps.from_profile("nurse", ca=ca, state_dir=state)
    card._counters.pin_tries = 0
    card._save_counters()
    return card


def test_the_right_puk_unblocks_with_the_new_pin(use_card, ca, tmp_path: Path) -> None:  # noqa: F811
    virtual = VirtualCps.from_profile("nurse", ca=ca, state_dir=tmp_path / "card")
    with use_card(virtual) as card:
        for _ in range(MAX_PIN_TRIES):
            with pytest.raises((WrongPinError, PinBlockedError)):
                card.verify_pin("0000")
        assert card.pin_tries_left() == 0
        card.unblock_pin(PUK, NEW_PIN)
        assert card.pin_tries_left() == MAX_PIN_TRIES
        with pytest.raises(WrongPinError) as old:
            card.verify_pin(PIN)  # the old PIN is refused, and counts as a wrong one
        assert old.value.tries_left == MAX_PIN_TRIES - 1
        card.verify_pin(NEW_PIN)
        assert card.pin_tries_left() == MAX_PIN_TRIES
    assert virtual.puk_tries_left == MAX_PUK_TRIES
    # Taken out and inserted again: the new PIN is the card's.
    with use_card(VirtualCps.from_profile("nurse", ca=ca, state_dir=tmp_path / "card")) as card:
        card.verify_pin(NEW_PIN)
        card.read_situations()


def test_a_wrong_puk_says_its_tries_left_and_the_pin_stays_blocked(
        use_card, ca, tmp_path: Path) -> None:  # noqa: F811
    virtual = _blocked(ca, tmp_path / "card")
    with use_card(virtual) as card:
        for left in (MAX_PUK_TRIES - 1, MAX_PUK_TRIES - 2):
            with pytest.raises(WrongPukError) as wrong:
                card.unblock_pin(WRONG_PUK, NEW_PIN)
            assert wrong.value.tries_left == left
            assert WRONG_PUK not in repr(wrong.value) and NEW_PIN not in str(wrong.value)
        assert card.pin_tries_left() == 0
        with pytest.raises(PinBlockedError):
            card.verify_pin(PIN)
        # A new PIN of the wrong format is refused before the card: no PUK try used.
        with pytest.raises(InvalidPinFormatError):
            card.unblock_pin(PUK, "12")
        assert virtual.puk_tries_left == MAX_PUK_TRIES - 2
        # The right PUK restores the PUK's counter too.
        card.unblock_pin(PUK, NEW_PIN)
        card.verify_pin(NEW_PIN)
    assert virtual.puk_tries_left == MAX_PUK_TRIES


def test_a_blocked_puk_is_final_even_with_the_right_puk(use_card, ca, tmp_path: Path) -> None:  # noqa: F811
    state = tmp_path / "card"
    virtual = _blocked(ca, state)
    virtual._counters.puk_tries = 1
    virtual._save_counters()
    with use_card(virtual) as card:
        with pytest.raises(PukBlockedError):  # the last try, wrong: 63C0
            card.unblock_pin(WRONG_PUK, NEW_PIN)
        assert virtual.puk_tries_left == 0
    # Inserted again: still blocked (6983), whatever is sent; the PIN too.
    with use_card(VirtualCps.from_profile("nurse", ca=ca, state_dir=state)) as card:
        with pytest.raises(PukBlockedError, match="issuer"):
            card.unblock_pin(PUK, NEW_PIN)
        assert card.pin_tries_left() == 0
        with pytest.raises(PinBlockedError):
            card.verify_pin(NEW_PIN)
