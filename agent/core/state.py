"""The agent core's state and its one event stream (shared by the parts in this package).

`CoreState` holds what every part of the core reads or changes under one lock: the card
slots, the professional's session, the patient context, the outbox. Each change is
published once, as ``(kind, data)``, to every listener (the local API's event stream, the
tray, the command line): ``cards``, ``session``, ``patient``, ``outbox`` or ``notice``. A
view may also block until the state satisfies a predicate (`wait_until`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.outbox import OutboxWake
from cardreader.pcsc import Monitor

if TYPE_CHECKING:  # annotations only: the client, the card parsers and the policies load later
    from agent.client.dmp import DmpClient, PatientContext
    from agent.client.revocations import Revoker
    from agent.client.session import Opening, Workstation
    from agent.config import AgentConfig
    from agent.core.professional import ProfessionalSession
    from agent.errors import AgentError
    from agent.outbox import Outbox, OutboxWorker
    from cardreader.inspect import SlotReport
    from cardreader.pcsc import SlotEvent
    from cardreader.vitale import VitaleCard
    from policies import AccessMode
    from wire.ins import IdentityReliability, InsIdentity
    from wire.mhd import DocumentEntry

__all__ = ["CoreState", "Listener", "PatientState"]

log = logging.getLogger("agent.core")

Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class PatientState:
    """The patient of the Vitale card in a reader, or found by typed traits (``card``
    None, ``reader`` ""). ``generation`` tells a build that finished for a card already
    gone (thrown away) from the current one."""

    generation: int
    reader: str  # "" for a patient found by typed traits (no card)
    card: VitaleCard | None
    state: str = "loading"  # choosing, choosing-identity, loading, ready, error
    person_index: int | None = None
    context: PatientContext | None = None
    # The identity the INS service returned and its RNIV status (agent.core.identity): the
    # candidates while the service answered several; the document checked, when, and why a
    # qualification held before was lost ("": it was not).
    identity: InsIdentity | None = None
    identity_status: str = "provisoire"
    identity_document: str | None = None
    identity_parent_document: str | None = None
    identity_validated: float | None = None
    identity_notice: str = ""
    candidates: list[InsIdentity] = field(default_factory=list)
    dmp: dict[str, Any] | None = None
    documents: list[DocumentEntry] = field(default_factory=list)
    # Changes made on the host (deposits, masking...) and how many of them the held list
    # shows: a listing while they differ asks the host (a reload is on its way).
    changes: int = 0
    listed_changes: int = 0
    mode: AccessMode | None = None
    error: str = ""
    failure: AgentError | None = None  # what made the state "error", for the command line
    sheet: bytes | None = None  # the secrets sheet of a DMP created now: memory only
    # When the held list came from the host; why its last reload failed ("": it did not).
    fetched_at: dt.datetime | None = None
    stale: str = ""
    # This professional's previous consultation of the dossier, as the host said at the
    # first listing (None: never): what is new since then (the ANS's incremental read).
    last_visit: dt.datetime | None = None
    visit_known: bool = False

    def is_new(self, entry: DocumentEntry, own_id: str | None) -> bool:
        """New to the professional ``own_id``: registered since their last consultation
        (with none, within the first look: two years), and not their own deposit."""
        from agent.client.dmp import FIRST_LOOK

        if own_id is not None and entry.author.id_nat_ps == own_id:
            return False
        since = self.last_visit or dt.datetime.now(dt.UTC) - FIRST_LOOK
        return (entry.date or entry.creation_time) > since


class CoreState:
    """The state of the agent core and its listeners; the parts build on it."""

    def __init__(self, config: AgentConfig, *, version: str | Callable[[], str] = "",
                 cps_reader: str | None = None, vitale_reader: str | None = None,
                 with_outbox: bool = True) -> None:
        self.config = config
        self._version = version  # or how to find it, asked once when a view shows it
        self._wanted = {"cps": cps_reader, "vitale": vitale_reader}
        self._with_outbox = with_outbox
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: list[Listener] = []
        # Card events, a marker (`settle`) or None (stop), handled in order on one thread.
        self._events: queue.Queue[SlotEvent | threading.Event | None] = queue.Queue()
        self._monitor = Monitor(self._events.put)
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._service_up = True
        self._slots: dict[str, SlotReport] = {}
        self._session: ProfessionalSession | None = None
        self._session_state = "none"
        self._session_error = ""
        self._session_tries: int | None = None
        self._patient: PatientState | None = None
        self._generation = 0
        self._problem = ""
        self._service_problem = ""  # the words of a stopped smart-card service, when it is
        self._workstation: Workstation | None = None
        # Tells the host of each session's end, in the background (agent.client.revocations).
        self._revocations: Revoker | None = None
        # The challenge fetched when a CPS went in (reader, opening): its session's opening
        # is then one round trip (issue 18).
        self._early_opening: tuple[str, Opening] | None = None
        self._outbox: Outbox | None = None
        self._worker: OutboxWorker | None = None
        self._wakeup = threading.Event()
        self._outbox_wake = OutboxWake()  # a session opening, the host answering: wake it
        self._sending: dict[str, Any] | None = None

    @property
    def version(self) -> str:
        if callable(self._version):
            self._version = self._version()
        return self._version

    # -- the event stream -----------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)
        return unsubscribe

    def _publish(self, kind: str, data: dict[str, Any] | None = None) -> None:
        if data is None:
            data = self._part(kind)
        with self._lock:
            listeners = list(self._listeners)
            self._changed.notify_all()
        for listener in listeners:
            try:
                listener(kind, data)
            except Exception:  # a view's bug must not stop the agent
                log.exception("listener failed on %s", kind)

    def _notice(self, level: str, title: str, text: str, *, code: str = "") -> None:
        """A notice for the views; ``code`` names it for a view that treats it apart
        (cps-blocked: the page says it where the session is, once)."""
        self._publish("notice", {"level": level, "title": title, "text": text, "code": code})

    # Provided by the parts (agent.core.service puts them together).
    def _part(self, kind: str) -> dict[str, Any]:
        raise NotImplementedError

    def _session_gone(self, reason: str, session: ProfessionalSession | None = None) -> None:
        raise NotImplementedError

    def _clear_patient(self, reader: str | None, keep_card: bool = False) -> None:
        raise NotImplementedError

    def _prefetch_opening(self, reader: str) -> None:
        raise NotImplementedError

    def _drop_early_opening(self, reader: str | None = None) -> None:
        raise NotImplementedError

    def _new_patient(self, reader: str, card: VitaleCard) -> None:
        raise NotImplementedError

    def _load(self, generation: int) -> None:
        raise NotImplementedError

    def _session_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _patient_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def _cps_reader(self) -> str | None:
        raise NotImplementedError

    def _live_session(self) -> ProfessionalSession:
        raise NotImplementedError

    def _calls(self) -> contextlib.AbstractContextManager[DmpClient]:
        raise NotImplementedError

    def _patient_ready(self, *, need_context: bool = True) -> PatientState:
        raise NotImplementedError

    def _identify(self, dmp: DmpClient, p: PatientState) -> PatientContext | None:
        raise NotImplementedError

    def _require_qualified(self, p: PatientState) -> None:
        raise NotImplementedError

    def _reliability(self, p: PatientState) -> IdentityReliability:
        raise NotImplementedError

    def _own_id(self) -> str | None:
        raise NotImplementedError

    def reload_patient(self) -> dict[str, Any]:
        raise NotImplementedError

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Block until ``ready()`` (checked under the lock, again after each change) or
        ``timeout`` seconds; True when ready."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
            return True

    # -- which reader holds which card ------------------------------------------------------
    def may_hold(self, role: str, reader: str) -> bool:
        """Whether ``reader`` may be used for the ``cps`` or ``vitale`` card: the one the
        caller named, else the configured ones (any when none is configured)."""
        wanted = self._wanted[role]
        if wanted is not None:
            return reader == wanted
        configured = (self.config.cps_readers if role == "cps"
                      else self.config.vitale_readers)
        return not configured or reader in configured
