"""The agent's page in Debian's real Chromium, driven by Playwright, against a live world:
pcscd with vpcd, the reference host in its own process (TLS) and `dmp-agent run` for one
user, enrolled from the host's test PKI. What the page did is read back from the host's own
database."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveWorld, live_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


def pytest_configure(config: pytest.Config) -> None:
    # --strict-markers: registered here as well as in pyproject.toml.
    config.addinivalue_line("markers", "browser: drives the agent's page in Debian's Chromium "
                                       "(Playwright)")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[LiveWorld]:
    with live_world(tmp_path_factory.mktemp("live")) as world:
        yield world


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium (never a browser Playwright downloads), headless."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup (Debian package chromium)",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: run scripts/setup (pip package "
                    "playwright)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageWatch:
    """What went wrong inside the page: script errors and CSP violations."""

    errors: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert not self.errors, "the page reported errors:\n" + "\n".join(self.errors)


@pytest.fixture
def open_page(live: LiveWorld, chromium: Any) -> Iterator[Callable[..., Any]]:
    """open_page(fragment=None) -> a Playwright page on the agent's page; by default with
    the token in the fragment as the tray opens it. The page must not report any script
    error nor CSP violation."""
    contexts: list[Any] = []
    watches: list[PageWatch] = []

    def open_(fragment: str | None = None) -> Any:
        context = chromium.new_context(viewport=VIEWPORT, locale="fr-FR",
                                       timezone_id="Europe/Paris")
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        watch = PageWatch()
        watches.append(watch)
        page.on("pageerror", lambda error: watch.errors.append(f"script: {error}"))
        page.on("console", lambda message: watch.errors.append(f"console: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None)
        if fragment is None:
            fragment = f"token={live.agent.token}"
        page.goto(f"{live.agent.url}/" + (f"#{fragment}" if fragment else ""))
        return page

    yield open_
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()
    for watch in watches:
        watch.check()
