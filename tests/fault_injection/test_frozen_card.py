"""A card that stops answering without leaving the reader: every exchange with it gives up
after the card layer's timeout, the user is told the card does not answer and what to do,
and nothing else freezes (the other reader, the monitor, the next card)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent.card_words import card_error_text, localized
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard
from cardreader.errors import CardNotAnsweringError
from cardreader.inspect import CardStatus, inspect_reader
from cardreader.pcsc import PcscConnection, list_readers, wait_for_card
from cardreader.pcsc.bounded import COMMAND_TIMEOUT
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.faulty import FreezingCard
from cardreader.virtual.vitale import VirtualVitale
from cardreader.vitale import Vitale2Profile
from tests.cda_support import report_pdf
from tests.fault_injection.world import PIN, Site, StartAgent
from tests.live import qualify

pytestmark = pytest.mark.pcsc
TOLD = "La carte ne répond plus"


@pytest.fixture
def frozen() -> Iterator[list[FreezingCard]]:
    """The freezing cards of a test, thawed at its end (the card then leaves the reader)."""
    cards: list[FreezingCard] = []
    yield cards
    for card in cards:
        card.thaw()


def test_an_exchange_gives_up_at_the_timeout_and_the_connection_stays_refused(
        insert_card: Any, frozen: list[FreezingCard]) -> None:
    card = FreezingCard(VirtualCps.from_profile("gp"))
    frozen.append(card)
    insert_card(card, slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    readers = list_readers()
    with PcscConnection(readers[0], timeout=1.0) as connection:
        cps = CpsCard(ApduProtocol(connection))
        assert cps.read_identity().last_name
        card.freeze()
        started = time.monotonic()
        with pytest.raises(CardNotAnsweringError) as raised:
            cps.pin_tries_left()
        assert 0.9 < time.monotonic() - started < 3.0
        # The card layer's own text is the developer's English; the agent words it.
        assert "take it out" in str(raised.value)
        assert TOLD in card_error_text(raised.value) and "retirez-la" in card_error_text(
            raised.value)
        started = time.monotonic()
        with pytest.raises(CardNotAnsweringError):  # at once: the card is not asked again
            cps.pin_tries_left()
        assert time.monotonic() - started < 0.5
    # Nothing else is held up: the other reader reads, the slot reports the frozen card.
    with PcscConnection(readers[1]) as other:
        assert Vitale2Profile(ApduProtocol(other)).read().beneficiaries
    report = inspect_reader(readers[0])
    assert report.status is CardStatus.READER_ERROR and TOLD in localized(report).message
    # The card dies (taken out): the reader is free again for the next card.
    card.thaw()
    assert wait_for_card(readers[0], present=False)
    insert_card(VirtualCps.from_profile("gp"), slot=0)
    assert inspect_reader(readers[0]).status is CardStatus.VALID


def test_a_deposit_signed_by_a_frozen_cps_is_refused_in_seconds_with_what_to_do(
        site: Site, start_agent: StartAgent, insert_card: Any,
        frozen: list[FreezingCard]) -> None:
    agent = start_agent()
    card = FreezingCard(site.cps("gp"))
    frozen.append(card)
    insert_card(card, slot=0)
    agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with agent.client(timeout=60) as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        insert_card(VirtualVitale.from_profile("single"), slot=1)
        agent.wait_for(lambda s: s["patient"]["state"] == "ready", timeout=30)
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)
        code = api.get("/api/deposit-types").json()[0]["code"]
        card.freeze()
        started = time.monotonic()
        refused = api.post("/api/deposits", params={"typeCode": code, "title": "Bilan"},
                           content=report_pdf("Bilan"),
                           headers={"content-type": "application/pdf"})
        elapsed = time.monotonic() - started
    assert card.frozen.is_set()
    assert refused.status_code == 504, refused.text
    assert refused.json()["code"] == "card-not-answering"
    assert TOLD in refused.json()["message"] and "retirez-la" in refused.json()["message"]
    assert elapsed < 2 * COMMAND_TIMEOUT + 2  # not until the card dies
    assert agent.wait_for(lambda s: True)["outbox"]["pending"] == 0  # nothing half-queued
    # Taken out, the card ends the session; the agent reads the next one.
    card.thaw()
    agent.wait_for(lambda s: s["session"]["state"] in ("none", "locked")
                   and s["session"]["situation"] is None)
    insert_card(site.cps("gp"), slot=0)
    agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with httpx.Client(base_url=agent.url, timeout=10) as api:
        assert api.get("/api/health").status_code == 200
