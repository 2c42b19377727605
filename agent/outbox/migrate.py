"""Bringing an older outbox to schema 4 when it is opened (docs/agent-outbox.md,
"Migration"): schema 1 kept clear rows and files, schema 2 sealed files without labels,
schema 3 had no table of the patients' identity checks (docs/ins.md).

Either way each file of a waiting item is copied into a sealed, labelled file (format 3)
under a new name, then the rows are rewritten in one transaction, then the old files go.
Killed before the commit, the outbox is still at its old schema and the new copies are
spare copies of items that have their own (removed at the next open, which migrates
again); killed after it, the old files are files of format 2 or clear ones that no row
names (put in quarantine at the next open: without a label nothing says they are spare).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from agent.outbox.database import IDENTITIES, SCHEMA, SCHEMA_VERSION
from agent.outbox.model import Description, ItemState, OutboxDamagedError
from agent.outbox.recovery import CONTENT_KEY, _context
from agent.outbox.sealed import OutboxCipher, SealedFiles

log = logging.getLogger(__name__)

def _clear_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk


class Migrations:
    """Schema 1, 2 and 3 to 4, mixed into `Outbox` (which provides the attributes below)."""

    bundles: Path
    contents: Path
    files: SealedFiles
    _cipher: OutboxCipher
    _db: sqlite3.Connection
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _row_opens: Callable[[sqlite3.Row], bool]

    def _copy(self, path: Path, *, sealed: bool, label: Description, made: list[Path],
              old: list[Path]) -> str:
        """A sealed, labelled copy of ``path`` (clear, or sealed in format 2) beside it; its
        name. A missing or damaged file keeps its name: its item then fails as "missing" or
        "damaged" at the end of the opening, as any such file does."""
        chunks = self.files.read(path) if sealed else _clear_chunks(path)
        try:
            with self.files.create(path.parent, path.suffix) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                made.append(writer.install(Description(
                    label.kind, label.unique_id, label.patient, writer.size, writer.sha256,
                    label.created, label.metadata).to_bytes()))
        except (FileNotFoundError, OutboxDamagedError) as error:
            log.warning("outbox: %s not migrated (%s)", path.name, error)
            return path.name
        old.append(path)
        return made[-1].name

    def _copy_item(self, row: sqlite3.Row, patient: str, metadata: dict[str, Any], *,
                   sealed: bool, made: list[Path], old: list[Path]) -> str | None:
        """Copy a row's document copy (its new name goes into ``metadata``) and bundle;
        the bundle's new name."""
        uid, created = row["unique_id"], row["created"]
        content = metadata.get(CONTENT_KEY)
        if isinstance(content, str) and row["state"] != ItemState.DONE:
            metadata[CONTENT_KEY] = self._copy(
                self.contents / content, sealed=sealed, made=made, old=old,
                label=Description("content", uid, patient, 0, "", created))
        if row["bundle"] is None:
            return None
        return self._copy(self.bundles / row["bundle"], sealed=sealed, made=made, old=old,
                          label=Description("bundle", uid, patient, 0, "", created, metadata))

    def _migrate(self, rewrite: Callable[[list[Path], list[Path]], int]) -> None:
        made: list[Path] = []
        old: list[Path] = []
        try:
            count = rewrite(made, old)
        except BaseException:
            for path in made:
                path.unlink(missing_ok=True)
            raise
        for path in old:
            path.unlink(missing_ok=True)
        # Old values may still sit in the write-ahead log and in pages written before
        # secure_delete: rewrite the file, empty the log.
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("outbox: %d item(s) migrated to schema %d (%d file(s))", count,
                 SCHEMA_VERSION, len(made))

    def _migrate_v1(self) -> None:
        """Schema 1 (clear rows and files): the table is rebuilt with sealed fields."""
        def rewrite(made: list[Path], old: list[Path]) -> int:
            rows = self._db.execute("SELECT * FROM items ORDER BY id").fetchall()
            converted: list[tuple[Any, ...]] = []
            for row in rows:
                metadata = json.loads(row["metadata"])
                patient, uid = row["patient"], row["unique_id"]
                bundle = self._copy_item(row, patient, metadata, sealed=False, made=made,
                                         old=old)
                personal = json.dumps({"patient": patient, "metadata": metadata},
                                      ensure_ascii=False, sort_keys=True)
                converted.append((
                    row["id"], uid, self._cipher.tag(patient),
                    self._cipher.seal(personal.encode(), _context(uid, "personal")), bundle,
                    row["size"], row["sha256"], row["state"], row["attempts"],
                    self._cipher.seal_text(row["last_error"], _context(uid, "last_error")),
                    row["next_attempt"], row["created"], row["updated"], row["acknowledged"],
                    self._cipher.seal_text(row["acknowledgement"],
                                           _context(uid, "acknowledgement"))))
            with self._transaction() as db:
                db.execute("DROP INDEX IF EXISTS items_by_state")  # it follows the old table
                db.execute("ALTER TABLE items RENAME TO items_v1")
                for statement in SCHEMA:
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO items (id, unique_id, patient_tag, personal, bundle, size, "
                    "sha256, state, attempts, last_error, next_attempt, created, updated, "
                    "acknowledged, acknowledgement) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", converted)
                db.execute("DROP TABLE items_v1")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return len(rows)

        self._migrate(rewrite)

    def _migrate_v2(self) -> None:
        """Schema 2 (sealed files without labels): files relabelled, two columns added."""
        def rewrite(made: list[Path], old: list[Path]) -> int:
            rows = self._db.execute("SELECT * FROM items WHERE state != 'done' AND "
                                    "personal IS NOT NULL ORDER BY id").fetchall()
            updates: list[tuple[Any, ...]] = []
            for row in rows:
                if not self._row_opens(row):
                    continue  # failed as damaged at the end of the opening, file and all
                uid = row["unique_id"]
                personal = json.loads(self._cipher.open(row["personal"],
                                                        _context(uid, "personal")))
                bundle = self._copy_item(row, personal["patient"], personal["metadata"],
                                         sealed=True, made=made, old=old)
                sealed = self._cipher.seal(json.dumps(personal, ensure_ascii=False,
                                                      sort_keys=True).encode(),
                                           _context(uid, "personal"))
                updates.append((bundle, sealed, row["id"]))
            with self._transaction() as db:
                db.execute("ALTER TABLE items ADD COLUMN cause TEXT")
                db.execute("ALTER TABLE items ADD COLUMN last_status INTEGER")
                db.executemany("UPDATE items SET bundle = ?, personal = ? WHERE id = ?",
                               updates)
                db.execute("PRAGMA user_version=3")  # then _migrate_v3
            return len(updates)

        self._migrate(rewrite)

    def _migrate_v3(self) -> None:
        """Schema 3 to 4: the table of the patients' identity checks, empty (nothing to
        rewrite: no file changes)."""
        with self._transaction() as db:
            db.execute(IDENTITIES)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        log.info("outbox: schema %d (the patients' identity checks)", SCHEMA_VERSION)


__all__ = ["Migrations"]
