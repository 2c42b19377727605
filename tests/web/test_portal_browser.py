"""The patient portal in Debian's real Chromium: the portal served by uvicorn on a real port,
the host's store shared with an in-process professional API (whose accesses the patient
reads), a real SMTP server where the one-time codes arrive, and a clock the test moves."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from host.mailbox import SmtpServer, free_port
from host.portal.app import PortalSettings, create_portal
from host.settings import NotifySettings
from host.store import upgrade
from tests.host.documents_support import (
    FHIR,
    PDF,
    Pki,
    deposit_bundle,
    entry_for,
    install_pki,
    make_pki,
)
from tests.host.harness import GP, NURSE, OPTICIAN, PHARMACIST, InProcessHost
from wire import codes
from wire.mhd import Patient, parse_transaction_response

pytestmark = pytest.mark.browser

CLAIRE = "284057511402396"
ADDRESS = "claire.martin@example.org"
PASSWORD = "une phrase de passe assez longue"
SEARCH = f"/fhir/DocumentReference?patient=Patient/{CLAIRE}&status=current"
BTG = {"x-dmp-access-mode": "bris_de_glace", "x-dmp-justification": "patiente%20inconsciente"}


@dataclass
class World:
    host: InProcessHost
    smtp: SmtpServer
    url: str
    access_code: str
    document_id: str

    def codes_sent(self) -> list[str]:
        return [re.search(r"\b(\d{6})\b", message["Subject"]).group(1)  # type: ignore[union-attr]
                for _, message in self.smtp.mailbox.received
                if "code de connexion" in message["Subject"]]

    def next_code(self, already: int) -> str:
        assert self.smtp.mailbox.wait_for(already + 1, 10), "no sign-in code arrived"
        return self.codes_sent()[already]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture
def world(tmp_path: Path, pki: Pki) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'host.db'}"
    upgrade(url)
    host = InProcessHost(url, tmp_path)
    install_pki(pki, host)
    created = host.client(PHARMACIST).post(f"/dossiers/{CLAIRE}", json={
        "consent": True, "contact": {"email": ADDRESS}})
    assert created.status_code == 201, created.text
    optician = host.client(OPTICIAN)
    assert optician.put(f"/dossiers/{CLAIRE}/authorizations/{OPTICIAN.id_nat_ps}",
                        json={}).status_code == 201
    claire = Patient(CLAIRE, codes.INS_NIR_OID)
    bundle = deposit_bundle(pki.optician, [(entry_for(PDF, OPTICIAN, patient=claire), PDF)],
                            patient=claire).bundle
    deposited = optician.post("/fhir", content=json.dumps(bundle), headers=FHIR)
    assert deposited.status_code == 200, deposited.text
    document_id = next(e.location.split("/")[1]
                       for e in parse_transaction_response(deposited.content)
                       if e.location.startswith("DocumentReference/"))
    gp = host.client(GP)
    assert gp.put(f"/dossiers/{CLAIRE}/authorizations/{GP.id_nat_ps}", json={}
                  ).status_code == 201
    assert gp.get(SEARCH).status_code == 200
    smtp = SmtpServer().start()
    app = create_portal(PortalSettings(url, NotifySettings(smtp_url=smtp.url, timeout=5)),
                        engine=host.app.state.engine, clock=host.clock)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the portal did not start"
        time.sleep(0.02)
    try:
        yield World(host, smtp, f"http://localhost:{port}", created.json()["accessCode"],
                    document_id)
    finally:
        server.should_exit = True
        thread.join(10)
        smtp.stop()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """new_page() -> a page in a fresh browser context (its own cookies: a second browser)."""
    contexts: list[Any] = []

    def new_page() -> Any:
        context = chromium.new_context(locale="fr-FR", timezone_id="Europe/Paris",
                                       viewport={"width": 1280, "height": 800})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


def sign_in(page: Any, world: World, secret: str) -> None:
    page.goto(f"{world.url}/connexion")
    page.fill("#ins", CLAIRE)
    page.fill("#secret", secret)
    page.click("button[type=submit]")


def enter_code(page: Any, code: str) -> None:
    page.fill("#code", code)
    page.click("form[action='/code'] button")


def first_sign_in(page: Any, world: World) -> None:
    sent = len(world.codes_sent())
    sign_in(page, world, world.access_code)
    page.wait_for_url("**/code")
    enter_code(page, world.next_code(sent))
    page.wait_for_url("**/mot-de-passe")
    page.fill("#password", PASSWORD)
    page.fill("#again", PASSWORD)
    page.click("form[action='/mot-de-passe'] button")
    page.wait_for_url("**/historique**")


def notice(page: Any) -> str:
    return str(page.locator(".notice").inner_text())


def test_the_patient_signs_in_and_acts_on_their_dmp(world: World,
                                                    browser_page: Any) -> None:
    page = browser_page()
    first_sign_in(page, world)
    assert "mot de passe est enregistré" in notice(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-dmp-portail")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    # Who looked: the GP's search is there, and the chain checks out.
    history = page.locator("table.history").inner_text()
    assert GP.last_name.upper() in history.upper()
    assert "Historique intègre" in page.locator("#chain").inner_text()

    # Mask the optician's report: the GP (authorised, not the author) no longer finds it.
    page.click("nav >> text=Documents")
    page.click("ul.documents li >> text=Masquer aux professionnels")
    assert "masqué" in notice(page)
    gp = world.host.client(GP)
    found = gp.get(SEARCH).json()
    assert world.document_id not in json.dumps(found)
    page.click("ul.documents li >> text=Démasquer")
    found = gp.get(SEARCH).json()
    assert world.document_id in json.dumps(found)

    # Block the GP: refused at once, and the refusal is in the history.
    page.click("nav >> text=Professionnels")
    row = page.locator(f"ul.people li[data-id='{GP.id_nat_ps}']")
    row.locator("text=Bloquer").click()
    assert "ne peut plus accéder" in notice(page)
    refused = gp.get(SEARCH)
    assert refused.status_code == 403
    page.click("nav >> text=Historique des accès")
    page.click("text=Accès refusés")
    assert "Refusé" in page.locator("table.history").inner_text()
    page.click("nav >> text=Professionnels")
    page.locator(f"ul.people li[data-id='{GP.id_nat_ps}']").locator("text=Débloquer").click()
    assert gp.get(SEARCH).status_code == 200

    # The médecin traitant: declared here, seen by the doctor's own existence test.
    page.locator(f"ul.people li[data-id='{GP.id_nat_ps}']").locator(
        "text=Déclarer mon médecin traitant DMP").click()
    assert "médecin traitant DMP est déclaré" in notice(page)
    assert gp.get(f"/dossiers/{CLAIRE}").json()["medecinTraitant"] is True

    # Oppose break-the-glass: a nurse's emergency access is then refused.
    page.click("nav >> text=Réglages")
    page.check("input[name=oppose_bris_de_glace]")
    page.click("form[action='/reglages/oppositions'] button")
    assert "accès d'urgence sont enregistrés" in notice(page)
    emergency = world.host.client(NURSE, **BTG).get(f"/dossiers/{CLAIRE}")
    assert emergency.status_code == 403

    # Close, then reactivate.
    page.check("input[name=confirmer]")
    page.click("form[action='/dmp/fermeture'] button")
    assert "Votre DMP est fermé" in page.content()
    assert gp.get(f"/dossiers/{CLAIRE}").json()["status"] == "closed"
    page.click("form[action='/dmp/reactivation'] button")
    assert "réactivé" in notice(page)
    assert gp.get(f"/dossiers/{CLAIRE}").json()["status"] == "open"

    # Every one of these actions is in the patient's own history, then sign out.
    page.click("nav >> text=Historique des accès")
    assert "Masquage d'un document" not in page.locator("table.history").inner_text()
    page.click("text=Tout, y compris vos visites")
    mine = page.locator("table.history").inner_text()
    for what in ("Blocage d'un professionnel", "Déblocage d'un professionnel",
                 "Masquage d'un document", "Fermeture du DMP", "Réactivation du DMP"):
        assert what in mine, what
    page.click("text=Se déconnecter")
    assert "Vous êtes déconnecté" in page.content()
    page.goto(f"{world.url}/historique")
    assert page.url.endswith("/connexion")


def test_wrong_and_expired_codes(world: World, browser_page: Any) -> None:
    page = browser_page()
    sign_in(page, world, "AAAA-BBBB-CCCC")
    assert "incorrect" in page.locator(".error").inner_text()
    assert page.url.endswith("/connexion")
    assert world.codes_sent() == []  # nothing sent on a wrong secret

    sign_in(page, world, world.access_code)
    page.wait_for_url("**/code")
    code = world.next_code(0)
    wrong = "000000" if code != "000000" else "111111"
    enter_code(page, wrong)
    assert "Code incorrect. Encore 4 essais." in page.locator(".error").inner_text()

    world.host.clock.advance(minutes=11)  # the code lived ten minutes
    enter_code(page, code)
    assert "expiré" in page.locator(".error").inner_text()
    page.click("text=Recevoir un nouveau code")
    assert "nouveau code a été envoyé" in notice(page)
    enter_code(page, world.next_code(1))
    page.wait_for_url("**/mot-de-passe")

    # The sheet's code served once: after the password is chosen, only the password works.
    page.fill("#password", PASSWORD)
    page.fill("#again", PASSWORD)
    page.click("form[action='/mot-de-passe'] button")
    page.wait_for_url("**/historique**")
    other = browser_page()
    sign_in(other, world, world.access_code)
    assert "Votre fiche ne sert plus" in other.locator(".error").inner_text()


def test_a_second_browser_never_rides_on_the_first_ones_session(world: World,
                                                               browser_page: Any) -> None:
    first = browser_page()
    first_sign_in(first, world)
    second = browser_page()
    second.goto(f"{world.url}/historique")
    assert second.url.endswith("/connexion")  # not signed in

    # The second browser's code is its own: a code sent for another browser is no use in it.
    sent = len(world.codes_sent())
    sign_in(second, world, PASSWORD)
    second.wait_for_url("**/code")
    own = world.next_code(sent)
    other = browser_page()
    sign_in(other, world, PASSWORD)
    other.wait_for_url("**/code")
    foreign = world.next_code(sent + 1)
    if foreign != own:
        enter_code(second, foreign)
        assert "Code incorrect" in second.locator(".error").inner_text()
    enter_code(second, own)
    second.wait_for_url("**/historique**")

    # After signing out, the old cookie opens nothing, even replayed in another browser.
    cookie = next(c for c in second.context.cookies() if c["name"] == "__Host-dmp-portail")
    second.click("text=Se déconnecter")
    third = browser_page()
    third.context.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path",
                                                       "secure", "httpOnly", "sameSite")}])
    third.goto(f"{world.url}/historique")
    assert third.url.endswith("/connexion")
