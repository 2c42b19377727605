"""The agent core: cards, the professional's session, the patient context and the outbox, as
one state with one event stream, under every view (docs/design.md): the local API and the
page, the tray, and the command line, which runs this same core in its own process.

Card events come from one `Monitor` (SCardGetStatusChange, no polling) and are handled on one
thread, in order (`agent.core.cards`). A patient's dossier is built on another thread so that
a slow host never delays a card event (`agent.core.patient`). Host calls made for a view run
on the caller's thread through the session, which refuses them as soon as the CPS leaves its
reader (`agent.core.sessions`). The PIN is handed to the card once and never kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.client.link import LINK
from agent.config import AgentConfig
from agent.core.cards import CardsPart
from agent.core.deposit import make_sender, recover_contents
from agent.core.ecps import EcpsPart
from agent.core.identity import IdentityPart
from agent.core.patient import PatientPart
from agent.core.sessions import SessionPart
from agent.core.snapshot import cards_json, patient_json, session_json
from agent.core.vaccination import VaccinationPart
from agent.core.viewing import ViewingPart
from agent.core.work import WorkPart
from agent.i18n import _
from agent.install.enrol import EnrolmentError, load_workstation
from agent.outbox import (
    OutboxKeyError,
    OutboxStorageError,
    OutboxWorker,
    Progress,
    RetryPolicy,
    open_outbox,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.client.session import Workstation
    from cardreader.inspect import SlotReport

__all__ = ["AgentService"]

log = logging.getLogger("agent.core")


class AgentService(EcpsPart, CardsPart, SessionPart, PatientPart, IdentityPart, ViewingPart,
                   VaccinationPart, WorkPart):
    """The agent's state and work. ``start()`` it, ``stop()`` it; thread-safe.

    ``cps_reader`` / ``vitale_reader`` name the readers to use (default: the configured
    ones, else any); ``with_outbox=False`` leaves the outbox to another process (a command
    that only reads the dossier while `dmp-agent run` holds the outbox); ``holder`` is how
    another process finding the outbox held names this one (e.g. "dmp-agent run, port N")."""

    def __init__(self, config: AgentConfig, *, version: str | Callable[[], str] = "",
                 cps_reader: str | None = None, vitale_reader: str | None = None,
                 with_outbox: bool = True, holder: str = "") -> None:
        self._holder = holder or "dmp-agent"  # named to another process that finds the outbox held
        super().__init__(config, version=version, cps_reader=cps_reader,
                         vitale_reader=vitale_reader, with_outbox=with_outbox)
        self._unlink: Callable[[], None] | None = None
        self._card_thread = threading.Thread(target=self._card_loop, name="agent-cards",
                                             daemon=True)
        self._job_thread = threading.Thread(target=self._job_loop, name="agent-patient",
                                            daemon=True)

    # -- life -----------------------------------------------------------------------------
    def start(self) -> AgentService:
        # The host link's changes (reachable, unreachable since...) go to the views.
        self._unlink = LINK.subscribe(lambda _state: self._publish("host"))
        try:
            self._workstation = load_workstation(self.config)
        except EnrolmentError as error:
            self._problem = f"{error} → dmp-agent enrol"  # the error says it in words
        else:
            self._start_revocations(self._workstation)
        if self._with_outbox:
            self._start_outbox()
        self._job_thread.start()
        self._card_thread.start()
        self._monitor.start()
        self._monitor.ready.wait(5.0)
        return self

    def _start_revocations(self, workstation: Workstation) -> None:
        """The sessions' revocations: those a previous run left (a crash, a power cut) go to
        the host in the background now; each session's end adds its own."""
        from agent.client.revocations import REVOCATIONS_FILE, RevocationQueue, Revoker

        queue = RevocationQueue(self.config.data_dir / REVOCATIONS_FILE)
        self._revocations = Revoker(self.config.host_url, workstation, queue).start()

    def _start_outbox(self) -> None:
        try:
            # Another agent holding it, a read-only or full disk, a database that cannot be
            # read nor rebuilt: raised, the view says it in one sentence and exits.
            self._outbox = open_outbox(self.config, holder=self._holder)
        except OutboxKeyError as error:
            # Dossiers can still be read; deposits wait until the key is back (doctor says so).
            log.error("outbox unusable: %s", error)
            self._problem = _("Outbox unusable: {error}").format(error=error)
            return
        try:
            recover_contents(self._outbox)
        except OutboxStorageError as error:  # a full disk: accounted for next time
            log.warning("outbox: %s", error)
        sender = make_sender(self._host_calls, self._outbox, current_author=self._own_id)

        def progress(step: Progress) -> None:
            sender.on_progress(step)
            self._on_progress(step)

        self._outbox_wake.worker = self._worker = OutboxWorker(
            self._outbox, sender, self._wakeup,
            policy=RetryPolicy.from_config(self.config), on_progress=progress).start()

    def stop(self) -> None:
        """Stop what `start` started, even when it failed half-way (a start-up failure must
        be told as itself, not hidden behind an error of the stop)."""
        if self._unlink is not None:
            self._unlink()
        self._monitor.stop()
        self._events.put(None)
        self._jobs.put(None)
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close("agent-stopped")
        if self._worker is not None:
            self._worker.stop()
        if self._outbox is not None:
            self._outbox.close()
        if self._revocations is not None:
            # An attempt in flight gets a second; what is left waits in the file.
            self._revocations.stop()
        for thread in (self._card_thread, self._job_thread):
            if thread.ident is not None:  # started
                thread.join(5)

    def __enter__(self) -> AgentService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the views see ---------------------------------------------------------------
    def _part(self, kind: str) -> dict[str, Any]:
        return {"cards": self._cards_json, "session": self._session_json,
                "patient": self._patient_json, "outbox": self._outbox_json,
                "host": self._host_json}[kind]()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"cards": self._cards_json(), "session": self._session_json(),
                    "patient": self._patient_json(), "outbox": self._outbox_json(),
                    "host": self._host_json(), "problem": self._problem,
                    "version": self.version}

    @staticmethod
    def _host_json() -> dict[str, Any]:
        return LINK.state.as_json()

    @property
    def slots(self) -> dict[str, SlotReport]:
        """The readers and their cards as the monitor last read them."""
        with self._lock:
            return dict(self._slots)

    @property
    def problem(self) -> str:
        return self._problem

    def _cards_json(self) -> dict[str, Any]:
        with self._lock:
            return cards_json(self._slots, self._service_up)

    def _session_json(self) -> dict[str, Any]:
        with self._lock:
            reader = self._cps_reader()
            return self._ecps_json(session_json(
                self._session, self._slots.get(reader) if reader else None,
                state=self._session_state, reader=reader or None,
                tries=self._session_tries, error=self._session_error))

    def _patient_json(self) -> dict[str, Any]:
        with self._lock:
            return patient_json(self._patient, self._own_id())

    # -- diagnostics and settings -----------------------------------------------------------
    def diagnostics(self) -> list[dict[str, str]]:
        """`dmp-agent doctor`'s checks; the cards as the monitor last read them."""
        from agent.install.doctor import run_checks
        from cardreader.inspect import inspect_reader

        def known(reader: str) -> SlotReport:
            with self._lock:
                report = self._slots.get(reader)
            return report or inspect_reader(reader)

        return [{"name": c.name, "title": c.title, "status": c.status.value, "detail": c.found,
                 "fix": c.fix}
                for c in run_checks(self.config, inspect=known)]

    def settings(self) -> dict[str, Any]:
        from agent.config import KEYS

        values = []
        for key in KEYS:
            value = getattr(self.config, key.field)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            values.append({"key": key.dotted, "value": value, "doc": key.description(),
                           "locked": key.dotted in self.config.locked})
        source, system = self.config.source, self.config.system_source
        return {"file": str(source) if source else None,
                "systemFile": str(system) if system else None,
                "ignored": list(self.config.ignored), "keys": values}

    def page_url(self, fragment: str = "") -> str:
        """The page's address with the API token in the fragment (never sent to a server,
        never in a log); ``fragment`` names a section, e.g. ``deposit``."""
        from agent.views.localapi.guard import page_url

        return page_url(self.config, fragment)
