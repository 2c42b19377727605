"""The one place where the host decides: every access goes through `Guard.check`.

It reads the dossier's state for the actor (authorization, blocking, médecin traitant, care
team, emergency consents), asks `policies.decide` (the host re-implements no rule), appends
the access — allowed or refused — to the patient's access log, writes the patient
notifications the decision calls for, and raises a 403 with the rule's reason when refused.
The log is written in its own transaction so that a refused or failed request is traced too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Row, exists, false, insert, select

from policies import (
    NORMAL,
    AccessMode,
    Action,
    Actor,
    AuthorizationStatus,
    Decision,
    Document,
    Dossier,
    DossierStatus,
    EmergencyConsents,
    ModeCode,
    Policy,
    decide,
)

from . import access_chain, audit
from .actors import SessionActor
from .errors import HostError
from .store.schema import (
    authorizations,
    dossiers,
    medecins_traitants,
    notifications,
    patients,
)


def dossier_state(
    connection: Connection, ins: str, id_nat_ps: str | None, now: dt.datetime
) -> Dossier:
    """The dossier as the rules see it, for the professional ``id_nat_ps`` (None: patient)."""
    with audit.guard_internal():
        return _dossier_state(connection, ins, id_nat_ps, now)


def _dossier_state(
    connection: Connection, ins: str, id_nat_ps: str | None, now: dt.datetime
) -> Dossier:
    # One statement: the dossier, each grant on it (outer join) and whether the caller is
    # a médecin traitant; every search and read starts here.
    traitant_of = exists().where(
        medecins_traitants.c.ins == ins,
        medecins_traitants.c.id_nat_ps == id_nat_ps,
        medecins_traitants.c.ended_at.is_(None),
    ) if id_nat_ps is not None else false()
    rows = connection.execute(
        select(dossiers.c.status, dossiers.c.consent_at, dossiers.c.consent_regulation_centre,
               dossiers.c.consent_break_the_glass, dossiers.c.consent_emergency_sees_masked,
               traitant_of.label("traitant"), authorizations.c.id_nat_ps,
               authorizations.c.structure_id, authorizations.c.status.label("grant_status"),
               authorizations.c.blocked, authorizations.c.expires_at)
        .select_from(dossiers.outerjoin(authorizations, authorizations.c.ins == dossiers.c.ins))
        .where(dossiers.c.ins == ins)
    ).all()
    if not rows:
        return Dossier(status=DossierStatus.ABSENT, initial_consent=False)
    row = rows[0]
    status = AuthorizationStatus.NONE
    structures: set[str] = set()
    for grant in rows:
        if grant.grant_status is None:
            continue  # no grant at all: the outer join's empty side
        active = grant.grant_status == "valid" and not grant.blocked and (
            grant.expires_at is None or grant.expires_at > now
        )
        if active and grant.structure_id:
            structures.add(grant.structure_id)
        if grant.id_nat_ps != id_nat_ps:
            continue
        if grant.blocked:
            status = AuthorizationStatus.FORBIDDEN
        elif active:
            status = AuthorizationStatus.VALID
        elif grant.grant_status == "valid":
            status = AuthorizationStatus.EXPIRED
    traitant = bool(row.traitant)
    return Dossier(
        status=DossierStatus(row.status),
        consents=EmergencyConsents(
            regulation_centre=row.consent_regulation_centre,
            break_the_glass=row.consent_break_the_glass,
            emergency_sees_masked=row.consent_emergency_sees_masked,
        ),
        authorization=status,
        is_medecin_traitant=traitant,
        authorised_structures=frozenset(structures),
        initial_consent=row.consent_at is not None,
    )


class Guard:
    def __init__(
        self, engine: Engine, clock: Callable[[], dt.datetime], policy: Policy | None = None
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.policy = policy or Policy()

    def check(
        self,
        connection: Connection,
        *,
        ins: str,
        actor: SessionActor,
        action: Action,
        mode: AccessMode,
        document: Document | None = None,
        document_id: str | None = None,
        log: bool = True,
    ) -> Decision:
        """Decide, trace and raise HostError(403) when refused; return the decision."""
        decision = self.decide(connection, ins=ins, actor=actor, action=action, mode=mode,
                               document=document)
        if log:
            self.trace(ins, actor, action, mode, decision, document_id)
        if decision.refused:
            raise HostError(403, decision.reason.code.lower().replace("_", "-"),
                            decision.reason.message, issue_type="forbidden")
        return decision

    def decide(
        self,
        connection: Connection,
        *,
        ins: str,
        actor: SessionActor,
        action: Action,
        mode: AccessMode,
        document: Document | None = None,
        dossier: Dossier | None = None,
    ) -> Decision:
        """The decision alone (no trace): for filtering search results one by one."""
        now = self.clock()
        state = dossier or dossier_state(connection, ins, actor.id_nat_ps, now)
        decision = decide(actor.policy_actor(mode), state, action, mode, document, now=now,
                          policy=self.policy)
        audit.decided(ins, actor, mode, action.value, decision)
        return decision

    def decide_identity_lookup(self, actor: SessionActor, mode: AccessMode) -> Decision:
        """RESOLVE_IDENTITY: decided on the professional alone (no dossier is named yet)."""
        decision = decide(actor.policy_actor(mode), Dossier(status=DossierStatus.ABSENT),
                          Action.RESOLVE_IDENTITY, mode, now=self.clock(), policy=self.policy)
        audit.decided(None, actor, mode, Action.RESOLVE_IDENTITY.value, decision)
        return decision

    def load(self, loader: Callable[[], Row[Any]]) -> Row[Any]:
        """Read what is about to be decided on (a document's metadata): the one read of
        patient data a route may make before a decision, because the decision needs it."""
        with audit.guard_internal():
            return loader()

    def trace(
        self,
        ins: str,
        actor: SessionActor,
        action: Action | str,
        mode: AccessMode,
        decision: Decision,
        document_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Append one access to the patient's log (own transaction) and notify if needed."""
        notification: tuple[str, dict[str, Any]] | None = None
        if decision.allowed and decision.notify_patient:
            kind = "new-document" if action in (Action.DEPOSIT, Action.REPLACE) else (
                "emergency-access" if mode.code is not ModeCode.NORMAL else "access"
            )
            notification = (kind, {
                "action": action.value, "mode": mode.code.value,  # type: ignore[union-attr]
                "justification": mode.justification, "actor": actor.display_name,
                "profession": actor.profession, "structure": actor.structure_id,
                "document": document_id, **(extra or {}),
            })
        record_access(
            self.engine, ins=ins, at=self.clock(), actor_kind="professional",
            actor_id=actor.id_nat_ps, actor_name=actor.display_name,
            profession=actor.profession, structure_id=actor.structure_id, action=str(action),
            mode=mode, allowed=decision.allowed, reason=decision.reason.code,
            document_id=document_id, notification=notification,
        )

    def trace_decision(self, ins: str, actor: SessionActor, action: str, mode: AccessMode,
                       decision: Decision, document_id: str | None = None) -> None:
        """Trace a decision a route left untraced (`audit.AuditMiddleware`), no notification."""
        self.trace(ins, actor, action, mode, dataclasses.replace(decision, notify_patient=False),
                   document_id)

    def trace_refusal(self, ins: str, actor: SessionActor, action: str, mode: AccessMode,
                      reason: str, document_id: str | None = None) -> None:
        """Trace a refusal that is not a rule's (malformed patch, version mismatch...)."""
        record_access(
            self.engine, ins=ins, at=self.clock(), actor_kind="professional",
            actor_id=actor.id_nat_ps, actor_name=actor.display_name,
            profession=actor.profession, structure_id=actor.structure_id, action=action,
            mode=mode, allowed=False, reason=reason, document_id=document_id,
        )


# -- the patient's own actions (host/patient.py) and host-level traces --------------------------
PATIENT_KIND = "patient"


def record_access(
    engine: Engine,
    *,
    ins: str,
    at: dt.datetime,
    actor_kind: str,
    actor_id: str,
    action: str,
    mode: AccessMode,
    allowed: bool,
    reason: str,
    actor_name: str | None = None,
    profession: str | None = None,
    structure_id: str | None = None,
    document_id: str | None = None,
    notification: tuple[str, dict[str, Any]] | None = None,
) -> None:
    """Append one access log row (own transaction), with an optional patient notification
    (kind, payload): for traces whose action or reason is not a `policies` value, such as
    the existence test, and for the patient's own actions."""
    with audit.guard_internal(), engine.begin() as connection:
        # Chained to the patient's previous entry (tamper-evident), same transaction.
        access_chain.append(connection, dict(
            ins=ins, id=str(uuid.uuid4()), at=at, actor_kind=actor_kind, actor_id=actor_id,
            actor_name=actor_name, profession=profession, structure_id=structure_id,
            action=action, mode=mode.code.value, justification=mode.justification,
            document_id=document_id, outcome="allowed" if allowed else "refused",
            reason=reason,
        ))
        if notification is not None:
            kind, payload = notification
            connection.execute(insert(notifications).values(
                ins=ins, id=str(uuid.uuid4()), created_at=at, kind=kind, payload=payload,
            ))
    audit.traced(allowed)


def check_patient(
    guard: Guard,
    connection: Connection,
    *,
    ins: str,
    action: Action,
    log_action: str | None = None,
) -> Decision:
    """`Guard.check` for the holder acting for themself (`Actor.patient(ins)`, normal mode):
    decide, trace with actor_kind "patient" (``log_action`` names what the log shows when it
    is not the policy action) and raise HostError(403) when refused."""
    now = guard.clock()
    dossier = dossier_state(connection, ins, None, now)
    decision = decide(Actor.patient(ins), dossier, action, NORMAL, now=now, policy=guard.policy)
    with audit.guard_internal():
        holder = connection.execute(
            select(patients.c.first_name, patients.c.birth_name).where(patients.c.ins == ins)
        ).one_or_none()
    record_access(
        guard.engine, ins=ins, at=now, actor_kind=PATIENT_KIND, actor_id=ins,
        actor_name=None if holder is None else f"{holder.first_name} {holder.birth_name}",
        action=log_action or action.value, mode=NORMAL, allowed=decision.allowed,
        reason=decision.reason.code,
    )
    if decision.refused:
        raise HostError(403, decision.reason.code.lower().replace("_", "-"),
                        decision.reason.message, issue_type="forbidden")
    return decision


def check_as(
    guard: Guard,
    connection: Connection,
    *,
    ins: str,
    actor: SessionActor,
    action: Action,
    mode: AccessMode,
    log_action: str,
) -> Decision:
    """`Guard.check` for a professional, the log showing ``log_action`` instead of the policy
    action (e.g. "list_authorizations" decided as READ_ACCESS_LOG)."""
    now = guard.clock()
    decision = guard.decide(connection, ins=ins, actor=actor, action=action, mode=mode)
    record_access(
        guard.engine, ins=ins, at=now, actor_kind="professional", actor_id=actor.id_nat_ps,
        actor_name=actor.display_name, profession=actor.profession,
        structure_id=actor.structure_id, action=log_action, mode=mode,
        allowed=decision.allowed, reason=decision.reason.code,
    )
    if decision.refused:
        raise HostError(403, decision.reason.code.lower().replace("_", "-"),
                        decision.reason.message, issue_type="forbidden")
    return decision
