"""Issue 17 in Chromium: one state of the card and session in every panel, the practice
situation chosen (and remembered per card), the deposit form that invites no mislabelling,
the other person on the card, and the layout from 400 px to 1280 px."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError as missing:  # a failure that says what to do, never a silent skip
    raise ImportError("Playwright for Python is missing: run scripts/setup (pip package "
                      "playwright)") from missing

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PROFILES
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from tests.conftest import Insert
from tests.live import LiveWorld, qualify
from tests.web.support import host_rows, shot, unlock

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]
PIN = "1234"
GP = "810001234565"
GP_SITUATIONS = PROFILES["gp"].situations


def gone(link: Any, slot: int) -> None:
    link.stop()
    assert wait_for_card(list_readers()[slot], present=False)


def no_sideways_scroll(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Every visible button fits in the window.
    cut = page.evaluate(f"""[...document.querySelectorAll('button')]
        .filter(b => b.offsetParent !== null)
        .filter(b => {{ const r = b.getBoundingClientRect();
                        return r.left < 0 || r.right > {width} + 0.5; }})
        .map(b => b.textContent.trim())""")
    assert cut == []


def test_the_situation_is_chosen_remembered_and_shown(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    link = insert_card(live.cps("gp"), slot=0)
    page = open_page()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    page.get_by_label("Code porteur").fill(PIN)
    page.get_by_role("button", name="Ouvrir la session").click()
    # The first time the card's situations are read behind the PIN: the page asks.
    choose = page.locator("#situation-choose")
    expect(choose).to_be_visible()
    expect(choose.get_by_role("button")).to_have_count(2)
    shot(page, "situation-choose")
    choose.get_by_role("button", name=re.compile(GP_SITUATIONS[1].structure_name)).click()
    expect(page.locator("#sb-session")).to_contain_text("Ouverte")
    expect(page.locator("#sb-structure")).to_have_text(
        f"Structure : {GP_SITUATIONS[1].structure_name}")
    remembered = page.evaluate("JSON.parse(localStorage.getItem('dmp-agent-situations'))")
    assert remembered == {GP: GP_SITUATIONS[1].structure_id}
    shot(page, "situation-open")

    # The CPS leaves: no "Session ouverte" beside "Insérez votre carte CPS".
    gone(link, 0)
    page.get_by_role("tab", name="Session").click()
    expect(page.locator("#session-none")).to_be_visible()
    expect(page.locator("#sb-session")).to_contain_text("Aucune carte CPS")
    expect(page.locator("#pin-message")).to_have_text("")
    expect(page.get_by_text("Session ouverte")).to_have_count(0)
    expect(page.locator("#sb-structure")).to_have_text("")
    shot(page, "cps-removed")

    # Back: the card's situations are offered before the PIN, the remembered one chosen.
    link = insert_card(live.cps("gp"), slot=0)
    select = page.get_by_label("Structure (situation d'exercice)")
    expect(select).to_be_visible()
    expect(select.locator("option:checked")).to_contain_text(GP_SITUATIONS[1].structure_name)
    select.select_option(value="0")
    page.get_by_label("Code porteur").fill(PIN)
    page.get_by_role("button", name="Ouvrir la session").click()
    expect(page.locator("#sb-structure")).to_contain_text(GP_SITUATIONS[0].structure_name)
    assert page.evaluate("JSON.parse(localStorage.getItem('dmp-agent-situations'))") == {
        GP: GP_SITUATIONS[0].structure_id}
    # Changeable: "Changer de structure" locks, the PIN form offers the situations.
    page.get_by_role("tab", name="Session").click()
    page.get_by_role("button", name="Changer de structure").click()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    expect(select).to_be_visible()
    gone(link, 0)


def test_expired_and_blocked_cards_are_said_one_way(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    ca = TestHealthCA.load(live.pki / "health-ca")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    expired = VirtualCps.from_profile("nurse", ca=ca, state_dir=live.root / "card-expired",
                                      not_after=past, not_before=past - dt.timedelta(days=900))
    link = insert_card(expired, slot=0)
    page = open_page()
    expect(page.locator("#sb-session")).to_contain_text("CPS expirée")
    expect(page.locator("#sb-readers")).to_contain_text("expirée")
    expect(page.locator("#session-blocked")).to_contain_text("renouveler")
    expect(page.locator("#session-none")).to_be_hidden()
    expect(page.get_by_text("Aucune carte CPS")).to_have_count(0)
    expect(page.locator("#pin-form")).to_be_hidden()
    page.get_by_role("tab", name="Dépôt").click()
    expect(page.locator("#deposit-message-top")).to_contain_text("Carte CPS expirée")
    shot(page, "cps-expired")
    gone(link, 0)

    # The last try is announced before it is used; the blocked card once, with what to do.
    card = VirtualCps.from_profile("nurse", ca=ca, state_dir=live.root / "card-blocked")
    link = insert_card(card, slot=0)
    page.get_by_role("tab", name="Session").click()
    for left in (2, 1):
        page.get_by_label("Code porteur").fill("9999")
        page.get_by_role("button", name="Ouvrir la session").click()
        expect(page.locator("#pin-message")).to_contain_text(f"{left} essai(s) restant(s)")
    expect(page.locator("#pin-last-try")).to_be_visible()
    expect(page.locator("#pin-last-try")).to_contain_text(
        "Dernier essai : un code faux bloque la carte")
    shot(page, "pin-last-try")
    page.get_by_label("Code porteur").fill("9999")
    page.get_by_role("button", name="Ouvrir la session").click()
    expect(page.locator("#sb-session")).to_contain_text("CPS bloquée")
    blocked = page.get_by_text(re.compile("L'agent ne peut pas la débloquer"))
    expect(blocked).to_have_count(1)  # said once
    expect(blocked).to_contain_text("émetteur de la carte")
    expect(page.locator(".notice", has_text="bloquée")).to_have_count(0)
    expect(page.locator("#pin-form")).to_be_hidden()
    assert card.pin_tries_left == 0
    shot(page, "cps-blocked")
    gone(link, 0)


def test_deposit_form_centre_15_other_person_and_layout(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    insert_card(VirtualVitale.from_profile("family"), slot=1)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    page = open_page()
    unlock(page)
    page.get_by_role("tab", name="Patient").click()
    choices = page.locator("#beneficiaries button")
    expect(choices.first).to_be_visible()
    people = choices.count()
    choices.first.click()
    expect(page.locator("#patient-ready")).to_be_visible()
    # The other persons on the card: never the current patient.
    expect(page.locator("#beneficiaries-others button")).to_have_count(people - 1)
    expect(page.locator("#beneficiaries-others [aria-current='true']")).to_have_count(0)
    name = page.locator("#patient-name").inner_text()
    if page.locator("#patient-create").is_visible():  # the patient refuses the centre 15
        page.get_by_role("tab", name="Création du DMP").click()
        page.get_by_label(re.compile("consent à la création")).check()
        page.get_by_label(re.compile("centre de régulation")).uncheck()
        # No address (a blank field sends none): created, and the host holds no contact.
        page.get_by_label("Adresse électronique du patient").fill("  ")
        page.get_by_role("button", name="Créer").click()
        expect(page.locator("#create-message")).to_contain_text("DMP créé")
        ins = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready"
                                  )["patient"]["patient"]["ins"]
        assert host_rows(live, "SELECT status FROM dossiers WHERE ins = ?", ins) == [("open",)]
        assert host_rows(live, "SELECT count(*) FROM patient_contacts WHERE ins = ?",
                         ins) == [(0,)]

    # The deposit form: no type chosen, the submit waits for one, the patient named, no
    # internal type offered.
    with live.agent.client() as api:
        qualify(api)  # the patient's passport checked (RNIV: the form is held before)
    page.get_by_role("tab", name="Dépôt").click()
    kind = page.get_by_label("Type de document")
    expect(kind.locator("option").nth(1)).to_be_attached()
    expect(kind).to_have_value("")
    expect(page.get_by_label("Titre")).to_have_value("")
    expect(page.locator("#deposit-submit")).to_be_disabled()
    expect(page.locator("#deposit-patient")).to_contain_text(name.split()[0])
    labels = kind.locator("option").all_inner_texts()
    assert "Signature du lot de soumission" not in labels
    kind.select_option(index=1)
    expect(page.locator("#deposit-submit")).to_be_enabled()
    expect(page.get_by_label("Titre")).to_have_value(labels[1])
    # Centre 15 is not offered to a professional outside a regulation centre.
    page.get_by_role("tab", name="Urgence").click()
    expect(page.locator("#regulation-form")).to_be_hidden()

    # 400 px: nothing sideways, no button cut, on every tab; and 1280 px.
    for width, height in ((400, 800), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        for tab in ("Session", "Patient", "Dossier", "Dépôt", "Urgence", "Diagnostic",
                    "Paramètres"):
            page.get_by_role("tab", name=tab).click()
            no_sideways_scroll(page, width)
            shot(page, f"layout-{width}-{tab.lower().replace('é', 'e').replace('ô', 'o')}")
    page.set_viewport_size({"width": 1280, "height": 800})


def test_centre_15_for_a_patient_who_refused_it_is_one_message(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("regulation"), slot=0)
    insert_card(VirtualVitale.from_profile("family"), slot=1)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    page = open_page()
    unlock(page)
    page.get_by_role("tab", name="Patient").click()
    page.locator("#beneficiaries button").first.click()
    expect(page.locator("#sb-patient")).not_to_contain_text("Lecture")
    page.get_by_role("tab", name="Urgence").click()
    regulation = page.get_by_role("button", name="Centre 15 (régulation)")
    expect(regulation).to_be_visible()  # a regulation centre's session may use it
    regulation.click()
    # Refused by the patient (the previous test created the DMP without it): one message,
    # no red banner, nothing green saying it is open.
    expect(page.locator("#emergency-message-top")).to_have_attribute("data-kind", "error")
    expect(page.locator("#emergency-banner")).to_be_hidden()
    expect(page.get_by_text("Accès en urgence ouvert")).to_have_count(0)
    shot(page, "centre-15-refused")
    page.get_by_role("button", name="Revenir à l'accès normal").click()
    expect(page.locator("#emergency-message")).to_contain_text("terminé")


def test_the_host_down_is_in_the_status_bar_with_since_when_and_what_to_do(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    page = open_page()
    unlock(page)
    expect(page.locator("#sb-host")).to_have_text("Joignable")
    expect(page.locator("#sb-host-fix")).to_be_hidden()
    live.host.stop()
    try:
        # Whatever asks the host next (here the session's own check) finds it gone.
        with live.agent.client() as api:
            api.get("/api/diagnostics")
        expect(page.locator("#sb-host")).to_contain_text("injoignable", timeout=30_000)
        expect(page.locator("#sb-host")).to_contain_text("depuis")
        expect(page.locator("#sb-host")).to_have_attribute("data-kind", "error")
        expect(page.locator("#sb-host-fix")).to_contain_text("connexion internet du poste")
        expect(page.locator("#sb-host")).not_to_contain_text("Error")
        shot(page, "host-unreachable")
    finally:
        live.host.start()
    with live.agent.client() as api:
        api.get("/api/diagnostics")
    expect(page.locator("#sb-host")).to_have_text("Joignable", timeout=30_000)
