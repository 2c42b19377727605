"""Every request on a patient's data is decided by the guard and lands in the access log.

Three mechanisms make this hold for every route, including routes written later:

1. The store refuses to serve a route that did not ask the guard first: an SQLAlchemy hook
   raises `UnguardedAccess` when a statement touches a patient table during an HTTP request
   before any guard decision (the guard's own reads, made to decide, are marked internal).
   A route that forgets the guard fails closed (500), and the route-listing test finds it.
2. A route says which patient a request is about (`names_patient`) as soon as it knows, so
   a refusal that is not a rule's (a malformed patch, a version mismatch, an author who is
   not the session's professional) is still traced, with the error code as its reason.
3. Before the response goes out, `AuditMiddleware` traces what the route left untraced:
   the error of a request that named a patient, or the last decision of one that decided
   and wrote nothing. So nothing is answered that the patient cannot read about.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event

from policies import NORMAL, AccessMode, Decision

if TYPE_CHECKING:
    from .actors import SessionActor

PATIENT_TABLES = ("dossiers", "authorizations", "medecins_traitants", "submission_sets",
                  "documents", "access_log", "access_chain", "notifications", "patients",
                  "patient_contacts", "dossier_firsts", "portal_accounts", "portal_sessions")
_PATIENT_TABLE = re.compile(r'\b"?(?:' + "|".join(PATIENT_TABLES) + r')"?\b')


class UnguardedAccess(RuntimeError):
    """A route touched a patient table before the guard decided anything."""


@dataclass
class RequestAudit:
    """What one HTTP request did with patient data (one per request, in a ContextVar)."""

    actor: SessionActor | None = None
    mode: AccessMode = NORMAL
    ins: str | None = None
    action: str | None = None
    document_id: str | None = None
    last_decision: Decision | None = None
    decided: bool = False
    traced: bool = False
    refusal_traced: bool = False
    settled: bool = False  # the route said there is nothing (more) to trace
    error_code: str | None = None
    internal: int = 0
    violations: list[str] = field(default_factory=list)


_current: ContextVar[RequestAudit | None] = ContextVar("dmp_host_audit", default=None)


def current() -> RequestAudit | None:
    return _current.get()


def names_patient(ins: str, actor: SessionActor, mode: AccessMode, action: str,
                  document_id: str | None = None) -> None:
    """The request is about ``ins``: from now on any refusal is traced in their log."""
    audit = _current.get()
    if audit is not None:
        audit.ins, audit.actor, audit.mode, audit.action = ins, actor, mode, action
        audit.document_id = document_id or audit.document_id


def patient_decided() -> None:
    """A decision for the patient (no professional's session) was made in this request:
    the statements that follow it may pass. The actor stays unset, so the middleware adds
    nothing to the patient's own traces."""
    audit = _current.get()
    if audit is not None:
        audit.decided = True


def decided(ins: str | None, actor: SessionActor, mode: AccessMode, action: str,
            decision: Decision, document_id: str | None = None) -> None:
    audit = _current.get()
    if audit is None:
        return
    audit.decided = True
    audit.last_decision = decision
    audit.actor, audit.mode, audit.action = actor, mode, action
    if ins is not None:
        audit.ins = ins
    if document_id is not None:
        audit.document_id = document_id


def traced(allowed: bool) -> None:
    audit = _current.get()
    if audit is not None:
        audit.traced = True
        audit.refusal_traced = audit.refusal_traced or not allowed


def settle() -> None:
    """Nothing more to trace for this request (e.g. a replayed deposit stores nothing)."""
    audit = _current.get()
    if audit is not None:
        audit.settled = True


@contextlib.contextmanager
def guard_internal() -> Iterator[None]:
    """The guard reading or writing the store to decide or trace (allowed before a decision)."""
    audit = _current.get()
    if audit is None:
        yield
        return
    audit.internal += 1
    try:
        yield
    finally:
        audit.internal -= 1


def install(engine: Engine) -> None:
    """Make ``engine`` refuse patient-table statements that no guard decision preceded."""

    @event.listens_for(engine, "before_cursor_execute")
    def _check(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        audit = _current.get()
        if audit is None or audit.decided or audit.internal:
            return
        match = _PATIENT_TABLE.search(statement)
        if match is not None:
            audit.violations.append(match.group())
            raise UnguardedAccess(f"patient table {match.group()} read before any decision")


class AuditMiddleware:
    """One `RequestAudit` per HTTP request; what is left untraced is traced before the
    response starts (so a crash after the answer cannot lose the trace)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        audit = RequestAudit()
        token = _current.set(audit)

        async def send_traced(message: Any) -> None:
            if message["type"] == "http.response.start":
                finish(scope["app"].state.guard, audit, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        finally:
            _current.reset(token)


def finish(guard: Any, audit: RequestAudit, status: int) -> None:
    if audit.actor is None or audit.ins is None or audit.settled:
        return
    with guard_internal():
        if status >= 400 and status != 401 and not audit.refusal_traced:
            reason = (audit.error_code or f"http-{status}").upper().replace("-", "_")[:48]
            guard.trace_refusal(audit.ins, audit.actor, audit.action or "request", audit.mode,
                                reason, audit.document_id)
        elif status < 400 and audit.decided and not audit.traced and audit.last_decision:
            guard.trace_decision(audit.ins, audit.actor, audit.action or "request",
                                 audit.mode, audit.last_decision, audit.document_id)

