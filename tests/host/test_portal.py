"""The patient portal's sign-in and its defences, over HTTP (the browser tests are in
tests/web/test_portal_browser.py): secrets, one-time codes, lockout, quotas, CSRF, origin,
cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from host import patient
from host.mailbox import SmtpServer
from host.portal import accounts
from host.portal.app import COOKIE, PortalSettings, create_portal
from host.settings import NotifySettings
from host.store.schema import portal_accounts, portal_sessions
from tests.host.harness import GP, PHARMACIST, InProcessHost

CLAIRE = "284057511402396"
THOMAS = "179116912304566"  # a known identity without a DMP
ADDRESS = "claire.martin@example.org"
PASSWORD = "une phrase de passe assez longue"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    host = InProcessHost(db_url, tmp_path)
    created = host.client(PHARMACIST).post(f"/dossiers/{CLAIRE}", json={
        "consent": True, "contact": {"email": ADDRESS}})
    assert created.status_code == 201, created.text
    host.access_code = created.json()["accessCode"]  # type: ignore[attr-defined]
    return host


def portal(host: InProcessHost, smtp: SmtpServer) -> TestClient:
    app = create_portal(PortalSettings(host.settings.database_url,
                                       NotifySettings(smtp_url=smtp.url, timeout=5)),
                        engine=host.app.state.engine, clock=host.clock)
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def last_code(smtp: SmtpServer) -> str:
    assert smtp.mailbox.wait_for(1, 10)
    subject = str(smtp.mailbox.received[-1][1]["Subject"])
    found = re.search(r"\b(\d{6})\b", subject)
    assert found, subject
    return found.group(1)


def signed_in(client: TestClient, host: InProcessHost, smtp: SmtpServer) -> str:
    """Sign in the first time (sheet code, emailed code, password); the CSRF token."""
    answer = client.post("/connexion", data={"ins": CLAIRE,
                                              "secret": host.access_code})  # type: ignore[attr-defined]
    assert answer.status_code == 303 and answer.headers["location"] == "/code", answer.text
    page = client.get("/code").text
    answer = client.post("/code", data={"csrf": csrf(page), "code": last_code(smtp)})
    assert answer.headers["location"] == "/mot-de-passe"
    page = client.get("/mot-de-passe").text
    answer = client.post("/mot-de-passe", data={"csrf": csrf(page), "password": PASSWORD,
                                                "again": PASSWORD})
    assert answer.status_code == 303
    return csrf(client.get("/historique").text)


def test_the_cookie_and_the_headers(host: InProcessHost, smtp: SmtpServer) -> None:
    client = portal(host, smtp)
    answer = client.post("/connexion", data={"ins": CLAIRE,
                                              "secret": host.access_code})  # type: ignore[attr-defined]
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag in cookie
    page = client.get("/connexion")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    # The message names the patient and says how long the code lives; never the INS.
    message = smtp.mailbox.received[-1][1]
    assert smtp.mailbox.received[-1][0] == [ADDRESS]
    assert CLAIRE not in message.as_string()
    assert "10 minutes" in message.get_body().get_content()  # type: ignore[union-attr]


def test_no_oracle_on_who_has_a_dmp(host: InProcessHost, smtp: SmtpServer) -> None:
    client = portal(host, smtp)
    unknown = client.post("/connexion", data={"ins": THOMAS, "secret": "AAAA-BBBB-CCCC"})
    wrong = client.post("/connexion", data={"ins": CLAIRE, "secret": "AAAA-BBBB-CCCC"})
    garbage = client.post("/connexion", data={"ins": "not an INS", "secret": "x"})
    assert unknown.status_code == wrong.status_code == garbage.status_code == 401
    error = re.compile(r'<p class="error"[^>]*>(.*?)</p>', re.S)
    assert error.search(unknown.text).group(1) == error.search(wrong.text).group(1)  # type: ignore[union-attr]
    assert smtp.mailbox.count() == 0
    # The wrong try on a real dossier is in its history; nothing was written for the other.
    log = patient.access_log(host.app.state.guard, CLAIRE, outcome="refused")
    assert [(e["action"], e["reason"]) for e in log] == [("portal_sign_in", "BAD_CREDENTIALS")]


def test_five_wrong_secrets_lock_the_account(host: InProcessHost, smtp: SmtpServer) -> None:
    client = portal(host, smtp)
    for _ in range(accounts.MAX_FAILURES):
        assert client.post("/connexion", data={"ins": CLAIRE, "secret": "nope"}
                           ).status_code == 401
    right = {"ins": CLAIRE, "secret": host.access_code}  # type: ignore[attr-defined]
    locked = client.post("/connexion", data=right)
    assert locked.status_code == 429 and "bloquée" in locked.text
    host.clock.advance(minutes=16)
    assert client.post("/connexion", data=right).status_code == 303


def test_codes_are_rate_limited_and_die_after_five_wrong_tries(
        host: InProcessHost, smtp: SmtpServer) -> None:
    client = portal(host, smtp)
    client.post("/connexion", data={"ins": CLAIRE,
                                    "secret": host.access_code})  # type: ignore[attr-defined]
    token = csrf(client.get("/code").text)
    code = last_code(smtp)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(accounts.MAX_CODE_ATTEMPTS):
        assert client.post("/code", data={"csrf": token, "code": wrong}).status_code == 401
    dead = client.post("/code", data={"csrf": token, "code": code})
    assert dead.status_code == 429  # the right code no longer works
    for _ in range(accounts.MAX_CODES_PER_HOUR - 1):
        assert client.post("/code/renvoyer", data={"csrf": token}).status_code == 200
    assert client.post("/code/renvoyer", data={"csrf": token}).status_code == 429
    assert smtp.mailbox.count() == accounts.MAX_CODES_PER_HOUR


def test_forms_need_the_csrf_token_and_the_portal_origin(host: InProcessHost,
                                                         smtp: SmtpServer) -> None:
    client = portal(host, smtp)
    token = signed_in(client, host, smtp)
    form = {"professionnel": GP.id_nat_ps, "bloquer": "oui"}
    assert client.post("/professionnels/blocage", data=form).status_code == 403
    assert client.post("/professionnels/blocage", data={**form, "csrf": "x" * 43}
                       ).status_code == 403
    foreign = client.post("/professionnels/blocage", data={**form, "csrf": token},
                          headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    grants = patient.authorizations(host.app.state.guard, CLAIRE)
    assert not any(a["blocked"] for a in grants["authorizations"])  # nothing changed
    done = client.post("/professionnels/blocage", data={**form, "csrf": token},
                       headers={"origin": "https://testserver"})
    assert done.status_code == 303 and done.headers["location"].endswith("?ok=bloque")


def test_sessions_end_when_idle_and_on_sign_out(host: InProcessHost, smtp: SmtpServer) -> None:
    client = portal(host, smtp)
    token = signed_in(client, host, smtp)
    assert client.get("/historique").status_code == 200
    host.clock.advance(minutes=16)
    assert client.get("/historique").headers["location"] == "/connexion"
    # Sign in again (password this time), then out: the row is gone.
    client.cookies.clear()
    answer = client.post("/connexion", data={"ins": CLAIRE, "secret": PASSWORD})
    assert answer.status_code == 303
    client.post("/code", data={"csrf": csrf(client.get("/code").text),
                               "code": last_code(smtp)})
    token = csrf(client.get("/historique").text)
    client.post("/deconnexion", data={"csrf": token})
    with host.app.state.engine.connect() as connection:
        assert connection.execute(select(portal_sessions).where(
            portal_sessions.c.ins == CLAIRE, portal_sessions.c.stage == "active")).all() == []
        account = connection.execute(select(portal_accounts)).one()
    assert account.password_hash.startswith("scrypt$") and PASSWORD not in account.password_hash


def test_no_address_no_code(db_url: str, tmp_path: Path, smtp: SmtpServer) -> None:
    host = InProcessHost(db_url, tmp_path)
    created = host.client(GP).post(f"/dossiers/{CLAIRE}", json={"consent": True})
    client = portal(host, smtp)
    answer = client.post("/connexion", data={"ins": CLAIRE,
                                              "secret": created.json()["accessCode"]})
    assert answer.status_code == 409 and "Aucune adresse" in answer.text
    assert smtp.mailbox.count() == 0


def test_an_smtp_relay_down_says_so_and_keeps_no_session(host: InProcessHost) -> None:
    down = SmtpServer()  # never started: nothing listens on its port
    client = portal(host, down)
    answer = client.post("/connexion", data={"ins": CLAIRE,
                                              "secret": host.access_code})  # type: ignore[attr-defined]
    assert answer.status_code == 503 and "réessayez" in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")
    with host.app.state.engine.connect() as connection:
        assert connection.execute(select(portal_sessions)).all() == []
