"""The outbox database and its files: durable adds, the state changes, recovery after a
crash, encryption at rest and the purge (docs/agent-outbox.md).

Layout, in the user data directory (0700)::

    outbox/outbox.sqlite3      one row per item: state, attempts, sealed personal fields
    outbox/bundles/<x>.bundle  the signed bundle of each item not yet acknowledged, sealed
    outbox/contents/<x>.content  a document queued by reference (agent/deposit.py), sealed
    outbox/outbox.lock         held by the one process that owns the outbox

`Outbox.add` writes the sealed bundle under a temporary name, fsyncs it, renames it, and only
then inserts the row in a transaction: a crash at any instant leaves nothing or a complete
item, and a file without a row is removed when the outbox is next opened. An item found
``sending`` when the outbox opens was interrupted mid-send: it goes back to ``pending``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import AgentConfig, private_dir
from .keys import KeyStore, KeyStores, open_key, outbox_keys
from .model import (
    Counts,
    Item,
    ItemState,
    OutboxBusyError,
    OutboxDamagedError,
    OutboxError,
    OutboxKeyError,
    SendResult,
)
from .sealed import OutboxCipher, SealedWriter, new_key, sealed_size

log = logging.getLogger(__name__)

BUNDLES = "bundles"
CONTENTS = "contents"  # documents queued by reference (agent/deposit.py)
CONTENT_KEY = "content"  # metadata[CONTENT_KEY] names an item's file in contents/
CONTENT_SUFFIX = ".content"
LOCK_FILE = "outbox.lock"
_SUFFIX = ".bundle"
SCHEMA_VERSION = 2  # 1: clear rows and files (migrated on open); 2: sealed
DEFAULT_PURGE_AFTER = 7 * 86400.0

_META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        unique_id TEXT NOT NULL UNIQUE,  -- a random urn:uuid, not personal; the idempotence key
        patient_tag TEXT NOT NULL,  -- HMAC of the INS: one patient's order, without the INS
        personal BLOB,  -- sealed {"patient", "metadata"}; NULL once purged
        bundle TEXT,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error BLOB,  -- sealed: the host's words may name the patient
        next_attempt REAL NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        acknowledged REAL,
        acknowledgement BLOB,  -- sealed
        purged REAL
    )""",
    "CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id)",
    _META,
)


class _ProcessLock:
    """An exclusive lock on a file, released by the kernel if the process dies."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutboxBusyError(
                f"{path.parent}: the outbox is in use by another process (is another "
                "dmp-agent running for this user?)") from None
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def _context(unique_id: str, column: str) -> str:
    # Binds a sealed value to its row and column: moved elsewhere, it does not open.
    return f"item {unique_id} {column}"


class Outbox:
    """The outbox database at ``path`` (files in ``path.parent``), owned by this process
    until `close`. Thread-safe: the worker thread and the API share one instance.

    ``keys`` says where the outbox key is (`open_outbox` gives the configured places);
    done items' personal fields are blanked ``purge_after`` seconds after acknowledgement.
    Raises `OutboxKeyError` when the key of an existing outbox cannot be had.
    """

    def __init__(self, path: Path | str, *, keys: KeyStore | KeyStores,
                 clock: Callable[[], float] = time.time,
                 purge_after: float = DEFAULT_PURGE_AFTER) -> None:
        self.path = Path(path)
        self.directory = private_dir(self.path.parent)
        self.bundles = private_dir(self.directory / BUNDLES)
        self.contents = private_dir(self.directory / CONTENTS)
        self.purge_after = purge_after
        self._keys = keys if isinstance(keys, KeyStores) else KeyStores(keys)
        self._clock = clock
        self._lock = threading.RLock()
        self._process_lock = _ProcessLock(self.directory / LOCK_FILE)
        try:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # born 0600
            # Autocommit; multi-statement changes use explicit BEGIN IMMEDIATE ... COMMIT.
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed add survives a power cut, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            # Freed space is zeroed: a purged or migrated value does not linger in the file.
            self._db.execute("PRAGMA secure_delete=ON")
            self._open_schema()
        except BaseException:
            with contextlib.suppress(Exception):
                self._db.close()
            self._process_lock.release()
            raise

    def _open_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise OutboxError(f"{self.path}: made by a newer dmp-agent (schema {version})")
        self._db.execute(_META)  # where the key is named, before anything is sealed
        self._cipher = self._open_key()
        self.files = self._cipher.files
        has_items = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'").fetchone()
        if has_items and version < 2:
            self._migrate_v1()
        else:
            with self._transaction() as db:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._recover()
        self.purge()

    def _open_key(self) -> OutboxCipher:
        stored = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        if "key_id" not in stored:
            key_id, key = secrets.token_hex(8), new_key()
            where = self._keys.save(key_id, key)  # before the database names it
            cipher = OutboxCipher(key)
            with self._transaction() as db:
                db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                               [("key_id", key_id), ("key_check", cipher.check)])
            log.info("outbox: new key %s, kept in %s", key_id, where)
            return cipher
        try:
            return open_key(self._keys, stored["key_id"], stored.get("key_check", ""))
        except OutboxKeyError as error:
            raise OutboxKeyError(
                f"{error}. The deposits waiting in {self.directory} cannot be read without "
                "it: restore the key (the keyring entry, or the credentials and data "
                "directories of this machine), or move that directory aside to start an "
                "empty outbox") from None

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._process_lock.release()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _recover(self) -> None:
        """Repair what a crash may have left: temp and orphan bundle files, items caught
        mid-send, items whose bundle vanished and rows whose sealed fields do not open
        (marked failed, never dropped)."""
        now = self._clock()
        with self._transaction() as db:
            db.execute("UPDATE items SET state = 'pending', updated = ? WHERE state = 'sending'",
                       (now,))
            referenced: set[str] = set()
            for row in db.execute("SELECT * FROM items WHERE purged IS NULL").fetchall():
                if row["bundle"] is not None:
                    referenced.add(row["bundle"])
                reason = None
                if not self._row_opens(row):
                    # Unreadable anyway: blanked, so that listing the outbox still works.
                    db.execute("UPDATE items SET personal = NULL, last_error = NULL, "
                               "acknowledgement = NULL WHERE id = ?", (row["id"],))
                    reason = "row damaged (its sealed fields fail authentication)"
                reason = reason or self._file_problem(row)
                if reason is None or row["state"] == ItemState.DONE:
                    continue
                db.execute("UPDATE items SET state = 'failed', last_error = ?, updated = ? "
                           "WHERE id = ?", (self._cipher.seal_text(
                               f"outbox: {reason}", _context(row["unique_id"], "last_error")),
                               now, row["id"]))
        for file in self.bundles.iterdir():
            if file.name not in referenced:
                # A temp file, or a bundle renamed in place whose row was never committed.
                log.info("outbox: removing %s, left by an interrupted add", file.name)
                file.unlink(missing_ok=True)

    def _row_opens(self, row: sqlite3.Row) -> bool:
        try:
            for column in ("personal", "last_error", "acknowledgement"):
                if row[column] is not None:
                    self._cipher.open(row[column], _context(row["unique_id"], column))
        except OutboxDamagedError:
            return False
        return True

    def _file_problem(self, row: sqlite3.Row) -> str | None:
        if row["bundle"] is None:
            return None
        try:
            size = (self.bundles / row["bundle"]).stat().st_size
        except FileNotFoundError:
            return "bundle file missing"
        if size != sealed_size(row["size"]):
            return "bundle file damaged (size differs)"
        return None

    # -- adding ------------------------------------------------------------------------------

    def add(
        self,
        unique_id: str,
        patient: str,
        payload: bytes | bytearray | memoryview | os.PathLike[str],
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Make a deposit durable; returns its item id once it is on disk for good.

        ``payload`` is the signed bundle, as bytes or as a file (copied: the caller may
        delete it afterwards). Idempotent on ``unique_id``: adding it again with the same
        bytes returns the existing id (so a caller that crashed before hearing the answer
        may simply add again); with other bytes raises `OutboxError`.
        """
        if not isinstance(unique_id, str) or not unique_id.strip():
            raise OutboxError("unique_id must be a non-empty string")
        if not isinstance(patient, str) or not patient.strip():
            raise OutboxError("patient must be a non-empty string")
        if not isinstance(payload, bytes | bytearray | memoryview | os.PathLike):
            raise OutboxError("payload must be bytes or a path to the bundle file")
        try:
            personal = json.dumps({"patient": patient, "metadata": dict(metadata or {})},
                                  ensure_ascii=False, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise OutboxError(f"metadata must be JSON-serialisable ({error})") from None
        with self.files.create(self.bundles, _SUFFIX) as writer:
            digest = _write(payload, writer)
            existing = self._by_unique_id(unique_id)
            if existing is not None:
                if existing.sha256 != digest:
                    raise OutboxError(f"uniqueId {unique_id} is already in the outbox "
                                      f"(item {existing.id}) with other content")
                return existing.id
            try:
                final = writer.install()
            except OSError as error:
                raise OutboxError(f"cannot write the bundle: {error}") from error
        try:
            now = self._clock()
            with self._transaction() as db:
                cursor = db.execute(
                    "INSERT INTO items (unique_id, patient_tag, personal, bundle, size, sha256, "
                    "state, attempts, next_attempt, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                    (unique_id, self._cipher.tag(patient),
                     self._cipher.seal(personal.encode(), _context(unique_id, "personal")),
                     final.name, writer.size, digest, now, now, now))
        except sqlite3.IntegrityError:
            final.unlink(missing_ok=True)
            raise OutboxError(f"uniqueId {unique_id} was added meanwhile") from None
        except BaseException:
            final.unlink(missing_ok=True)  # the row was not committed: nothing owns the file
            raise
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    # -- reading -----------------------------------------------------------------------------

    def _item(self, row: sqlite3.Row) -> Item:
        unique_id = row["unique_id"]
        personal: dict[str, Any] = {"patient": "", "metadata": {}}
        if row["personal"] is not None:
            personal = json.loads(self._cipher.open(row["personal"],
                                                    _context(unique_id, "personal")))
        return Item(
            id=row["id"], unique_id=unique_id, patient=personal["patient"],
            state=ItemState(row["state"]), attempts=row["attempts"],
            last_error=self._cipher.open_text(row["last_error"],
                                              _context(unique_id, "last_error")),
            next_attempt=row["next_attempt"], created=row["created"], updated=row["updated"],
            metadata=personal["metadata"], size=row["size"], sha256=row["sha256"],
            payload_path=self.bundles / row["bundle"] if row["bundle"] else None,
            acknowledged=row["acknowledged"],
            acknowledgement=self._cipher.open_text(row["acknowledgement"],
                                                   _context(unique_id, "acknowledgement")),
            purged=row["purged"], files=self.files,
        )

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[Item]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM items WHERE {where} ORDER BY id",
                                    params).fetchall()
        return [self._item(row) for row in rows]

    def _by_unique_id(self, unique_id: str) -> Item | None:
        found = self._select("unique_id = ?", (unique_id,))
        return found[0] if found else None

    def get(self, item_id: int) -> Item:
        found = self._select("id = ?", (item_id,))
        if not found:
            raise OutboxError(f"no item {item_id} in the outbox")
        return found[0]

    def find(self, unique_id: str) -> Item | None:
        """The item of this document uniqueId, if any."""
        return self._by_unique_id(unique_id)

    def pending(self) -> list[Item]:
        """Items not yet acknowledged nor refused (pending or sending), oldest first."""
        return self._select("state IN ('pending', 'sending')")

    def failed(self) -> list[Item]:
        """Items the host refused for good, with their reason, oldest first."""
        return self._select("state = 'failed'")

    def done(self) -> list[Item]:
        return self._select("state = 'done'")

    def counts(self) -> Counts:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state")
            return Counts(**{state: count for state, count in rows})

    # -- purging -----------------------------------------------------------------------------

    def purge(self) -> int:
        """Blank the personal fields (INS, title, file names, the host's words) of items
        acknowledged more than `purge_after` seconds ago; the rows stay, so the counts do.
        Failed items are never purged: they are still the user's work. Cheap (indexed)."""
        now = self._clock()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE items SET personal = NULL, last_error = NULL, acknowledgement = NULL, "
                "purged = ? WHERE state = 'done' AND purged IS NULL AND acknowledged <= ?",
                (now, now - self.purge_after))
        if cursor.rowcount:
            log.info("outbox: personal fields of %d acknowledged item(s) purged",
                     cursor.rowcount)
        return cursor.rowcount

    def next_purge(self) -> float | None:
        """When the next done item becomes due for `purge` (epoch seconds), or None."""
        with self._lock:
            oldest = self._db.execute("SELECT MIN(acknowledged) FROM items WHERE "
                                      "state = 'done' AND purged IS NULL").fetchone()[0]
        return None if oldest is None else oldest + self.purge_after

    # -- changing state ----------------------------------------------------------------------

    def retry(self, item_id: int) -> Item:
        """Requeue a failed item by hand (after the cause was fixed): pending, due now,
        attempts from zero; its last error stays until the next attempt."""
        with self._transaction() as db:
            row = db.execute("SELECT state FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise OutboxError(f"no item {item_id} in the outbox")
            if row["state"] != ItemState.FAILED:
                raise OutboxError(f"item {item_id} is {row['state']}: only a failed item "
                                  "is retried by hand")
            db.execute("UPDATE items SET state = 'pending', attempts = 0, next_attempt = ?, "
                       "updated = ? WHERE id = ?", (self._clock(), self._clock(), item_id))
        return self.get(item_id)

    def _claim(self, now: float, horizon: float) -> Item | None:
        """Mark the next item to send ``sending`` (attempt counted) and return it.

        Within one patient, strict add order: a later deposit never overtakes an earlier
        one still pending (a replacement must follow its original). Across patients, the
        item that failed least goes first, so one document the host keeps failing does not
        hold back the others. ``horizon`` bounds how far ahead a due time may be: a clock
        set back must not freeze the queue.
        """
        with self._transaction() as db:
            rows = db.execute("SELECT id, patient_tag, attempts, next_attempt FROM items "
                              "WHERE state = 'pending' ORDER BY id").fetchall()
            heads: dict[str, sqlite3.Row] = {}
            for row in rows:
                heads.setdefault(row["patient_tag"], row)
            due = [r for r in heads.values()
                   if r["next_attempt"] <= now or r["next_attempt"] > now + horizon]
            if not due:
                return None
            chosen = min(due, key=lambda r: (r["attempts"], r["id"]))
            db.execute("UPDATE items SET state = 'sending', attempts = attempts + 1, "
                       "updated = ? WHERE id = ?", (now, chosen["id"]))
        return self.get(chosen["id"])

    def _next_due(self, now: float, horizon: float) -> float | None:
        with self._lock:
            rows = self._db.execute("SELECT patient_tag, next_attempt FROM items "
                                    "WHERE state = 'pending' ORDER BY id").fetchall()
        heads: dict[str, float] = {}
        for row in rows:
            heads.setdefault(row["patient_tag"], min(row["next_attempt"], now + horizon))
        return min(heads.values(), default=None)

    def _acknowledge(self, item: Item, result: SendResult, now: float) -> None:
        answer = f"{result.outcome}: {result.detail}".rstrip(": ")
        with self._transaction() as db:
            db.execute("UPDATE items SET state = 'done', bundle = NULL, acknowledged = ?, "
                       "acknowledgement = ?, last_error = NULL, updated = ? WHERE id = ?",
                       (now, self._cipher.seal_text(
                           answer, _context(item.unique_id, "acknowledgement")), now, item.id))
        log.info("outbox: item %d acknowledged by the host (%s)", item.id, result.outcome)
        # After the commit: a crash before this unlink leaves an orphan removed at next open.
        if item.payload_path is not None:
            item.payload_path.unlink(missing_ok=True)

    def _set_error(self, item: Item, reason: str, sets: str, params: tuple[Any, ...]) -> None:
        error = self._cipher.seal_text(reason, _context(item.unique_id, "last_error"))
        with self._lock:
            self._db.execute(f"UPDATE items SET {sets}, last_error = ? WHERE id = ?",
                             (*params, error, item.id))

    def _fail(self, item: Item, reason: str, now: float) -> None:
        self._set_error(item, reason, "state = 'failed', updated = ?", (now,))
        log.warning("outbox: item %d refused for good, kept with its reason", item.id)

    def _reschedule(self, item: Item, reason: str, when: float, now: float) -> None:
        self._set_error(item, reason, "state = 'pending', next_attempt = ?, updated = ?",
                        (when, now))
        log.info("outbox: item %d will be sent again in %.0f s", item.id, max(0.0, when - now))

    # -- schema 1 (clear) to 2 (sealed) ------------------------------------------------------

    def _migrate_v1(self) -> None:
        """Seal an outbox of schema 1: each clear file is copied into a sealed one, then the
        rows are rewritten in one transaction, then the clear files go. A crash before the
        commit leaves schema 1 and orphan sealed files (removed as orphans); after it, clear
        orphans (removed likewise)."""
        rows = self._db.execute("SELECT * FROM items ORDER BY id").fetchall()
        made: list[Path] = []
        clear: list[Path] = []
        converted: list[tuple[Any, ...]] = []
        try:
            for row in rows:
                metadata = json.loads(row["metadata"])
                bundle = row["bundle"]
                if bundle is not None:
                    bundle = self._reseal(self.bundles / bundle, _SUFFIX, made, clear)
                content = metadata.get(CONTENT_KEY)
                if isinstance(content, str) and row["state"] != ItemState.DONE:
                    metadata[CONTENT_KEY] = self._reseal(self.contents / content,
                                                         CONTENT_SUFFIX, made, clear)
                uid = row["unique_id"]
                personal = json.dumps({"patient": row["patient"], "metadata": metadata},
                                      ensure_ascii=False, sort_keys=True)
                converted.append((
                    row["id"], uid, self._cipher.tag(row["patient"]),
                    self._cipher.seal(personal.encode(), _context(uid, "personal")), bundle,
                    row["size"], row["sha256"], row["state"], row["attempts"],
                    self._cipher.seal_text(row["last_error"], _context(uid, "last_error")),
                    row["next_attempt"], row["created"], row["updated"], row["acknowledged"],
                    self._cipher.seal_text(row["acknowledgement"],
                                           _context(uid, "acknowledgement"))))
            with self._transaction() as db:
                db.execute("DROP INDEX IF EXISTS items_by_state")  # it follows the old table
                db.execute("ALTER TABLE items RENAME TO items_v1")
                for statement in _SCHEMA:
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO items (id, unique_id, patient_tag, personal, bundle, size, "
                    "sha256, state, attempts, last_error, next_attempt, created, updated, "
                    "acknowledged, acknowledgement) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", converted)
                db.execute("DROP TABLE items_v1")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            for path in made:
                path.unlink(missing_ok=True)
            raise
        for path in clear:
            path.unlink(missing_ok=True)
        # The clear rows may still sit in the write-ahead log and in pages written before
        # secure_delete: rewrite the file, empty the log.
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("outbox: %d item(s) of schema 1 sealed (%d file(s))", len(rows), len(made))

    def _reseal(self, path: Path, suffix: str, made: list[Path], clear: list[Path]) -> str:
        """A sealed copy of the clear file ``path`` beside it; its name. A missing file
        keeps its name: the item then fails as "missing", as any lost file does."""
        try:
            source = open(path, "rb")  # noqa: SIM115 (closed below, the writer may raise)
        except FileNotFoundError:
            return path.name
        with source, self.files.create(path.parent, suffix) as writer:
            while chunk := source.read(1 << 20):
                writer.write(chunk)
            made.append(writer.install())
        clear.append(path)
        return made[-1].name


def _write(payload: bytes | bytearray | memoryview | os.PathLike[str],
           writer: SealedWriter) -> str:
    """Write ``payload`` into ``writer``; its SHA-256 (hex). OSError becomes OutboxError."""
    digest = hashlib.sha256()
    try:
        if isinstance(payload, bytes | bytearray | memoryview):
            digest.update(payload)
            writer.write(payload)
        else:
            with open(payload, "rb") as source:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    writer.write(chunk)
    except OSError as error:
        raise OutboxError(f"cannot write the bundle: {error}") from error
    return digest.hexdigest()


def open_outbox(config: AgentConfig, *, clock: Callable[[], float] = time.time,
                keys: KeyStore | KeyStores | None = None) -> Outbox:
    """The configured outbox: its key in the configured places (`outbox_keys`), its purge
    delay from ``outbox.purge_after_days``."""
    return Outbox(config.outbox_path, keys=keys or outbox_keys(config), clock=clock,
                  purge_after=config.outbox_purge_days * 86400.0)
