"""The `documents` rows seen from the wire (DocumentReference JSON) and from the rules
(`policies.Document`)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import Connection, Row, select

from policies import Confidentiality, Document, DocumentStatus
from wire.mhd import DocumentEntry, document_entry_from_json

from ..errors import HostError, not_found
from ..store.schema import documents

_INS_PREFIX = re.compile(r"([0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8})\.[0-9a-f]{32}")
# FHIR status -> the rules' status (archived is a flag beside "current").
_STATUS = {
    "current": DocumentStatus.CURRENT,
    "superseded": DocumentStatus.DEPRECATED,
    "entered-in-error": DocumentStatus.DELETED,
}


def new_id(ins: str) -> str:
    """A resource id that names its patient, so a read by id is a primary-key lookup that
    names one patient (the distribution key) without a cross-patient index."""
    return f"{ins}.{uuid.uuid4().hex}"


def ins_of(resource_id: str) -> str | None:
    match = _INS_PREFIX.fullmatch(resource_id)
    return match.group(1) if match else None


def policy_document(row: Row[Any]) -> Document:
    status = _STATUS[row.status]
    if status is DocumentStatus.CURRENT and row.archived:
        status = DocumentStatus.ARCHIVED
    return Document(
        class_code=row.class_code, type_code=row.type_code, author_id=row.author_id,
        deposited_at=row.deposited_at, status=status, masked=row.masked,
        invisible_to_patient=row.invisible_to_patient,
        visible_to_patient_from=row.visible_to_patient_from,
        invisible_to_legal_representatives=row.invisible_to_legal_reps,
        confidentiality=Confidentiality(row.confidentiality),
    )


def decision_key(row: Row[Any]) -> tuple[Any, ...]:
    """What `policy_document` takes from a row: two rows with the same key are the same
    document to the rules. The deposit time counts only where a date decides something
    (a document invisible to the patient becomes visible a month after it)."""
    return (row.class_code, row.type_code, row.author_id, row.status, row.archived,
            row.masked, row.invisible_to_patient, row.invisible_to_legal_reps,
            row.confidentiality, row.visible_to_patient_from,
            row.deposited_at if row.invisible_to_patient else None)


def stored_entry(row: Row[Any]) -> DocumentEntry:
    """The DocumentEntry of a row (its stored DocumentReference is authoritative)."""
    return document_entry_from_json(row.resource)


def load(connection: Connection, resource_id: str) -> Row[Any]:
    """The document row of ``resource_id``, or 404."""
    ins = ins_of(resource_id)
    row = None
    if ins is not None:
        row = connection.execute(
            select(documents).where(documents.c.ins == ins, documents.c.id == resource_id)
        ).one_or_none()
    if row is None:
        raise not_found("document-not-found",
                        "Document inconnu / no such document on this host")
    return row


def by_unique_id(connection: Connection, ins: str, unique_id: str) -> Row[Any] | None:
    return connection.execute(
        select(documents).where(documents.c.ins == ins, documents.c.unique_id == unique_id)
    ).one_or_none()


def etag(version: int) -> str:
    return f'W/"{version}"'


def check_if_match(header: str | None, version: int) -> None:
    if header is not None and header.strip() != etag(version):
        raise HostError(412, "version-mismatch",
                        f"Version modifiée entre-temps / the document is now at version "
                        f"{version}", issue_type="conflict")
