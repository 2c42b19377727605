"""The one place where the host decides: every access goes through `Guard.check`.

It reads the dossier's state for the actor (authorization, blocking, médecin traitant, care
team, emergency consents), asks `policies.decide` (the host re-implements no rule), appends
the access — allowed or refused — to the patient's access log, writes the patient
notifications the decision calls for, and raises a 403 with the rule's reason when refused.
The log is written in its own transaction so that a refused or failed request is traced too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    String,
    bindparam,
    exists,
    false,
    select,
)

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

from . import access_chain, audit, notify_events
from .actors import SessionActor
from .errors import HostError
from .store.schema import (
    authorizations,
    dossiers,
    medecins_traitants,
    patients,
)


def dossier_state(
    connection: Connection, ins: str, id_nat_ps: str | None, now: dt.datetime
) -> Dossier:
    """The dossier as the rules see it, for the professional ``id_nat_ps`` (None: patient)."""
    with audit.guard_internal():
        return _dossier_state(connection, ins, id_nat_ps, now)


def _dossier_statement(professional: bool) -> Any:
    """The one statement of `dossier_state`, built once (bound ``ins`` and ``id_nat_ps``):
    the dossier, each grant on it (outer join) and whether the caller is a médecin traitant."""
    ins = bindparam("ins", type_=String)
    traitant_of = exists().where(
        medecins_traitants.c.ins == ins,
        medecins_traitants.c.id_nat_ps == bindparam("id_nat_ps", type_=String),
        medecins_traitants.c.ended_at.is_(None),
    ) if professional else false()
    return (
        select(dossiers.c.status, dossiers.c.consent_at, dossiers.c.consent_regulation_centre,
               dossiers.c.consent_break_the_glass, dossiers.c.consent_emergency_sees_masked,
               traitant_of.label("traitant"), authorizations.c.id_nat_ps,
               authorizations.c.structure_id, authorizations.c.status.label("grant_status"),
               authorizations.c.blocked, authorizations.c.expires_at)
        .select_from(dossiers.outerjoin(authorizations, authorizations.c.ins == dossiers.c.ins))
        .where(dossiers.c.ins == ins)
    )


_DOSSIER_STATE = {professional: _dossier_statement(professional) for professional in (True, False)}


def _dossier_state(
    connection: Connection, ins: str, id_nat_ps: str | None, now: dt.datetime
) -> Dossier:
    # One statement: every search and read starts here.
    params = {"ins": ins} if id_nat_ps is None else {"ins": ins, "id_nat_ps": id_nat_ps}
    rows = connection.execute(_DOSSIER_STATE[id_nat_ps is not None], params).all()
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
        *,
        connection: Connection | None = None,
    ) -> None:
        """Append one access to the patient's log (own transaction) and notify if needed.
        With ``connection``, on which the caller has only read, the trace is written and
        committed on it instead of on a connection of the pool."""
        notification: tuple[str, dict[str, Any]] | None = None
        host_event: tuple[str, dict[str, Any]] | None = None
        deposit = action in (Action.DEPOSIT, Action.REPLACE)
        if decision.allowed:
            payload = {
                "action": str(getattr(action, "value", action)), "mode": mode.code.value,
                "justification": mode.justification, "actor": actor.display_name,
                "profession": actor.profession, "structure": actor.structure_id,
                "document": document_id, **(extra or {}),
            }
            if decision.notify_patient:
                kind = notify_events.NEW_DOCUMENT if deposit else (
                    notify_events.EMERGENCY_ACCESS if mode.code is not ModeCode.NORMAL else
                    notify_events.DOSSIER_CLOSED if action is Action.CLOSE_AT_PATIENT_REQUEST
                    else notify_events.ACCESS)
                notification = (kind, payload)
            elif action is Action.REACTIVATE:
                host_event = (notify_events.DOSSIER_REACTIVATED, payload)
        record_access(
            self.engine, ins=ins, at=self.clock(), **professional_fields(actor),
            action=str(action), mode=mode, allowed=decision.allowed, reason=decision.reason.code,
            document_id=document_id, notification=notification, connection=connection,
            host_event=host_event, author=deposit and notification is not None,
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
            self.engine, ins=ins, at=self.clock(), **professional_fields(actor),
            action=action, mode=mode, allowed=False, reason=reason, document_id=document_id,
        )


def professional_fields(actor: SessionActor) -> dict[str, Any]:
    """Who acted, as every access-log line of a professional says it: the patient reads
    the name, profession, structure and how the session was opened (card or e-CPS)."""
    return {"actor_kind": "professional", "actor_id": actor.id_nat_ps,
            "actor_name": actor.display_name, "profession": actor.profession,
            "structure_id": actor.structure_id, "auth_means": actor.auth_means}


# -- the patient's own actions (host/patient.py) and host-level traces --------------------------
PATIENT_KIND = "patient"


@contextlib.contextmanager
def _own_transaction(engine: Engine, connection: Connection | None) -> Iterator[Connection]:
    """A transaction that holds the trace and nothing the route wrote: on a connection of
    the pool, or on ``connection`` when the caller has only read on it (a search: its reads
    and the trace then share one transaction, committed here)."""
    if connection is None:
        with engine.begin() as pooled:
            yield pooled
        return
    try:
        yield connection
    except BaseException:
        connection.rollback()
        raise
    connection.commit()


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
    connection: Connection | None = None,
    host_event: tuple[str, dict[str, Any]] | None = None,
    author: bool = False,
    auth_means: str | None = None,
) -> None:
    """Append one access log row (own transaction), with an optional patient notification
    (kind, payload): for traces whose action or reason is not a `policies` value, such as
    the existence test, and for the patient's own actions. With ``connection`` (on which
    the caller has only read), written and committed there (`_own_transaction`).

    An allowed access of a professional also records them as having accessed the dossier;
    the first time, the patient is notified (`host.notify_events`: one row per access at
    most, ``firstAccess`` added to the row the rules asked for, if any). ``host_event`` is a
    notification written only when the patient gave an address; ``author`` (a notified
    deposit) marks the row ``newAuthor`` when it is the author's first document here."""
    with audit.guard_internal(), _own_transaction(engine, connection) as connection:
        # Chained to the patient's previous entry (tamper-evident), same transaction.
        access_chain.append(connection, dict(
            ins=ins, id=str(uuid.uuid4()), at=at, actor_kind=actor_kind, actor_id=actor_id,
            actor_name=actor_name, profession=profession, structure_id=structure_id,
            action=action, mode=mode.code.value, justification=mode.justification,
            document_id=document_id, outcome="allowed" if allowed else "refused",
            reason=reason, auth_means=auth_means,
        ))
        first = allowed and actor_kind == "professional" and notify_events.first_time(
            connection, ins, "access", actor_id, at)
        if notification is not None:
            kind, payload = notification
            if first:
                payload = {**payload, "firstAccess": True}
            if author and notify_events.first_time(connection, ins, "author", actor_id, at):
                payload = {**payload, "newAuthor": True}
            notify_events.add(connection, ins, kind, payload, at)
        elif host_event is not None:
            kind, payload = host_event
            notify_events.add_if_contact(
                connection, ins, kind, {**payload, "firstAccess": True} if first else payload,
                at)
        elif first:
            notify_events.add_if_contact(connection, ins, notify_events.FIRST_ACCESS, {
                "action": action, "mode": mode.code.value, "actor": actor_name,
                "profession": profession, "structure": structure_id, "document": document_id,
            }, at)
    if first:  # committed now: the next accesses of this professional cost no statement
        notify_events.remember(engine, ins, "access", actor_id)
    audit.traced(allowed)


def holder_name(connection: Connection, ins: str) -> str | None:
    """The patient's name as their own log entries carry it (None for an unknown INS)."""
    with audit.guard_internal():
        row = connection.execute(
            select(patients.c.first_name, patients.c.birth_name).where(patients.c.ins == ins)
        ).one_or_none()
    return None if row is None else f"{row.first_name} {row.birth_name}"


def trace_patient(engine: Engine, ins: str, at: dt.datetime, action: str, *, allowed: bool,
                  reason: str, document_id: str | None = None,
                  connection: Connection | None = None) -> None:
    """One entry of the patient's own access log (actor_kind "patient", normal mode). The
    name is read on ``connection`` when given; the entry is written in its own
    transaction."""
    if connection is None:
        with engine.connect() as reading:
            name = holder_name(reading, ins)
    else:
        name = holder_name(connection, ins)
    record_access(engine, ins=ins, at=at, actor_kind=PATIENT_KIND, actor_id=ins,
                  actor_name=name, action=action, mode=NORMAL, allowed=allowed,
                  reason=reason, document_id=document_id)


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
    audit.patient_decided()
    trace_patient(guard.engine, ins, now, log_action or action.value,
                  allowed=decision.allowed, reason=decision.reason.code, connection=connection)
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
        guard.engine, ins=ins, at=now, **professional_fields(actor), action=log_action,
        mode=mode, allowed=decision.allowed, reason=decision.reason.code,
    )
    if decision.refused:
        raise HostError(403, decision.reason.code.lower().replace("_", "-"),
                        decision.reason.message, issue_type="forbidden")
    return decision
