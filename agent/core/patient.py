"""The core's patient part: the context follows the Vitale card in its reader.

On insertion (with a session open) the person is chosen when the card holds several, the
INS is resolved through the host's identity service, the DMP existence test is run and the
documents this professional may see are listed, on a thread of its own so that a slow host
never delays a card event. On removal the context is cleared at once, and a build that
finishes for a card already gone is thrown away (the context carries a generation number).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from agent.core.state import CoreState, PatientState
from agent.errors import AgentError
from agent.i18n import N_, _

# The DMP client, the Vitale parsers, the policies and wire load with the first patient or
# host call (on the card or patient thread), not at start (issue 11).
if TYPE_CHECKING:
    from cardreader.vitale import VitaleCard
    from policies import AccessMode

log = logging.getLogger("agent.core")

MIN_JUSTIFICATION = 10  # characters: a break-the-glass access must say why
OPEN_FIRST = N_("Open the session to read the dossier")
REGULATION_ONLY = N_("The centre 15 mode is reserved to structures registered as a regulation "
                     "centre")


class PatientPart(CoreState):
    def _new_patient(self, reader: str, card: VitaleCard) -> None:
        with self._lock:
            self._generation += 1
            patient = PatientState(self._generation, reader, card)
            if self._session is None or not self._session.alive:
                patient.state, patient.error = "error", _(OPEN_FIRST)
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
                self._patient = PatientState(self._generation, p.reader, p.card,
                                             state="error", error=_(OPEN_FIRST))
            else:
                self._patient = None
        self._publish("patient")

    def _job_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:
                log.exception("patient job failed")

    def _current(self, generation: int) -> PatientState | None:
        with self._lock:
            p = self._patient
            return p if p is not None and p.generation == generation else None

    def _load(self, generation: int) -> None:
        p = self._current(generation)
        if p is None or (p.person_index is None and p.context is None):
            return
        with self._lock:
            changes = p.changes  # what this listing will show at least
        try:
            with self._calls() as dmp:
                # The INS from the INS service (agent.core.identity): none or several stop
                # here, said to the views; the user chooses among several.
                context = p.context or self._identify(dmp, p)
                if context is None:
                    self._publish("patient")
                    return
                # The dossier and its documents in one round trip (issue 18).
                existence, documents = dmp.dossier(context, p.mode)
        except AgentError as error:
            with self._lock:
                if self._current(generation) is None:
                    pass
                elif (p.fetched_at is not None and p.context is not None
                      and error.code in ("host-unreachable", "host-certificate")):
                    # A reload the network failed: the list held stays, said to be from
                    # then (a refusal is no such thing: it is said as the patient's error).
                    p.state, p.stale = "ready", str(error)
                else:
                    p.state, p.error, p.failure = "error", str(error), error
            self._publish("patient")
            return
        with self._lock:
            if self._current(generation) is None:
                return  # the card left meanwhile: nothing of this patient stays
            p.context, p.dmp, p.documents = context, existence, documents
            p.listed_changes = changes
            p.fetched_at, p.stale = dt.datetime.now(dt.UTC), ""
            if not p.visit_known:  # the first listing's: the marks stay through reloads
                p.last_visit, p.visit_known = _moment(existence.get("lastConsultation")), True
            p.state, p.error, p.failure = "ready", "", None
        log.info("patient context ready (%d document(s))", len(documents))
        self._publish("patient")

    def _patient_ready(self, *, need_context: bool = True) -> PatientState:
        with self._lock:
            p = self._patient
        if p is None:
            raise AgentError(_("Insert the patient's Vitale card"), code="no-patient",
                             status=409)
        if need_context and p.context is None and p.state == "choosing-identity":
            # Homonyms: nothing happens under an INS until the user chose one (docs/ins.md).
            raise AgentError(_("Choose the patient's identity first: the INS service answered "
                               "several identities (compare their traits with the patient's "
                               "identity document)"), code="identity-choice-pending",
                             status=409)
        if need_context and p.context is None:
            raise AgentError(_("The patient's dossier is not ready yet"), code="no-patient",
                             status=409)
        return p

    @property
    def patient(self) -> PatientState | None:
        """The patient context as it is now (the command line reads it)."""
        return self._patient

    def select_person(self, index: int) -> dict[str, Any]:
        p = self._patient_ready(need_context=False)
        self._live_session()
        if p.card is None:
            raise AgentError(_("No Vitale card: the patient was found by typed traits"),
                             code="no-card", status=409)
        count = len(p.card.beneficiaries)
        if not 1 <= index <= count:
            raise AgentError(_("The card holds {count} person(s)").format(count=count),
                             code="bad-person", status=400, usage=True)
        with self._lock:
            if p is not self._patient:
                raise AgentError(_("The Vitale card was removed"), code="no-patient",
                                 status=409)
            p.person_index, p.context, p.state, p.error = index, None, "loading", ""
            p.identity, p.identity_status, p.candidates = None, "provisoire", []
            p.identity_document = p.identity_parent_document = None
            p.identity_validated, p.identity_notice = None, ""
            p.fetched_at, p.last_visit, p.visit_known = None, None, False
            p.dmp, p.documents, p.mode, p.sheet, p.failure = None, [], None, None, None
        self._publish("patient")
        self._load(p.generation)
        return self._patient_json()

    def reload_patient(self) -> dict[str, Any]:
        p = self._patient_ready(need_context=False)
        self._live_session()
        if p.person_index is None and p.context is None:
            raise AgentError(_("Choose the person on the card"), code="choose-person",
                             status=409)
        with self._lock:
            p.state = "loading"
        self._publish("patient")
        self._load(p.generation)
        return self._patient_json()

    def set_access_mode(self, mode: str, justification: str = "") -> dict[str, Any]:
        p = self._patient_ready(need_context=False)
        self._live_session()
        justification = justification.strip()
        from policies import AccessMode, ModeCode  # not at start

        chosen: AccessMode | None
        if mode == "normal":
            chosen = None
        elif mode == "break-the-glass":
            if len(justification) < MIN_JUSTIFICATION:
                raise AgentError(_("Describe the emergency (10 characters at least)"),
                                 code="justification-required", status=400, usage=True)
            chosen = AccessMode(ModeCode.BRIS_DE_GLACE, justification)
        elif mode == "regulation":
            chosen = AccessMode.centre_15()
            session = self._session
            if session is None or not session.may_use(chosen):
                raise AgentError(_(REGULATION_ONLY), code="regulation-centre-only",
                                 status=403)
        else:
            raise AgentError(_("mode {mode}: normal, break-the-glass or regulation").format(
                mode=repr(mode)), code="bad-mode", status=400)
        with self._lock:
            p.mode = chosen
            p.fetched_at = None  # the list held was read in another mode: never kept
        if p.person_index is not None or p.context is not None:
            self.reload_patient()
        else:
            self._publish("patient")
        return self._patient_json()


def _moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
