"""The outbox's SQLite file: its schema, opening it only once it is known sound, and making
a new one atomically (docs/agent-outbox.md, "Recovery").

A file at the database's path is always one this agent made: a new database is built under
a temporary name, fsynced, then renamed into place. So a 0-byte file, a file that is not
SQLite, one that fails ``PRAGMA integrity_check`` or one without the outbox's tables is
damage, never "a fresh database": `open_checked` raises `DamagedDatabase` and the outbox
puts it aside and rebuilds its queue from its files.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from agent.config import fsync_dir
from agent.outbox.storage import is_damaged

# 1: clear rows and files; 2: sealed; 3: self-describing files, causes; 4: the patients'
# identity checks (agent/outbox/identities.py)
SCHEMA_VERSION = 4
APPLICATION_ID = 0x444D504F  # "DMPO": our file, for whoever finds it
SQLITE_MAGIC = b"SQLite format 3\x00"
LOG_SUFFIXES = ("-wal", "-shm", "-journal")

META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_ITEMS = (
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
        purged REAL,
        cause TEXT,  -- why the last attempt failed (model.Cause): no personal data
        last_status INTEGER  -- the host's HTTP status then
    )""",
    "CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id)",
    META,
)
# The identity documents checked per patient (RNIV): nothing personal in clear, the INS and
# its traits as keyed hashes (the outbox key's tag); see agent/outbox/identities.py.
IDENTITIES = """CREATE TABLE IF NOT EXISTS identities (
        patient_tag TEXT PRIMARY KEY,  -- HMAC of the INS
        traits_tag TEXT NOT NULL,  -- HMAC of the traits the INS service answered then
        document TEXT NOT NULL,  -- the identity document checked (wire.ins.IDENTITY_DOCUMENTS)
        parent_document TEXT,  -- a minor's: the parent's document shown with it
        validated REAL NOT NULL,  -- when
        professional TEXT NOT NULL  -- who checked it (idNat_PS)
    )"""
SCHEMA = (*_ITEMS, IDENTITIES)


class DamagedDatabase(Exception):
    """The file at the database's path is not a sound outbox database; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def connect(path: Path) -> sqlite3.Connection:
    # Autocommit; multi-statement changes use explicit BEGIN IMMEDIATE ... COMMIT.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.row_factory = sqlite3.Row
    return db


def configure(db: sqlite3.Connection) -> None:
    """WAL with synchronous=FULL: a committed add (the 202 the user got) survives a power
    cut, not only a process crash; freed space is zeroed (purged values do not linger)."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA secure_delete=ON")


def open_checked(path: Path) -> tuple[sqlite3.Connection, int]:
    """The database at ``path`` and its schema version, once it passed the integrity check
    and has the outbox's tables; `DamagedDatabase` otherwise. A refusal of the disk (read
    errors, permissions) is raised as is: it is not damage."""
    if path.stat().st_size == 0:
        raise DamagedDatabase("empty file (0 bytes)")
    with open(path, "rb") as file:
        if file.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise DamagedDatabase("not a SQLite database")
    db = connect(path)
    try:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise DamagedDatabase("integrity check failed: " + "; ".join(problems)[:300])
        tables = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if "items" not in tables or version < 1:
            raise DamagedDatabase("not an outbox database (no items table)")
        if version >= 2 and ("meta" not in tables or db.execute(
                "SELECT 1 FROM meta WHERE name = 'key_id'").fetchone() is None):
            # Without it a new key would be made, and every file would stop opening.
            raise DamagedDatabase("the record of the outbox key is missing")
    except sqlite3.DatabaseError as error:
        db.close()
        if is_damaged(error):
            raise DamagedDatabase(str(error)) from None
        raise
    except BaseException:
        db.close()
        raise
    return db, version


def create(path: Path, key_id: str, key_check: str) -> None:
    """A new, empty outbox database at ``path``, named with its key: built under a
    temporary name, then renamed into place (never a half-made file at ``path``)."""
    temp = path.with_name(f".{path.name}.new")
    for stale in (temp, *(temp.with_name(temp.name + s) for s in LOG_SUFFIXES)):
        stale.unlink(missing_ok=True)
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # born 0600
    try:
        db = connect(temp)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                db.execute(statement)
            db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                           [("key_id", key_id), ("key_check", key_check)])
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute("COMMIT")
        finally:
            db.close()
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


def log_files(path: Path) -> list[Path]:
    """The database's companions on disk (its write-ahead log and shared memory)."""
    return [p for p in (path.with_name(path.name + s) for s in LOG_SUFFIXES) if p.exists()]


__all__ = ["IDENTITIES", "SCHEMA", "SCHEMA_VERSION", "DamagedDatabase", "configure",
           "connect", "create", "log_files", "open_checked"]
