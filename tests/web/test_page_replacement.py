"""A new version of one's own document from the page, in real Chromium against the live
agent and host: the Dossier's "Nouvelle version" puts the deposit form in replacement mode
(naming the document replaced, its type and title kept), the file goes to the agent's
replace route, the DMP then lists the new version only, and the new CDA names the version
it replaces (relatedDocument RPLC, same setId, next versionNumber: docs/cda.md).
Cancelling leaves an ordinary deposit. A list drawn again keeps the rows of the documents
that did not change (a press in flight is not lost)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import Insert
from tests.live import LiveWorld
from tests.web.support import page_on_qualified_patient, shot
from wire import cda

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]
CONSULTATION = "11488-4"  # compte rendu de consultation: a GP deposits it (RW)


def test_a_gp_deposits_a_new_version_of_her_report_from_the_page(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert, tmp_path: Path) -> None:
    page, patient = page_on_qualified_patient(open_page, live, insert_card, "gp")
    with live.agent.client() as api:
        first = api.post("/api/deposits", params={"typeCode": CONSULTATION,
                                                  "title": "Consultation du 7 décembre"},
                         content=b"Examen normal.\n",
                         headers={"content-type": "text/plain"}, timeout=120)
        assert first.status_code == 202, first.text
        live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=120)
        old = next(d for d in api.get("/api/documents").json()
                   if d["title"] == "Consultation du 7 décembre")
        old_header = cda.read(api.get(f"/api/documents/{old['uniqueId']}/content").content
                              ).header

    page.get_by_role("tab", name="Dossier").click()
    row = page.locator("#documents-body tr", has_text="Consultation du 7 décembre")
    row.get_by_role("button", name=re.compile("^Nouvelle version")).click()

    form = page.locator("#deposit-form")
    expect(form).to_be_visible()
    banner = form.locator("#deposit-replacing")
    expect(banner).to_contain_text("Nouvelle version de « Consultation du 7 décembre »")
    expect(form.get_by_label("Type de document")).to_have_value(CONSULTATION)
    title = form.get_by_label("Titre")
    expect(title).to_have_value("Consultation du 7 décembre")
    corrected = tmp_path / "consultation-v2.txt"
    corrected.write_text("Examen normal. Tension 12/8 ajoutée.\n", encoding="utf-8")
    form.get_by_label("Déposez le fichier ici").set_input_files(corrected)
    title.fill("Consultation du 7 décembre (corrigée)")
    shot(page, "replacement-form")
    form.get_by_role("button", name=re.compile("^Déposer")).click()
    expect(page.locator("#deposit-message")).to_contain_text(
        "Nouvelle version de « Consultation du 7 décembre » signée", timeout=120_000)
    expect(banner).to_be_hidden()  # the next deposit is an ordinary one again
    live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0 and not s["outbox"]["items"],
                        timeout=120)

    with live.agent.client() as api:
        shown = [d for d in api.get("/api/documents").json()
                 if d["title"].startswith("Consultation du 7 décembre")]
        assert [d["title"] for d in shown] == ["Consultation du 7 décembre (corrigée)"]
        new = shown[0]
        body = api.get(f"/api/documents/{new['uniqueId']}/content").content
    header = cda.read(body).header
    assert header.replaces is not None and old["uniqueId"].endswith(header.replaces), (
        header.replaces, old["uniqueId"])
    assert header.set_id == old_header.set_id and header.document_id != old_header.document_id
    assert header.version == (old_header.version or 1) + 1
    assert patient["ins"]  # the qualified patient all along

    page.get_by_role("tab", name="Dossier").click()
    expect(page.locator("#documents-body tr", has_text="(corrigée)")).to_have_count(1)
    expect(page.locator("#documents-body tr", has_text=re.compile(
        r"Consultation du 7 décembre$"))).to_have_count(0)
    shot(page, "replacement-done")


def test_cancelling_the_new_version_leaves_an_ordinary_deposit(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    page, _ = page_on_qualified_patient(open_page, live, insert_card, "gp")
    with live.agent.client() as api:
        assert api.post("/api/deposits", params={"typeCode": CONSULTATION,
                                                 "title": "Lettre à annuler"},
                        content=b"Lettre.\n", headers={"content-type": "text/plain"},
                        timeout=120).status_code == 202
        live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=120)
    page.get_by_role("tab", name="Dossier").click()
    row = page.locator("#documents-body tr", has_text="Lettre à annuler")
    row.get_by_role("button", name=re.compile("^Nouvelle version")).click()
    banner = page.locator("#deposit-replacing")
    expect(banner).to_be_visible()
    banner.get_by_role("button", name="Annuler la nouvelle version").click()
    expect(banner).to_be_hidden()
    expect(page.get_by_label("Type de document")).to_have_value("")  # chosen again
    expect(page.get_by_label("Titre")).to_have_value("")


def test_a_row_whose_document_did_not_change_is_kept_when_the_list_is_drawn_again(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    # A list drawn again under the finger (another document listed) keeps the rows that did
    # not change: a press landing meanwhile is not lost, a busy button stays busy.
    page, _ = page_on_qualified_patient(open_page, live, insert_card, "gp")

    def deposit(title: str) -> None:
        with live.agent.client() as api:
            assert api.post("/api/deposits", params={"typeCode": CONSULTATION, "title": title},
                            content=b"Lettre.\n", headers={"content-type": "text/plain"},
                            timeout=120).status_code == 202
            live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=120)

    deposit("Lettre gardée")
    page.get_by_role("tab", name="Dossier").click()
    kept = page.locator("#documents-body tr", has_text="Lettre gardée")
    expect(kept).to_have_count(1, timeout=30_000)
    kept.evaluate("row => { row.dataset.probe = 'same'; }")
    deposit("Lettre suivante")
    expect(page.locator("#documents-body tr", has_text="Lettre suivante")).to_have_count(
        1, timeout=30_000)
    expect(kept).to_have_attribute("data-probe", "same")


def test_a_practice_cda_that_names_its_old_version_is_deposited_as_the_new_one(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert, tmp_path: Path) -> None:
    # The practice's software wrote a corrected VSM naming the first (relatedDocument RPLC):
    # dropped on the ordinary form, the page says it is the new version of that document.
    from tests.cda_support import VSM, as_version, for_patient
    from wire.cda.level1 import new_oid

    page, patient = page_on_qualified_patient(open_page, live, insert_card, "gp")
    vsm = for_patient(VSM.read_bytes(), patient["ins"], patient["insOid"])
    first = as_version(vsm, new_oid())
    with live.agent.client() as api:
        answer = api.post("/api/deposits", params={"typeCode": "60591-5"}, content=first,
                          headers={"content-type": "text/xml"}, timeout=120)
        assert answer.status_code == 202, answer.text
        old_id, old_title = answer.json()["uniqueId"], answer.json()["title"]
        live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=120)
    corrected = tmp_path / "vsm-corrigee.xml"
    corrected.write_bytes(as_version(vsm, new_oid(), replaces=cda.read(first).header))

    page.get_by_role("tab", name="Dépôt").click()
    form = page.locator("#deposit-form")
    form.get_by_label("Déposez le fichier ici").set_input_files(corrected)
    # Its type and title are its header's: the form does not ask them, and says so.
    expect(form.locator("#deposit-type")).to_be_hidden()
    expect(form.locator("#deposit-title")).to_be_hidden()
    expect(form.locator("#deposit-cda-hint")).to_contain_text("son type et son titre")
    form.get_by_role("button", name=re.compile("^Déposer")).click()
    expect(page.locator("#deposit-message")).to_contain_text(
        f"Nouvelle version de « {old_title} » signée", timeout=120_000)
    expect(form.get_by_label("Type de document")).to_be_visible()  # the next file's, asked
    live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0 and not s["outbox"]["items"],
                        timeout=120)
    stored = live.stored(patient["ins"])
    assert old_id not in [unique_id for unique_id, *_rest in stored]
    assert [title for _id, title, _type in stored].count(old_title) == 1  # the new version
