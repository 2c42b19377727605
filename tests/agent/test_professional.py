"""The professional session through the real pcscd + vpcd and the real host over TLS: the PIN
prompt, the end of the session at once when the CPS is removed (the host told in the
background, never waited for), and renewal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.card_words import card_error_text
from agent.client.revocations import REVOCATIONS_FILE, RevocationQueue, Revoker
from agent.config import AgentConfig
from agent.core.pin import FixedPrompt
from agent.core.professional import PinCancelledError, ProfessionalSession, SessionEndedError
from agent.core.service import AgentService
from agent.install.enrol import enrol_from_pki
from cardreader.errors import CardExpiredError, PinBlockedError
from cardreader.pcsc import list_readers
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from host.app import create_app
from host.settings import HostSettings
from host.store.schema import sessions
from host.tls import running_server, server_ssl_context
from tests.host.tls_harness import PIN, TlsHost, make_pki, workstation
from tests.live import until

pytestmark = pytest.mark.pcsc

SLOW_PATH = "/fhir/DocumentReference"
SLOW_SECONDS = 3.0
WAIT = 15.0  # seconds a test waits for what must happen (a bound, not a measure)
# The requests that tell the host of a session's end, held while `closed()` is in force.
REVOCATION_REQUESTS = {("DELETE", "/session"), ("POST", "/session/$revoke")}


class SlowSearch:
    """ASGI middleware: searches take SLOW_SECONDS; counts the requests that reach the host
    and notes them in order; `closed()` holds the revocation requests unanswered (a host
    that does not answer) until it is left."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0
        self.seen: list[str] = []
        self.held = 0  # revocation requests waiting, unanswered
        self._open = threading.Event()
        self._open.set()

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
            self.seen.append(f"{scope['method']} {scope['path']}")
            if scope["path"].startswith(SLOW_PATH):
                await asyncio.sleep(SLOW_SECONDS)
            if (scope["method"], scope["path"]) in REVOCATION_REQUESTS:
                self.held += 1
                while not self._open.is_set():
                    await asyncio.sleep(0.01)
                self.held -= 1
        await self.app(scope, receive, send)




class Host:
    def __init__(self, url: str, pki: Path, app: Any, wrapper: SlowSearch,
                 settings: HostSettings) -> None:
        self.url, self.pki, self.app, self.wrapper = url, pki, app, wrapper
        self.settings = settings

    def session_row(self, session_id: str) -> Any:
        with self.app.state.engine.connect() as connection:
            return connection.execute(
                select(sessions).where(sessions.c.id == session_id)).one()


@contextlib.contextmanager
def _host(directory: Path, template: Path, pki: Path, **settings: Any) -> Iterator[Host]:
    directory.mkdir()
    shutil.copyfile(template, directory / "host.db")
    host_settings = HostSettings(database_url=f"sqlite:///{directory / 'host.db'}",
                                 blob_dir=directory / "blobs", pki_dir=pki, **settings)
    app = create_app(host_settings)
    wrapper = SlowSearch(app)
    with running_server(wrapper, server_ssl_context(pki)) as url:
        yield Host(url, pki, app, wrapper, host_settings)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki") / "pki")


@pytest.fixture(scope="module")
def host(tmp_path_factory, _migrated_templates, pki: Path) -> Iterator[Host]:
    with _host(tmp_path_factory.mktemp("host") / "h", _migrated_templates["sqlite"],
               pki) as running:
        yield running


def _card(pki: Path, **changes: object) -> VirtualCps:
    return VirtualCps.from_profile("gp", ca=TestHealthCA.load(pki / "health-ca"), **changes)


class RecordingPrompt:
    """Answers the PINs given, in order (None when out of answers); records each question."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    def ask(self, holder: str, tries_left: int) -> str | None:
        self.asked.append((holder, tries_left))
        return self.answers.pop(0) if self.answers else None


def _open(host: Host, prompt: Any, **options: Any) -> ProfessionalSession:
    return ProfessionalSession.open(list_readers()[0], workstation(host.pki), host.url, prompt,
                                    **options)


def test_a_session_opens_with_the_pin_and_closes_on_logout(host, insert_card) -> None:
    insert_card(_card(host.pki))
    with _open(host, FixedPrompt(PIN)) as session:
        with session.calls() as http:
            me = http.get("/session").json()
        assert me["idNatPs"] == session.identity.id_nat_ps == "810001234565"
        assert me["structureId"] == session.situation.structure_id == "581234567800015"
        session_id = session.session_id
    row = host.session_row(session_id)
    assert row.revoked_at is not None and row.revoked_reason == "logout"
    with pytest.raises(SessionEndedError):
        session.calls().__enter__()


def test_the_caller_picks_the_practice_situation(host, insert_card) -> None:
    insert_card(_card(host.pki))
    with (_open(host, FixedPrompt(PIN), choose_situation=lambda s: s[1]) as session,
          session.calls() as http):
        assert http.get("/session").json()["structureId"] == "3750100042"


def test_a_wrong_pin_is_asked_again_with_the_tries_left(host, insert_card) -> None:
    card = _card(host.pki)
    insert_card(card)
    prompt = RecordingPrompt("0000", PIN)
    with _open(host, prompt) as session:
        assert session.alive
    assert prompt.asked == [("Claire MARTIN", 3), ("Claire MARTIN", 2)]
    assert card.pin_tries_left == 3  # the right PIN reset the counter


def test_a_fixed_prompt_never_presents_a_refused_pin_twice(host, insert_card) -> None:
    card = _card(host.pki)
    insert_card(card)
    with pytest.raises(PinCancelledError):
        _open(host, FixedPrompt("0000"))
    assert card.pin_tries_left == 2


def test_a_blocked_card_is_said_plainly_and_the_pin_not_asked_again(host, insert_card) -> None:
    card = _card(host.pki)
    insert_card(card)
    prompt = RecordingPrompt("0000", "1111", "2222", PIN)
    with pytest.raises(PinBlockedError) as blocked:
        _open(host, prompt)
    assert card_error_text(blocked.value) == "Carte bloquée (code porteur)"  # what a user reads
    assert [tries for _, tries in prompt.asked] == [3, 2, 1]
    later = RecordingPrompt(PIN)
    with pytest.raises(PinBlockedError, match="blocked"):
        _open(host, later)
    assert later.asked == []


def test_an_expired_card_is_refused_before_any_pin(host, insert_card) -> None:
    now = dt.datetime.now(dt.UTC)
    card = _card(host.pki, not_before=now - dt.timedelta(days=800),
                 not_after=now - dt.timedelta(days=1))
    insert_card(card)
    prompt = RecordingPrompt(PIN)
    with pytest.raises(CardExpiredError, match="validité"):
        _open(host, prompt)
    assert prompt.asked == []
    assert card.pin_tries_left == 3


def test_removing_the_card_cuts_a_slow_call_at_once(host, insert_card) -> None:
    link = insert_card(_card(host.pki))
    session = _open(host, FixedPrompt(PIN))
    session_id = session.session_id
    dmp = session.dmp()
    outcome: dict[str, Any] = {}

    def search() -> None:
        started = time.monotonic()
        try:
            with session.calls() as http:
                http.get(SLOW_PATH, params={"patient.identifier": "x"})
        except Exception as error:  # recorded, asserted below
            outcome["error"] = error
        outcome["ended"] = time.monotonic()
        outcome["started"] = started

    caller = threading.Thread(target=search)
    caller.start()
    time.sleep(0.3)  # the request is now waiting on the host
    link.stop()
    caller.join(timeout=SLOW_SECONDS + 2)
    try:
        assert isinstance(outcome.get("error"), SessionEndedError), outcome
        assert "carte retirée" in str(outcome["error"])
        # Cut by the removal, not by the host's answer (at SLOW_SECONDS): no finer timing
        # here (pcscd reports a removal up to ~0.4 s late, more on a loaded machine).
        assert outcome["ended"] - outcome["started"] < SLOW_SECONDS - 1
        assert session.wait_ended(3.0)  # ended locally
        assert session.wait_revoked(WAIT)  # the host told right after, in the background
        row = host.session_row(session_id)
        assert row.revoked_at is not None and row.revoked_reason == "card-removed"
        # Later calls fail at once, and never reach the host.
        seen = host.wrapper.requests
        with pytest.raises(SessionEndedError), session.calls():
            pass
        with pytest.raises(SessionEndedError):
            dmp.http.get("/session")
        assert host.wrapper.requests == seen
        assert not session.alive
    finally:
        session.close()


def test_the_session_is_renewed_while_the_card_stays(
    tmp_path, _migrated_templates, pki, insert_card
) -> None:
    with _host(tmp_path / "short", _migrated_templates["sqlite"], pki,
               session_lifetime=dt.timedelta(seconds=4)) as short:
        insert_card(_card(pki))
        with _open(short, FixedPrompt(PIN), renewal_margin=dt.timedelta(seconds=2)) as session:
            first_id, first_expiry = session.session_id, session.not_after
            # Keep calling until well past the first certificate's expiry.
            while dt.datetime.now(dt.UTC) < first_expiry + dt.timedelta(seconds=1):
                with session.calls() as http:
                    assert http.get("/session").status_code == 200
                time.sleep(0.25)
            assert session.renewals >= 1
            assert session.session_id != first_id
            assert session.not_after > first_expiry
        first = short.session_row(first_id)
        assert first.revoked_reason == "renewed"


def test_the_end_never_waits_for_a_host_that_does_not_answer(host, insert_card) -> None:
    link = insert_card(_card(host.pki))
    session = _open(host, FixedPrompt(PIN), revoke_timeout=60.0)
    session_id = session.session_id
    try:
        with host.wrapper.closed():
            link.stop()
            # Ended here while the host says nothing: the end did not wait for it.
            assert session.wait_ended(WAIT)
            assert not session.alive
            with pytest.raises(SessionEndedError), session.calls():
                pass
            assert until(lambda: host.wrapper.held >= 1)  # DELETE /session, unanswered
            assert not session.wait_revoked(0)
            assert host.session_row(session_id).revoked_at is None
        assert session.wait_revoked(WAIT)  # the host answers: it has the end
        assert host.session_row(session_id).revoked_reason == "card-removed"
    finally:
        session.close()


def test_a_new_session_sends_the_pending_revocations_before_its_challenge(
        host, insert_card, tmp_path) -> None:
    # A session a previous run ended without telling the host (a crash): in the queue only.
    earlier = TlsHost(host.url, host.pki, host.settings, host.app).session("gp")
    earlier.client.close()  # its key gone with the process
    queue = RevocationQueue(tmp_path / REVOCATIONS_FILE)
    queue.add(earlier.session_id, "card-removed", earlier.not_after)
    revoker = Revoker(host.url, workstation(host.pki), queue)  # not started: no background
    insert_card(_card(host.pki))
    seen = len(host.wrapper.seen)
    try:
        with _open(host, FixedPrompt(PIN), revocations=revoker) as session:
            # The workstation's connection: the revocations first, then the challenge.
            assert host.wrapper.seen[seen:seen + 3] == [
                "POST /session/$revoke", "POST /session/challenge", "POST /session"]
            assert host.session_row(earlier.session_id).revoked_reason == "card-removed"
            assert earlier.session_id not in {e.session_id for e in queue.pending()}
            session_id = session.session_id
        assert session.wait_revoked(WAIT)  # its own end, in the background
        assert queue.pending() == [] and not (tmp_path / REVOCATIONS_FILE).exists()
        assert host.session_row(session_id).revoked_reason == "logout"
    finally:
        revoker.stop()


def test_the_core_clears_the_patient_before_the_host_hears_of_the_end(
        host, insert_card, tmp_path, monkeypatch) -> None:
    """The order, not a time: the patient's data leave the views, then the revocation is
    recorded, then sent; a host that does not answer holds neither the views nor the next
    card event (the Vitale card's removal)."""
    config = AgentConfig(host_url=host.url, host_ca=host.pki / "server" / "ca.pem",
                         credentials_dir=tmp_path / "workstation",
                         data_dir=tmp_path / "data", log_dir=tmp_path / "log")
    enrol_from_pki(host.pki, config=config)
    cps = insert_card(_card(host.pki))
    vitale = insert_card(VirtualVitale.from_profile("single"), slot=1)
    readers = list_readers()
    with AgentService(config, cps_reader=readers[0], vitale_reader=readers[1],
                      with_outbox=False) as core:
        assert core.settle()
        core.open_session(PIN)
        assert core.wait_until(lambda: core.patient is not None
                               and core.patient.state == "ready", WAIT)
        shown = core.snapshot()["patient"]
        assert shown["patient"] is not None and shown["dmp"] is not None
        session = core.session
        assert session is not None
        session_id = session.session_id
        events: list[tuple[str, dict[str, Any]]] = []
        core.subscribe(lambda kind, data: events.append((kind, data)))
        revoker = core._revocations
        assert revoker is not None
        record = revoker.revoke

        def revoke(ended: Any, reason: str) -> None:
            events.append(("revoke", {"sessionId": ended.session_id, "reason": reason}))
            record(ended, reason)

        monkeypatch.setattr(revoker, "revoke", revoke)
        queue = RevocationQueue(config.data_dir / REVOCATIONS_FILE)
        with host.wrapper.closed():
            cps.stop()
            assert until(lambda: any(kind == "revoke" for kind, _ in events))
            revoked = next(i for i, (kind, _) in enumerate(events) if kind == "revoke")
            cleared = next(i for i, (kind, data) in enumerate(events) if kind == "patient"
                           and data["patient"] is None and data["dmp"] is None
                           and data["documents"] == [])
            closed = next(i for i, (kind, data) in enumerate(events)
                          if kind == "session" and data["state"] != "open")
            assert cleared < revoked and closed < revoked, events
            assert events[revoked][1] == {"sessionId": session_id, "reason": "card-removed"}
            # On disk as it is handed over, before the host has heard anything.
            assert until(lambda: [(e.session_id, e.reason) for e in queue.pending()] == [
                (session_id, "card-removed")])
            assert until(lambda: host.wrapper.held >= 1)
            assert host.session_row(session_id).revoked_at is None
            # The card thread is not held by the host: the Vitale card leaves, its patient
            # goes, while the host still has not answered.
            vitale.stop()
            assert core.wait_until(lambda: core.patient is None, WAIT)
            assert host.wrapper.held >= 1
            assert host.session_row(session_id).revoked_at is None
            status = core.snapshot()
            assert status["session"]["state"] == "none"
            assert status["patient"]["patient"] is None and status["patient"]["documents"] == []
        assert revoker.wait_delivered([session_id], WAIT)
        assert host.session_row(session_id).revoked_reason == "card-removed"
        assert queue.pending() == []
        assert not (config.data_dir / REVOCATIONS_FILE).exists()


def test_the_terminal_prompt_says_the_tries_left_and_cancels_on_empty(monkeypatch) -> None:
    import io

    from agent.core.pin import TerminalPrompt

    asked: list[str] = []
    answers = iter(["1234", ""])

    def fake_getpass(prompt: str, stream: Any = None) -> str:
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    out = io.StringIO()
    prompt = TerminalPrompt(out)
    assert prompt.ask("Claire MARTIN", 1) == "1234"
    assert prompt.ask("Claire MARTIN", 3) is None
    assert "Claire MARTIN" in asked[0] and "1 essai(s)" in asked[0]
    assert "dernier essai" in out.getvalue() and "1234" not in out.getvalue()
