"""The core's session part: open the professional's session with the PIN (presented once,
never kept), end it when the CPS leaves or on logout, unblock a blocked CPS with its PUK, and
run the host calls of every view through it, each failure said as an `AgentError`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from agent.card_words import blocked_cps_text, card_error_text
from agent.client.session import Opening, SessionError
from agent.core.professional import PinCancelledError, ProfessionalSession, SessionEndedError
from agent.core.state import CoreState
from agent.errors import AgentError, explain, explained
from agent.i18n import N_, _
from cardreader.atr import CardKind
from cardreader.errors import (
    CardRemovedError,
    InvalidPinFormatError,
    NoCardError,
    PinBlockedError,
    PukBlockedError,
    WrongPinError,
    WrongPukError,
)

# The DMP client, the CPS parsers and wire load when a session opens, not at start (issue 11).
if TYPE_CHECKING:
    from agent.client.dmp import DmpClient
    from agent.core.pin import PinPrompt
    from cardreader.cps_data import PracticeSituation

log = logging.getLogger("agent.core")

LAST_TRY = N_("last try: a wrong PIN blocks the card")
CHOICE_TIMEOUT = 120.0  # seconds the opening waits for the practice situation to be chosen

SESSION_END = {"card-removed": N_("card removed"), "logout": N_("session locked"),
               "service-lost": N_("smart-card service stopped"),
               "expired": N_("e-CPS session expired: log in again with the e-CPS")}
# The CPS missing where a session or an unblock needs it (translated where raised).
CPS_MISSING = N_("CPS card (the professional's card) missing from the readers: insert it.")



def preset_situation(held: Sequence[PracticeSituation], situation: int | str | None,
                     ask: bool, *, out_of_range: str, not_held: str
                     ) -> PracticeSituation | None:
    """The practice situation the caller named (an index, or a structure id) or the only
    one; None when the user must choose. A bad name is a usage error worded by the source
    (``out_of_range``: {number}, {count}; ``not_held``: {number}, {named}): the card's or
    Pro Santé Connect's."""
    if isinstance(situation, int):
        if not 0 <= situation < len(held):
            raise AgentError(out_of_range.format(number=situation, count=len(held)),
                             code="bad-situation", status=400, usage=True)
        return held[situation]
    for known in held:
        if situation is not None and known.structure_id == situation:
            return known
    if len(held) == 1:
        return held[0]
    if not ask:
        named = ", ".join(f"{n} = {s.structure_name} ({s.structure_id})"
                          for n, s in enumerate(held, 1))
        raise AgentError(not_held.format(number=situation, named=named),
                         code="bad-situation", status=400, usage=True)
    return None

class OncePrompt:
    """A PIN given with the request (the page, a script), presented once: asked again
    means the card refused it, and the tries left are kept for the message."""

    def __init__(self, pin: str) -> None:
        self._pin: str | None = pin
        self.refused_tries: int | None = None

    def ask(self, holder: str, tries_left: int) -> str | None:
        pin, self._pin = self._pin, None
        if pin is None:
            self.refused_tries = tries_left
        return pin


def pin_failure(error: BaseException, prompt: object) -> AgentError:
    """A failed opening as the views say it (a prompt that remembers the tries the card
    left after a refused PIN names them)."""
    refused = getattr(prompt, "refused_tries", None)
    left = refused if isinstance(error, PinCancelledError) else (
        error.tries_left if isinstance(error, WrongPinError) else None)
    if left is not None:
        last = f" — {_(LAST_TRY)}" if left == 1 else ""
        return AgentError(_("Wrong PIN: {tries} tries left").format(tries=left) + last,
                          code="wrong-pin", status=401, triesLeft=left)
    if isinstance(error, PinBlockedError):
        return AgentError(blocked_cps_text(), code="card-blocked", status=423)
    if isinstance(error, SessionError) and error.code not in ("clock-skew",):
        return AgentError(_("The DMP host refused: {error}").format(error=error),
                          code=error.code, status=error.http_status)
    found = explain(error)
    if found.code == "failed":
        log.error("session opening failed: %s", type(error).__name__)
    return found


def unblock_failure(error: BaseException) -> AgentError:
    """A failed unblock as the views say it, with a stable code (docs/agent-local-api.md)."""
    if isinstance(error, WrongPukError):
        left = error.tries_left
        return AgentError(_("Wrong unblocking code (PUK): {tries} tries left before it "
                            "blocks; the card stays blocked").format(tries=left),
                          code="wrong-puk", status=401, pukTriesLeft=left)
    if isinstance(error, PukBlockedError):
        return AgentError(card_error_text(error), code="puk-blocked", status=423,
                          pukTriesLeft=0)
    if isinstance(error, InvalidPinFormatError):
        return AgentError(card_error_text(error), code="bad-pin-format", status=400)
    if isinstance(error, NoCardError | CardRemovedError):
        return AgentError(_("The CPS card was removed while being unblocked"),
                          code="no-card", status=409)
    return explain(error)


class SituationChoice:
    """An opening waiting for the professional to choose one of the card's practice
    situations (read behind the PIN): `SessionPart.choose_situation` answers it."""

    def __init__(self, reader: str, count: int) -> None:
        self.reader = reader
        self.count = count
        self.index: int | None = None
        self.cancelled = False
        self.answered = threading.Event()


class SessionPart(CoreState):
    _choice: SituationChoice | None = None  # while an opening waits for the situation
    _unblocking = False  # a PUK is being presented to the CPS

    def unblock_cps(self, puk: str, new_pin: str) -> dict[str, Any]:
        """Unblock the blocked CPS in its reader with its PUK and a new PIN (RESET RETRY
        COUNTER; both presented once, never kept nor said), then read the card again: the
        session goes back to "locked" (the new PIN to type). Errors: bad-pin-format,
        no-card, not-blocked (the card's PIN still has tries, or a session is open),
        wrong-puk (``pukTriesLeft``), puk-blocked (only the card's issuer can help)."""
        from agent.core.pin import check_unblock_codes, reset_pin

        check_unblock_codes(puk, new_pin)  # before the card: no PUK try for a typo
        with self._lock:
            reader = self._cps_reader()
            if reader is None:
                raise AgentError(_(CPS_MISSING), code="no-card", status=409)
            if self._session is not None or self._session_state in ("opening", "choosing"):
                raise AgentError(_("The CPS card is not blocked: its session is open"),
                                 code="not-blocked", status=409)
            if self._unblocking:
                raise AgentError(_("Already unblocking"), code="busy", status=409)
            self._unblocking = True
        try:
            reset_pin(reader, puk, new_pin)
        except AgentError as error:
            if error.code == "not-blocked":
                self._read_card_again(reader)  # unblocked elsewhere (dmp-agent unblock)
            raise
        except BaseException as error:
            failure = unblock_failure(error)
            if failure.code == "puk-blocked":
                self._card_message(reader, str(failure))
            elif failure.code != "failed":
                log.info("CPS unblock refused: %s", failure.code)
            raise failure from None
        finally:
            del puk, new_pin
            with self._lock:
                self._unblocking = False
        log.info("CPS unblocked with its PUK")
        self._read_card_again(reader)
        self._notice("info", _("CPS card unblocked"),
                     _("Enter the new PIN to open the session"))
        return self._session_json()

    def _read_card_again(self, reader: str, timeout: float = 10.0) -> None:
        """Have the card thread read the CPS again, as if just inserted (its slot, the
        session's state and tries, the challenge fetched ahead), and wait until it has:
        every view then sees the card as it is now."""
        from cardreader.pcsc import EventKind, SlotEvent

        self._events.put(SlotEvent(EventKind.CARD_INSERTED, reader))
        done = threading.Event()
        self._events.put(done)
        done.wait(timeout)

    def _card_message(self, reader: str, message: str) -> None:
        """Say ``message`` on the CPS's slot and the session (a blocked PUK) until the card
        is read again."""
        with self._lock:
            report = self._slots.get(reader)
            if report is not None and report.kind is CardKind.CPS:
                self._slots[reader] = dataclasses.replace(report, message=message)
            if self._session is None:
                self._session_error = message
        self._publish("cards")
        self._publish("session")

    def open_session(self, pin: str | PinPrompt, situation: int | str | None = 0, *,
                     ask: bool = True) -> dict[str, Any]:
        """Open the host session with the CPS: ``pin`` is presented once (a `PinPrompt`,
        e.g. the terminal's, may be asked again after a refused PIN). ``situation``: the
        index of the card's practice situation, or a structure id (the one remembered for
        this card), or None; when it names none of the card's and the card holds several,
        the opening waits (state ``choosing``, the situations in the session JSON) until
        `choose_situation` answers; without ``ask`` (the command line) it is refused,
        the card's situations named."""
        with self._lock:
            if self._session is not None and self._session.alive:
                raise AgentError(_("A session is already open"), code="session-open",
                                 status=409)
            reader = self._cps_reader()
            if reader is None:
                raise AgentError(_(CPS_MISSING), code="no-cps", status=409)
            if self._workstation is None:
                raise AgentError(self._problem or _("Workstation not enrolled"),
                                 code="not-enrolled", status=409)
            if self._session_state in ("opening", "choosing"):
                raise AgentError(_("Already opening"), code="busy", status=409)
            self._session_state, self._session_error = "opening", ""
        self._publish("session")
        prompt = OncePrompt(pin) if isinstance(pin, str) else pin
        del pin

        def choose(situations: Any) -> PracticeSituation:
            held: tuple[PracticeSituation, ...] = tuple(situations)
            self._card_situations(reader, held)
            given = preset_situation(
                held, situation, ask,
                out_of_range=_("situation {number}: the card holds {count}"),
                not_held=_("situation {number}: not on the card ({named})"))
            return given or held[self._wait_for_situation(reader, len(held))]

        opening = self._take_early_opening(reader)
        try:
            session = ProfessionalSession.open(
                reader, self._workstation, self.config.host_url, prompt,
                choose_situation=choose, timeout=self.config.host_timeout, watch_card=False,
                revocations=self._revocations, opening=opening)
        except BaseException as error:
            self._session_failed(error, prompt)
            raise pin_failure(error, prompt) from None
        with self._lock:
            if self._slots.get(reader) is None or self._slots[reader].kind is not CardKind.CPS:
                gone = True  # removed while it opened: the monitor had no session to end
            else:
                gone = False
                self._session = session
                self._session_state, self._session_error = "open", ""
                self._session_tries = None
        if gone:
            session.close("card-removed")
            self._session_failed(SessionEndedError("card-removed"), prompt)
            raise SessionEndedError("card-removed")
        return self._session_installed(session)

    def _session_installed(self, session: ProfessionalSession) -> dict[str, Any]:
        """What follows every opening (card or e-CPS, `agent.core.ecps`), ``session`` being
        the core's: its end watched, the views told, the outbox woken, the connection kept
        warm, a patient's card already in read."""
        threading.Thread(target=self._watch_session_end, args=(session,), daemon=True,
                         name="session-end").start()
        identity = session.identity
        assert identity is not None
        log.info("session opened")
        self._publish("session")
        self._publish("outbox")  # the views list this professional's deposits now
        self._notice("info", _("DMP session open"),
                     f"{identity.first_name} {identity.last_name}")
        session.on_opened(self._outbox_wake.session_opened)  # after `_session`: sent through it
        # The session's own connection (its certificate: a new TLS handshake) opened now,
        # while nobody waits, rather than when the patient's card goes in, and kept open
        # through the pauses of a consultation (issue 18).
        threading.Thread(target=self._keep_warm, args=(session,), daemon=True,
                         name="session-warm").start()
        for reader_name, report in list(self._slots.items()):
            if (report.kind is CardKind.VITALE and report.vitale is not None
                    and self.may_hold("vitale", reader_name)
                    and (self._patient is None or self._patient.state == "error")):
                self._new_patient(reader_name, report.vitale)
        return self._session_json()

    def _card_situations(self, reader: str, situations: tuple[PracticeSituation, ...]) -> None:
        """The situations just read behind the PIN: kept for this card (its next reports
        carry them, so the page offers the choice before the PIN) and on its slot now."""
        from cardreader.inspect import remember_situations

        with self._lock:
            report = self._slots.get(reader)
            if report is None or report.cps is None:
                return
            remember_situations(report.cps.serial_number, situations)
            self._slots[reader] = dataclasses.replace(report, situations=situations)

    def _wait_for_situation(self, reader: str, count: int, *,
                            present: Callable[[], bool] | None = None,
                            timeout: float = CHOICE_TIMEOUT) -> int:
        """Wait (at most ``timeout``) for the professional to choose the situation; the
        card removed (``present()`` false, for an opening without a card) or the opening
        cancelled (`lock_session`) ends the wait."""
        choice = SituationChoice(reader, count)
        with self._lock:
            self._choice = choice
            self._session_state = "choosing"
        self._publish("session")
        deadline = time.monotonic() + timeout
        try:
            while not choice.answered.wait(0.2):
                with self._lock:
                    gone = not present() if present else self._cps_reader() != reader
                if gone:
                    raise AgentError(_("The CPS card was removed while the session opened"),
                                     code="card-removed", status=409)
                if time.monotonic() > deadline:
                    raise AgentError(_("No practice situation chosen in time: open the "
                                       "session again"), code="situation-timeout",
                                     status=408)
            if choice.cancelled or choice.index is None:
                raise AgentError(_("Session opening cancelled"), code="cancelled",
                                 status=409)
            return choice.index
        finally:
            with self._lock:
                if self._choice is choice:
                    self._choice = None
                if self._session_state == "choosing":
                    self._session_state = "opening"
            self._publish("session")

    def choose_situation(self, index: int) -> dict[str, Any]:
        """Answer an opening waiting for the practice situation (its index in the session
        JSON's ``situations``)."""
        with self._lock:
            choice = self._choice
            if choice is None:
                raise AgentError(_("No session opening waits for a practice situation"),
                                 code="no-choice", status=409)
            if not 0 <= index < choice.count:
                raise AgentError(_("situation {number}: the card holds {count}").format(
                    number=index, count=choice.count), code="bad-situation", status=400)
            choice.index = index
        choice.answered.set()
        return {"state": "opening", "situation": index}

    def _keep_warm(self, session: ProfessionalSession) -> None:
        """Call the host now, then every ``host.keepalive_seconds`` until the session ends:
        its connection is never idle long enough for the host to close it."""
        interval = self.config.host_keepalive
        while True:
            with contextlib.suppress(Exception), session.calls() as client:
                client.get("/session")  # who am I: cheap, names no patient
            if interval <= 0 or session.wait_ended(interval):
                return

    def _prefetch_opening(self, reader: str) -> None:
        """Ask the host for a session challenge now that a CPS is in ``reader``, while the
        PIN is being typed: the opening is then one round trip (issue 18). A challenge that
        goes stale meanwhile is fetched again by the opening."""
        self._drop_early_opening()
        workstation, revoker = self._workstation, self._revocations
        if workstation is None:
            return
        opening = Opening(self.config.host_url, workstation, self.config.host_timeout,
                          before=None if revoker is None else revoker.flush,
                          ahead=True).start()
        with self._lock:
            previous, self._early_opening = self._early_opening, (reader, opening)
        if previous is not None:
            previous[1].close()

    def _take_early_opening(self, reader: str) -> Opening | None:
        with self._lock:
            early, self._early_opening = self._early_opening, None
        if early is None:
            return None
        if early[0] != reader:
            early[1].close()
            return None
        return early[1]

    def _drop_early_opening(self, reader: str | None = None) -> None:
        """Close the challenge fetched ahead (of ``reader``'s CPS only, when named)."""
        with self._lock:
            early = self._early_opening
            if early is None or (reader is not None and early[0] != reader):
                return
            self._early_opening = None
        early[1].close()

    def _session_failed(self, error: BaseException, prompt: object) -> None:
        with self._lock:
            self._session_state = "locked" if self._cps_reader() else "none"
            failure = pin_failure(error, prompt)
            self._session_error = "" if failure.code == "cancelled" else str(failure)
            refused = getattr(prompt, "refused_tries", None)
            if isinstance(error, PinBlockedError):
                self._session_tries = 0
            elif refused is not None:
                self._session_tries = refused
        self._publish("session")
        if isinstance(error, PinBlockedError):
            self._notice("error", _("CPS card blocked"), blocked_cps_text(),
                         code="cps-blocked")

    def _watch_session_end(self, session: ProfessionalSession) -> None:
        session.wait_ended()
        self._session_gone(session.end_reason or "card-removed", session)

    def _session_gone(self, reason: str, session: ProfessionalSession | None = None) -> None:
        with self._lock:
            current = self._session
            if current is None or (session is not None and session is not current):
                return
            self._session = None
            self._session_state = "locked" if self._cps_reader() else "none"
            self._session_error = ""
        # The views are told first (the patient's data gone from the API, the page and the
        # tray); then the session ends locally: its revocation is recorded and sent to the
        # host in the background, never waited for here (the card thread goes on at once).
        self._clear_patient(None, keep_card=True)
        self._publish("session")
        self._publish("outbox")  # nobody's deposits are listed without a session
        current.close(reason)
        self._notice("info", _("DMP session closed"),
                     _(SESSION_END[reason]) if reason in SESSION_END else reason)
        cps = self._cps_reader()
        if cps is not None and reason != "service-lost":  # locked: the next PIN is near
            self._prefetch_opening(cps)

    def lock_session(self) -> None:
        """Close the session; the CPS stays in its reader, the PIN will be asked again."""
        with self._lock:
            session, choice = self._session, self._choice
            if session is None and choice is not None:  # an opening waits: cancel it
                choice.cancelled = True
                choice.answered.set()
                return
        if session is None:
            raise AgentError(_("No session open"), code="no-session", status=409)
        self._session_gone("logout", session)

    def _live_session(self) -> ProfessionalSession:
        session = self._session
        if session is None or not session.alive:
            raise AgentError(_("Open the session first (CPS card and PIN)"),
                             code="no-session", status=409)
        return session

    @property
    def session(self) -> ProfessionalSession | None:
        """The open session, if any (the command line signs and reads its identity)."""
        return self._session

    @contextlib.contextmanager
    def _host_calls(self) -> Iterator[Any]:
        """The outbox's way to the host: the current session's client, or a retry later."""
        session = self._session
        if session is None:
            raise SessionEndedError("closed")
        with session.calls() as client:
            yield client

    @contextlib.contextmanager
    def _calls(self) -> Iterator[DmpClient]:
        """Host calls for a view's request, each failure turned into an `AgentError`."""
        session = self._live_session()
        with explained():
            yield session.dmp()

    def _own_id(self) -> str | None:
        """The idNat_PS of the session's professional (their own documents), if any."""
        session = self._session
        return session.identity.id_nat_ps if session is not None and session.identity else None
