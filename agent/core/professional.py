"""The professional's session, tied to the CPS card in one reader.

`ProfessionalSession.open` reads the card, asks the PIN (`agent.core.pin`), lets the caller pick
the practice situation, and opens a card-rooted `HostSession`. Afterwards:

- a timer renews the host session before its certificate expires, while the card is present
  (the card stays unlocked, so no PIN is asked again), and swaps the client atomically;
- a `Monitor` on the card's reader (SCardGetStatusChange, no polling) ends the session AT
  ONCE when the card is removed or pcscd goes away: the session is marked dead and the
  sockets of calls in flight are shut down (a call blocked on a slow host fails
  immediately). Telling the host is the `Revoker`'s (agent/client/revocations.py): recorded
  now, sent on its own thread, retried until the host has it; the client and its key are
  dropped after the first try. Nothing of the end waits for the network.

Every call goes through `calls()` (or `dmp()`), which raises `SessionEndedError` once the card
is gone, without touching the network. See docs/agent-session.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.client.revocations import REVOKE_TIMEOUT, Revoker
from agent.client.session import HostSession, Opening, clock_skew, shutdown_sockets
from agent.errors import AgentError
from agent.i18n import _
from cardreader.errors import (
    CardExpiredError,
    CardRemovedError,
    InvalidPinFormatError,
    NoCardError,
    PinBlockedError,
    ReaderError,
    WrongPinError,
)
from cardreader.pcsc import EventKind, Monitor, PcscConnection

# httpx, the DMP client, the CPS card's parsers and the policies load when a session opens
# (on the card thread), not at start: `dmp-agent run` imports this module before it is ready.
if TYPE_CHECKING:
    import httpx

    from agent.client.dmp import DmpClient
    from agent.client.provide import CareSetting
    from agent.client.session import Workstation
    from agent.core.pin import PinPrompt
    from cardreader.cps import CpsCard, CpsIdentity
    from cardreader.cps_data import PracticeSituation
    from cardreader.pcsc import SlotEvent
    from policies import AccessMode
    from wire.mhd import Author

__all__ = [
    "PinCancelledError",
    "ProfessionalSession",
    "SessionEndedError",
]

log = logging.getLogger(__name__)

RENEWAL_MARGIN = dt.timedelta(minutes=10)  # renew this long before the certificate expires
RENEWAL_RETRY = 5.0  # seconds between renewal attempts when the host cannot be reached
END_WAIT = 2.0  # seconds `close` waits for an end another thread is doing (no network)
MAX_FORMAT_ERRORS = 3  # PINs of the wrong shape re-asked before giving up (no card try used)

SituationChooser = Callable[[Sequence["PracticeSituation"]], "PracticeSituation"]


class SessionEndedError(AgentError):
    """The session is over (card removed, pcscd gone, or closed): open a new one."""

    code, status = "session-ended", 409

    def __init__(self, reason: str = "card-removed") -> None:
        self.reason = reason
        if reason == "card-removed":
            text = _("Session ended: card removed")
        elif reason == "service-lost":
            text = _("Session ended: the smart-card service (pcscd) was lost")
        else:
            text = _("Session ended ({reason})").format(reason=reason)
        super().__init__(text)


class PinCancelledError(AgentError):
    """The professional cancelled the PIN prompt; nothing was opened."""

    code, status = "pin-cancelled", 400

    def __init__(self) -> None:
        super().__init__(_("PIN entry cancelled"))


def first_situation(situations: Sequence[PracticeSituation]) -> PracticeSituation:
    return situations[0]


@dataclass
class _Generation:
    """One host session and the calls running on it (a renewal retires it once idle)."""

    host: HostSession
    active: int = 0
    retired: bool = False
    closed: bool = False


class ProfessionalSession:
    """A professional's session on the host, alive while their CPS stays in ``reader``.

    Thread-safe: calls may run on several threads; removal and renewal run on their own.
    ``revocations``: the agent's `Revoker` (persisted queue, shared by every session of the
    process); without one, the session has its own, in memory, and `close` waits for it
    (at most ``revoke_timeout``) since nothing else would deliver it.
    """

    card_bound = True  # a card event ends it (an e-CPS session is not: agent.core.ecps)
    signed_by = "card"  # who signs its deposits (wire.dsg): the card's signature key

    def __init__(
        self,
        reader: str,
        workstation: Workstation,
        host_url: str,
        prompt: PinPrompt,
        *,
        choose_situation: SituationChooser = first_situation,
        renewal_margin: dt.timedelta = RENEWAL_MARGIN,
        renewal_retry: float = RENEWAL_RETRY,
        revoke_timeout: float = REVOKE_TIMEOUT,
        timeout: float = 30.0,
        watch_card: bool = True,
        revocations: Revoker | None = None,
        opening: Opening | None = None,
    ) -> None:
        self.reader = reader
        self.workstation = workstation
        self.host_url = host_url
        self._prompt = prompt
        self._choose = choose_situation
        self._margin = renewal_margin
        self._retry = renewal_retry
        self._revoke_timeout = revoke_timeout
        self._timeout = timeout
        # The agent core watches every reader with its one monitor and ends the session
        # itself (``watch_card=False``); used alone, the session watches its own reader.
        self._watch_card = watch_card
        # Who tells the host of each end (this session's, and each renewed one's).
        self._own_revoker = revocations is None
        self._revoker = revocations or Revoker(host_url, workstation, timeout=revoke_timeout)
        self._revoked: list[str] = []  # the session ids handed to the revoker
        self._lock = threading.Lock()  # guards the generation, the counters and the end
        self._card_lock = threading.Lock()  # one card exchange at a time (renewal vs. close)
        self._stop = threading.Event()  # set at the end: wakes the renewal timer at once
        self._finished = threading.Event()  # set once ended locally (the host told later)
        self._ended: str | None = None
        self._current: _Generation | None = None
        self._generations: list[_Generation] = []  # not yet closed
        self._connection: PcscConnection | None = None
        self._card: CpsCard | None = None
        self._monitor: Monitor | None = None
        self._renewer: threading.Thread | None = None
        self.identity: CpsIdentity | None = None
        self.situation: PracticeSituation | None = None
        self.renewals = 0
        self._opened: list[Callable[[httpx.Client], None]] = []
        # The host's challenge: fetched while the card is read, or given already fetched
        # (the agent core asks for it when the CPS goes in, before the PIN is typed).
        self._opening: Opening | None = opening

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        reader: str,
        workstation: Workstation,
        host_url: str,
        prompt: PinPrompt,
        **options: Any,
    ) -> ProfessionalSession:
        """Read the card, ask the PIN, open the host session and start watching the card.

        Raises CardExpiredError (before any PIN), PinBlockedError (the prompt is not asked
        when the card is already blocked), PinCancelledError, a `CardError` from the card
        layer or `SessionError` from the host.
        """
        session = cls(reader, workstation, host_url, prompt, **options)
        try:
            session._open()
        except BaseException:
            if session._opening is not None:
                session._opening.close()  # the challenge fetched ahead was not used
            session.close()
            raise
        log.info("professional session opened (profession %s, structure %s) until %s",
                 session.identity.profession_code if session.identity else "?",
                 session.situation.structure_id if session.situation else "?",
                 session.not_after.isoformat())
        return session

    def _open(self) -> None:
        # The host's challenge comes over the workstation's connection while the card is
        # read and the PIN asked: the opening proper is then one round trip.
        from cardreader.apdu import ApduProtocol
        from cardreader.cps import CpsCard  # the CPS parsers: at the first opening

        if self._opening is None:
            self._opening = self._new_opening().start()
        self._connection = PcscConnection(self.reader)
        card = self._card = CpsCard(ApduProtocol(self._connection))
        identity = self.identity = card.read_identity()
        now = dt.datetime.now(dt.UTC)
        if not identity.not_before <= now < identity.not_after:
            # Clock first: a workstation clock off by months makes a good card look expired.
            if (skew := clock_skew(self.host_url, self.workstation, self._timeout)) is not None:
                raise skew
            raise CardExpiredError(
                _("The CPS card is outside its validity period (from {start} to {end}): it "
                  "cannot open a session").format(
                    start=identity.not_before.strftime(_("%Y-%m-%d")),
                    end=identity.not_after.strftime(_("%Y-%m-%d"))))
        self._unlock(card, f"{identity.first_name} {identity.last_name}")
        situations = card.read_situations()
        if not situations:
            raise CardExpiredError(_("The card holds no practice situation"))
        self.situation = self._choose(situations)
        if self._watch_card:
            # Watch the reader before opening: a removal during the opening is not missed.
            self._monitor = Monitor(self._on_event).start()
            self._monitor.ready.wait(5.0)
        self._install(self._open_host())
        if self._monitor is not None and self._monitor.readers.get(self.reader) is None:
            self._end("card-removed")
            raise SessionEndedError("card-removed")
        self._renewer = threading.Thread(target=self._renew_loop, name="session-renewal",
                                         daemon=True)
        self._renewer.start()

    def _install(self, host: HostSession) -> None:
        """``host`` becomes the session's current generation, unless the session ended while
        it was opening (then it is closed with that reason and the opening fails)."""
        with self._lock:
            ended = self._ended
            if ended is None:
                self._current = _Generation(host)
                self._generations.append(self._current)
        if ended is not None:
            self._close_host(host, ended)
            raise SessionEndedError(ended)

    def _unlock(self, card: CpsCard, holder: str) -> None:
        tries = card.pin_tries_left()
        if tries == 0:
            raise PinBlockedError()
        format_errors = 0
        while True:
            pin = self._prompt.ask(holder, tries)
            if pin is None:
                raise PinCancelledError()
            try:
                card.verify_pin(pin)
                return
            except WrongPinError as error:
                tries = error.tries_left
                if tries == 0:
                    raise PinBlockedError() from None
            except InvalidPinFormatError:
                format_errors += 1  # the card was not asked: no try used
                if format_errors >= MAX_FORMAT_ERRORS:
                    raise
            finally:
                del pin  # the PIN lives no longer than its presentation

    def _open_host(self) -> HostSession:
        from cryptography.hazmat.primitives.serialization import Encoding  # not at start

        from cardreader.cps import CpsKey  # loaded by the opening already

        card, identity, situation = self._card, self.identity, self.situation
        assert card is not None and identity is not None and situation is not None

        def sign(data: bytes) -> bytes:
            with self._card_lock:
                return card.sign(CpsKey.AUTHENTICATION, data)

        with self._card_lock:
            certificate = card.certificate(CpsKey.AUTHENTICATION).public_bytes(Encoding.DER)
        # The first opening uses the challenge fetched ahead; a renewal fetches its own.
        opening, self._opening = self._opening or self._new_opening(), None
        return HostSession.open(
            self.host_url, self.workstation, card_certificate_der=certificate, sign=sign,
            id_nat_ps=identity.id_nat_ps, structure_id=situation.structure_id,
            timeout=self._timeout, opening=opening,
        )

    def _new_opening(self) -> Opening:
        # The revocations still pending go first on the workstation's connection.
        return Opening(self.host_url, self.workstation, self._timeout,
                       before=self._revoker.flush)

    # -- calls ----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._ended is None and self._current is not None

    @property
    def end_reason(self) -> str | None:
        """Why the session ended (card-removed, service-lost, logout...); None until then."""
        return self._ended

    @property
    def session_id(self) -> str:
        return self._generation().host.session_id

    @property
    def not_after(self) -> dt.datetime:
        return self._generation().host.not_after

    @property
    def access_modes(self) -> tuple[str, ...]:
        """The access modes the host lets this session use (centre_15 only for a structure
        registered as a regulation centre)."""
        return self._generation().host.access_modes

    def may_use(self, mode: AccessMode | None) -> bool:
        return mode is None or mode.code.value in self.access_modes

    def _generation(self) -> _Generation:
        with self._lock:
            if self._ended is not None or self._current is None:
                raise SessionEndedError(self._ended or "closed")
            return self._current

    @contextlib.contextmanager
    def calls(self) -> Iterator[httpx.Client]:
        """The current client, for the calls made inside the block.

        Raises SessionEndedError at entry once the card is gone (no network), and in place of
        the failure of a call the removal cut. A renewal during the block does not disturb
        it: the client it holds is closed only once the block is left.
        """
        with self._lock:
            if self._ended is not None or self._current is None:
                raise SessionEndedError(self._ended or "closed")
            generation = self._current
            generation.active += 1
        try:
            yield generation.host.client
        except Exception as error:
            if self._ended is not None and not isinstance(error, SessionEndedError):
                raise SessionEndedError(self._ended) from error
            raise
        finally:
            self._release(generation)

    def _release(self, generation: _Generation) -> None:
        with self._lock:
            generation.active -= 1
            retire = generation.retired and generation.active == 0 and not generation.closed
            if retire:
                generation.closed = True
                self._generations.remove(generation)
        if retire:
            self._close_host(generation.host, "renewed")

    def author(self) -> Author:
        """Its deposits' author: this professional, in the chosen practice situation."""
        identity, situation = self.identity, self.situation
        assert identity is not None and situation is not None, "session not open"
        from wire.mhd import Author  # at the first deposit, not at start

        return Author(identity.id_nat_ps, identity.profession_code, situation.structure_id,
                      identity.specialty_code, identity.last_name, identity.first_name)

    def care_setting(self) -> CareSetting:
        """Where its deposits are made: from the chosen practice situation's sector."""
        assert self.situation is not None, "session not open"
        from agent.client.provide import CareSetting  # at the first deposit, not at start

        return CareSetting.of_sector(self.situation.sector)

    def sign_document(self, data: bytes) -> bytes:
        """Sign with the card's signature key (a deposit's submission set), while the card
        is present: SessionEndedError once it is gone."""
        from cardreader.cps import CpsKey  # loaded by the opening already

        card = self._card
        if card is None or not self.alive:
            raise SessionEndedError(self._ended or "card-removed")
        with self._card_lock:
            try:
                return card.sign(CpsKey.SIGNATURE, data)
            except (CardRemovedError, NoCardError, ReaderError) as error:
                raise SessionEndedError("card-removed") from error

    @property
    def signature_certificate_der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding  # not at start

        from cardreader.cps import CpsKey  # loaded by the opening already

        card = self._card
        if card is None:
            raise SessionEndedError(self._ended or "card-removed")
        with self._card_lock:
            return card.certificate(CpsKey.SIGNATURE).public_bytes(Encoding.DER)

    def dmp(self) -> DmpClient:
        """A `DmpClient` whose every request goes through `calls()`."""
        from agent.client.dmp import DmpClient  # the DMP client: at the first host call

        return DmpClient(_GuardedHttp(self))

    def on_opened(self, callback: Callable[[httpx.Client], None]) -> None:
        """Call ``callback(client)`` now with the current host client, and again with each
        renewed one: others wait for a session to open (the outbox). On the caller's thread
        now, on the renewal thread later; a callback that raises is logged."""
        with self._lock:
            self._opened.append(callback)
            current = self._current
        if current is not None:
            self._tell_opened([callback], current.host.client)

    @staticmethod
    def _tell_opened(callbacks: list[Callable[[httpx.Client], None]],
                     client: httpx.Client) -> None:
        for callback in callbacks:
            try:
                callback(client)
            except Exception:  # a listener's bug must not end nor stall the session
                log.exception("session-opened callback failed")

    # -- renewal --------------------------------------------------------------------------
    def _renew_loop(self) -> None:
        while not self._stop.is_set():
            try:
                not_after = self.not_after
            except SessionEndedError:
                return
            wait = (not_after - self._margin - dt.datetime.now(dt.UTC)).total_seconds()
            if self._stop.wait(max(wait, 0.0)):
                return
            try:
                host = self._open_host()
            except Exception as error:  # host unreachable, card busy: try again shortly
                if self._stop.is_set():
                    return
                log.warning("session renewal failed (%s); retrying", type(error).__name__)
                if self._stop.wait(self._retry):
                    return
                continue
            self._swap(host)

    def _swap(self, host: HostSession) -> None:
        with self._lock:
            old = self._current
            if self._ended is not None or old is None:
                old, stale = None, host  # ended meanwhile: the new session goes too
                opened = []
            else:
                stale = None
                self._current = _Generation(host)
                self._generations.append(self._current)
                self.renewals += 1
                log.info("professional session renewed until %s", host.not_after.isoformat())
                old.retired = True
                opened = list(self._opened)
                if old.active == 0:
                    old.closed = True
                    self._generations.remove(old)
                else:
                    old = None  # the last call on it closes it (`_release`)
        if stale is not None:
            self._close_host(stale, self._ended or "closed")
        if old is not None:
            self._close_host(old.host, "renewed")
        self._tell_opened(opened, host.client)

    # -- the end --------------------------------------------------------------------------
    def _on_event(self, event: SlotEvent) -> None:
        if event.kind is EventKind.SERVICE_LOST:
            self._end("service-lost")
        elif event.kind is EventKind.CARD_REMOVED and event.reader == self.reader:
            self._end("card-removed")

    def _end(self, reason: str) -> None:
        """Mark the session dead, cut the calls in flight, hand the host sessions to the
        revoker (recorded now, sent on its thread): nothing here waits for the network."""
        with self._lock:
            already = self._ended is not None
            if not already:
                self._ended = reason
            # The current session and any renewed one still finishing a call.
            generations = [g for g in self._generations if not g.closed]
            for generation in generations:
                generation.closed = True
            self._generations.clear()
            self._current = None
        if already:
            # Another thread is ending it: let the caller (close) return only once it is done.
            self._finished.wait(END_WAIT)
            return
        self._stop.set()
        for generation in generations:
            shutdown_sockets(generation.host.client)
        for generation in generations:
            self._close_host(generation.host, reason)
        self._finished.set()
        log.info("professional session ended: %s", reason)

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until the session has ended locally: calls refused, the calls in flight cut,
        the host's revocation recorded (sent in the background: `wait_revoked`)."""
        return self._finished.wait(timeout)

    def wait_revoked(self, timeout: float | None = None) -> bool:
        """Wait until the host has the revocation of every host session this one ended
        (itself, and the renewed ones); True then."""
        with self._lock:
            ids = list(self._revoked)
        return self._revoker.wait_delivered(ids, timeout)

    def _close_host(self, host: HostSession, reason: str) -> None:
        """Hand ``host`` to the revoker: recorded now; DELETE /session on its thread, which
        drops the client and the key after that one try (the retries use the workstation's
        certificate)."""
        with self._lock:
            self._revoked.append(host.session_id)
        self._revoker.revoke(host, reason)

    def close(self, reason: str = "logout") -> None:
        """End the session (logout) and release the card and the reader watch.

        Returns without waiting for the host when the agent's revoker delivers (it keeps
        the revocation on disk until the host has it). A session used alone, whose revoker
        lives in memory only, waits for it at most ``revoke_timeout`` seconds."""
        self._end(reason)
        if self._monitor is not None:
            self._monitor.stop()
        # The renewal timer stops on `_stop`; one in the middle of a renewal ends on its own
        # (the card connection closed below, the new host session handed to the revoker).
        with self._card_lock:
            if self._connection is not None:
                self._connection.close()
        if self._own_revoker:
            self.wait_revoked(self._revoke_timeout)

    def __enter__(self) -> ProfessionalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _GuardedHttp:
    """The few httpx.Client methods `DmpClient` uses, each run through `calls()`."""

    def __init__(self, session: ProfessionalSession) -> None:
        self._session = session

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        with self._session.calls() as http:
            return http.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


