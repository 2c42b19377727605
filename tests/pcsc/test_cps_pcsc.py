"""The CPS profile against the virtual CPS3 through the real pcscd and vpcd."""

from __future__ import annotations

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
from cardreader.pcsc import PcscConnection, list_readers
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PROFILES
from cardreader.virtual.pki import TestHealthCA

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def ca() -> TestHealthCA:
    return TestHealthCA.create()


@pytest.fixture
def use_card(insert_card) -> Callable[[VirtualCps], AbstractContextManager[CpsCard]]:
    @contextmanager
    def use(card: VirtualCps) -> Iterator[CpsCard]:
        link = insert_card(card, slot=0)  # returns once pcscd reports the card
        connection = PcscConnection(list_readers()[0])
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
