"""The patient context: it follows the Vitale card in its reader.

On insertion the card is read, the user chooses a person when the card holds several, the
INS is resolved through the host's identity service, the DMP existence test is run, and the
documents this professional may see are listed; on removal the context is cleared at once,
so a document never stays on screen for a patient who left. Events come from the card
monitor (SCardGetStatusChange), never from polling. The host decides every access; `policies`
pre-checks only what to offer.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.client.dmp import DmpClient, DmpError, PatientContext
from agent.client.session import SessionError
from agent.core.professional import SessionEndedError
from cardreader.apdu import ApduProtocol
from cardreader.errors import CardError
from cardreader.pcsc import EventKind, Monitor, PcscConnection, SlotEvent
from cardreader.vitale import Beneficiary, Vitale2Profile, VitaleCard
from wire.mhd import DocumentEntry

log = logging.getLogger(__name__)

Chooser = Callable[[VitaleCard], Beneficiary | None]  # None: the user cancelled


def holder(card: VitaleCard) -> Beneficiary:
    """The default choice: the card's holder."""
    return card.holder


@dataclass(frozen=True)
class Dossier:
    """What the professional sees for the patient of the card in the reader."""

    card: VitaleCard
    person: Beneficiary
    patient: PatientContext
    existence: dict[str, Any]
    documents: tuple[DocumentEntry, ...]


@dataclass(frozen=True)
class ContextEvent:
    """``dossier`` is set when a patient's dossier is ready, None when the context is
    cleared (card removed) or could not be built (``error`` says why)."""

    dossier: Dossier | None
    error: str = ""


class PatientWatcher:
    """Watches one reader for Vitale cards and keeps the patient context up to date."""

    def __init__(
        self,
        reader: str,
        dmp: Callable[[], DmpClient],
        listener: Callable[[ContextEvent], None],
        *,
        choose: Chooser = holder,
    ) -> None:
        self.reader = reader
        self._dmp = dmp
        self._listener = listener
        self._choose = choose
        self._events: queue.Queue[SlotEvent | None] = queue.Queue()
        self._monitor = Monitor(self._events.put)
        self._thread = threading.Thread(target=self._run, name="patient-context", daemon=True)
        self.current: Dossier | None = None

    def start(self) -> PatientWatcher:
        self._thread.start()
        self._monitor.start()
        return self

    def stop(self) -> None:
        self._monitor.stop()
        self._events.put(None)
        self._thread.join(timeout=10)

    def __enter__(self) -> PatientWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while (event := self._events.get()) is not None:
            if event.reader != self.reader and event.kind is not EventKind.SERVICE_LOST:
                continue
            if event.kind in (EventKind.CARD_REMOVED, EventKind.SERVICE_LOST,
                              EventKind.READER_REMOVED):
                if self.current is not None:
                    self.current = None
                    self._emit(ContextEvent(None, "carte Vitale retirée / card removed"))
            elif event.kind is EventKind.CARD_INSERTED:
                self._emit(self._build())

    def _emit(self, event: ContextEvent) -> None:
        try:
            self._listener(event)
        except Exception:  # a view's bug must not stop the watching
            log.exception("patient context listener failed")

    def _build(self) -> ContextEvent:
        try:
            with PcscConnection(self.reader) as connection:
                card = Vitale2Profile(ApduProtocol(connection)).read()
        except CardError as error:
            return ContextEvent(None, f"carte illisible / unreadable card: {error}")
        person = self._choose(card)
        if person is None:
            return ContextEvent(None, "choix annulé / choice cancelled")
        try:
            dmp = self._dmp()
            patient = dmp.resolve(card, person)
            existence = dmp.existence(patient)
            documents: tuple[DocumentEntry, ...] = ()
            if existence["status"] == "open":
                try:  # the host decides (authorisation, care team, médecin traitant)
                    documents = tuple(dmp.documents(patient))
                except DmpError as refused:
                    if refused.status != 403:
                        raise
        except (SessionError, SessionEndedError) as error:
            return ContextEvent(None, str(error))
        self.current = Dossier(card, person, patient, existence, documents)
        log.info("patient context ready (%d document(s))", len(documents))
        return ContextEvent(self.current)
