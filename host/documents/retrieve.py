"""ITI-68 retrieve (the bytes) and the DocumentReference read, each one READ decision."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from policies import AccessMode, Action

from ..actors import SessionActor
from . import records


def readable(state: Any, actor: SessionActor, mode: AccessMode, resource_id: str) -> Any:
    """The document row, once the guard allowed (and traced) READ; 404 / 403 otherwise."""
    guard = state.guard
    with guard.engine.connect() as connection:
        row = records.load(connection, resource_id)
        guard.check(connection, ins=row.ins, actor=actor, action=Action.READ, mode=mode,
                    document=records.policy_document(row), document_id=row.id)
    return row


def body(state: Any, row: Any) -> Iterator[bytes]:
    return state.blobs.read(row.sha256)
