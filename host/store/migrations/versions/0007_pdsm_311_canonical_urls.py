"""stored DocumentReferences in PDSm 3.1.1 terms: the isArchived extension's canonical URL,
without our old attachment SHA-256 extension

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 18:00:00

Chained after 0008 (written meanwhile, also on 0006) so that there is one head; the two are
independent and may be swapped (0006 -> 0007 -> 0008) when integrated.

Before PDSm 3.1.1 conformance the host wrote isArchived as
`http://esante.gouv.fr/cisis/fhir/StructureDefinition/PDSm_isArchived` and echoed the agent's
`urn:dmp-agent:fhir:StructureDefinition/attachment-sha256` extension. Reads and searches serve
the stored resource as it is, so the rows are rewritten once here rather than translated on
every read (the code still reads the old URL: wire.codes.IS_ARCHIVED_URLS). Only the resource
JSON changes; the SHA-256 column (computed by the host from the bytes) stays. The downgrade
writes the old URL back (the SHA-256 extension is not restored: nothing reads it).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NEW = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
OLD = "http://esante.gouv.fr/cisis/fhir/StructureDefinition/PDSm_isArchived"
SHA256 = "urn:dmp-agent:fhir:StructureDefinition/attachment-sha256"
BATCH = 500

documents = sa.table("documents", sa.column("ins", sa.String), sa.column("id", sa.String),
                     sa.column("resource", sa.JSON))


def _rewrite(resource: dict[str, Any], old: str, new: str) -> bool:
    changed = False
    for extension in resource.get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == old:
            extension["url"] = new
            changed = True
    for content in resource.get("content", []):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(attachment, dict) and "extension" in attachment:
            kept = [e for e in attachment["extension"]
                    if not (isinstance(e, dict) and e.get("url") == SHA256)]
            if len(kept) != len(attachment["extension"]):
                changed = True
                if kept:
                    attachment["extension"] = kept
                else:
                    del attachment["extension"]
    return changed


def _migrate(old: str, new: str) -> None:
    connection = op.get_bind()
    last: tuple[str, str] = ("", "")
    while True:  # keyset batches: bounded memory whatever the table's size
        rows = connection.execute(
            sa.select(documents.c.ins, documents.c.id, documents.c.resource)
            .where(sa.tuple_(documents.c.ins, documents.c.id) > sa.tuple_(*last))
            .order_by(documents.c.ins, documents.c.id).limit(BATCH)).all()
        if not rows:
            return
        for ins, doc_id, resource in rows:
            value = json.loads(resource) if isinstance(resource, str) else resource
            if isinstance(value, dict) and _rewrite(value, old, new):
                connection.execute(documents.update().where(
                    documents.c.ins == ins, documents.c.id == doc_id).values(resource=value))
        last = (rows[-1][0], rows[-1][1])


def upgrade() -> None:
    _migrate(OLD, NEW)


def downgrade() -> None:
    _migrate(NEW, OLD)
