"""Issue 13 in Chromium: the patient's identity and its RNIV status in the page (docs/ins.md,
"What the page shows"), against the live world: `dmp-agent run`, the reference host and its
INS service (seeded identities: homonyms, a minor, a person the registry corrects), the
cards in the real pcscd. What the page did is read back from the agent and the host.

The tests share one world (module scope): each uses its own patient, as the agent keeps the
identity checks per patient."""

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

from cardreader.virtual.vitale import VirtualVitale
from tests.cda_support import report_pdf
from tests.conftest import Insert
from tests.live import LiveWorld
from tests.localapi.test_ins_identity import _correct as correct_identity
from tests.web.support import eventually, host_rows, shot, unlock

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]
ORTHOPTIC = "BILAN-ORTHOPTIQUE"  # the orthoptist's assessment report
REPORT = report_pdf("Bilan orthoptique", "Vision binoculaire normale.")  # a real PDF
ORANGE, GREEN = "rgb(194, 94, 0)", "rgb(28, 107, 52)"  # the badges' borders (app.css)


def status(live: LiveWorld) -> dict[str, Any]:
    with live.agent.client() as api:
        return dict(api.get("/api/status").json())


def patient_in(page: Any, live: LiveWorld, insert_card: Insert, vitale: str,
               cps: str = "orthoptist") -> Any:
    """The professional's session open in the page, the patient's Vitale card inserted."""
    insert_card(live.cps(cps), slot=0)
    insert_card(VirtualVitale.from_profile(vitale), slot=1)
    unlock(page)
    page.get_by_role("tab", name="Patient").click()
    return page


def border(locator: Any) -> str:
    return str(locator.evaluate("node => getComputedStyle(node).borderTopColor"))


def test_a_retrieved_identity_holds_the_deposit_until_a_passport_qualifies_it(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert, tmp_path: Path) -> None:
    page = patient_in(open_page(), live, insert_card, "single")
    # 1. Beside the name: récupérée, orange, and what to do; the INS traits to compare.
    expect(page.locator("#patient-name")).to_have_text("CLAIRE MARTIN")
    badge = page.locator("#identity-badge")
    expect(badge).to_have_text("Identité récupérée — vérifiez une pièce d'identité")
    assert border(badge) == ORANGE
    traits = page.locator("#identity-traits")
    for shown in ("MARTIN", "CLAIRE", "féminin", "17/05/1984", "code INSEE 75114",
                  "284057511402396"):
        expect(traits).to_contain_text(shown)
    # 2. The check asked for, with the documents the agent knows; an adult is offered no
    # minor's document, and nothing is chosen for the user.
    form = page.locator("#identity-form")
    expect(form).to_be_visible()
    expect(form).to_contain_text("Pièce d'identité vérifiée")
    # The card gave the patient: the card-less search is folded away, still at hand.
    expect(page.locator("#identity-search-box")).not_to_have_attribute("open", "")
    expect(page.locator("#identity-search-box summary")).to_have_text("Patient sans carte")
    kind = page.get_by_label("Nature de la pièce d'identité")
    expect(kind).to_have_value("")
    options = kind.locator("option").all_inner_texts()
    assert "Passeport" in options and "Titre de séjour" in options
    assert not [o for o in options if "mineur" in o]
    expect(page.get_by_role("button", name="Enregistrer la vérification")).to_be_disabled()
    shot(page, "identity-recuperee")

    # 6. The deposit form is there but held, with the reason and the way out.
    with live.agent.client() as api:
        assert api.post("/api/dmp", json={"consent": True}).status_code == 201
    page.get_by_role("tab", name="Dépôt").click()
    reason = page.locator("#deposit-identity")
    expect(reason).to_contain_text("Identité du patient non qualifiée (statut : récupérée)")
    expect(page.locator("#deposit-form")).to_be_visible()
    for control in ("#deposit-file", "#deposit-type", "#deposit-title", "#deposit-submit"):
        expect(page.locator(control)).to_be_disabled()
    shot(page, "identity-deposit-held")
    # The agent refuses anyway, before anything is queued: its message shown as is (a form
    # submitted behind the page's back, as a stale page would).
    page.evaluate("""(code) => {
        const form = document.getElementById('deposit-form');
        const file = new File(['%PDF-1.4 bilan'], 'bilan.pdf', {type: 'application/pdf'});
        const files = new DataTransfer();
        files.items.add(file);
        document.getElementById('deposit-file').files = files.files;
        const kind = document.getElementById('deposit-type');
        kind.value = code;
        form.requestSubmit();
    }""", ORTHOPTIC)
    expect(page.locator("#deposit-message")).to_contain_text(
        "Identité du patient non qualifiée (statut : récupérée) : aucun document ne peut "
        "être déposé sous cet INS")
    assert status(live)["outbox"]["items"] == []
    page.get_by_role("button", name="Vérifier la pièce d'identité").click()
    expect(page.get_by_role("tab", name="Patient")).to_have_attribute("aria-selected", "true")

    # The passport checked: qualifiée, green, the document and its date said.
    kind.select_option(label="Passeport")
    page.get_by_role("button", name="Enregistrer la vérification").click()
    expect(page.locator("#identity-message")).to_contain_text("Identité qualifiée")
    expect(badge).to_have_text("Identité qualifiée")
    assert border(badge) == GREEN
    expect(page.locator("#identity-checked")).to_contain_text(
        "Pièce d'identité vérifiée : Passeport, le ")
    expect(form).to_be_hidden()
    identity = status(live)["patient"]["identity"]
    assert identity["qualified"] and identity["document"]["code"] == "PA"
    shot(page, "identity-qualifiee")

    # The deposit form is usable now, and the document reaches the DMP with the identity.
    page.get_by_role("tab", name="Dépôt").click()
    expect(reason).to_be_hidden()
    report = tmp_path / "bilan-orthoptique.pdf"
    report.write_bytes(REPORT)
    page.get_by_label("Type de document").select_option(ORTHOPTIC)
    page.get_by_label("Déposez le fichier ici").set_input_files(report)
    page.get_by_role("button", name=re.compile(r"^Déposer")).click()
    expect(page.locator("#deposits")).to_contain_text("Déposé", timeout=30_000)
    stored = eventually(lambda: host_rows(
        live, "SELECT resource FROM submission_sets WHERE ins = ?", "284057511402396"))
    assert any('"QUAL"' in str(row[0]) and '"PA"' in str(row[0]) for row in stored), stored


def test_homonyms_wait_for_the_users_choice_and_one_is_chosen(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    page = patient_in(open_page(), live, insert_card, "homonym")
    # 4. Both identities, every trait, one button each, none chosen.
    choice = page.locator("#identity-choose")
    expect(choice).to_be_visible()
    expect(choice).to_contain_text("Plusieurs identités renvoyées par le service INS")
    candidates = page.locator("#identity-candidates > li")
    expect(candidates).to_have_count(2)
    # Nothing is preselected: no candidate's button has the focus.
    assert page.evaluate("!document.activeElement.closest('#identity-candidates')")
    for shown in ("GIRARD", "PAUL HENRI", "masculin", "00/08/1972", "code INSEE 33063",
                  "à l'étranger (code INSEE 99134)", "172083306312348", "172089913404594",
                  "Rang de naissance"):
        expect(choice).to_contain_text(shown)
    expect(choice.get_by_role("button", name=re.compile("^Choisir"))).to_have_count(2)
    assert status(live)["patient"]["state"] == "choosing-identity"  # nothing picked
    expect(page.locator("#patient-ready")).to_be_hidden()
    expect(page.locator("#sb-patient")).to_have_text("Choix de l'identité (INS)")
    # The other panels wait for the choice.
    page.get_by_role("tab", name="Dépôt").click()
    expect(page.locator("#deposit-message-top")).to_contain_text("plusieurs identités")
    expect(page.locator("#deposit-form")).to_be_hidden()
    page.get_by_role("tab", name="Patient").click()
    shot(page, "identity-homonyms")

    abroad = candidates.filter(has_text="99134")
    abroad.get_by_role("button", name=re.compile("^Choisir PAUL HENRI GIRARD")).click()
    expect(page.locator("#patient-ready")).to_be_visible()
    expect(choice).to_be_hidden()
    expect(page.locator("#patient-name")).to_have_text("PAUL GIRARD")
    expect(page.locator("#identity-badge")).to_contain_text("Identité récupérée")
    expect(page.locator("#identity-traits")).to_contain_text("à l'étranger (code INSEE 99134)")
    assert status(live)["patient"]["patient"]["ins"] == "172089913404594"


def test_a_patient_without_a_card_is_found_by_typed_traits(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("orthoptist"), slot=0)  # no Vitale card in any reader
    page = open_page()
    unlock(page)
    page.get_by_role("tab", name="Patient").click()
    # 5. With no patient, the card-less search is open and ready to fill.
    box = page.locator("#identity-search-box")
    expect(box).to_have_attribute("open", "")
    page.get_by_label("Nom de naissance").fill("Legrand")
    page.get_by_label("Prénoms (tous").fill("Jean-Pierre")
    page.get_by_label("Masculin").check()
    date = page.get_by_label("Date de naissance (JJ/MM/AAAA")
    date.fill("13/6/53")  # the agent names the trait, nothing is searched
    page.get_by_role("button", name="Rechercher auprès du service INS").click()
    expect(page.locator("#identity-search-message")).to_contain_text("Date de naissance")
    assert status(live)["patient"]["state"] == "none"
    date.fill("13/06/1953")
    page.get_by_label("Nom de naissance").fill("Legrant")  # nobody: said, the form kept
    page.get_by_role("button", name="Rechercher auprès du service INS").click()
    expect(page.locator("#identity-search-message")).to_contain_text(
        "Aucune identité trouvée par le service INS pour ces traits")
    expect(box).to_have_attribute("open", "")
    expect(page.locator("#identity-badge")).to_be_hidden()
    page.get_by_label("Nom de naissance").fill("Legrand")
    page.get_by_role("button", name="Rechercher auprès du service INS").click()
    expect(page.locator("#identity-search-message")).to_contain_text(
        "Identité trouvée : JEAN-PIERRE LOUIS MARIE LEGRAND.")
    expect(page.locator("#patient-name")).to_have_text("JEAN-PIERRE LEGRAND")
    expect(page.locator("#identity-badge")).to_contain_text("Identité récupérée")
    expect(page.locator("#identity-traits")).to_contain_text("code INSEE 13055")
    patient = status(live)["patient"]
    assert patient["source"] == "traits" and patient["patient"]["ins"] == "153061305521187"
    shot(page, "identity-no-card")

    # Found by the search: the search stays open for another one.
    expect(box).to_have_attribute("open", "")
    # Homonyms by traits: the same choice, never made for the user.
    page.get_by_label("Nom de naissance").fill("Morel")
    page.get_by_label("Prénoms (tous").fill("Pierre")
    date.fill("04/07/1965")
    page.get_by_role("button", name="Rechercher auprès du service INS").click()
    expect(page.locator("#identity-search-message")).to_contain_text("2 identités trouvées")
    expect(page.locator("#identity-candidates > li")).to_have_count(2)
    assert status(live)["patient"]["state"] == "choosing-identity"


def test_the_check_meets_other_traits_and_says_the_new_ones(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    ins = "290064410907772"
    page = patient_in(open_page(), live, insert_card, "corrected")
    expect(page.locator("#identity-traits")).to_contain_text("code INSEE 44109")
    expect(page.locator("#identity-notice")).to_be_hidden()
    # The registry corrects the birth place while the patient is at the counter.
    correct_identity(live, ins, "--birth-place", "44000")
    page.get_by_label("Nature de la pièce d'identité").select_option("carte-identite")
    page.get_by_role("button", name="Enregistrer la vérification").click()
    message = page.locator("#identity-message")
    expect(message).to_contain_text("L'identité renvoyée par le service INS a changé")
    # 2. The new traits, the one that changed marked in words.
    expect(message).to_contain_text("Les traits que le service INS renvoie maintenant")
    expect(message.locator("dd.id-changed")).to_have_text("code INSEE 44000 (modifié)")
    expect(message).to_be_focused()
    # 3. The agent's notice as a warning; the traits shown are the new ones, not qualified.
    notice = page.locator("#identity-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("vérifiez de nouveau une pièce d'identité")
    expect(page.locator("#identity-traits")).to_contain_text("code INSEE 44000")
    expect(page.locator("#identity-badge")).to_contain_text("Identité récupérée")
    assert status(live)["patient"]["identity"]["qualified"] is False
    shot(page, "identity-changed")
    # The document checked against the new traits qualifies the identity.
    page.get_by_label("Nature de la pièce d'identité").select_option("carte-identite")
    page.get_by_role("button", name="Enregistrer la vérification").click()
    expect(page.locator("#identity-badge")).to_have_text("Identité qualifiée")
    expect(notice).to_be_hidden()


def test_a_minors_birth_certificate_asks_for_the_parents_document(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    page = patient_in(open_page(), live, insert_card, "family")
    page.set_viewport_size({"width": 360, "height": 800})
    page.locator("#beneficiaries").get_by_role("button", name=re.compile("LÉA")).click()
    expect(page.locator("#patient-name")).to_have_text("LÉA DURAND")
    kind = page.get_by_label("Nature de la pièce d'identité")
    kind.select_option("livret-de-famille")
    parent = page.get_by_label("Pièce d'identité du parent")
    expect(parent).to_be_visible()
    submit = page.get_by_role("button", name="Enregistrer la vérification")
    expect(submit).to_be_disabled()  # until the parent's document is said
    assert not [o for o in parent.locator("option").all_inner_texts() if "mineur" in o]
    parent.select_option("passeport")
    expect(submit).to_be_enabled()
    # Usable at 360 px: nothing wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    shot(page, "identity-minor-360")
    submit.click()
    expect(page.locator("#identity-badge")).to_have_text("Identité qualifiée")
    expect(page.locator("#identity-checked")).to_contain_text(
        "Livret de famille (mineur, avec la pièce d'identité du parent) — parent : Passeport")
    document = status(live)["patient"]["identity"]["document"]
    assert document["code"] == "LEP" and document["parent"]["type"] == "passeport"
