"""The page in one language at a time, in Debian's Chromium: French by default, English once
the agent's ``ui.language`` says so (a restart). Its static text comes translated from the
agent, its own sentences from GET /api/messages (token-protected, revalidated by ETag)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.live import LiveWorld
from tests.web.support import shot

pytestmark = pytest.mark.browser

FRENCH_WORDS = ("Dépôt", "Paramètres", "Lecteurs", "Connecté", "Insérez", "Aucun")
ENGLISH_WORDS = ("Deposit", "Settings", "Readers", "Connected", "Insert your CPS", "No CPS")


def _texts(page: Any) -> str:
    # Lower case: the status bar's titles are shown in capitals.
    return str(page.locator("body").inner_text()).lower()


def test_the_messages_need_the_token_and_are_revalidated(live: LiveWorld) -> None:
    assert httpx.get(f"{live.agent.url}/api/messages").status_code == 401
    with live.agent.client() as client:
        answer = client.get("/api/messages")
        assert answer.status_code == 200 and answer.json()["language"] == "fr"
        assert answer.json()["messages"]["Session locked."] == "Session verrouillée."
        etag = answer.headers["etag"]
        assert "no-cache" in answer.headers["cache-control"]
        again = client.get("/api/messages", headers={"if-none-match": etag})
        assert again.status_code == 304 and not again.content


def test_the_page_in_french_then_in_english(live: LiveWorld,
                                            open_page: Callable[..., Any]) -> None:
    page = open_page()
    page.locator("#sb-session").get_by_text("Aucune carte CPS").wait_for()
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert page.title() == "Agent DMP"
    text = _texts(page)
    for word in FRENCH_WORDS:
        assert word.lower() in text
    for word in ENGLISH_WORDS:
        assert word.lower() not in text
    assert " / " not in page.locator("#statusbar").inner_text()  # one language per line
    shot(page, "language-fr")
    page.close()

    agent = live.agent
    agent.stop()
    agent.config_file.write_text(agent.config_file.read_text() + '\n[ui]\nlanguage = "en"\n')
    agent.start()
    page = open_page()
    page.locator("#sb-session").get_by_text("No CPS card").wait_for()
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.title() == "DMP agent"
    text = _texts(page)
    for word in ENGLISH_WORDS:
        assert word.lower() in text
    for word in FRENCH_WORDS:
        assert word.lower() not in text
    # The settings say their own key and describe it in English.
    page.get_by_role("tab", name="Settings").click()
    row = page.locator("#settings-body tr", has_text="ui.language")
    row.get_by_text('"en"', exact=True).wait_for()
    assert "Language of the page, the command line" in row.inner_text()
    shot(page, "language-en")
