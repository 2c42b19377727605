"""The Vitale emulator read through the real pcscd and vpcd, as the agent reads a card."""

from __future__ import annotations

import pytest

from cardreader.apdu import ApduProtocol
from cardreader.atr import CardKind, identify
from cardreader.pcsc import PcscConnection, list_readers
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vitale_profiles import PROFILES
from cardreader.vitale import Vitale2Profile

pytestmark = pytest.mark.pcsc


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_ready_card_reads_back_as_its_model(name: str, insert_card) -> None:
    link = insert_card(VirtualVitale.from_profile(name), slot=0)
    reader = list_readers()[0]
    with PcscConnection(reader) as connection:
        assert identify(connection.atr)[0] is CardKind.VITALE
        protocol = ApduProtocol(connection)
        card = Vitale2Profile(protocol).read()
    assert card == PROFILES[name]
    # Two SELECTs and three whole-file reads, whatever the number of persons.
    assert protocol.apdu_count == 5 == link.apdu_count


def test_three_beneficiaries_in_the_second_slot(insert_card) -> None:
    insert_card(VirtualVitale.from_profile("family"), slot=1)
    reader = list_readers()[1]
    with PcscConnection(reader) as connection:
        card = Vitale2Profile(ApduProtocol(connection)).read()
    assert [b.first_name for b in card.beneficiaries] == ["THOMAS", "SOPHIE", "LÉA"]
    assert card == PROFILES["family"]
