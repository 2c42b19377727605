"""The outbox database and its files: durable adds, the state changes, recovery, encryption
at rest and the purge (docs/agent-outbox.md).

Layout, in the user data directory (0700)::

    outbox/outbox.sqlite3        one row per item: state, attempts, sealed personal fields
    outbox/bundles/<x>.bundle    the signed bundle of each item not yet acknowledged, sealed
    outbox/contents/<x>.content  a document queued by reference (agent/core/deposit.py), sealed
    outbox/quarantine/<date>/    what the outbox could not account for, with the reasons
    outbox/outbox.lock           held by the one process that owns the outbox

`Outbox.add` writes the sealed bundle, labelled with what it is (uniqueId, patient, size,
SHA-256, metadata), under a temporary name, fsyncs it, renames it, and only then inserts
the row in a transaction: a crash at any instant leaves nothing or a complete item. Opening
checks the database before trusting it (database.py) and accounts for every file
(recovery.py): an item found ``sending`` goes back to ``pending``, a file whose row is gone
is rebuilt into the queue, and a damaged database is put in quarantine and rebuilt from the
files, never taken for an empty outbox.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, private_dir
from agent.i18n import _
from agent.outbox.database import (
    META,
    SCHEMA_VERSION,
    DamagedDatabase,
    configure,
    create,
    log_files,
    open_checked,
)
from agent.outbox.identities import IdentityChecks
from agent.outbox.keys import KeyStore, KeyStores, open_key, outbox_keys
from agent.outbox.migrate import Migrations
from agent.outbox.model import (
    Cause,
    Counts,
    Description,
    Item,
    ItemState,
    OutboxError,
    OutboxKeyError,
    OutboxStorageError,
    OutboxUnreadableError,
    SendResult,
)
from agent.outbox.recovery import (
    CONTENT_KEY,
    QUARANTINE,
    Quarantine,
    Recovery,
    Repair,
    _context,
    read_record,
    recovery_record,
)
from agent.outbox.sealed import (
    TEMP_PREFIX,
    OutboxCipher,
    key_id_of,
    new_key,
    sealed_size,
    write_payload,
)
from agent.outbox.storage import ProcessLock, ensure_room, is_storage, storage_error
from agent.outbox.throttle import Throttle, process_throttle

log = logging.getLogger(__name__)

BUNDLES = "bundles"
CONTENTS = "contents"  # documents queued by reference (agent/core/deposit.py)
CONTENT_SUFFIX = ".content"
LOCK_FILE = "outbox.lock"
_SUFFIX = ".bundle"
DEFAULT_PURGE_AFTER = 7 * 86400.0


class Outbox(Migrations, Recovery, IdentityChecks):
    """The outbox database at ``path`` (files in ``path.parent``), owned by this process
    until `close`. Thread-safe: the worker thread and the API share one instance.

    ``keys`` says where the outbox key is (`open_outbox` gives the configured places);
    done items' personal fields are blanked ``purge_after`` seconds after acknowledgement;
    ``holder`` says what this process is to another that finds the outbox taken. Raises
    `OutboxBusyError` (another process holds it), `OutboxStorageError` (the disk refuses:
    read-only, full...), `OutboxKeyError` (the key of an existing outbox cannot be had),
    `OutboxUnreadableError` (the database cannot be read nor rebuilt), each with a sentence
    that says what to do. ``repair`` and ``rebuilt`` say what the opening repaired. With
    ``recover`` (`dmp-agent outbox --recover`), a database that cannot be read is put in
    quarantine and the queue rebuilt from the files instead.

    ``throttle`` paces its senders (the DMP's rule, `agent.outbox.throttle`); None: no
    pace (a bare outbox, as in tests). `open_outbox` gives the process's throttle.
    """

    def __init__(self, path: Path | str, *, keys: KeyStore | KeyStores,
                 clock: Callable[[], float] = time.time,
                 purge_after: float = DEFAULT_PURGE_AFTER, holder: str = "",
                 recover: bool = False, throttle: Throttle | None = None) -> None:
        self.path = Path(path)
        self.purge_after = purge_after
        self.throttle = throttle
        self._keys = keys if isinstance(keys, KeyStores) else KeyStores(keys)
        self._clock = clock
        self._lock = threading.RLock()
        self._in_flight: set[int] = set()  # claimed by a sender of this process
        self._made: OutboxCipher | None = None  # the key chosen for a new database
        self._rebuilding: str | None = None  # why the database had to be made anew
        self._closed = False
        self._recover_unreadable = recover
        self.write_problem: OutboxStorageError | None = None  # the last write that failed
        self.repair = Repair()
        self.rebuilt: str | None = None  # a sentence when this opening rebuilt the queue
        directory = self.path.parent
        try:
            self.directory = private_dir(directory)
            self.bundles = private_dir(directory / BUNDLES)
            self.contents = private_dir(directory / CONTENTS)
            self._process_lock = ProcessLock(directory / LOCK_FILE, holder)
        except OSError as error:
            raise storage_error(error, directory) from None
        self.quarantine = Quarantine(directory / QUARANTINE, clock)
        try:
            self._open()
        except BaseException:
            with contextlib.suppress(Exception):
                self._db.close()
            self._process_lock.release()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            try:
                self._open_database()
            except sqlite3.Error as error:
                if is_storage(error) or not self._recover_unreadable:
                    raise
                # Asked for by a person (dmp-agent outbox --recover): set it aside, rebuild.
                with contextlib.suppress(Exception):
                    self._db.close()
                self._open_database(f"unreadable ({error}), set aside by --recover")
        except sqlite3.Error as error:
            if is_storage(error):
                raise storage_error(error, self.directory) from None
            raise OutboxUnreadableError(
                _("The outbox database is unreadable ({path}: {error}): dmp-agent outbox "
                  "--recover sets it aside in quarantine ({quarantine}) and rebuilds the queue "
                  "from its files").format(path=self.path, error=error,
                                           quarantine=self.quarantine.root)) from None
        except OSError as error:
            raise storage_error(error, self.directory) from None

    def _open_database(self, damage: str | None = None) -> None:
        if damage is None and self.path.exists():
            try:
                self._db, version = open_checked(self.path)
            except DamagedDatabase as error:
                damage = error.reason
        if damage is not None or not self.path.exists():
            self._create_database(damage)
            self._db, version = open_checked(self.path)
        if version > SCHEMA_VERSION:
            raise OutboxError(_("{path}: made by a newer dmp-agent (schema {version}): "
                                "install it").format(path=self.path, version=version))
        configure(self._db)
        self._db.execute(META)  # where the key is named, before anything is sealed
        self._cipher = self._made or self._open_key()
        self.files = self._cipher.files
        if version < 2:
            self._migrate_v1()  # straight to the current schema
        else:
            if version < 3:
                self._migrate_v2()
            if version < 4:
                self._migrate_v3()
        self.repair = self._recover()
        if self._rebuilding is not None:
            self._record_rebuild(self._rebuilding)
        try:
            self.purge()
        except OutboxStorageError as error:  # a full disk: purged at the next chance
            log.warning("outbox: purge postponed: %s", error)

    def _create_database(self, damage: str | None) -> None:
        """A new database in place of a damaged or missing one. The damaged one (and the
        logs of a lost one) go to quarantine; the key is the one the files name in their
        headers (a new key only for an outbox without files); the queue is then rebuilt
        from the files' labels by `_recover`."""
        aside = ([self.path] if damage is not None else []) + log_files(self.path)
        for path in aside:
            self.quarantine.put(path, damage or "database missing, its log left", "database")
        files = [p for d in (self.bundles, self.contents) for p in d.iterdir()
                 if not p.name.startswith(TEMP_PREFIX)]
        if damage is not None or files:
            self._rebuilding = damage or "database missing"
            log.warning("outbox: database %s (%s): rebuilding the queue from %d file(s)",
                        self.path, self._rebuilding, len(files))
        named = Counter(key_id for key_id in map(key_id_of, files) if key_id)
        if named:
            key_id = named.most_common(1)[0][0]
            try:
                self._made = OutboxCipher(self._keys.load(key_id), key_id)
            except OutboxKeyError as error:
                raise self._key_problem(error) from None
        else:
            key_id, key = secrets.token_hex(8), new_key()
            where = self._keys.save(key_id, key)  # before the database names it
            self._made = OutboxCipher(key, key_id)
            log.info("outbox: new key %s, kept in %s", key_id, where)
        create(self.path, key_id, self._made.check)

    def _record_rebuild(self, reason: str) -> None:
        folder = self.quarantine.folder
        record = recovery_record(self.repair, reason, folder, self._clock())
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('recovery', ?)",
                       (record,))
        where = (_("; the damaged database is kept in {folder}").format(folder=folder)
                 if folder else "")
        self.rebuilt = _("outbox rebuilt from its files ({reason}): {count} deposit(s) queued "
                         "again").format(reason=reason, count=self.repair.rebuilt) + where
        log.warning("outbox: %s", self.rebuilt)

    def _open_key(self) -> OutboxCipher:
        stored = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        if "key_id" not in stored:  # schema 1: nothing was sealed yet
            key_id, key = secrets.token_hex(8), new_key()
            where = self._keys.save(key_id, key)  # before the database names it
            cipher = OutboxCipher(key, key_id)
            with self._transaction() as db:
                db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                               [("key_id", key_id), ("key_check", cipher.check)])
            log.info("outbox: new key %s, kept in %s", key_id, where)
            return cipher
        try:
            return open_key(self._keys, stored["key_id"], stored.get("key_check", ""))
        except OutboxKeyError as error:
            raise self._key_problem(error) from None

    def _key_problem(self, error: OutboxKeyError) -> OutboxKeyError:
        return OutboxKeyError(
            f"{error}. The deposits waiting in {self.directory} cannot be read without it: "
            "restore the key (the keyring entry, or the credentials and data directories of "
            "this machine), or move that directory aside to start an empty outbox")

    @property
    def recovery(self) -> dict[str, Any] | None:
        """The last rebuild of the queue from the files (when, why, how many, where the
        damaged database went), or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = 'recovery'").fetchone()
        return read_record(row[0] if row else None)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # At rest the database file holds everything: a lost log loses nothing.
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._process_lock.release()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; a refusal of the disk becomes `OutboxStorageError`
        and is remembered in `write_problem` until a write succeeds again."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                if not is_storage(error):
                    raise
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may stay open
                    self._db.execute("ROLLBACK")
                raise self._storage_failed(error, "cannot write") from None
            self.write_problem = None

    def _storage_failed(self, error: BaseException, doing: str) -> OutboxStorageError:
        problem = storage_error(error, self.directory)
        self.write_problem = problem
        log.warning("outbox: %s: %s", doing, problem)
        return problem

    def ensure_room(self, needed: int) -> None:
        """`OutboxFullError` ("disque plein : 5 Mo nécessaires, 2 Mo libres") unless
        ``needed`` bytes and a reserve for the database and logs are free."""
        ensure_room(self.directory, needed)

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
        may simply add again); with other bytes raises `OutboxError`. Not enough room:
        `OutboxFullError`, before anything is written.
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
        try:
            size = len(payload) if not isinstance(payload, os.PathLike) \
                else os.stat(payload).st_size
        except OSError as error:
            raise OutboxError(f"cannot read the bundle: {error}") from error
        self.ensure_room(sealed_size(size) + len(personal))
        now = self._clock()
        try:
            with self.files.create(self.bundles, _SUFFIX) as writer:
                write_payload(payload, writer)
                existing = self._by_unique_id(unique_id)
                if existing is not None:
                    if existing.sha256 != writer.sha256:
                        raise OutboxError(f"uniqueId {unique_id} is already in the outbox "
                                          f"(item {existing.id}) with other content")
                    return existing.id
                label = Description("bundle", unique_id, patient, writer.size,
                                    writer.sha256, now, json.loads(personal)["metadata"])
                final = writer.install(label.to_bytes())
        except OSError as error:
            raise self._storage_failed(error, "cannot write the bundle") from None
        except ValueError as error:  # a label over its limit: metadata far too large
            raise OutboxError(f"metadata too large ({error})") from None
        try:
            with self._transaction() as db:
                cursor = db.execute(
                    "INSERT INTO items (unique_id, patient_tag, personal, bundle, size, sha256, "
                    "state, attempts, next_attempt, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                    (unique_id, self._cipher.tag(patient),
                     self._cipher.seal(personal.encode(), _context(unique_id, "personal")),
                     final.name, writer.size, writer.sha256, now, now, now))
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
            purged=row["purged"], cause=_cause(row["cause"]), last_status=row["last_status"],
            files=self.files,
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
        with self._transaction() as db:
            cursor = db.execute(
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
        set back must not freeze the queue. An item left ``sending`` that no sender of this
        process holds (its outcome could not be written: a full disk) is pending again.
        """
        with self._transaction() as db:
            stale = [r["id"] for r in db.execute("SELECT id FROM items WHERE state = "
                                                 "'sending'") if r["id"] not in self._in_flight]
            db.executemany("UPDATE items SET state = 'pending' WHERE id = ?",
                           [(item_id,) for item_id in stale])
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
        self._in_flight.add(chosen["id"])
        return self.get(chosen["id"])

    def _release(self, item: Item) -> None:
        """A claimed item that was not sent after all (its sender stopped before the attempt
        began): pending again, that attempt not counted."""
        try:
            with self._transaction() as db:
                db.execute("UPDATE items SET state = 'pending', attempts = MAX(attempts - 1, "
                           "0) WHERE id = ? AND state = 'sending'", (item.id,))
        finally:
            self._in_flight.discard(item.id)

    def _next_due(self, now: float, horizon: float) -> float | None:
        with self._lock:
            rows = self._db.execute("SELECT patient_tag, next_attempt FROM items "
                                    "WHERE state = 'pending' ORDER BY id").fetchall()
        heads: dict[str, float] = {}
        for row in rows:
            heads.setdefault(row["patient_tag"], min(row["next_attempt"], now + horizon))
        return min(heads.values(), default=None)

    def _due_now(self, causes: Collection[Cause], now: float) -> int:
        """Pending items held back by one of ``causes`` become due at ``now``."""
        marks = ", ".join("?" * len(causes))
        with self._transaction() as db:
            return db.execute("UPDATE items SET next_attempt = ? WHERE state = 'pending' AND "
                              f"next_attempt > ? AND cause IN ({marks})",
                              (now, now, *map(str, causes))).rowcount

    def _acknowledge(self, item: Item, result: SendResult, now: float) -> None:
        answer = f"{result.outcome}: {result.detail}".rstrip(": ")
        try:
            with self._transaction() as db:
                db.execute("UPDATE items SET state = 'done', bundle = NULL, acknowledged = ?, "
                           "acknowledgement = ?, last_error = NULL, cause = NULL, "
                           "last_status = NULL, updated = ? WHERE id = ?",
                           (now, self._cipher.seal_text(
                               answer, _context(item.unique_id, "acknowledgement")), now,
                            item.id))
        finally:
            self._in_flight.discard(item.id)
        log.info("outbox: item %d acknowledged by the host (%s)", item.id, result.outcome)
        # After the commit: a crash before this unlink leaves a file removed at next open.
        if item.payload_path is not None:
            item.payload_path.unlink(missing_ok=True)

    def _set_error(self, item: Item, reason: str, cause: Cause, status: int | None,
                   sets: str, params: tuple[Any, ...]) -> None:
        error = self._cipher.seal_text(reason, _context(item.unique_id, "last_error"))
        try:
            with self._transaction() as db:
                db.execute(f"UPDATE items SET {sets}, last_error = ?, cause = ?, "
                           "last_status = ? WHERE id = ?",
                           (*params, error, str(cause), status, item.id))
        finally:
            self._in_flight.discard(item.id)

    def _fail(self, item: Item, reason: str, now: float, cause: Cause = Cause.REFUSED,
              status: int | None = None) -> None:
        self._set_error(item, reason, cause, status, "state = 'failed', updated = ?", (now,))
        log.warning("outbox: item %d refused for good, kept with its reason", item.id)

    def _reschedule(self, item: Item, reason: str, when: float, now: float,
                    cause: Cause = Cause.ERROR, status: int | None = None) -> None:
        self._set_error(item, reason, cause, status,
                        "state = 'pending', next_attempt = ?, updated = ?", (when, now))
        log.info("outbox: item %d will be sent again in %.0f s (%s)", item.id,
                 max(0.0, when - now), cause)


def _cause(value: str | None) -> Cause | None:
    try:
        return Cause(value) if value else None
    except ValueError:  # written by a newer agent
        return Cause.ERROR


def open_outbox(config: AgentConfig, *, clock: Callable[[], float] = time.time,
                keys: KeyStore | KeyStores | None = None, holder: str = "",
                recover: bool = False) -> Outbox:
    """The configured outbox: its key in the configured places (`outbox_keys`), its purge
    delay from ``outbox.purge_after_days``, paced by the process's throttle at
    ``outbox.max_deposits_per_second``; ``holder`` and ``recover`` as for `Outbox`."""
    return Outbox(config.outbox_path, keys=keys or outbox_keys(config), clock=clock,
                  purge_after=config.outbox_purge_days * 86400.0, holder=holder,
                  recover=recover,
                  throttle=process_throttle(config.max_deposits_per_second))


__all__ = ["BUNDLES", "CONTENTS", "CONTENT_KEY", "CONTENT_SUFFIX", "DEFAULT_PURGE_AFTER",
           "LOCK_FILE", "SCHEMA_VERSION", "Outbox", "open_outbox"]
