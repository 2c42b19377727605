"""What the patient sees of their DMP and decides about it, as a patient portal shows it:
their documents (and masking one from professionals), the professionals the dossier knows,
and the designation of a médecin traitant DMP.

Like host/patient.py, every function acts as `Actor.patient(ins)`: decided by
`policies.decide` first, then the dossier is read, and each call is traced once in the
access log with actor_kind "patient" (a listing is one entry, not one per document).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, func, select

from policies import NORMAL, Action, Actor, Decision, Document, ReasonCode, decide
from wire import codes

from . import audit
from .documents import records, versions
from .dossiers import grants
from .dossiers.lifecycle import iso
from .errors import HostError, bad_request, not_found
from .guard import Guard, check_patient, dossier_state, trace_patient
from .identities import checked_ins
from .store.schema import access_log, authorizations, medecins_traitants
from .store.schema import documents as documents_table

# Refusals that say a document exists where the patient may not learn of it yet: answered
# (and traced) as an unknown document.
_HIDDEN = frozenset({ReasonCode.INVISIBLE_TO_PATIENT,
                     ReasonCode.INVISIBLE_TO_LEGAL_REPRESENTATIVES})
DOCUMENT_NOT_FOUND = "DOCUMENT_NOT_FOUND"


def _document_not_found() -> HostError:
    return not_found("document-not-found", "Document inconnu / no such document")


def _refusal(decision: Decision) -> HostError:
    """The 403 of a rule's refusal, as `check_patient` raises it."""
    return HostError(403, decision.reason.code.lower().replace("_", "-"),
                     decision.reason.message, issue_type="forbidden")


def _decide(guard: Guard, connection: Connection, ins: str, action: Action,
            document: Document | None = None, now: dt.datetime | None = None) -> Decision:
    """The patient's decision on their dossier (and ``document``), not traced yet: for the
    actions whose trace names a document or waits for a check of the host's own."""
    now = now or guard.clock()
    decision = decide(Actor.patient(ins), dossier_state(connection, ins, None, now), action,
                      NORMAL, document, now=now, policy=guard.policy)
    audit.patient_decided()
    return decision


def _trace(guard: Guard, ins: str, action: str, *, allowed: bool, reason: str,
           document_id: str | None = None) -> None:
    trace_patient(guard.engine, ins, guard.clock(), action, allowed=allowed, reason=reason,
                  document_id=document_id)


# -- documents ---------------------------------------------------------------------------------

Decider = Callable[[Row[Any], Action], Decision]


def _decider(guard: Guard, connection: Connection, ins: str, now: dt.datetime) -> Decider:
    """Decide the patient's actions on rows of their dossier, once per kind of document (a
    dossier holds many documents the rules see alike: `records.decision_key`)."""
    dossier = dossier_state(connection, ins, None, now)
    patient = Actor.patient(ins)
    decided: dict[tuple[Any, ...], Decision] = {}

    def decide_row(row: Row[Any], action: Action) -> Decision:
        key = (action, *records.decision_key(row))
        if key not in decided:
            decided[key] = decide(patient, dossier, action, NORMAL,
                                  records.policy_document(row), now=now, policy=guard.policy)
        return decided[key]

    return decide_row


def _author_name(row: Row[Any]) -> str | None:
    author = records.stored_entry(row).author
    name = " ".join(part for part in (author.first_name, author.last_name) if part)
    return name or None


def _item(row: Row[Any], decide_row: Decider) -> dict[str, Any]:
    """A document as the patient's list shows it; ``maskable``: would masking it (unmasking
    it, when masked) be allowed now."""
    flip = Action.UNMASK if row.masked else Action.MASK
    return {
        "id": row.id,
        "versionId": row.version_id,
        "title": row.title,
        "typeCode": row.type_code,
        "classCode": row.class_code,
        "authorId": row.author_id,
        "authorName": _author_name(row),
        "depositedAt": iso(row.deposited_at),
        "masked": row.masked,
        # FHIR status, archived shown as such (it is a flag beside "current").
        "status": "archived" if row.status == "current" and row.archived else row.status,
        "maskable": decide_row(row, flip).allowed,
    }


def documents(guard: Guard, ins: str, *, include_history: bool = False
              ) -> list[dict[str, Any]]:
    """The documents the patient may see, newest deposit first: current ones, as a default
    search shows them (SEARCH), or also the superseded and archived ones with
    ``include_history`` (READ). Never a deleted one, nor one still invisible to the patient,
    nor the signature of a deposit.
    The listing is one access (list_documents, decided as reading the dossier's history,
    the dossier-wide decision a listing needs); each document is then decided on its own."""
    ins = checked_ins(ins)
    action = Action.READ if include_history else Action.SEARCH
    statuses = ("current", "superseded") if include_history else ("current",)
    with guard.engine.connect() as connection:
        check_patient(guard, connection, ins=ins, action=Action.READ_ACCESS_LOG,
                      log_action="list_documents")
        decide_row = _decider(guard, connection, ins, guard.clock())
        rows = connection.execute(
            select(documents_table)
            # The submission sets' signatures are technical documents: not listed.
            .where(documents_table.c.ins == ins, documents_table.c.status.in_(statuses),
                   documents_table.c.type_code != codes.SIGNATURE_TYPE_CODE)
            .order_by(documents_table.c.deposited_at.desc(), documents_table.c.id.desc())
        ).all()
    return [_item(row, decide_row) for row in rows if decide_row(row, action).allowed]


def _own_document(connection: Connection, ins: str, document_id: str) -> Row[Any] | None:
    """The row of ``document_id`` if it is in ``ins``'s dossier (ids name their patient:
    another patient's id is never looked up)."""
    if records.ins_of(document_id) != ins:
        return None
    return connection.execute(select(documents_table).where(
        documents_table.c.ins == ins, documents_table.c.id == document_id)).one_or_none()


def set_masked(guard: Guard, ins: str, document_id: str, masked: bool) -> dict[str, Any]:
    """Mask a document of the patient's dossier from professionals (MASQUE_PS), or unmask
    it: decided as MASK / UNMASK, written as the document's next version (as a professional's
    patch is). Its author and the médecins traitants still see it (the rules). Already so:
    unchanged, no new version. Another patient's document, an unknown one or one the patient
    may not see yet: 404 document-not-found. Returns the document as `documents` lists it."""
    ins = checked_ins(ins)
    action = Action.MASK if masked else Action.UNMASK
    with guard.engine.connect() as connection:
        now = guard.clock()
        with audit.guard_internal():  # what is decided on
            row = _own_document(connection, ins, document_id)
        decision = _decide(guard, connection, ins, action,
                           None if row is None else records.policy_document(row), now)
    unknown = row is None and decision.reason is ReasonCode.DOCUMENT_REQUIRED
    if unknown or decision.reason in _HIDDEN:
        # No id in the trace: it may name another patient, or a document kept from this one.
        _trace(guard, ins, action.value, allowed=False, reason=DOCUMENT_NOT_FOUND)
        raise _document_not_found()
    if decision.refused:
        _trace(guard, ins, action.value, allowed=False, reason=decision.reason.code,
               document_id=document_id)
        raise _refusal(decision)
    assert row is not None
    if row.masked != masked:
        visibility = records.stored_entry(row).visibility
        visibility = visibility | {codes.MASQUE_PS} if masked else visibility - {codes.MASQUE_PS}
        try:
            with guard.engine.begin() as connection:
                versions.write_version(connection, row, visibility=visibility,
                                       status=row.status, archived=row.archived, now=now)
                row = _own_document(connection, ins, document_id)
        except HostError as error:  # 409: someone changed it since it was read
            _trace(guard, ins, action.value, allowed=False,
                   reason=error.code.upper().replace("-", "_"), document_id=document_id)
            raise
    _trace(guard, ins, action.value, allowed=True, reason=decision.reason.code,
           document_id=document_id)
    assert row is not None
    with guard.engine.connect() as connection:
        return _item(row, _decider(guard, connection, ins, now))


# -- professionals -----------------------------------------------------------------------------

def _authorization(row: Row[Any], now: dt.datetime) -> str:
    """valid / expired / revoked / none (a block without authorization)."""
    expired = row.expires_at is not None and row.expires_at <= now
    return "expired" if row.status == "valid" and expired else str(row.status)


def professionals(guard: Guard, ins: str) -> list[dict[str, Any]]:
    """The professionals the dossier knows: everyone in its access log (allowed or refused),
    authorized or blocked, or médecin traitant DMP; one item each, the most recent access
    first. Name, profession and structure are those of their latest access. Decided as
    reading the access history, traced once as list_professionals."""
    ins = checked_ins(ins)
    log = access_log
    # Each professional's latest entry (seq: the chain's order, unique per patient).
    latest = (select(func.max(log.c.seq).label("seq"))
              .where(log.c.ins == ins, log.c.actor_kind == "professional")
              .group_by(log.c.actor_id).subquery())
    with guard.engine.connect() as connection:
        check_patient(guard, connection, ins=ins, action=Action.READ_ACCESS_LOG,
                      log_action="list_professionals")
        now = guard.clock()
        accesses = connection.execute(
            select(log.c.actor_id, log.c.at, log.c.actor_name, log.c.profession,
                   log.c.structure_id)
            .join(latest, log.c.seq == latest.c.seq).where(log.c.ins == ins)
        ).all()
        grant_rows = connection.execute(
            select(authorizations).where(authorizations.c.ins == ins)).all()
        traitants = set(connection.execute(
            select(medecins_traitants.c.id_nat_ps).where(
                medecins_traitants.c.ins == ins, medecins_traitants.c.ended_at.is_(None))
        ).scalars())
    people: dict[str, dict[str, Any]] = {}

    def person(id_nat_ps: str) -> dict[str, Any]:
        return people.setdefault(id_nat_ps, {
            "idNatPs": id_nat_ps, "name": None, "profession": None, "structureId": None,
            "lastAccessAt": None, "authorization": "none", "blocked": False,
            "medecinTraitant": id_nat_ps in traitants,
        })

    for access in accesses:
        person(access.actor_id).update(
            name=access.actor_name, profession=access.profession,
            structureId=access.structure_id, lastAccessAt=iso(access.at))
    for grant in grant_rows:
        item = person(grant.id_nat_ps)
        item.update(authorization=_authorization(grant, now), blocked=grant.blocked)
        item["structureId"] = item["structureId"] or grant.structure_id
    for id_nat_ps in traitants:
        person(id_nat_ps)
    ordered = sorted(people.values(), key=lambda item: item["idNatPs"])
    # Most recent access first (ISO UTC strings sort as times); never seen: last.
    return sorted(ordered, key=lambda item: item["lastAccessAt"] or "", reverse=True)


def _known_professions(connection: Connection, ins: str, id_nat_ps: str) -> set[str | None]:
    """The professions ``id_nat_ps`` accessed the dossier with (allowed or refused)."""
    return set(connection.execute(
        select(access_log.c.profession).distinct().where(
            access_log.c.ins == ins, access_log.c.actor_kind == "professional",
            access_log.c.actor_id == id_nat_ps)
    ).scalars())


def designate_medecin_traitant(guard: Guard, ins: str, id_nat_ps: str) -> dict[str, Any]:
    """The patient declares a médecin traitant DMP (several are allowed): a doctor the
    dossier knows, i.e. who accessed it as a doctor (profession 10) or was designated
    before; 400 not-a-doctor for another professional it knows, 404 not-a-known-doctor for
    anyone else. Decided as the patient's authorization management (GRANT), traced as
    designate_medecin_traitant. Returns {idNatPs, designatedAt, designatedBy}."""
    ins, id_nat_ps = checked_ins(ins), grants.checked_id_nat_ps(id_nat_ps)
    log_action = "designate_medecin_traitant"
    with guard.engine.connect() as connection:
        decision = _decide(guard, connection, ins, Action.GRANT)
        if decision.refused:
            _trace(guard, ins, log_action, allowed=False, reason=decision.reason.code)
            raise _refusal(decision)
        professions = _known_professions(connection, ins, id_nat_ps)
        designated_before = connection.execute(select(medecins_traitants.c.id_nat_ps).where(
            medecins_traitants.c.ins == ins, medecins_traitants.c.id_nat_ps == id_nat_ps,
        )).first() is not None
    if grants.DOCTOR not in professions and not designated_before:
        if professions:
            _trace(guard, ins, log_action, allowed=False, reason="NOT_A_DOCTOR")
            raise bad_request("not-a-doctor", "Seul un médecin peut être médecin traitant DMP "
                              "/ only a doctor can be a médecin traitant DMP")
        _trace(guard, ins, log_action, allowed=False, reason="NOT_A_KNOWN_DOCTOR")
        raise not_found("not-a-known-doctor", "Ce médecin n'a jamais accédé à votre DMP / "
                        "this doctor never accessed this DMP: ask them to open it first")
    with guard.engine.begin() as connection:
        _, designation = grants.designate(connection, ins, id_nat_ps, designated_by=ins,
                                          now=guard.clock())
    _trace(guard, ins, log_action, allowed=True, reason=decision.reason.code)
    return designation
