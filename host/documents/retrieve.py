"""ITI-68 retrieve (the bytes) and the DocumentReference read, each one READ decision."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from policies import AccessMode, Action

from .. import audit
from ..actors import SessionActor
from . import records


def readable(state: Any, actor: SessionActor, mode: AccessMode, resource_id: str) -> Any:
    """The document row, once the guard allowed (and traced) READ; 404 / 403 otherwise."""
    guard = state.guard
    named = records.ins_of(resource_id)
    if named is not None:  # a probe for a document of this patient is theirs to read about
        audit.names_patient(named, actor, mode, Action.READ.value, resource_id)
    with guard.engine.connect() as connection:
        row = guard.load(lambda: records.load(connection, resource_id))
        audit.names_patient(row.ins, actor, mode, Action.READ.value, row.id)
        guard.check(connection, ins=row.ins, actor=actor, action=Action.READ, mode=mode,
                    document=records.policy_document(row), document_id=row.id)
    return row


def body(state: Any, row: Any) -> Iterator[bytes]:
    return state.blobs.read(row.sha256)


def binary_resource(state: Any, row: Any, resource_id: str) -> tuple[Iterator[bytes], int]:
    """The content as a FHIR ``Binary`` resource (ITI-68 asked with ``Accept:
    application/fhir+json``), streamed: its JSON bytes and their exact length. The base64 is
    encoded chunk by chunk (whole 3-byte groups), so no document is held in memory."""
    head = json.dumps({"resourceType": "Binary", "id": resource_id,
                       "contentType": row.mime_type}, ensure_ascii=True)[:-1]
    prefix = f'{head}, "data": "'.encode("ascii")
    suffix = b'"}'

    def chunks() -> Iterator[bytes]:
        yield prefix
        pending = b""
        for chunk in body(state, row):
            pending += chunk
            whole = len(pending) - len(pending) % 3
            if whole:
                yield base64.b64encode(pending[:whole])
                pending = pending[whole:]
        if pending:
            yield base64.b64encode(pending)
        yield suffix

    return chunks(), len(prefix) + 4 * ((row.size + 2) // 3) + len(suffix)
