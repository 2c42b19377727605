"""The core's identity part: the patient's INS from the INS service, and its RNIV status
(identitovigilance, docs/ins.md).

- *provisoire*: the service did not return the identity (none found, several and none
  chosen yet);
- *récupérée*: the service returned it (the card's search answered one, or the user chose
  one of several with the traits shown: never picked silently);
- *validée*: the service found nobody, and the user checked a high-trust identity document
  against the person (held for the visit: no INS keys it);
- *qualifiée*: récupérée, and a user of this workstation checked a high-trust identity
  document (its kind recorded) against the traits the service returned.

The check is kept per patient in the outbox database (`agent.outbox.identities`) so it is
not asked again at each visit, and it is lost as soon as the service answers other traits
for that INS (at the next card, or when a check is recorded: the INS is verified first).
No document is deposited for an identity that is not qualifiée (`_require_qualified`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from agent.core.state import CoreState, PatientState
from agent.errors import AgentError
from agent.i18n import N_, _, ngettext

if TYPE_CHECKING:
    from agent.client.dmp import DmpClient, PatientContext
    from agent.outbox import Outbox
    from wire.ins import IdentityReliability, InsIdentity, Verification

log = logging.getLogger("agent.core")

PROVISOIRE, RECUPEREE, VALIDEE, QUALIFIEE = "provisoire", "récupérée", "validée", "qualifiée"
MAJORITY = 18
# Shown in the patient's state as well as raised: translated where they are used.
NO_IDENTITY = N_("The INS service found no identity for this card: check the card (beneficiary, "
                 "birth date) or search by the identity traits")
CHANGED = N_("The identity the INS service returns has changed since the identity document was "
             "checked: the identity is no longer qualified, check an identity document again")
NO_IDENTITY_TRAITS = N_("The INS service found no identity for these traits: check the spelling "
                        "of the birth name, the first names in the civil registry's order, the "
                        "birth date and place")
_BIRTH_DATE = re.compile(r"^\d{8}$")
_BIRTH_PLACE = re.compile(r"^(?:\d{5}|2A\d{3}|2B\d{3})$")
NOT_QUALIFIED = N_("The patient's identity is not qualified (status: {status}): no document "
                   "can be deposited under this INS. Check a high-trust identity document "
                   "(passport, national identity card, residence permit; for a minor, birth "
                   "certificate or family record book with the parent's document) and record "
                   "it (the page, or dmp-agent identity --document passeport)")


def _bad_trait(message: str) -> AgentError:
    return AgentError(message, code="bad-trait", status=400, usage=True)


def checked_traits(birth_name: str, first_names: list[str], sex: str, birth_date: str,
                    birth_place: str | None) -> dict[str, Any]:
    """Typed traits as the INS service's search wants them, or a 400 naming the trait."""
    birth_name = " ".join(birth_name.split())
    names = [n.strip() for n in first_names if n.strip()]
    if not birth_name or len(birth_name) > 100:
        raise _bad_trait(_("Birth name required (100 characters at most)"))
    if not names or len(names) > 10 or any(len(n) > 100 for n in names):
        raise _bad_trait(_("First names required, in the civil registry's order"))
    if sex not in ("M", "F"):
        raise _bad_trait(_("Sex: M or F"))
    if not _BIRTH_DATE.match(birth_date):
        raise _bad_trait(_("Birth date: YYYYMMDD (00 when the month or the day is "
                           "unknown)"))
    if birth_place and not _BIRTH_PLACE.match(birth_place):
        raise _bad_trait(_("Birth place: the 5-character INSEE code (99xxx abroad)"))
    return {"birth_name": birth_name, "first_names": names, "sex": sex,
            "birth_date": birth_date, "birth_place": birth_place or None}


def _age(birth_date: str, today: dt.date) -> int:
    """Years since a birth date YYYYMMDD, a lunar month or day read as the first."""
    year, month, day = int(birth_date[:4]), int(birth_date[4:6]) or 1, int(birth_date[6:]) or 1
    return today.year - year - ((today.month, today.day) < (month, day))


class IdentityPart(CoreState):
    def _identity_store(self) -> Outbox:
        if self._outbox is None:
            raise AgentError(_("Identity checks cannot be kept (outbox unavailable)")
                             + (f": {self._problem}" if self._problem else ""),
                             code="identity-store-unavailable", status=503)
        return self._outbox

    def _identify(self, dmp: DmpClient, p: PatientState) -> PatientContext | None:
        """The card's person through the INS service: one identity gives the context (its
        status settled against the checks kept); none or several leave the patient in
        ``error`` or ``choosing-identity``, said to the views, and give None."""
        assert p.person_index is not None and p.card is not None
        found = dmp.search_card(p.card, p.card.beneficiaries[p.person_index - 1])
        if len(found) == 1:
            return self._settle(p, found[0])
        with self._lock:
            if p is not self._patient:
                return None
            p.identity, p.identity_status, p.candidates = None, PROVISOIRE, list(found)
            if found:
                p.state, p.error, p.failure = "choosing-identity", "", None
            else:
                p.state, p.error = "error", _(NO_IDENTITY)
                p.failure = AgentError(p.error, code="identity-unknown", status=404)
        log.info("INS service: %d identities for the card", len(found))
        return None

    def _settle(self, p: PatientState, identity: InsIdentity) -> PatientContext:
        """Take ``identity`` (returned by the service) as the patient's: qualifiée when a
        document was checked for these very traits, else récupérée (a check made for other
        traits is forgotten, and said)."""
        from agent.client.dmp import context_of

        status, check, notice = RECUPEREE, None, ""
        if self._outbox is not None:
            check = self._outbox.checked(identity.ins, identity.traits_key())
            if check is not None and not check.same_traits:
                self._outbox.forget_check(identity.ins)
                check, notice = None, _(CHANGED)
            elif check is not None:
                status = QUALIFIEE
        with self._lock:
            p.identity, p.identity_status, p.candidates = identity, status, []
            p.identity_document = check.document if check else None
            p.identity_parent_document = check.parent_document if check else None
            p.identity_validated = check.validated if check else None
            p.identity_notice = notice
        if notice:
            self._notice("warning", _("Check the identity again"), notice)
        return context_of(identity)

    def search_identity(self, *, birth_name: str, first_names: list[str], sex: str,
                        birth_date: str, birth_place: str | None = None) -> dict[str, Any]:
        """The patient found by typed traits, with no card (the Vitale app, whose formats
        are not public, or no card at all): the INS service's search from traits, then the
        same paths as a card's: one (its dossier read), none, several (the user chooses).
        The traits are checked before anything is sent (400 bad-trait); the patient
        context replaces the current one, and a Vitale card inserted later replaces it."""
        traits = checked_traits(birth_name, first_names, sex, birth_date, birth_place)
        self._live_session()
        with self._lock:
            self._generation += 1
            p = PatientState(self._generation, "", None)
            self._patient = p
        self._publish("patient")
        try:
            with self._calls() as dmp:
                found = dmp.search_traits(**traits)
        except AgentError as error:
            with self._lock:
                if p is self._patient:
                    p.state, p.error, p.failure = "error", str(error), error
            self._publish("patient")
            raise
        if len(found) == 1:
            context = self._settle(p, found[0])
            with self._lock:
                if p is not self._patient:
                    return self._patient_json()
                p.context = context
            self._load(p.generation)
            return self._patient_json()
        with self._lock:
            if p is self._patient:
                p.candidates, p.error = list(found), "" if found else _(NO_IDENTITY_TRAITS)
                p.state = "choosing-identity" if found else "error"
                p.failure = None if found else AgentError(
                    p.error, code="identity-unknown", status=404)
        self._publish("patient")
        return self._patient_json()

    def choose_identity(self, index: int) -> dict[str, Any]:
        """The user's choice among the identities the service answered (1 = the first
        listed), the traits compared with the patient's document."""
        p = self._patient_ready(need_context=False)
        self._live_session()
        with self._lock:
            candidates = list(p.candidates)
            if p.state != "choosing-identity" or not candidates:
                raise AgentError(_("No identity choice is waiting"),
                                 code="no-identity-choice", status=409)
        if not 1 <= index <= len(candidates):
            raise AgentError(ngettext("The INS service answered {count} identity",
                                      "The INS service answered {count} identities",
                                      len(candidates)).format(count=len(candidates)),
                             code="bad-identity", status=400, usage=True)
        context = self._settle(p, candidates[index - 1])
        with self._lock:
            if p is not self._patient:
                raise AgentError(_("Vitale card removed"), code="no-patient", status=409)
            p.context, p.state = context, "loading"
        self._publish("patient")
        self._load(p.generation)
        return self._patient_json()

    def validate_identity(self, document: str, parent_document: str | None = None
                          ) -> dict[str, Any]:
        """Record that the user checked ``document`` (a key of `wire.ins.IDENTITY_DOCUMENTS`)
        against the identity the INS service returned; for a minor's birth certificate or
        family record book, ``parent_document`` is the parent's. The INS is verified with the
        service first: other traits there and nothing is recorded (the status drops)."""
        from wire.ins import IDENTITY_DOCUMENTS

        kind = IDENTITY_DOCUMENTS.get(document)
        if kind is None:
            raise AgentError(_("Unknown identity document {document}: {known}").format(
                document=repr(document), known=", ".join(IDENTITY_DOCUMENTS)),
                code="bad-identity-document", status=400, usage=True)
        parent = IDENTITY_DOCUMENTS.get(parent_document or "")
        if kind.minor and (parent is None or parent.minor):
            raise AgentError(_("{document}: give the parent's identity document (passeport, "
                               "carte-identite, titre-de-sejour)").format(document=kind.label),
                             code="parent-document-required", status=400, usage=True)
        if not kind.minor and parent_document:
            raise AgentError(_("A parent's document is for a minor only"),
                             code="bad-identity-document", status=400, usage=True)
        p = self._patient_ready(need_context=False)
        session = self._live_session()
        identity = p.identity
        if identity is None:
            return self._validate_provisional(p, kind.key, parent.key if kind.minor and parent
                                              else None)
        store = self._identity_store()
        if kind.minor and _age(identity.birth_date, dt.date.today()) >= MAJORITY:
            raise AgentError(_("{document}: for a minor patient only").format(
                document=kind.label), code="not-a-minor", status=400, usage=True)
        with self._calls() as dmp:
            verdict = dmp.verify(identity)
        if verdict.result != "match":
            self._identity_changed(p, verdict)
            raise AgentError(_(CHANGED), code="identity-changed", status=409)
        assert session.identity is not None
        check = store.record_check(identity.ins, identity.traits_key(), document=kind.key,
                                   parent_document=parent.key if kind.minor and parent
                                   else None, professional=session.identity.id_nat_ps)
        with self._lock:
            p.identity_status, p.identity_document = QUALIFIEE, check.document
            p.identity_parent_document, p.identity_validated = (check.parent_document,
                                                                check.validated)
            p.identity_notice = ""
        log.info("identity qualified (document %s)", kind.code)
        self._publish("patient")
        return self._patient_json()

    def _validate_provisional(self, p: PatientState, document: str,
                              parent_document: str | None) -> dict[str, Any]:
        """A document checked for a person the INS service found nobody for: the identity
        is validée (RNIV), for this visit only (without an INS nothing keys it in the store),
        and still no deposit (no INS to deposit under)."""
        with self._lock:
            failure = p.failure
            if p.context is not None or failure is None or failure.code != "identity-unknown":
                raise AgentError(_("No identity to check yet: wait for the INS service's "
                                   "answer"), code="no-identity", status=409)
            p.identity_status, p.identity_document = VALIDEE, document
            p.identity_parent_document, p.identity_validated = parent_document, time.time()
        self._publish("patient")
        return self._patient_json()

    def _identity_changed(self, p: PatientState, verdict: Verification) -> None:
        """The service no longer answers the traits held: the check goes, the identity is
        the service's (récupérée) or none (provisoire, the INS unknown now)."""
        from agent.client.dmp import context_of

        if p.identity is not None and self._outbox is not None:
            self._outbox.forget_check(p.identity.ins)
        with self._lock:
            p.identity = verdict.identity
            p.identity_status = RECUPEREE if verdict.identity is not None else PROVISOIRE
            p.identity_document = p.identity_parent_document = None
            p.identity_validated, p.identity_notice = None, _(CHANGED)
            if verdict.identity is not None:
                p.context = context_of(verdict.identity)
        self._publish("patient")

    def _require_qualified(self, p: PatientState) -> None:
        """Refuse, before anything is signed or queued, a deposit for an identity that is
        not qualifiée (409 identity-not-qualified, with what to do)."""
        if p.identity_status != QUALIFIEE or p.identity is None:
            raise AgentError(_(NOT_QUALIFIED).format(status=p.identity_status),
                             code="identity-not-qualified", status=409)

    def _reliability(self, p: PatientState) -> IdentityReliability:
        from wire.ins import IdentityReliability

        validated = (dt.datetime.fromtimestamp(p.identity_validated, dt.UTC).date()
                     if p.identity_validated is not None else None)
        return IdentityReliability(p.identity_status, p.identity_document, validated)
