"""The agent's page in Chromium: the three daily scenarios, each checked on what the host
stored, and the page's own behaviour (token, live events, PIN errors, card removal).

The tests run in order and share one live world: the optician deposits for the patient
whose DMP the pharmacist created, and the GP reads it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError as missing:  # a failure that says what to do, never a silent skip
    raise ImportError("Playwright for Python is missing: run scripts/setup (pip package "
                      "playwright)") from missing

from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from tests.cda_support import report_pdf
from tests.conftest import Insert
from tests.live import LiveWorld, qualify
from tests.web.support import (
    access_log,
    authorization,
    document_flags,
    dossier,
    eventually,
    host_rows,
    shot,
    unlock,
)

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]

PIN = "1234"
PHARMACIST, OPTICIAN, GP = "810002345675", "810003456786", "810001234565"
EYE_TEST = "34810-2"  # the optician's eye-test (refraction) report
REPORT_PDF = report_pdf("Compte rendu d'examen de la vue", "Réfraction : OD -1,25")


def status(live: LiveWorld) -> dict[str, Any]:
    with live.agent.client() as api:
        return api.get("/api/status").json()


def viewed(tab: Any, title: str | re.Pattern[str]) -> str:
    """The document a tab opened by the page shows: the tab titled by the document, the
    bytes in a frame from a blob: URL; returns the frame document's type."""
    expect(tab).to_have_title(title)
    expect(tab.locator("iframe")).to_have_attribute("src", re.compile(r"^blob:"))
    frame = next(f for f in tab.frames if f is not tab.main_frame)
    frame.wait_for_url(re.compile(r"^blob:"))
    return str(frame.evaluate("document.contentType"))


def test_without_token_the_page_says_where_to_open_it(open_page: OpenPage) -> None:
    page = open_page("")
    expect(page.locator("#no-token")).to_be_visible()
    expect(page.locator("#no-token")).to_contain_text("Ouvrez la page depuis l'icône de l'agent")
    expect(page.locator("#no-token")).to_contain_text("dmp-agent page")
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("#statusbar")).to_be_hidden()
    # It asked the API nothing (every fetch the page made is in its resource timings).
    fetched = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched and not [url for url in fetched if "/api/" in url]
    shot(page, "no-token")

    # A token the agent refuses leads to the same panel, and is not kept.
    page = open_page("token=not-the-token")
    expect(page.locator("#no-token")).to_be_visible()
    expect(page.locator("#no-token-detail")).to_contain_text("refusé")
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('dmp-agent-token')") is None


def test_token_leaves_the_address_bar_and_events_update_the_page(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    page = open_page()
    expect(page.locator("#sb-session")).to_contain_text("Aucune carte CPS")
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('dmp-agent-token')") == live.agent.token
    page.evaluate("window.sameDocument = true")

    insert_card(live.cps("gp"), slot=0)
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    expect(page.locator("#sb-readers")).to_contain_text("CPS — Claire MARTIN")
    expect(page.get_by_label("Code porteur")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True  # no reload: the event stream did it
    shot(page, "sse-cps-inserted")

    # The tabs follow the keyboard (arrows, Home, End).
    page.get_by_role("tab", name="Session").focus()
    page.keyboard.press("ArrowRight")
    patient = page.get_by_role("tab", name="Patient")
    expect(patient).to_have_attribute("aria-selected", "true")
    expect(patient).to_be_focused()
    expect(page.get_by_role("tabpanel", name="Patient")).to_be_visible()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Paramètres")).to_be_focused()
    expect(page.get_by_role("tabpanel", name="Paramètres")).to_contain_text("agent.toml")
    page.keyboard.press("Home")
    expect(page.get_by_role("tab", name="Session")).to_have_attribute("aria-selected", "true")


def test_diagnostics_and_settings_sections(open_page: OpenPage, live: LiveWorld) -> None:
    page = open_page(f"token={live.agent.token}&section=diagnostics")
    assert page.url.endswith("#section=diagnostics")  # the section stays, not the token
    expect(page.get_by_role("tab", name="Diagnostic")).to_have_attribute("aria-selected", "true")
    checks = page.locator("#diagnostics-body tr")
    expect(checks.filter(has_text="pcscd")).to_contain_text("OK")
    expect(checks.filter(has_text="Enrôlement du poste")).to_contain_text("OK")
    expect(checks.filter(has_text="host")).not_to_have_count(0)
    shot(page, "diagnostics")

    page = open_page(f"token={live.agent.token}&section=settings")
    expect(page.locator("#settings-file")).to_have_text(str(live.agent.config_file))
    expect(page.locator("#settings-body tr", has_text="api.port")).to_contain_text(
        str(live.agent.port))


def test_wrong_pin_shows_tries_left(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    # A card of its own (its own PIN counter) so that the other tests keep three tries.
    ca = TestHealthCA.load(live.pki / "health-ca")
    card = VirtualCps.from_profile("gp", ca=ca, state_dir=live.root / "card-gp-wrong-pin")
    insert_card(card, slot=0)
    page = open_page()
    field = page.get_by_label("Code porteur")
    expect(field).to_have_attribute("autocomplete", "off")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_attribute("type", "password")
    field.fill("9999")
    page.get_by_role("button", name="Ouvrir la session").click()
    expect(page.locator("#pin-message")).to_contain_text("2 essai(s) restant(s)")
    expect(field).to_have_value("")
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    shot(page, "wrong-pin")
    assert card.pin_tries_left == 2

    unlock(page)  # the right PIN resets the counter
    assert card.pin_tries_left == 3
    expect(field).to_have_value("")
    page.get_by_role("tab", name="Session").click()
    page.get_by_role("button", name="Verrouiller").click()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    assert status(live)["session"]["state"] == "locked"


def patient_ins(live: LiveWorld) -> str:
    current = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
    return current["patient"]["patient"]["ins"]


def test_pharmacist_creates_the_dmp_at_the_counter(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page()
    unlock(page)
    # The page moves on to the patient once the session is open.
    expect(page.get_by_role("tab", name="Patient")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#patient-name")).to_have_text("CLAIRE MARTIN")
    expect(page.locator("#patient-dmp")).to_contain_text("pas de DMP")
    ins = patient_ins(live)
    expect(page.locator("#patient-ins")).to_have_text(ins)
    assert dossier(live, ins) is None

    page.get_by_role("button", name="Créer le DMP").click()
    create = page.locator("#create-submit")
    expect(create).to_be_disabled()  # until the patient's consent is ticked
    page.get_by_label("consent à la création de son DMP").check()
    expect(create).to_be_enabled()
    # The emergency consents come ticked; this patient refuses the regulation centre.
    expect(page.get_by_label("bris de glace")).to_be_checked()
    expect(page.get_by_label("En urgence, accès aux documents masqués")).to_be_checked()
    page.get_by_label("centre de régulation").uncheck()
    # The patient's address, optional, said what it is for.
    email = page.get_by_label("Adresse électronique du patient")
    expect(email).to_have_attribute("type", "email")
    expect(email).to_have_attribute("autocomplete", "off")
    expect(email).to_have_attribute("maxlength", "254")
    expect(email).to_have_value("")
    expect(page.locator("#create-email-help")).to_contain_text(
        "Pour les notifications et la connexion à son espace DMP")
    expect(email).to_have_accessible_description(re.compile("Pour les notifications"))
    # One the browser lets through but the host could not use: the agent refuses it and
    # nothing is created; the address stays in the field to be corrected.
    email.fill("claire.martin@localhost")
    create.click()
    expect(page.locator("#create-message")).to_contain_text("Adresse électronique du patient")
    expect(email).to_have_value("claire.martin@localhost")
    assert dossier(live, ins) is None
    shot(page, "pharmacist-dmp-bad-email")
    email.fill("claire.martin@example.fr")
    create.click()
    expect(page.locator("#create-message")).to_contain_text("DMP créé")
    expect(page.locator("#sb-patient")).to_contain_text("DMP ouvert")
    stored = dossier(live, ins)
    assert stored == {"status": "open", "breakTheGlass": True, "regulationCentre": False,
                      "emergencySeesMasked": True, "createdBy": PHARMACIST}
    assert host_rows(live, "SELECT email, channel FROM patient_contacts WHERE ins = ?",
                     ins) == [("claire.martin@example.fr", "email")]
    shot(page, "pharmacist-dmp-created")

    # The secrets sheet opens in a tab of its own, as a PDF.
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Imprimer la fiche du patient").click()
    sheet = opened.value
    assert viewed(sheet, re.compile(r"^Fiche du patient — ")) == "application/pdf"
    start = page.evaluate("""async () => {
        const r = await fetch('/api/dmp/sheet', {headers: {Authorization: 'Bearer '
            + sessionStorage.getItem('dmp-agent-token')}});
        const bytes = new Uint8Array(await r.arrayBuffer());
        return [r.headers.get('content-type'), String.fromCharCode(...bytes.slice(0, 5))];
    }""")
    assert start == ["application/pdf", "%PDF-"]
    sheet.wait_for_load_state()
    sheet.wait_for_timeout(500)  # the PDF viewer draws after the load: for the picture only
    shot(sheet, "pharmacist-sheet")


def test_optician_deposits_an_eye_test_report(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert, tmp_path: Path) -> None:
    insert_card(live.cps("optician"), slot=0)
    vitale = insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page("token=" + live.agent.token + "&section=deposit")
    expect(page.get_by_role("tab", name="Dépôt")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#deposit-message-top")).to_contain_text("Ouvrez d'abord la session")
    unlock(page)
    # Back to the section asked for once the session is open.
    expect(page.get_by_role("tab", name="Dépôt")).to_have_attribute("aria-selected", "true")
    ins = patient_ins(live)
    with live.agent.client() as api:
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)

    deposit = page.get_by_role("button", name=re.compile(r"^Déposer"))
    report = tmp_path / "bilan-vue.pdf"
    report.write_bytes(REPORT_PDF)
    kind = page.get_by_label("Type de document")
    expect(kind.locator(f"option[value='{EYE_TEST}']")).to_have_count(1)
    kind.select_option(EYE_TEST)
    title = page.get_by_label("Titre")
    expect(title).to_have_value("Compte rendu d'examen de la vue (réfraction)")
    page.get_by_label("Déposez le fichier ici").set_input_files(report)
    title.fill("Bilan de la vue — Mme Martin")
    page.get_by_label("Invisible pour le patient").check()
    deposit.click()
    expect(page.locator("#deposit-progress")).to_have_attribute("value", "100")
    expect(page.locator("#deposit-percent")).to_have_text("100 %")
    item = page.locator("#deposits li", has_text="Bilan de la vue — Mme Martin")
    expect(item).to_contain_text("Déposé")
    shot(page, "optician-deposited")
    assert document_flags(live, ins, "Bilan de la vue — Mme Martin") == {
        "typeCode": EYE_TEST, "masked": False, "invisibleToPatient": True,
        "mimeType": "text/xml", "author": OPTICIAN}  # a CDA R2 level 1 (docs/cda.md)

    # A text file, the other format (a level 1 CDA with a text body), and another type (the
    # GP filters on it).
    note = tmp_path / "delivrance.txt"
    note.write_text("Délivrance de lunettes : OD -1,25 OG -1,00\n", encoding="utf-8")
    kind.select_option("DISPENSATION-OPTIQUE")
    page.get_by_label("Déposez le fichier ici").set_input_files(note)
    deposit.click()
    item = page.locator("#deposits li", has_text="Délivrance d'équipement d'optique")
    expect(item).to_contain_text("Déposé")
    assert document_flags(live, ins, "Délivrance d'équipement d'optique")["mimeType"] == \
        "text/xml"

    # Masked and invisible together: the host refuses it; the reason shows, and a retry.
    kind.select_option(EYE_TEST)
    page.get_by_label("Déposez le fichier ici").set_input_files(report)
    title.fill("Bilan masqué et invisible")
    page.get_by_label("Masqué aux professionnels").check()
    page.get_by_label("Invisible pour le patient").check()
    deposit.click()
    refused = page.locator("#deposits li", has_text="Bilan masqué et invisible")
    expect(refused).to_contain_text("Refusé")
    expect(refused.locator(".reason")).not_to_be_empty()
    expect(page.locator("#sb-outbox")).to_contain_text("1 refusé(s)")
    shot(page, "optician-refused")

    def refusals() -> int:
        return sum(1 for action, _mode, _why, outcome in access_log(live, ins, OPTICIAN)
                   if action == "deposit" and outcome == "refused")

    assert refusals() == 1
    refused.get_by_role("button", name="Réessayer").click()
    eventually(lambda: refusals() == 2)  # sent again, refused again
    expect(refused).to_contain_text("Refusé")
    assert document_flags(live, ins, "Bilan masqué et invisible") is None

    # The optician's own documents: their flags change from the dossier, once confirmed.
    page.get_by_role("tab", name="Dossier").click()
    note_row = page.locator("#documents-body tr", has_text="Délivrance d'équipement d'optique")
    expect(note_row).to_contain_text("Mon document")
    note_row.get_by_role("button", name="Archiver").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Archiver ce document ?")
    dialog.get_by_role("button", name="Annuler").click()
    expect(dialog).to_be_hidden()
    note_row.get_by_role("button", name="Masquer").click()
    expect(dialog).to_contain_text("Délivrance d'équipement d'optique")
    dialog.get_by_role("button", name="Confirmer").click()
    expect(note_row).to_contain_text("Masqué")
    assert document_flags(live, ins, "Délivrance d'équipement d'optique")["masked"] is True
    note_row.get_by_role("button", name="Démasquer").click()
    dialog.get_by_role("button", name="Confirmer").click()
    expect(note_row).not_to_contain_text("Masqué")
    flags = document_flags(live, ins, "Délivrance d'équipement d'optique")
    assert flags is not None and flags["masked"] is False  # and never archived
    assert host_rows(live, "SELECT archived FROM documents WHERE ins = ? AND title = ?", ins,
                     "Délivrance d'équipement d'optique") == [(0,)]

    # Set-up for the GP's emergency access, through the API: the optician's report for a
    # second patient (the spouse on the family card), whose DMP is created here.
    vitale.stop()
    with live.agent.client() as api:
        insert_card(VirtualVitale.from_profile("family"), slot=1)
        live.agent.wait_for(lambda s: s["patient"]["state"] == "choosing")
        assert api.post("/api/patient/select", json={"index": 2}).status_code == 200
        live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
        assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)
        answer = api.post("/api/deposits", params={"typeCode": EYE_TEST,
                                                   "title": "Bilan de la vue — Mme Durand"},
                          content=REPORT_PDF, headers={"content-type": "application/pdf"})
        assert answer.status_code == 202, answer.text
        live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0)


def test_gp_reads_the_dossier_then_uses_break_the_glass(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("gp"), slot=0)
    vitale = insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page()
    unlock(page)
    ins = patient_ins(live)
    expect(page.locator("#patient-authorization")).to_contain_text("Aucune")
    assert authorization(live, ins, GP) is None

    # The patient, present, authorises the GP: confirmed first, then recorded.
    agree = page.get_by_role("button", name="Le patient m'autorise")
    expect(agree).to_be_disabled()
    page.get_by_label("Le patient, présent, m'a donné son accord").check()
    agree.click()
    expect(page.locator("#patient-authorization")).to_contain_text("Valide")
    assert authorization(live, ins, GP) == "valid"
    shot(page, "gp-authorised")

    # The dossier: the optician's two documents; the filters narrow the list.
    page.get_by_role("tab", name="Dossier").click()
    panel = page.get_by_role("tabpanel", name="Dossier")
    rows = panel.locator("#documents-body tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#documents")).to_contain_text("Bilan de la vue — Mme Martin")
    expect(page.locator("#documents")).to_contain_text("Délivrance d'équipement d'optique")
    report = rows.filter(has_text="Bilan de la vue — Mme Martin")
    expect(report).to_contain_text("Invisible patient")
    expect(report).to_contain_text("Sophie PETIT")
    expect(report.get_by_role("button", name="Supprimer")).to_have_count(0)  # not the GP's
    panel.get_by_label("Type").select_option(label="Compte rendu d'examen de la vue (réfraction)")
    panel.get_by_role("button", name="Filtrer").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Bilan de la vue — Mme Martin")
    panel.get_by_role("button", name="Effacer").click()
    expect(rows).to_have_count(2)
    panel.get_by_label("Recherche").fill("délivrance")
    panel.get_by_role("button", name="Filtrer").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Délivrance d'équipement d'optique")
    panel.get_by_role("button", name="Effacer").click()
    panel.get_by_label("Depuis le").fill("2099-01-01")
    panel.get_by_role("button", name="Filtrer").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Aucun document")
    panel.get_by_role("button", name="Effacer").click()
    expect(rows).to_have_count(2)
    shot(page, "gp-dossier")

    # Down to 1024 pixels wide, nothing runs off the side.
    page.set_viewport_size({"width": 1024, "height": 768})
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    shot(page, "gp-dossier-1024")
    page.set_viewport_size({"width": 1280, "height": 800})

    # The summary: no structured document in this dossier, and every section says so.
    summary = page.locator("#dossier-sections")
    expect(summary.locator("article.no-source")).to_have_count(8)
    expect(summary).to_contain_text("Aucun document source dans le dossier.")

    # "Ouvrir": the document's bytes, checked by the agent, in the page's viewer panel.
    with page.expect_response(re.compile(r"/api/documents/.+/view$")) as answer:
        report.get_by_role("button", name="Ouvrir").click()
    # The PDF itself (as deposited, or the body of the level 1 CDA that carries it).
    assert answer.value.body().startswith(b"%PDF-")
    assert answer.value.headers["x-view-kind"] == "pdf"
    panel_viewer = page.locator("#viewer")
    expect(panel_viewer.locator("#viewer-title")).to_have_text("Bilan de la vue — Mme Martin")
    frame = panel_viewer.locator("iframe")
    expect(frame).to_have_attribute("src", re.compile(r"^blob:"))
    expect(frame).to_have_attribute("title", "Bilan de la vue — Mme Martin")
    shot(page, "gp-viewer-pdf")
    # And in a tab of its own, titled by the document's title (not "about:blank").
    with page.context.expect_page() as opened:
        panel_viewer.get_by_role("button", name="Ouvrir dans un nouvel onglet").click()
    viewer = opened.value
    assert viewed(viewer, "Bilan de la vue — Mme Martin") == "application/pdf"
    viewer.close()
    panel_viewer.get_by_role("button", name="Fermer").click()
    expect(panel_viewer).to_be_hidden()

    # The Vitale card leaves: nothing of the patient stays on the page.
    vitale.stop()
    expect(page.locator("#sb-patient")).to_have_text("Aucun")
    expect(page.locator("#dossier-body")).to_be_hidden()
    expect(page.locator("#documents-body tr")).to_have_count(0)
    expect(page.get_by_text("Bilan de la vue — Mme Martin")).to_have_count(0)

    # A second patient, on a family card, who never authorised the GP.
    family = insert_card(VirtualVitale.from_profile("family"), slot=1)
    page.get_by_role("tab", name="Patient").click()
    page.get_by_role("button", name="SOPHIE DURAND").click()
    expect(page.locator("#patient-name")).to_have_text("SOPHIE LEFEBVRE")
    expect(page.locator("#patient-authorization")).to_contain_text("Aucune")
    spouse = patient_ins(live)
    page.get_by_role("tab", name="Dossier").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Aucun document")

    page.get_by_role("tab", name="Urgence").click()
    enter = page.get_by_role("button", name="Accès en urgence (bris de glace)")
    expect(enter).to_be_disabled()
    why = page.get_by_label("Justification de l'urgence")
    why.fill("Malaise")
    expect(enter).to_be_disabled()  # fewer than 10 characters
    justification = "Patiente inconsciente aux urgences, allergies à vérifier"
    why.fill(justification)
    enter.click()
    banner = page.locator("#emergency-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("ACCÈS EN URGENCE (BRIS DE GLACE)")
    expect(banner).to_contain_text("tracé et notifié au patient")
    expect(banner).to_contain_text(justification)
    for name in ("Session", "Patient", "Dossier", "Dépôt", "Création du DMP", "Urgence",
                 "Diagnostic", "Paramètres"):
        page.get_by_role("tab", name=name).click()
        expect(banner).to_be_visible()
    page.get_by_role("tab", name="Dossier").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Bilan de la vue — Mme Durand")
    shot(page, "gp-break-the-glass")
    assert (("search", "bris_de_glace", justification, "allowed")
            in access_log(live, spouse, GP))

    page.get_by_role("button", name="Terminer l'accès d'urgence").first.click()
    expect(banner).to_be_hidden()
    expect(page.locator("#patient-mode")).to_have_text("Normal")
    expect(rows.first).to_contain_text("Aucun document")

    # A GP in a practice is not a regulation centre: centre 15 is not offered (issue 16).
    page.get_by_role("tab", name="Urgence").click()
    expect(page.get_by_role("button", name="Centre 15 (régulation)")).to_be_hidden()

    # Once more, then the card leaves: the emergency access ends with it.
    page.get_by_role("tab", name="Urgence").click()
    why.fill(justification)
    enter.click()
    expect(banner).to_be_visible()
    family.stop()
    expect(banner).to_be_hidden()
    expect(page.locator("#sb-patient")).to_have_text("Aucun")


def test_gp_is_designated_then_closes_and_reopens_the_dmp_at_the_patients_request(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("gp"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page()
    unlock(page)
    ins = patient_ins(live)
    page.get_by_role("tab", name="Patient").click()

    designate = page.get_by_role("button", name="Enregistrer médecin traitant")
    expect(designate).to_be_disabled()
    page.get_by_label("Le patient, présent, me désigne médecin traitant DMP").check()
    designate.click()
    expect(page.locator("#patient-authorization")).to_contain_text("médecin traitant")
    expect(designate).to_be_hidden()  # done once

    close = page.get_by_role("button", name="Fermer le DMP")
    page.get_by_label("Le patient, présent, demande la fermeture").check()
    expect(close).to_be_disabled()  # a reason first
    page.get_by_label("Motif").fill("Ne souhaite plus de DMP")
    close.click()
    expect(page.locator("#lifecycle-message")).to_contain_text("DMP fermé")
    eventually(lambda: (dossier(live, ins) or {}).get("status") == "closed")
    shot(page, "gp-dmp-closed")

    reopen = page.get_by_role("button", name="Réactiver le DMP")
    page.get_by_label("Le patient, présent, consent à le rouvrir").check()
    reopen.click()
    expect(page.locator("#lifecycle-message")).to_contain_text("DMP réactivé")
    eventually(lambda: (dossier(live, ins) or {}).get("status") == "open")


def test_agent_unreachable_then_back(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("gp"), slot=0)
    page = open_page()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    offline = page.locator("#offline-banner")
    expect(offline).to_be_hidden()
    live.agent.stop()
    expect(offline).to_be_visible()
    expect(offline).to_contain_text("Agent injoignable")
    shot(page, "agent-unreachable")
    live.agent.start()
    # The page reconnects by itself (backoff) and shows the new agent's state.
    expect(offline).to_be_hidden(timeout=30_000)
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    expect(page.locator("#connection")).to_contain_text("Connecté")
