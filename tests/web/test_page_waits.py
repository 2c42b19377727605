"""Issue 18 in Chromium: the page says what it waits for after one second (what, since when),
offers to cancel, and never leaves a control disabled; every wait ends by itself.

The host is made unreachable by stopping its process (SIGSTOP): its port still accepts
connections, nothing answers, like a link that drops everything; SIGCONT gives it back. No
time is asserted, only that the line appears, its counter moves and cancel works. A live
world of its own (host, agent, cards)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError as missing:  # a failure that says what to do, never a silent skip
    raise ImportError("Playwright for Python is missing: run scripts/setup (pip package "
                      "playwright)") from missing

from cardreader.virtual.vitale import VirtualVitale
from tests.conftest import Insert
from tests.live import LiveWorld
from tests.web.support import (
    dossier,
    eventually,
    host_frozen,
    record_waits,
    shot,
    unlock,
    waited_seconds,
    waits_seen,
)

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]
PIN = "1234"
BACKGROUND = "(l'agent peut terminer l'opération en arrière-plan)"


def patient_ins(live: LiveWorld) -> str:
    status = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
    return str(status["patient"]["patient"]["ins"])


def counting(line: Any) -> None:
    """The line's "depuis N s" moves on."""
    first = waited_seconds(line)
    expect(line).not_to_contain_text(f"depuis {first} s")
    assert waited_seconds(line) > first


def test_a_dmp_creation_the_host_does_not_answer_is_said_and_cancelled(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page()
    unlock(page)
    expect(page.locator("#patient-dmp")).to_contain_text("pas de DMP")
    ins = patient_ins(live)
    page.get_by_role("button", name="Créer le DMP").click()
    page.get_by_label("consent à la création de son DMP").check()
    create = page.locator("#create-submit")
    lines = page.locator("#wait-lines")
    with host_frozen(live):
        create.click()
        expect(create).to_be_disabled()
        line = lines.locator(".wait")
        expect(line).to_contain_text("En attente de l'hôte DMP : Création du DMP")
        expect(line).to_contain_text(re.compile(r"depuis \d+ s"))
        expect(page.get_by_role("status").filter(has=line)).to_have_attribute(
            "aria-live", "polite")
        counting(line)
        shot(page, "wait-create")
        line.get_by_role("button", name="Annuler").click()
        # The page stops waiting; the form is usable again, the consent still ticked.
        expect(page.locator("#wait-outcomes")).to_contain_text(
            f"Annulé : Création du DMP {BACKGROUND}")
        expect(line).to_have_count(0)
        expect(create).to_be_enabled()
        expect(create).to_be_focused()
        expect(page.get_by_label("consent à la création de son DMP")).to_be_checked()
        expect(page.locator("#create-message")).not_to_contain_text("Création du DMP…")
        shot(page, "wait-create-cancelled")
    # Honest: the agent went on with it, and the host created the DMP once back.
    eventually(lambda: dossier(live, ins), timeout=20)
    expect(page.locator("#sb-patient")).to_contain_text("DMP ouvert")


def test_a_fast_answer_shows_no_waiting_line(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        if patient["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
    page = open_page(f"token={live.agent.token}&section=dossier")
    expect(page.locator("#documents-count")).to_contain_text("document(s)")
    record_waits(page)
    page.get_by_label("Recherche").fill("compte rendu")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.locator("#documents-count")).to_contain_text("filtrés")
    page.get_by_role("button", name="Effacer").click()
    page.get_by_role("tab", name="Paramètres").click()
    expect(page.locator("#settings-body tr").first).to_be_visible()
    page.get_by_role("tab", name="Patient").click()
    page.wait_for_timeout(1500)  # past the second after which a wait would be said
    assert waits_seen(page) == []
    expect(page.locator("#wait-lines .wait")).to_have_count(0)


def test_a_session_opening_the_host_does_not_answer(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    page = open_page()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    lines = page.locator("#wait-lines")
    with host_frozen(live):
        page.get_by_label("Code porteur").fill(PIN)
        page.get_by_role("button", name="Ouvrir la session").click()
        line = lines.locator(".wait", has_text="Ouverture de la session DMP")
        expect(line).to_contain_text("En attente de l'hôte DMP : Ouverture de la session DMP")
        counting(line)
        line.get_by_role("button", name="Annuler").click()
        expect(page.locator("#wait-outcomes")).to_contain_text(
            f"Annulé : Ouverture de la session DMP {BACKGROUND}")
        # An opening talking to the host cannot be cancelled (DELETE /api/session only
        # cancels one waiting for the practice situation): the page stops waiting, and says
        # the agent's own opening, with its time and no "Annuler", until the agent ends it.
        expect(line).to_be_visible()
        expect(line.get_by_role("button")).to_have_count(0)
        counting(line)
        expect(page.get_by_label("Code porteur")).to_be_enabled()
        shot(page, "wait-session-cancelled")
    # The host back: the agent's opening ends, and the line with it.
    expect(page.locator("#sb-session")).to_contain_text("Ouverte", timeout=20_000)
    expect(lines.locator(".wait")).to_have_count(0)


def test_an_opening_waiting_for_the_structure_is_not_a_host_wait_and_can_be_cancelled(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    # The GP's card holds two practice situations: the first opening asks which one.
    insert_card(live.cps("gp"), slot=0)
    page = open_page()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    page.get_by_label("Code porteur").fill(PIN)
    page.get_by_role("button", name="Ouvrir la session").click()
    expect(page.locator("#situation-choose")).to_be_visible()
    record_waits(page)
    # The agent waits for the user, not the host: no waiting line, no timeout running.
    page.wait_for_timeout(1500)
    assert waits_seen(page) == []
    # The API's own cancel of an opening waiting for the choice (DELETE /api/session).
    page.get_by_role("button", name="Annuler l'ouverture").click()
    expect(page.locator("#sb-session")).to_contain_text("Verrouillée")
    expect(page.locator("#situation-choose")).to_be_hidden()
    expect(page.locator("#pin-message")).to_contain_text("Ouverture de session annulée")
    expect(page.get_by_role("button", name="Ouvrir la session")).to_be_enabled()
    expect(page.locator("#wait-lines .wait")).to_have_count(0)


def test_the_dossier_the_agent_reads_by_itself_is_said_with_its_time(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    page = open_page()
    unlock(page)
    lines = page.locator("#wait-lines")
    with host_frozen(live):
        insert_card(VirtualVitale.from_profile("single"), slot=1)
        expect(page.locator("#sb-patient")).to_contain_text("Lecture du dossier")
        line = lines.locator(".wait")
        expect(line).to_contain_text("En attente de l'hôte DMP : Lecture du dossier")
        counting(line)
        # The agent's own work: no "Annuler".
        expect(line.get_by_role("button")).to_have_count(0)
        shot(page, "wait-dossier")
    expect(page.locator("#sb-patient")).to_contain_text("CLAIRE MARTIN", timeout=20_000)
    expect(line).to_have_count(0)


def test_a_search_the_host_never_answers_ends_by_itself(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page(f"token={live.agent.token}&section=dossier")
    unlock(page)
    page.get_by_role("tab", name="Dossier").click()
    expect(page.locator("#documents-count")).to_contain_text("document(s)")
    # The page's own clock, to pass its timeout without waiting for it.
    page.clock.install()
    page.reload()
    expect(page.locator("#documents-count")).to_contain_text("document(s)")
    apply = page.get_by_role("button", name="Filtrer")
    with host_frozen(live):
        page.get_by_label("Inclure les archivés").check()  # asked of the host
        apply.click()
        expect(apply).to_be_disabled()
        line = page.locator("#wait-lines .wait")
        expect(line).to_contain_text("En attente de l'hôte DMP : Recherche des documents")
        page.clock.fast_forward(91_000)
        expect(page.locator("#wait-outcomes")).to_contain_text(
            "L'hôte DMP ne répond pas depuis 90 s : vérifiez la connexion, ou réessayez "
            "(Recherche des documents)")
        expect(line).to_have_count(0)
        expect(apply).to_be_enabled()
        expect(page.locator("#document-message")).not_to_contain_text("Recherche…")
        shot(page, "wait-timeout")
