"""Issue 17 in Chromium: a CPS blocked by three wrong PINs is unblocked in the Session panel
with its PUK and a new PIN (POST /api/session/unblock): the form says the PUK's tries left
after a wrong PUK, never keeps what was typed, and gives way to the PIN form; the new PIN
opens the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError as missing:  # a failure that says what to do, never a silent skip
    raise ImportError("Playwright for Python is missing: run scripts/setup (pip package "
                      "playwright)") from missing

from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PUK
from cardreader.virtual.cps_state import MAX_PUK_TRIES
from cardreader.virtual.pki import TestHealthCA
from tests.conftest import Insert
from tests.live import LiveWorld
from tests.web.support import shot

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]
NEW_PIN = "4321"
FIELDS = ("Code de déblocage (PUK", "Nouveau code PIN (4", "Nouveau code PIN, à nouveau")


def test_a_blocked_cps_is_unblocked_with_its_puk_in_the_page(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    ca = TestHealthCA.load(live.pki / "health-ca")
    card = VirtualCps.from_profile("nurse", ca=ca, state_dir=live.root / "card-unblock-page")
    insert_card(card, slot=0)
    page = open_page()
    page.get_by_role("tab", name="Session").click()
    form = page.locator("#unblock-form")
    expect(form).to_be_hidden()  # a card that is not blocked offers no PUK
    for _ in range(3):
        page.get_by_label("Code porteur (4 chiffres)").fill("9999")
        page.get_by_role("button", name="Ouvrir la session").click()
        expect(page.locator("#pin-message")).not_to_contain_text("Vérification")
    expect(page.locator("#sb-session")).to_contain_text("CPS bloquée")
    expect(page.locator("#session-blocked")).to_contain_text("PUK")
    expect(form).to_be_visible()
    expect(form.get_by_role("heading")).to_contain_text("Débloquer avec le code PUK")
    expect(page.locator("#pin-form")).to_be_hidden()

    def fill(puk: str, new_pin: str, again: str) -> None:
        for label, value in zip(FIELDS, (puk, new_pin, again), strict=True):
            form.get_by_label(label).fill(value)
        form.get_by_role("button", name="Débloquer la carte").click()

    # Typed twice differently: said by the page, nothing sent, nothing kept.
    fill(PUK, NEW_PIN, "4322")
    expect(page.locator("#unblock-message")).to_contain_text("diffèrent")
    # A wrong PUK: the tries left; the form emptied, the card still blocked.
    fill("87654321", NEW_PIN, NEW_PIN)
    expect(page.locator("#unblock-message")).to_contain_text(
        f"{MAX_PUK_TRIES - 1} essai(s) restant(s)")
    expect(page.locator("#unblock-tries")).to_contain_text(f"{MAX_PUK_TRIES - 1} essai(s)")
    for label in FIELDS:
        expect(form.get_by_label(label)).to_have_value("")
    assert card.puk_tries_left == MAX_PUK_TRIES - 1 and card.pin_tries_left == 0
    shot(page, "cps-unblock")
    # The right PUK: the PIN form comes back, "blocked" is no longer said.
    fill(PUK, NEW_PIN, NEW_PIN)
    expect(page.locator("#pin-form")).to_be_visible()
    expect(page.locator("#pin-message")).to_contain_text("Carte CPS débloquée")
    expect(form).to_be_hidden()
    expect(page.locator("#session-blocked")).to_be_hidden()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    for label in FIELDS:
        expect(form.get_by_label(label)).to_have_value("")
    assert card.pin_tries_left == 3
    # The new PIN opens the session.
    page.get_by_label("Code porteur (4 chiffres)").fill(NEW_PIN)
    page.get_by_role("button", name="Ouvrir la session").click()
    expect(page.locator("#sb-session")).to_contain_text("Ouverte")
    assert PUK not in page.content() and NEW_PIN not in page.evaluate(
        "JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
