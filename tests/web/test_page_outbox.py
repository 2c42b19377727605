"""The page says why a deposit waits and when it is tried again (issue 19, item 6): the host
is stopped after the deposit is accepted, the page shows the reason the API has (not only
"En attente d'envoi (3 tentatives)") with the time of the next attempt, then "Déposé" once
the host is back; the host stored it once. Debian's Chromium against a live world (its own
host, agent and cards, separate from test_page.py's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from cardreader.virtual.vitale import VirtualVitale
from tests.cda_support import report_pdf
from tests.conftest import Insert
from tests.live import LiveWorld, qualify
from tests.web.support import shot

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]


def test_a_waiting_deposit_shows_why_and_when_it_is_tried_again(
        open_page: Any, live: LiveWorld, insert_card: Insert, tmp_path: Path) -> None:
    insert_card(live.cps("gp"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": "1234"}).status_code == 200
        patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        if patient["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        code = api.get("/api/deposit-types").json()[0]["code"]
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)
    page = open_page("token=" + live.agent.token + "&section=deposit")
    expect(page.locator("#sb-session")).to_contain_text("Ouverte")
    live.host.stop()
    try:
        report = tmp_path / "compte-rendu.pdf"
        report.write_bytes(report_pdf("Compte rendu en attente"))
        page.get_by_label("Type de document").select_option(code)
        page.get_by_label("Titre").fill("Compte rendu en attente")
        page.get_by_label("Déposez le fichier ici").set_input_files(report)
        page.get_by_role("button", name=re.compile(r"^Déposer")).click()
        item = page.locator("#deposits li", has_text="Compte rendu en attente")
        expect(item).to_contain_text("En attente d'envoi")
        reason = item.locator(".reason")
        expect(reason).to_contain_text("hôte DMP injoignable")
        expect(reason).to_contain_text(re.compile(r"nouvel essai (à \d\d:\d\d|imminent)"))
        shot(page, "deposit-waiting-reason")
    finally:
        live.host.start()
    expect(item).to_contain_text("Déposé", timeout=30_000)
    ins = patient["patient"]["ins"]
    assert [title for _uid, title, _code in live.stored(ins)].count(
        "Compte rendu en attente") == 1
