"""Faulty cards through the real pcscd + vpcd: specific errors, never a crash or a hang."""

from __future__ import annotations

import time

import pytest

from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard
from cardreader.errors import (
    ApduError,
    CardRemovedError,
    MalformedResponseError,
    NotSupportedError,
)
from cardreader.inspect import CardStatus, inspect_reader
from cardreader.pcsc import PcscConnection, list_readers, wait_for_card
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.faulty import (
    MangledCard,
    SlowCard,
    UnknownCard,
    VanishingCard,
    garble,
    status,
    truncate,
    without_status,
)
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vitale_profiles import PROFILES
from cardreader.vitale import Vitale2Profile

pytestmark = pytest.mark.pcsc


def _read_vitale(slot: int = 0):
    with PcscConnection(list_readers()[slot]) as connection:
        return Vitale2Profile(ApduProtocol(connection)).read()


def _read_cps(slot: int = 0):
    with PcscConnection(list_readers()[slot]) as connection:
        card = CpsCard(ApduProtocol(connection))
        return card.read_identity(), card.pin_tries_left()


@pytest.mark.parametrize("at", [2, 4])
def test_vitale_removed_mid_read_then_next_insertion_reads_cleanly(insert_card, at) -> None:
    insert_card(VanishingCard(VirtualVitale.from_profile("family"), at=at))
    with pytest.raises(CardRemovedError):
        _read_vitale()
    insert_card(VirtualVitale.from_profile("family"))
    assert _read_vitale() == PROFILES["family"]


@pytest.mark.parametrize("at", [3, 8])
def test_cps_removed_mid_read_then_next_insertion_reads_cleanly(insert_card, at) -> None:
    insert_card(VanishingCard(VirtualCps.from_profile("gp"), at=at))
    with pytest.raises(CardRemovedError):
        _read_cps()
    insert_card(VirtualCps.from_profile("gp"))
    identity, tries = _read_cps()
    assert identity.last_name and tries == 3


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (truncate(7), MalformedResponseError),
        (garble(1), MalformedResponseError),
        (status(0x6F00), ApduError),
        (status(0x6D00), NotSupportedError),
    ],
)
def test_vitale_bad_answers_give_specific_errors(insert_card, mangle, error) -> None:
    insert_card(MangledCard(VirtualVitale.from_profile("single"), mangle, at=2, every=True))
    started = time.monotonic()
    with pytest.raises(error):
        _read_vitale()
    assert time.monotonic() - started < 5


def test_response_without_status_word_is_malformed(insert_card) -> None:
    insert_card(MangledCard(VirtualVitale.from_profile("single"), without_status, at=2))
    with pytest.raises(MalformedResponseError):
        _read_vitale()


@pytest.mark.parametrize("at", [1, 3, 6])
def test_cps_garbled_answers_give_typed_errors(insert_card, at) -> None:
    insert_card(MangledCard(VirtualCps.from_profile("gp"), garble(at), at=at, every=True))
    with pytest.raises((MalformedResponseError, ApduError)):
        _read_cps()


def test_slow_card_still_reads(insert_card) -> None:
    insert_card(SlowCard(VirtualVitale.from_profile("single"), delay=0.2))
    assert _read_vitale() == PROFILES["single"]


def test_unknown_card_is_reported_unknown_not_an_error(insert_card) -> None:
    insert_card(UnknownCard())
    report = inspect_reader(list_readers()[0])
    assert report.status is CardStatus.UNKNOWN
    assert report.message


def test_empty_slot_is_reported_none(pcscd) -> None:
    reader = list_readers()[1]
    assert wait_for_card(reader, present=False)
    report = inspect_reader(reader)
    assert report.status is CardStatus.NONE
