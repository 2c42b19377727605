"""Decisions through the guard when several must all pass before anything changes: each is
`Guard.check`ed without tracing, a refusal is traced at once, the allowed ones are traced only
once the change is stored (so the log and the patient's notifications never announce what
did not happen)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Connection

from policies import AccessMode, Action, Decision, Document

from ..actors import SessionActor
from ..errors import HostError
from ..guard import Guard


@dataclass(frozen=True)
class Pending:
    action: Action
    decision: Decision
    document_id: str | None
    notify: bool = True


def check(guard: Guard, connection: Connection, *, ins: str, actor: SessionActor,
          action: Action, mode: AccessMode, document: Document,
          document_id: str | None) -> Decision:
    try:
        return guard.check(connection, ins=ins, actor=actor, action=action, mode=mode,
                           document=document, document_id=document_id, log=False)
    except HostError:
        refusal = guard.decide(connection, ins=ins, actor=actor, action=action, mode=mode,
                               document=document)
        guard.trace(ins, actor, action, mode, refusal, document_id)
        raise


def trace_all(guard: Guard, ins: str, actor: SessionActor, mode: AccessMode,
              pending: list[Pending]) -> None:
    for item in pending:
        decision = item.decision if item.notify else dataclasses.replace(
            item.decision, notify_patient=False)
        guard.trace(ins, actor, item.action, mode, decision, item.document_id)
