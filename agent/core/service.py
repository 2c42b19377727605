"""The running agent: cards, the professional's session, the patient context and the outbox,
as one state that the local API, the page and the tray look at (docs/agent-local-api.md).

Card events come from one `Monitor` (SCardGetStatusChange, no polling) and are handled on one
thread, in order. A patient's dossier is built on another thread so that a slow host never
delays a card event: a removal clears the context at once, and a build that finishes for a
card already gone is thrown away (the context carries a generation number). Host calls made
for the API run on the caller's thread through the session, which refuses them as soon as
the CPS leaves its reader. The PIN is handed to the card once and never kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.client.dmp import FORMAT_CODES, DmpClient, DmpError, PatientContext, deposit_types
from agent.client.session import ClockSkewError, SessionError, Workstation, clock_skew
from agent.config import AgentConfig
from agent.core.cards_view import as_json
from agent.core.deposit import BUNDLE_ROOM, make_sender, queue_deposit, recover_contents
from agent.core.professional import PinCancelledError, ProfessionalSession, SessionEndedError
from agent.core.secrets_sheet import SecretsSheet, render_pdf
from agent.install.enrol import EnrolmentError, load_workstation
from agent.outbox import (
    Outbox,
    OutboxError,
    OutboxKeyError,
    OutboxStorageError,
    OutboxWake,
    OutboxWorker,
    Progress,
    RetryPolicy,
    open_outbox,
)
from agent.outbox import report as outbox_report
from agent.outbox.sealed import sealed_size
from agent.outbox.storage import storage_error
from cardreader.atr import CardKind
from cardreader.errors import CardError, CardNotAnsweringError, PinBlockedError, WrongPinError
from cardreader.inspect import CardStatus, SlotReport, inspect_reader
from cardreader.pcsc import EventKind, Monitor, SlotEvent
from cardreader.vitale import VitaleCard
from policies import AccessMode, ModeCode
from policies.matrix import default_matrix
from wire.mhd import Author, DocumentEntry

__all__ = ["AgentService", "ServiceError", "outbox_failure"]

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]
MIN_JUSTIFICATION = 10  # characters: a break-the-glass access must say why


class ServiceError(Exception):
    """A request the agent cannot carry out now: ``code`` for programs, ``status`` for
    HTTP, the message in French then English for people."""

    def __init__(self, code: str, message: str, status: int = 409, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.status, self.extra = code, status, extra


class _OncePrompt:
    """The PIN the page sent, presented once: asked again means the card refused it."""

    def __init__(self, pin: str) -> None:
        self._pin: str | None = pin
        self.refused_tries: int | None = None

    def ask(self, holder: str, tries_left: int) -> str | None:
        pin, self._pin = self._pin, None
        if pin is None:
            self.refused_tries = tries_left
        return pin


@dataclass
class _Patient:
    generation: int
    reader: str
    card: VitaleCard
    state: str = "loading"  # choosing, loading, ready, error
    person_index: int | None = None
    context: PatientContext | None = None
    dmp: dict[str, Any] | None = None
    documents: list[DocumentEntry] = field(default_factory=list)
    mode: AccessMode | None = None
    error: str = ""
    sheet: bytes | None = None  # the secrets sheet of a DMP created now: memory only


def _person_json(index: int, person: Any) -> dict[str, Any]:
    return {"index": index, "firstName": person.first_name, "lastName": person.last_name,
            "birthName": person.birth_name, "birthDate": str(person.birth_date),
            "quality": person.quality_label}


def document_json(entry: DocumentEntry, own_id: str | None = None) -> dict[str, Any]:
    kind = default_matrix().document_types.get(entry.type_code)
    return {
        "uniqueId": entry.unique_id, "title": entry.title, "typeCode": entry.type_code,
        "typeLabel": kind.label_fr if kind else entry.type_code,
        "classCode": entry.class_code, "created": entry.creation_time.isoformat(),
        "author": f"{entry.author.first_name or ''} {entry.author.last_name or ''}".strip(),
        "authorId": entry.author.id_nat_ps, "mimeType": entry.mime_type, "size": entry.size,
        "masked": entry.masked, "invisibleToPatient": entry.invisible_to_patient,
        "archived": entry.archived, "ownDocument": own_id is not None
        and entry.author.id_nat_ps == own_id, "patientDocument": entry.class_code == "90",
    }


def _card_failure(error: CardError) -> ServiceError:
    if isinstance(error, CardNotAnsweringError):  # frozen: only taking it out helps
        return ServiceError("card-not-answering", str(error), 504)
    return ServiceError("card-error", f"Carte / card: {error}", 409)


def outbox_failure(error: BaseException, directory: Path | None = None) -> ServiceError:
    """An outbox or disk failure as the API says it: no room or a disk that refuses (507,
    the sentence with its fix), anything else of the outbox (503). An OSError (a write in
    ``directory``, the upload's spool) is told the same way."""
    if isinstance(error, OSError):
        error = storage_error(error, directory or Path(tempfile.gettempdir()))
    if isinstance(error, OutboxStorageError):
        return ServiceError("disk-full" if error.reason == "disk-full" else "disk-refused",
                            f"Dépôt impossible / deposit impossible: {error}", 507)
    return ServiceError("outbox-error", f"File d'envoi / outbox: {error}", 503)


def _card_or_network(error: BaseException) -> ServiceError | None:
    """A card failure (409) or an unreachable host (503) as the API says them; else None."""
    if isinstance(error, CardError):
        return _card_failure(error)
    if isinstance(error, OSError) or type(error).__module__.startswith("httpx"):
        return ServiceError("host-unreachable", f"Hôte DMP injoignable / DMP host "
                            f"unreachable ({type(error).__name__})", 503)
    return None


class AgentService:
    """The agent's state and work. ``start()`` it, ``stop()`` it; thread-safe."""

    def __init__(self, config: AgentConfig, *, version: str = "") -> None:
        self.config = config
        self.version = version
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._events: queue.Queue[SlotEvent | None] = queue.Queue()
        self._monitor = Monitor(self._events.put)
        self._card_thread = threading.Thread(target=self._card_loop, name="agent-cards",
                                             daemon=True)
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._job_thread = threading.Thread(target=self._job_loop, name="agent-patient",
                                            daemon=True)
        self._service_up = True
        self._slots: dict[str, SlotReport] = {}
        self._session: ProfessionalSession | None = None
        self._session_state = "none"
        self._session_error = ""
        self._session_tries: int | None = None
        self._patient: _Patient | None = None
        self._generation = 0
        self._problem = ""
        self._workstation: Workstation | None = None
        self._outbox: Outbox | None = None
        self._worker: OutboxWorker | None = None
        self._wakeup = threading.Event()
        self._outbox_wake = OutboxWake()  # a session opening, the host answering: wake it
        self._sending: dict[str, Any] | None = None
        self._upload: dict[str, Any] | None = None

    # -- life -----------------------------------------------------------------------------
    def start(self) -> AgentService:
        try:
            self._workstation = load_workstation(self.config)
        except EnrolmentError as error:
            self._problem = f"{error} → dmp-agent enrol"
        try:
            # Another agent holding it, a read-only or full disk, a database that cannot be
            # read nor rebuilt: raised, `dmp-agent run` says it in one sentence and exits.
            self._outbox = open_outbox(
                self.config, holder=f"dmp-agent run, port {self.config.api_port}")
        except OutboxKeyError as error:
            # Dossiers can still be read; deposits wait until the key is back (doctor says so).
            log.error("outbox unusable: %s", error)
            self._problem = f"File d'envoi inutilisable / outbox unusable: {error}"
        if self._outbox is not None:
            try:
                recover_contents(self._outbox)
            except OutboxStorageError as error:  # a full disk: accounted for next time
                log.warning("outbox: %s", error)
            sender = make_sender(self._host_calls, self._outbox)

            def progress(step: Progress) -> None:
                sender.on_progress(step)
                self._on_progress(step)

            self._outbox_wake.worker = self._worker = OutboxWorker(
                self._outbox, sender, self._wakeup,
                policy=RetryPolicy.from_config(self.config), on_progress=progress).start()
        self._job_thread.start()
        self._card_thread.start()
        self._monitor.start()
        self._monitor.ready.wait(5.0)
        return self

    def stop(self) -> None:
        """Stop what `start` started, even when it failed half-way (a start-up failure must
        be told as itself, not hidden behind an error of the stop)."""
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
        for thread in (self._card_thread, self._job_thread):
            if thread.ident is not None:  # started
                thread.join(5)

    def __enter__(self) -> AgentService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- views ----------------------------------------------------------------------------
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
        for listener in listeners:
            try:
                listener(kind, data)
            except Exception:  # a view's bug must not stop the agent
                log.exception("listener failed on %s", kind)

    def _notice(self, level: str, title: str, text: str) -> None:
        self._publish("notice", {"level": level, "title": title, "text": text})

    def _part(self, kind: str) -> dict[str, Any]:
        return {"cards": self._cards_json, "session": self._session_json,
                "patient": self._patient_json, "outbox": self._outbox_json}[kind]()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"cards": self._cards_json(), "session": self._session_json(),
                    "patient": self._patient_json(), "outbox": self._outbox_json(),
                    "problem": self._problem, "version": self.version}

    def _cards_json(self) -> dict[str, Any]:
        with self._lock:
            slots = []
            for report in self._slots.values():
                item = as_json(report)
                item["kind"] = item.pop("card")
                item["pinTriesLeft"] = report.pin_tries_left
                slots.append(item)
            return {"service": "up" if self._service_up else "down", "slots": slots}

    def _session_json(self) -> dict[str, Any]:
        with self._lock:
            session, reader = self._session, self._cps_reader()
            out: dict[str, Any] = {"state": self._session_state, "reader": reader,
                                   "professional": None, "situation": None, "notAfter": None,
                                   "pinTriesLeft": self._session_tries,
                                   "error": self._session_error}
            report = self._slots.get(reader) if reader else None
            who = session.identity if session is not None else (
                report.cps if report is not None else None)
            if who is not None:
                out["professional"] = {
                    "idNatPs": who.id_nat_ps, "firstName": who.first_name,
                    "lastName": who.last_name, "profession": who.profession_code,
                    "specialty": who.specialty_code, "testCard": who.is_test_card}
            if session is not None and session.alive:
                situation = session.situation
                if situation is not None:
                    out["situation"] = {"structureId": situation.structure_id,
                                        "name": situation.structure_name}
                with contextlib.suppress(SessionEndedError):
                    out["notAfter"] = session.not_after.isoformat()
                    out["accessModes"] = list(session.access_modes)
            return out

    def _patient_json(self) -> dict[str, Any]:
        with self._lock:
            p = self._patient
            if p is None:
                return {"state": "none", "reader": None, "beneficiaries": [], "patient": None,
                        "dmp": None, "documents": [], "accessMode": None, "error": "",
                        "sheet": False}
            own = self._own_id()
            ctx = p.context
            return {
                "state": p.state, "reader": p.reader,
                "beneficiaries": [_person_json(i, b)
                                  for i, b in enumerate(p.card.beneficiaries, 1)],
                "personIndex": p.person_index,
                "patient": None if ctx is None else {
                    "ins": ctx.ins, "insOid": ctx.ins_oid, "firstName": ctx.first_name,
                    "birthName": ctx.birth_name, "birthDate": ctx.birth_date},
                "dmp": p.dmp,
                "documents": [document_json(e, own) for e in p.documents],
                "accessMode": None if p.mode is None else {
                    "code": p.mode.code.value, "justification": p.mode.justification or ""},
                "error": p.error, "sheet": p.sheet is not None,
            }

    def _outbox_json(self) -> dict[str, Any]:
        if self._outbox is None:
            return dict(outbox_report.EMPTY_JSON)
        paused = self._worker.sender.paused_until if self._worker is not None else 0.0
        return outbox_report.outbox_json(self._outbox, sending=self._sending,
                                         paused_until=paused)

    # -- cards ----------------------------------------------------------------------------
    def _cps_reader(self) -> str | None:
        if self._session is not None:
            return self._session.reader
        for reader, report in self._slots.items():
            if report.kind is CardKind.CPS:
                return reader
        return None

    def _card_loop(self) -> None:
        while (event := self._events.get()) is not None:
            try:
                self._on_card_event(event)
            except Exception:  # keep watching whatever one event did
                log.exception("card event %s failed", event.kind)

    def _on_card_event(self, event: SlotEvent) -> None:
        kind = event.kind
        if kind is EventKind.SERVICE_LOST:
            with self._lock:
                self._service_up = False
                self._slots.clear()
                self._problem = ("Service carte (pcscd) arrêté / the smart-card service "
                                 "stopped → systemctl start pcscd")
            self._session_gone("service-lost")
            self._clear_patient(None)
            self._publish("cards")
            return
        if kind is EventKind.SERVICE_BACK:
            with self._lock:
                self._service_up = True
                if self._problem.startswith("Service carte"):
                    self._problem = ""
            self._publish("cards")
            return
        reader = event.reader
        if kind in (EventKind.READER_REMOVED, EventKind.CARD_REMOVED):
            with self._lock:
                if kind is EventKind.READER_REMOVED:
                    self._slots.pop(reader, None)
                else:
                    self._slots[reader] = SlotReport(reader, CardStatus.NONE,
                                                     message="aucune carte / no card")
                if self._session is None and self._cps_reader() is None:
                    # The CPS of a locked (or never opened) session left.
                    self._session_state, self._session_error = "none", ""
                    self._session_tries = None
            self._clear_patient(reader)
            if self._session is not None and self._session.reader == reader:
                self._session_gone("card-removed")
            self._publish("cards")
            self._publish("session")
            return
        if kind in (EventKind.READER_ADDED, EventKind.CARD_INSERTED, EventKind.CARD_MUTE):
            # A reader's cards are reported after it as insertions: none until then.
            report = (inspect_reader(reader, self._slots.get(reader))
                      if kind is not EventKind.READER_ADDED
                      else SlotReport(reader, CardStatus.NONE, message="aucune carte / no card"))
            with self._lock:
                self._slots[reader] = report
                if report.kind is CardKind.CPS and self._session is None:
                    self._session_state = ("locked" if report.status in (
                        CardStatus.VALID, CardStatus.CHANGED) else "none")
                    self._session_error = report.message if report.status not in (
                        CardStatus.VALID, CardStatus.CHANGED) else ""
                    self._session_tries = report.pin_tries_left
            self._publish("cards")
            if report.kind is CardKind.CPS:
                if report.status is CardStatus.BLOCKED:
                    self._notice("error", "Carte CPS bloquée / CPS blocked",
                                 "Débloquez-la avec le code PUK / unblock it with the PUK")
                elif report.status is CardStatus.EXPIRED:
                    self._jobs.put(lambda: self._explain_expiry(report))
                self._publish("session")
            if report.kind is CardKind.VITALE and report.vitale is not None:
                self._new_patient(reader, report.vitale)

    def _explain_expiry(self, report: SlotReport) -> None:
        """Clock first: a CPS "expired" by this clock may be a clock off by months; the
        host's Date tells, and the slot and the session then say so (not the card)."""
        workstation = self._workstation
        if workstation is None:
            return
        skew = clock_skew(self.config.host_url, workstation, self.config.host_timeout)
        if skew is None:
            return
        with self._lock:
            if self._slots.get(report.reader) is not report:
                return  # the card left or changed meanwhile
            self._slots[report.reader] = dataclasses.replace(report, message=str(skew))
            if self._session is None:
                self._session_error = str(skew)
        self._publish("cards")
        self._publish("session")

    # -- session --------------------------------------------------------------------------
    def open_session(self, pin: str, situation: int = 0) -> dict[str, Any]:
        """Present ``pin`` to the CPS once and open the host session."""
        with self._lock:
            if self._session is not None and self._session.alive:
                raise ServiceError("session-open", "Session déjà ouverte / a session is "
                                   "already open", 409)
            reader = self._cps_reader()
            if reader is None:
                raise ServiceError("no-cps", "Insérez la carte CPS / insert the CPS card", 409)
            if self._workstation is None:
                raise ServiceError("not-enrolled", self._problem or "poste non enrôlé / not "
                                   "enrolled", 409)
            if self._session_state == "opening":
                raise ServiceError("busy", "Ouverture en cours / already opening", 409)
            self._session_state, self._session_error = "opening", ""
        self._publish("session")
        prompt = _OncePrompt(pin)
        del pin

        def choose(situations: Any) -> Any:
            if not 0 <= situation < len(situations):
                raise ServiceError("bad-situation", f"situation {situation}: la carte en porte "
                                   f"{len(situations)} / the card holds {len(situations)}", 400)
            return situations[situation]

        try:
            session = ProfessionalSession.open(
                reader, self._workstation, self.config.host_url, prompt,
                choose_situation=choose, timeout=self.config.host_timeout)
        except BaseException as error:
            self._session_failed(error, prompt)
            raise self._as_service_error(error, prompt) from None
        with self._lock:
            self._session = session
            self._session_state, self._session_error, self._session_tries = "open", "", None
        threading.Thread(target=self._watch_session_end, args=(session,), daemon=True,
                         name="session-end").start()
        identity = session.identity
        assert identity is not None
        log.info("session opened through the local API")
        self._publish("session")
        self._notice("info", "Session DMP ouverte / DMP session open",
                     f"{identity.first_name} {identity.last_name}")
        session.on_opened(self._outbox_wake.session_opened)  # after `_session`: sent through it
        for reader_name, report in list(self._slots.items()):
            if report.kind is CardKind.VITALE and report.vitale is not None and (
                    self._patient is None or self._patient.state == "error"):
                self._new_patient(reader_name, report.vitale)
        return self._session_json()

    def _session_failed(self, error: BaseException, prompt: _OncePrompt) -> None:
        with self._lock:
            self._session_state = "locked" if self._cps_reader() else "none"
            self._session_error = str(self._as_service_error(error, prompt))
            if isinstance(error, PinBlockedError):
                self._session_tries = 0
            elif prompt.refused_tries is not None:
                self._session_tries = prompt.refused_tries
        self._publish("session")
        if isinstance(error, PinBlockedError):
            self._notice("error", "Carte CPS bloquée / CPS blocked",
                         "Débloquez-la avec le code PUK / unblock it with the PUK")

    @staticmethod
    def _as_service_error(error: BaseException, prompt: _OncePrompt) -> ServiceError:
        if isinstance(error, ServiceError):
            return error
        if isinstance(error, PinCancelledError) and prompt.refused_tries is not None:
            tries = prompt.refused_tries
            return ServiceError("wrong-pin", f"Code porteur erroné : {tries} essai(s) "
                                f"restant(s) / wrong PIN: {tries} tries left", 401,
                                triesLeft=tries)
        if isinstance(error, WrongPinError):
            return ServiceError("wrong-pin", f"Code porteur erroné : {error.tries_left} "
                                "essai(s) restant(s) / wrong PIN", 401,
                                triesLeft=error.tries_left)
        if isinstance(error, PinBlockedError):
            return ServiceError("card-blocked", "Carte CPS bloquée : débloquez-la avec le code "
                                "PUK / the CPS is blocked: unblock it with the PUK", 423)
        if isinstance(error, ClockSkewError):  # the workstation's fault, not the host's
            return ServiceError("clock-skew", str(error), 409)
        if isinstance(error, SessionError):
            return ServiceError(error.code or "host-refused", f"Refus de l'hôte DMP / the DMP "
                                f"host refused: {error}", 502)
        if (found := _card_or_network(error)) is not None:
            return found
        log.error("session opening failed: %s", type(error).__name__)
        return ServiceError("failed", f"Échec / failed: {type(error).__name__}", 500)

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
        current.close(reason)
        self._clear_patient(None, keep_card=True)
        self._publish("session")
        self._publish("patient")
        why = {"card-removed": "carte retirée / card removed",
               "logout": "session verrouillée / session locked",
               "service-lost": "service carte arrêté / smart-card service stopped"}
        self._notice("info", "Session DMP fermée / DMP session closed",
                     why.get(reason, reason))

    def lock_session(self) -> None:
        """Close the session; the CPS stays in its reader, the PIN will be asked again."""
        with self._lock:
            session = self._session
        if session is None:
            raise ServiceError("no-session", "Aucune session ouverte / no session open", 409)
        self._session_gone("logout", session)

    def _live_session(self) -> ProfessionalSession:
        session = self._session
        if session is None or not session.alive:
            raise ServiceError("no-session", "Ouvrez la session (carte CPS et code porteur) / "
                               "open the session first (CPS and PIN)", 409)
        return session

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
        """Host calls for an API request, each failure turned into a `ServiceError`."""
        session = self._live_session()
        try:
            yield session.dmp()
        except ServiceError:
            raise
        except SessionEndedError as error:
            raise ServiceError("session-ended", str(error), 409) from None
        except DmpError as error:
            status = error.status if error.status in (400, 403, 404, 409, 412, 413) else 502
            raise ServiceError(error.code or "host-refused", str(error), status) from None
        except SessionError as error:
            status = error.status if error.status in (400, 403, 404, 409, 412) else 502
            raise ServiceError(error.code or "host-refused", str(error), status or 502) from None
        except Exception as error:
            if (found := _card_or_network(error)) is not None:
                raise found from None
            raise

    def _own_id(self) -> str | None:
        """The idNat_PS of the session's professional (their own documents), if any."""
        session = self._session
        return session.identity.id_nat_ps if session is not None and session.identity else None

    def _author(self, session: ProfessionalSession) -> Author:
        identity, situation = session.identity, session.situation
        assert identity is not None and situation is not None
        return Author(identity.id_nat_ps, identity.profession_code, situation.structure_id,
                      identity.specialty_code, identity.last_name, identity.first_name)

    # -- patient --------------------------------------------------------------------------
    def _new_patient(self, reader: str, card: VitaleCard) -> None:
        with self._lock:
            self._generation += 1
            patient = _Patient(self._generation, reader, card)
            if self._session is None or not self._session.alive:
                patient.state = "error"
                patient.error = ("Ouvrez la session pour lire le dossier / open the session "
                                 "to read the dossier")
            elif len(card.beneficiaries) > 1:
                patient.state = "choosing"
            else:
                patient.person_index = 1
            self._patient = patient
        self._publish("patient")
        if patient.state == "loading":
            self._jobs.put(lambda: self._load(patient.generation))

    def _clear_patient(self, reader: str | None, keep_card: bool = False) -> None:
        with self._lock:
            p = self._patient
            if p is None or (reader is not None and p.reader != reader):
                return
            self._generation += 1
            if keep_card:
                # The session ended: nothing of the dossier stays, the card may be used again.
                self._patient = _Patient(self._generation, p.reader, p.card, state="error",
                                         error="Ouvrez la session pour lire le dossier / open "
                                               "the session to read the dossier")
            else:
                self._patient = None
        self._publish("patient")

    def _job_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:
                log.exception("patient job failed")

    def _current(self, generation: int) -> _Patient | None:
        with self._lock:
            p = self._patient
            return p if p is not None and p.generation == generation else None

    def _load(self, generation: int) -> None:
        p = self._current(generation)
        if p is None or p.person_index is None:
            return
        person = p.card.beneficiaries[p.person_index - 1]
        try:
            with self._calls() as dmp:
                context = p.context or dmp.resolve(p.card, person)
                existence = dmp.existence(context, p.mode)
                documents: list[DocumentEntry] = []
                if existence.get("status") == "open":
                    try:
                        documents = dmp.documents(context, p.mode)
                    except DmpError as refused:
                        if refused.status != 403:
                            raise
        except ServiceError as error:
            with self._lock:
                if self._current(generation) is not None:
                    p.state, p.error = "error", str(error)
            self._publish("patient")
            return
        with self._lock:
            if self._current(generation) is None:
                return  # the card left meanwhile: nothing of this patient stays
            p.context, p.dmp, p.documents = context, existence, documents
            p.state, p.error = "ready", ""
        log.info("patient context ready (%d document(s))", len(documents))
        self._publish("patient")

    def _patient_ready(self, *, need_context: bool = True) -> _Patient:
        with self._lock:
            p = self._patient
        if p is None:
            raise ServiceError("no-patient", "Insérez la carte Vitale du patient / insert "
                               "the patient's Vitale card", 409)
        if need_context and p.context is None:
            raise ServiceError("no-patient", "Dossier du patient pas encore prêt / the "
                               "patient's dossier is not ready", 409)
        return p

    def select_person(self, index: int) -> dict[str, Any]:
        p = self._patient_ready(need_context=False)
        self._live_session()
        if not 1 <= index <= len(p.card.beneficiaries):
            raise ServiceError("bad-person", f"La carte porte {len(p.card.beneficiaries)} "
                               f"personne(s) / the card holds {len(p.card.beneficiaries)}", 400)
        with self._lock:
            if p is not self._patient:
                raise ServiceError("no-patient", "Carte Vitale retirée / card removed", 409)
            p.person_index, p.context, p.state, p.error = index, None, "loading", ""
            p.dmp, p.documents, p.mode, p.sheet = None, [], None, None
        self._publish("patient")
        self._load(p.generation)
        return self._patient_json()

    def reload_patient(self) -> dict[str, Any]:
        p = self._patient_ready(need_context=False)
        self._live_session()
        if p.person_index is None:
            raise ServiceError("choose-person", "Choisissez la personne sur la carte / "
                               "choose the person on the card", 409)
        with self._lock:
            p.state = "loading"
        self._publish("patient")
        self._load(p.generation)
        return self._patient_json()

    def set_access_mode(self, mode: str, justification: str = "") -> dict[str, Any]:
        p = self._patient_ready(need_context=False)
        self._live_session()
        justification = justification.strip()
        if mode == "normal":
            chosen = None
        elif mode == "break-the-glass":
            if len(justification) < MIN_JUSTIFICATION:
                raise ServiceError("justification-required", "Décrivez l'urgence (10 "
                                   "caractères au moins) / describe the emergency (at least "
                                   "10 characters)", 400)
            chosen = AccessMode(ModeCode.BRIS_DE_GLACE, justification)
        elif mode == "regulation":
            chosen = AccessMode.centre_15()
            session = self._session
            if session is None or not session.may_use(chosen):
                raise ServiceError("regulation-centre-only", "Le mode centre 15 est réservé aux "
                                   "structures enregistrées comme centre de régulation / the "
                                   "centre 15 mode is reserved to registered regulation "
                                   "centres", 403)
        else:
            raise ServiceError("bad-mode", f"mode {mode!r}: normal, break-the-glass ou "
                               "regulation", 400)
        with self._lock:
            p.mode = chosen
        if p.person_index is not None:
            self.reload_patient()
        else:
            self._publish("patient")
        return self._patient_json()

    # -- documents ------------------------------------------------------------------------
    def documents(self, *, type_codes: tuple[str, ...] = (), archived: bool = False,
                  author: str = "", since: dt.date | None = None, until: dt.date | None = None,
                  text: str = "") -> list[dict[str, Any]]:
        p = self._patient_ready()
        assert p.context is not None
        with self._calls() as dmp:
            entries = dmp.documents(p.context, p.mode,
                                    **({"isArchived": "true"} if archived else {}))
        own = self._own_id()
        out = []
        for entry in entries:
            if type_codes and entry.type_code not in type_codes:
                continue
            item = document_json(entry, own)
            day = entry.creation_time.date()
            if (since and day < since) or (until and day > until):
                continue
            if author and author.lower() not in item["author"].lower():
                continue
            if text and text.lower() not in (entry.title + " " + item["typeLabel"]).lower():
                continue
            out.append(item)
        return out

    def _entry(self, dmp: DmpClient, p: _Patient, unique_id: str) -> DocumentEntry:
        assert p.context is not None
        return dmp.find_document(p.context, unique_id, p.mode)

    def document_content(self, unique_id: str) -> tuple[bytes, str, str]:
        """(bytes, MIME type, title) of a document, its hash checked."""
        p = self._patient_ready()
        with self._calls() as dmp:
            entry = self._entry(dmp, p, unique_id)
            return dmp.retrieve(entry, p.mode), entry.mime_type, entry.title

    def change_document(self, unique_id: str, action: str) -> dict[str, Any]:
        changes: dict[str, Callable[[DmpClient, PatientContext, str], DocumentEntry]] = {
            "mask": DmpClient.mask, "unmask": DmpClient.unmask,
            "hide-from-patient": DmpClient.set_invisible_to_patient,
            "archive": DmpClient.archive, "delete": DmpClient.delete}
        if action not in changes:
            raise ServiceError("bad-action", f"action {action!r}: {', '.join(changes)}", 404)
        p = self._patient_ready()
        assert p.context is not None
        with self._calls() as dmp:
            entry = changes[action](dmp, p.context, unique_id)
        self._jobs.put(lambda: self._load(p.generation))
        return document_json(entry, self._own_id())

    def deposit_types(self) -> list[dict[str, str]]:
        session = self._live_session()
        assert session.identity is not None
        return [{"code": c, "classCode": k, "label": label}
                for c, k, label in deposit_types(session.identity.profession_code)]

    def deposit(self, content: Path, *, mime_type: str, type_code: str, title: str = "",
                masked: bool = False, invisible_to_patient: bool = False,
                replaces: str | None = None) -> dict[str, Any]:
        """Sign with the CPS and queue in the outbox (``content`` is copied: the caller may
        delete it once this returns); the outbox worker sends it."""
        if mime_type not in FORMAT_CODES:
            raise ServiceError("bad-format", f"PDF ou texte attendu / a PDF or text file is "
                               f"expected (here {mime_type})", 415)
        outbox = self._usable_outbox()
        p = self._patient_ready()
        session = self._live_session()
        assert p.context is not None
        if replaces is not None:
            with self._calls() as dmp:
                old = self._entry(dmp, p, replaces)
            type_code, title = old.type_code, title or old.title
            masked, invisible_to_patient = old.masked, old.invisible_to_patient
        allowed = {t["code"]: t["label"] for t in self.deposit_types()}
        if type_code not in allowed:
            raise ServiceError("bad-type", f"type {type_code}: non autorisé pour votre "
                               "profession / not a type your profession may deposit", 400)
        title = title.strip() or allowed[type_code]
        try:
            item_id = queue_deposit(
                outbox, p.context, content, author=self._author(session),
                type_code=type_code, title=title, sign=session.sign_document,
                certificate_der=session.signature_certificate_der, masked=masked,
                invisible_to_patient=invisible_to_patient, replaces=replaces,
                mime_type=mime_type, format_code=FORMAT_CODES[mime_type])
        except SessionEndedError as error:
            raise ServiceError("session-ended", str(error), 409) from None
        except CardError as error:
            raise _card_failure(error) from None
        except OutboxError as error:
            raise outbox_failure(error) from None
        item = outbox.get(item_id)
        self._wakeup.set()
        self._publish("outbox")
        return {"id": item_id, "uniqueId": item.unique_id, "title": title}

    def check_deposit_room(self, size: int, spool: Path | None = None) -> None:
        """Refuse, before a byte is received, a deposit of ``size`` bytes the disk cannot
        hold: its sealed copy and bundle in the outbox, plus the upload's spool file in
        ``spool`` when that is the same disk ("disque plein : 5 Mo nécessaires, 2 Mo
        libres"). A ServiceError (507)."""
        outbox = self._usable_outbox()
        needed = sealed_size(size) + BUNDLE_ROOM
        with contextlib.suppress(OSError):
            if spool is not None and spool.stat().st_dev == outbox.directory.stat().st_dev:
                needed += size
        try:
            outbox.ensure_room(needed)
        except OutboxError as error:
            raise outbox_failure(error) from None

    def _usable_outbox(self) -> Outbox:
        if self._outbox is None:
            raise ServiceError("outbox-unusable", self._problem or "file d'envoi inutilisable "
                               "/ outbox unusable", 503)
        return self._outbox

    def retry_deposit(self, item_id: int) -> dict[str, Any]:
        outbox = self._usable_outbox()
        try:
            item = outbox.retry(item_id)
        except OutboxError as error:
            raise ServiceError("bad-item", str(error), 404) from None
        self._wakeup.set()
        self._publish("outbox")
        return {"id": item.id, "state": item.state.value}

    def _on_progress(self, step: Progress) -> None:
        title = str(step.item.metadata.get("title", ""))
        with self._lock:
            self._sending = {"id": step.item.id, "title": title} if step.kind == "sending" \
                else None
        self._publish("outbox")
        if step.kind == "done":
            self._notice("info", "Document déposé / document deposited", title)
            p = self._patient
            if p is not None and p.context is not None and p.context.ins == step.item.patient:
                self._jobs.put(lambda: self._load(p.generation))
        elif step.kind == "failed":
            self._notice("error", "Dépôt refusé / deposit refused",
                         f"{title}: {step.item.last_error}")

    def outbox(self) -> dict[str, Any]:
        return self._outbox_json()

    # -- DMP creation and authorisation ----------------------------------------------------
    def create_dmp(self, *, consent: bool, break_the_glass: bool = True,
                   regulation_centre: bool = True, emergency_sees_masked: bool = True
                   ) -> dict[str, Any]:
        if not consent:
            raise ServiceError("consent-required", "Le consentement du patient est "
                               "obligatoire / the patient's consent is required", 400)
        p = self._patient_ready()
        session = self._live_session()
        assert p.context is not None and session.identity is not None
        with self._calls() as dmp:
            state = dmp.existence(p.context)
            if state.get("status") != "absent":
                raise ServiceError("dmp-exists", f"Ce patient a déjà un DMP ({state['status']})"
                                   " / this patient already has a DMP", 409)
            created = dmp.create(p.context, consent=True, regulation_centre=regulation_centre,
                                 break_the_glass=break_the_glass,
                                 emergency_sees_masked=emergency_sees_masked)
        sheet = SecretsSheet.for_created_dmp(
            p.context, created, f"{session.identity.first_name} {session.identity.last_name}")
        with self._lock:
            p.sheet = render_pdf(sheet)
        self.reload_patient()
        return {"identifier": created["identifier"], "sheet": "/api/dmp/sheet"}

    def secrets_sheet(self) -> bytes:
        p = self._patient_ready()
        if p.sheet is None:
            raise ServiceError("no-sheet", "Aucune fiche : elle n'existe qu'à la création du "
                               "DMP / no sheet: it exists only when the DMP is created", 404)
        return p.sheet

    def authorize(self, *, confirmed: bool) -> dict[str, Any]:
        if not confirmed:
            raise ServiceError("confirmation-required", "Confirmez que le patient, présent, "
                               "vous autorise / confirm that the patient authorises you", 400)
        p = self._patient_ready()
        session = self._live_session()
        assert p.context is not None and session.identity is not None
        with self._calls() as dmp:
            answer = dmp.record_authorization(p.context, session.identity.id_nat_ps,
                                              confirmed=True)
        self.reload_patient()
        return answer

    # -- diagnostics and settings -----------------------------------------------------------
    def diagnostics(self) -> list[dict[str, str]]:
        """`dmp-agent doctor`'s checks; the cards as the monitor last read them."""
        from agent.install.doctor import run_checks

        def known(reader: str) -> SlotReport:
            with self._lock:
                report = self._slots.get(reader)
            return report or inspect_reader(reader)

        return [{"name": c.name, "status": c.status.value, "detail": c.found, "fix": c.fix}
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
            values.append({"key": key.dotted, "value": value, "doc": key.doc})
        source = self.config.source
        return {"file": str(source) if source else None, "keys": values}

    def page_url(self, fragment: str = "") -> str:
        """The page's address with the API token in the fragment (never sent to a server,
        never in a log); ``fragment`` names a section, e.g. ``deposit``."""
        from agent.views.localapi.guard import page_url

        return page_url(self.config, fragment)
