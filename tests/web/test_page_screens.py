"""Every screen of the page, in Debian's Chromium, at 400 px (a tablet at the counter) and
1280 px, in French then in English (issue 17): a screenshot of each, and what a machine can
check on each: nothing wider than the window (no sideways scroll), no button or field cut
at the edge, and in French no English message id left untranslated.

The screens are walked in order on one live world (cards in pcscd, the reference host,
`dmp-agent run`): each `Screen` brings the world and the page from the previous screen to
its own state. To add a screen (a panel of your own), append one with `@screen(...)` where
it belongs in the walk; its function gets the `Walk` (the page, the world, the cards).

The PNGs go to tests/artefacts/screens/<language>/<nn>-<name>-<width>.png (the path is
printed at the end): look at them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError as missing:  # a failure that says what to do, never a silent skip
    raise ImportError("Playwright for Python is missing: run scripts/setup (pip package "
                      "playwright)") from missing

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vpcd import VpcdLink
from tests.cda_support import TROD, report_pdf
from tests.conftest import Insert
from tests.live import LiveWorld, qualify
from tests.web.support import ARTEFACTS, host_frozen

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

PIN = "1234"
WIDTHS = ((400, 800), (1280, 800))
SCREENS_DIR = ARTEFACTS / "screens"


@dataclass
class Walk:
    """What a screen's step works with; ``page`` may be replaced by a step (a new tab)."""

    live: LiveWorld
    insert: Insert
    open_page: Callable[..., Any]
    language: str
    page: Any = None
    cards: dict[int, VpcdLink] = field(default_factory=dict)

    def card(self, card: Any, slot: int) -> None:
        """Swap the card in ``slot``."""
        self.remove(slot)
        self.cards[slot] = self.insert(card, slot=slot)

    def remove(self, slot: int) -> None:
        link = self.cards.pop(slot, None)
        if link is not None:
            link.stop()
            assert wait_for_card(list_readers()[slot], present=False)

    def tab(self, section: str) -> None:
        self.page.locator(f"#tab-{section}").click()
        expect(self.page.locator(f"#panel-{section}")).to_be_visible()


@dataclass(frozen=True)
class Screen:
    name: str
    reach: Callable[[Walk], None]


SCREENS: list[Screen] = []


def screen(name: str) -> Callable[[Callable[[Walk], None]], Callable[[Walk], None]]:
    """Register the next screen of the walk."""
    def register(reach: Callable[[Walk], None]) -> Callable[[Walk], None]:
        SCREENS.append(Screen(name, reach))
        return reach
    return register


# -- the walk ----------------------------------------------------------------------------


@screen("no-token")
def _no_token(walk: Walk) -> None:
    walk.page = walk.open_page("")
    expect(walk.page.locator("#no-token")).to_be_visible()


@screen("no-card")
def _no_card(walk: Walk) -> None:
    walk.page.close()
    walk.page = walk.open_page()
    walk.tab("session")
    expect(walk.page.locator("#session-none")).to_be_visible()


@screen("cps-locked")
def _cps_locked(walk: Walk) -> None:
    walk.card(walk.live.cps("pharmacist"), 0)
    expect(walk.page.locator("#pin-form")).to_be_visible()


@screen("pin-wrong")
def _pin_wrong(walk: Walk) -> None:
    walk.page.locator("#pin").fill("0000")
    walk.page.locator("#pin-submit").click()
    expect(walk.page.locator("#pin-message")).to_have_attribute("data-kind", "error")


@screen("session-open")
def _session_open(walk: Walk) -> None:
    walk.page.locator("#pin").fill(PIN)
    walk.page.locator("#pin-submit").click()
    expect(walk.page.locator("#sb-session")).to_have_attribute("data-state", "open")
    walk.tab("session")  # the page went on to the patient's tab by itself
    expect(walk.page.locator("#session-open")).to_be_visible()


@screen("patient-choose")
def _patient_choose(walk: Walk) -> None:
    walk.card(VirtualVitale.from_profile("family"), 1)
    walk.live.agent.wait_for(lambda s: s["patient"]["state"] == "choosing")
    walk.tab("patient")
    expect(walk.page.locator("#patient-choose")).to_be_visible()


@screen("patient-loaded")
def _patient_loaded(walk: Walk) -> None:
    walk.page.locator("#beneficiaries button").first.click()
    expect(walk.page.locator("#patient-ready")).to_be_visible()
    walk.live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")


@screen("identity-to-check")
def _identity_to_check(walk: Walk) -> None:
    # The INS service's identity: the badge, the traits, and while it is récupérée the
    # document check form (the second language's walk finds it qualified: the agent keeps a
    # patient's check).
    walk.tab("patient")
    expect(walk.page.locator("#identity-badge")).to_be_visible()
    with walk.live.agent.client() as api:
        qualified = api.get("/api/status").json()["patient"]["identity"]["qualified"]
    expect(walk.page.locator("#identity-form")).to_be_visible(visible=not qualified)


@screen("dmp-create")
def _dmp_create(walk: Walk) -> None:
    walk.tab("create")


@screen("dossier")
def _dossier(walk: Walk) -> None:
    with walk.live.agent.client() as api:
        if api.get("/api/status").json()["patient"]["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        walk.live.agent.wait_for(lambda s: s["patient"]["state"] == "ready"
                                 and s["patient"]["dmp"]["status"] == "open")
        qualify(api)  # the identity document checked: deposits allowed
    walk.tab("dossier")
    expect(walk.page.locator("#dossier-body")).to_be_visible()


@screen("deposit-form")
def _deposit_form(walk: Walk) -> None:
    walk.tab("deposit")
    expect(walk.page.locator("#deposit-form")).to_be_visible()


@screen("deposit-cda")
def _deposit_cda(walk: Walk) -> None:
    # A CDA from the pharmacy's software (a rapid test): its type and title are its own, the
    # form does not ask them and says so (the next screen's PDF asks them again).
    page = walk.page
    page.locator("#deposit-file").set_input_files(TROD)
    expect(page.locator("#deposit-cda-hint")).to_be_visible()
    expect(page.locator("#deposit-type")).to_be_hidden()
    expect(page.locator("#deposit-submit")).to_be_enabled()


def _deposit_in_page(walk: Walk, title: str) -> None:
    page = walk.page
    page.locator("#deposit-file").set_input_files(files=[{
        "name": f"{title}.pdf", "mimeType": "application/pdf",
        "buffer": report_pdf(title)}])  # a real PDF: it becomes a PDF/A in a CDA
    expect(page.locator("#deposit-type")).to_be_visible()  # a PDF's type is asked
    page.locator("#deposit-type").select_option(index=1)
    page.locator("#deposit-title").fill(title)
    page.locator("#deposit-submit").click()


@screen("deposit-done")
def _deposit_done(walk: Walk) -> None:
    _deposit_in_page(walk, f"Dispensation {walk.language}")
    expect(walk.page.locator("#deposits .deposit.done")).to_have_count(1, timeout=30_000)


@screen("viewer")
def _viewer(walk: Walk) -> None:
    # The document deposited, opened in the Dossier tab's viewer (the PDF its CDA carries).
    walk.tab("dossier")
    walk.page.locator("#documents-body tr").first.get_by_role("button").first.click()
    expect(walk.page.locator("#viewer iframe")).to_be_visible(timeout=30_000)
    expect(walk.page.locator("#dossier-sections")).to_be_visible()


@screen("replacement")
def _replacement(walk: Walk) -> None:
    # "Nouvelle version" of one's own document: the deposit form names the one replaced;
    # shot, then cancelled (the later screens deposit new documents).
    page = walk.page
    page.locator("#documents-body tr").first.get_by_role(
        "button", name=re.compile("^(Nouvelle version|New version) ")).click()
    expect(page.locator("#deposit-replacing")).to_be_visible()
    _shoot(walk, "replacement-form")
    page.locator("#deposit-replacing-cancel").click()
    expect(page.locator("#deposit-replacing")).to_be_hidden()


@screen("emergency")
def _emergency(walk: Walk) -> None:
    walk.tab("emergency")


@screen("host-down")
def _host_down(walk: Walk) -> None:
    live = walk.live
    live.host.stop()
    with live.agent.client() as api:
        api.get("/api/diagnostics")  # whatever asks the host next finds it gone
    expect(walk.page.locator("#sb-host")).to_have_attribute("data-kind", "error",
                                                            timeout=30_000)
    walk.tab("deposit")
    _deposit_in_page(walk, f"En attente {walk.language}")
    expect(walk.page.locator("#deposits .deposit:not(.done)")).to_have_count(1,
                                                                              timeout=30_000)


@screen("host-back")
def _host_back(walk: Walk) -> None:
    walk.live.host.start()
    with walk.live.agent.client() as api:
        api.get("/api/diagnostics")
    expect(walk.page.locator("#sb-host")).not_to_have_attribute("data-kind", "error",
                                                                timeout=30_000)
    walk.tab("dossier")


@screen("host-frozen")
def _host_frozen(walk: Walk) -> None:
    # A request the host does not answer: the waiting line with its time and "Annuler".
    with host_frozen(walk.live):
        walk.page.locator("#filter-archived").check()  # the archived ones: asked of the host
        walk.page.locator("#filter-apply").click()
        expect(walk.page.locator("#wait-lines .wait")).to_be_visible(timeout=10_000)
        _shoot(walk, "host-frozen-wait")
        walk.page.locator("#wait-lines .wait button").first.click()
    expect(walk.page.locator("#wait-lines .wait")).to_have_count(0, timeout=30_000)
    walk.page.locator("#filter-archived").uncheck()


@screen("double-press")
def _double_press(walk: Walk) -> None:
    # A document change the host does not answer: its button stays busy, and a second
    # press asks nothing and sends nothing (no double submit).
    page = walk.page
    # The deposit held while the host was down is sent by now, and the list drawn with it:
    # a list redrawn under the click would make the press land on a replaced button.
    walk.live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=60)
    expect(page.locator("#documents-body tr", has_text=f"En attente {walk.language}")
           ).to_have_count(1, timeout=30_000)
    unique_id = page.locator("#documents-body tr").first.get_attribute("data-unique-id")
    mask = page.locator(f'#documents-body tr[data-unique-id="{unique_id}"] button').nth(1)
    with host_frozen(walk.live):
        for attempt in range(2):  # a row drawn again as its document changed loses a press
            mask.click()
            try:
                expect(page.locator("#confirm")).to_have_attribute("open", "", timeout=5_000)
                break
            except AssertionError:
                if attempt:
                    raise
        page.locator("#confirm-ok").click()
        expect(page.locator("#wait-lines .wait")).to_be_visible(timeout=10_000)
        expect(mask).to_have_attribute("aria-disabled", "true")
        mask.click(force=True)  # past Playwright's own check: what a second tap does
        expect(page.locator("#confirm")).not_to_have_attribute("open", "")
        assert page.locator("#wait-lines .wait").count() == 1
        _shoot(walk, "double-press-wait")
        page.locator("#wait-lines .wait button").first.click()
    expect(page.locator("#wait-lines .wait")).to_have_count(0, timeout=30_000)


@screen("diagnostics")
def _diagnostics(walk: Walk) -> None:
    walk.tab("diagnostics")
    walk.page.locator("#diagnostics-run").click()
    expect(walk.page.locator("#diagnostics-body tr").first).to_be_visible(timeout=30_000)


@screen("settings")
def _settings(walk: Walk) -> None:
    walk.tab("settings")
    expect(walk.page.locator("#settings-body tr").first).to_be_visible()


@screen("homonyms")
def _homonyms(walk: Walk) -> None:
    # A card for which the INS service answers two identities: the list, none chosen.
    walk.card(VirtualVitale.from_profile("homonym"), 1)
    walk.live.agent.wait_for(lambda s: s["patient"]["state"] == "choosing-identity")
    walk.tab("patient")
    expect(walk.page.locator("#identity-candidates > li")).to_have_count(2)


@screen("cps-blocked")
def _cps_blocked(walk: Walk) -> None:
    live = walk.live
    walk.remove(1)
    ca = TestHealthCA.load(live.pki / "health-ca")
    walk.card(VirtualCps.from_profile("nurse", ca=ca, state_dir=live.root
                                      / f"card-blocked-{walk.language}"), 0)
    live.agent.wait_for(lambda s: s["session"]["state"] in ("locked", "blocked"))
    with live.agent.client() as api:
        for _ in range(3):
            if api.post("/api/session", json={"pin": "9999"}).json().get("code") \
                    == "card-blocked":
                break
    walk.tab("session")
    expect(walk.page.locator("#unblock-form")).to_be_visible()


@screen("agent-unreachable")
def _agent_unreachable(walk: Walk) -> None:
    walk.live.agent.stop()
    expect(walk.page.locator("#offline-banner")).to_be_visible(timeout=30_000)


# -- what each screen is checked for --------------------------------------------------------


def _english_ids() -> set[str]:
    """The English ids whose French is another text: on a French page, any of them shown
    as a whole line was left untranslated."""
    from agent.i18n_catalogue import read_catalogue

    return {str(m.id) for m in read_catalogue("fr") if isinstance(m.id, str) and m.id
            and m.string and m.string != m.id and "{" not in m.id and len(m.id) > 3}


def _check(walk: Walk, width: int, where: str) -> None:
    page = walk.page
    assert page.evaluate("document.documentElement.scrollWidth") <= width, (
        f"{where}: the page scrolls sideways")
    cut = page.evaluate(f"""[...document.querySelectorAll(
            'button, input, select, textarea, label, h1, h2, h3, p, li, dt, dd, td, th')]
        .filter(e => e.offsetParent !== null && !e.closest('.visually-hidden, .table-wrap'))
        .filter(e => {{ const r = e.getBoundingClientRect();
                        return r.width > 0 && (r.left < -0.5 || r.right > {width} + 0.5); }})
        .map(e => e.tagName + '#' + e.id + ': ' + e.textContent.trim().slice(0, 40))""")
    assert cut == [], f"{where}: cut at the window's edge: {cut}"
    if walk.language == "fr":
        english = _english_ids()
        lines = {line.strip() for line in re.split(r"[\n]", page.locator("body").inner_text())}
        left = sorted(lines & english)
        assert left == [], f"{where}: English left in the French page: {left}"


def _shoot(walk: Walk, name: str) -> None:
    directory = SCREENS_DIR / walk.language
    directory.mkdir(parents=True, exist_ok=True)
    number = len(list(directory.glob("*-1280.png")))
    for width, height in WIDTHS:
        walk.page.set_viewport_size({"width": width, "height": height})
        _check(walk, width, f"{walk.language} {name} at {width} px")
        walk.page.screenshot(path=str(directory / f"{number:02d}-{name}-{width}.png"),
                             full_page=True)
    walk.page.set_viewport_size({"width": 1280, "height": 800})


def _walk(walk: Walk) -> None:
    for old in (SCREENS_DIR / walk.language).glob("*.png"):
        old.unlink()
    for item in SCREENS:
        item.reach(walk)
        _shoot(walk, item.name)


@pytest.mark.parametrize("language", ["fr", "en"])  # in this order: en restarts the agent
def test_every_screen_at_400_and_1280_px(
        language: str, live: LiveWorld, insert_card: Insert, open_page: Callable[..., Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    agent = live.agent
    if language == "en":
        agent.stop()
        agent.config_file.write_text(agent.config_file.read_text()
                                     + '\n[ui]\nlanguage = "en"\n')
        agent.start()
    walk = Walk(live, insert_card, open_page, language)
    try:
        _walk(walk)
    finally:
        for slot in list(walk.cards):
            walk.remove(slot)
        if live.host.process is None:
            live.host.start()
        if agent.process is None:
            agent.start()
    with capsys.disabled():
        shots = sorted((SCREENS_DIR / language).glob("*.png"))
        print(f"\nscreenshots: {SCREENS_DIR / language} ({len(shots)} PNG)")
