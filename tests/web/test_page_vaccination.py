"""The vaccination record in Chromium (docs/cda.md "The vaccination record"): a pharmacist
records a flu shot from the page ("Vacciner", in the Dépôt panel: the patient named, no
vaccine preselected); the note goes through the outbox, and the dossier's vaccinations
section then shows it, linked to its document."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from cardreader.virtual.vitale import VirtualVitale
from tests.conftest import Insert
from tests.live import LiveWorld
from tests.web.support import page_on_qualified_patient, shot, unlock

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]


def test_a_pharmacist_records_a_vaccination_and_the_dossier_shows_it(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    page, patient = page_on_qualified_patient(open_page, live, insert_card, "pharmacist")

    page.get_by_role("tab", name="Dépôt").click()
    form = page.locator("#vaccination")
    expect(form.get_by_role("heading", name="Vacciner")).to_be_visible()
    expect(form.locator("#vaccination-patient")).to_contain_text(patient["birthName"])
    vaccine = form.get_by_label("Vaccin", exact=True)
    expect(vaccine).to_have_value("")  # nothing preselected
    flu = vaccine.locator("option", has_text="VAXIGRIPTETRA").text_content()
    assert flu is not None and flu.startswith("Grippe — VAXIGRIPTETRA")
    vaccine.select_option(label=flu)
    form.get_by_label("Numéro de lot").fill("FLU-PAGE1")
    form.get_by_label("Rang de la dose (facultatif)").fill("1")
    form.get_by_label("Voie d'administration (facultatif)").select_option(
        label="Voie intramusculaire")
    form.get_by_label("Site d'injection (facultatif)").select_option(label="deltoïde gauche")
    form.get_by_role("button", name="Enregistrer la vaccination").click()
    expect(form.locator("#vaccination-message")).to_contain_text("Vaccination enregistrée",
                                                                 timeout=120_000)
    expect(vaccine).to_have_value("")  # ready for the next one
    shot(page, "vaccination-recorded")
    live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0 and not s["outbox"]["items"],
                        timeout=120)

    page.get_by_role("tab", name="Dossier").click()
    shown = page.locator("#dossier-sections article[data-key='vaccinations']")
    expect(shown).to_contain_text("VAXIGRIPTETRA", timeout=30_000)
    expect(shown).to_contain_text("lot FLU-PAGE1")
    shot(page, "vaccination-in-summary")
    shown.locator("button.source").first.click()  # the item opens its document
    expect(page.locator("#viewer-title")).to_have_text(re.compile("vaccination", re.I))
    expect(page.locator("#viewer-frame iframe")).to_have_count(1)


def test_an_optician_is_not_offered_the_form(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("optician"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page()
    unlock(page)
    page.get_by_role("tab", name="Dépôt").click()
    expect(page.locator("#deposit-form")).to_be_visible()
    expect(page.locator("#vaccination")).to_be_hidden()
