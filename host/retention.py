"""The retention job: a DMP closed more than ten years ago is purged (`dmp-host retention run`).

A dossier whose status is "closed" and whose ``retention_until`` is before ``now`` loses every
row of every dossier table (`DOSSIER_TABLES`: the dossier, grants, documents, the access log
and its chain head...), deleted rather than blanked so nothing personal is kept, and the
document bodies no other patient's document references. Each patient is purged in its own
transaction, after checking again (with a row lock on PostgreSQL) that the dossier is still
closed and expired, so a reactivation is never undone and an interrupted run simply finishes
at the next one (idempotent). Only counts are logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, select

from .blobs import BlobStore
from .store.schema import DOSSIER_TABLES, documents, dossiers, portal_sessions, submission_sets

log = logging.getLogger(__name__)


def _expired(now: dt.datetime) -> list[ColumnElement[bool]]:
    return [dossiers.c.status == "closed", dossiers.c.retention_until < now]


def _bodies(connection: Connection, ins: str) -> set[str]:
    """The blob addresses the patient's documents and submission signatures use."""
    rows = connection.execute(
        select(documents.c.sha256).where(documents.c.ins == ins).union(
            select(submission_sets.c.signature_sha256).where(
                submission_sets.c.ins == ins, submission_sets.c.signature_sha256.is_not(None)))
    ).scalars()
    return set(rows)


def _shared(connection: Connection, ins: str, bodies: Iterable[str]) -> set[str]:
    """Those of ``bodies`` another patient's records still reference (kept)."""
    wanted = list(bodies)
    if not wanted:
        return set()
    others = select(documents.c.sha256).where(
        documents.c.ins != ins, documents.c.sha256.in_(wanted)).union(
        select(submission_sets.c.signature_sha256).where(
            submission_sets.c.ins != ins, submission_sets.c.signature_sha256.in_(wanted)))
    return set(connection.execute(others).scalars())


def _purge_one(connection: Connection, ins: str, now: dt.datetime, dry_run: bool,
               counts: dict[str, int]) -> set[str]:
    """Purge (or count) one patient's rows; the blob addresses now unreferenced."""
    still = connection.execute(
        select(dossiers.c.ins).where(dossiers.c.ins == ins, *_expired(now)).with_for_update()
    ).one_or_none()
    if still is None:  # reactivated (or purged) since the listing
        return set()
    bodies = _bodies(connection, ins)
    orphans = bodies - _shared(connection, ins, bodies)
    # Children before the dossier row (foreign keys); the portal's sessions with them.
    for table in (portal_sessions, *reversed(DOSSIER_TABLES)):
        if dry_run:
            found = connection.execute(
                select(func.count()).select_from(table).where(table.c.ins == ins)).scalar_one()
        else:
            found = connection.execute(delete(table).where(table.c.ins == ins)).rowcount
        counts[table.name] = counts.get(table.name, 0) + found
    return orphans


def run(engine: Engine, now: dt.datetime, *, dry_run: bool,
        blobs: BlobStore | None = None) -> dict[str, int]:
    """Purge every DMP whose retention ended before ``now``; returns the counts (rows per
    table, "blobs" removed). ``dry_run``: count what would go, change nothing."""
    with engine.connect() as connection:
        expired = connection.execute(select(dossiers.c.ins).where(*_expired(now))).scalars()
        candidates = list(expired)
    counts: dict[str, int] = {table.name: 0 for table in (*DOSSIER_TABLES, portal_sessions)}
    counts["blobs"] = 0
    for ins in candidates:
        with engine.begin() as connection:
            orphans = _purge_one(connection, ins, now, dry_run, counts)
            if dry_run:
                connection.rollback()
        for sha256 in orphans:
            if blobs is not None and blobs.exists(sha256):
                if not dry_run:
                    blobs.path(sha256).unlink(missing_ok=True)
                counts["blobs"] += 1
    log.info("retention %s: %s", "dry run" if dry_run else "run",
             ", ".join(f"{name}={count}" for name, count in counts.items()))
    return counts
