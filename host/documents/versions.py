"""A metadata change stored as a new version of a document (meta.versionId + 1).

The one writer of changed metadata, whoever asked for the change (a professional's JSON
Patch, host/documents/patch.py, or the patient masking a document, host/patient_documents.py):
the row's columns and its DocumentReference (the stored one with its server-managed elements
set anew) change in one UPDATE that also checks the version the change was decided on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import Connection, Row, update

from policies import one_month_after
from wire import codes
from wire.mhd import stored_document_reference

from ..errors import HostError
from ..store.schema import documents
from . import records


def write_version(
    connection: Connection,
    row: Row[Any],
    *,
    visibility: frozenset[str],
    status: str,
    archived: bool,
    now: dt.datetime,
) -> dict[str, Any]:
    """Store ``row``'s next version with these visibility labels (MASQUE_PS,
    INVISIBLE_PATIENT...), FHIR status and archive flag; the new DocumentReference.
    HostError 409 concurrent-change when the row is no longer at the version read."""
    version = row.version_id + 1
    values: dict[str, Any] = {"version_id": version, "masked": codes.MASQUE_PS in visibility,
                              "archived": archived, "status": status}
    invisible = codes.INVISIBLE_PATIENT in visibility
    if invisible != row.invisible_to_patient:
        values["invisible_to_patient"] = invisible
        # Visible again one calendar month after being hidden (policies computes the date).
        values["visible_to_patient_from"] = one_month_after(now) if invisible else None
    entry = dataclasses.replace(records.stored_entry(row), status=status, visibility=visibility,
                                archived=archived, version_id=version)
    # The stored resource keeps every element the depositor sent; only the server-managed
    # ones change (wire.documents.stored_document_reference).
    values["resource"] = stored_document_reference(row.resource, entry, last_updated=now)
    result = connection.execute(update(documents).where(
        documents.c.ins == row.ins, documents.c.id == row.id,
        documents.c.version_id == row.version_id,
    ).values(**values))
    if result.rowcount != 1:
        raise HostError(409, "concurrent-change", "Le document a changé entre-temps / the "
                        "document changed meanwhile: retry", issue_type="conflict")
    return values["resource"]  # type: ignore[no-any-return]
