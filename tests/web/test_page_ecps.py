"""The e-CPS login in Chromium (docs/psc.md): "Se connecter avec e-CPS" in the Session panel,
no card in any reader; the page shows the binding message the phone shows and a countdown,
the virtual e-CPS app approves over HTTPS and the session opens; a login cancelled from the
page, or denied on the phone, opens nothing and says why."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError as missing:  # a failure that says what to do, never a silent skip
    raise ImportError("Playwright for Python is missing: run scripts/setup (pip package "
                      "playwright)") from missing

from tests.live import ECPS_CODE, LiveWorld, live_world

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]
OPTICIAN = "810003456786"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[LiveWorld]:
    """The web tests' live world, with the reference Pro Santé Connect."""
    with live_world(tmp_path_factory.mktemp("live-ecps"), psc=True) as world:
        yield world


def _answer(phone: Any, page: Any, approve: bool) -> None:
    binding = page.locator("#ecps-binding")
    expect(binding).to_contain_text("Poste ")
    (pending,) = phone.pending(ECPS_CODE)
    assert pending.binding_message == binding.text_content()  # the same on both screens
    phone.decide(pending.id, approve, ECPS_CODE)


def test_the_page_logs_in_with_the_e_cps(open_page: OpenPage, live: LiveWorld) -> None:
    phone = live.phone(OPTICIAN)
    page = open_page()
    page.get_by_role("tab", name="Session").click()
    page.get_by_label("Votre identifiant national (RPPS)").fill(OPTICIAN)
    page.get_by_role("button", name="Se connecter avec e-CPS").click()
    expect(page.locator("#ecps-countdown")).to_contain_text("s pour valider")
    expect(page.locator("#pin-form")).to_be_hidden()
    _answer(phone, page, True)
    opened = page.locator("#session-open")
    expect(opened).to_be_visible()
    expect(opened).to_contain_text("Optique du Vieux-Port")
    expect(page.locator("#ecps-login")).to_be_hidden()
    opened.get_by_role("button", name="Verrouiller").click()
    expect(page.locator("#ecps-form")).to_be_visible()

    # Cancelled from the page: nothing opened, the form is back.
    page.get_by_role("button", name="Se connecter avec e-CPS").click()
    expect(page.locator("#ecps-countdown")).to_be_visible()
    page.get_by_role("button", name="Annuler la connexion e-CPS").click()
    expect(page.locator("#ecps-form")).to_be_visible()
    expect(page.locator("#session-open")).to_be_hidden()
    # CIBA has no withdrawal: the phone still lists it until it expires; denied there.
    (stale,) = phone.pending(ECPS_CODE)
    phone.decide(stale.id, False, ECPS_CODE)

    # Denied on the phone: said in the page.
    page.get_by_role("button", name="Se connecter avec e-CPS").click()
    _answer(phone, page, False)
    expect(page.locator("#session-blocked")).to_contain_text("refusée sur le téléphone")
    expect(page.locator("#session-open")).to_be_hidden()
