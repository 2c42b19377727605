"""The deposit outbox: every deposit is first made durable here, then sent until the host
acknowledges it, exactly once, across crashes and restarts (docs/agent-outbox.md).

Layout, in the user data directory (0700)::

    outbox/outbox.sqlite3    one row per item: state, attempts, last error, next attempt
    outbox/bundles/<x>.bundle  the already-signed bundle of each item not yet acknowledged
    outbox/outbox.lock       held by the one process that owns the outbox

`Outbox.add` writes the bundle under a temporary name, fsyncs it, renames it, and only then
inserts the row in a transaction: a crash at any instant leaves nothing or a complete item,
and a file without a row is removed when the outbox is next opened. Items go
``pending -> sending -> done`` (acknowledged, or "already stored" by the idempotent host),
``sending -> pending`` (network error, 5xx, 408, 429: retried with exponential backoff) or
``sending -> failed`` (refused for good, 4xx: content and reason kept until `Outbox.retry`).
An item found ``sending`` when the outbox opens was interrupted mid-send: it goes back to
``pending`` and is sent again; the host answers "already stored" if it had kept it.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import random as _random
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .config import AgentConfig, fsync_dir, private_dir

log = logging.getLogger(__name__)

BUNDLES = "bundles"
LOCK_FILE = "outbox.lock"
_SUFFIX = ".bundle"
_TEMP_PREFIX = ".tmp-"
_SCHEMA_VERSION = 1


class OutboxError(Exception):
    """A bad call (unknown item, uniqueId reused with other content, bad metadata) or a
    damaged item."""


class OutboxBusyError(OutboxError):
    """Another process holds this outbox (another agent of the same user is running)."""


class ItemState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"  # refused for good by the host; kept, retried only by hand


class Outcome(enum.StrEnum):
    STORED = "stored"
    ALREADY_STORED = "already-stored"  # a resend after a crash: the host had it already
    REFUSED = "refused"  # for good: 4xx other than 408 and 429
    RETRY = "retry"  # network error, 5xx, 408, 429: try again later


@dataclass(frozen=True)
class SendResult:
    """What the host answered to one attempt; build with the class methods or
    `SendResult.from_status`."""

    outcome: Outcome
    detail: str = ""
    status: int | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header

    @classmethod
    def stored(cls, detail: str = "", status: int | None = None) -> SendResult:
        return cls(Outcome.STORED, detail, status)

    @classmethod
    def already_stored(cls, detail: str = "", status: int | None = None) -> SendResult:
        return cls(Outcome.ALREADY_STORED, detail or "already stored", status)

    @classmethod
    def refused(cls, reason: str, status: int | None = None) -> SendResult:
        return cls(Outcome.REFUSED, reason, status)

    @classmethod
    def retry(cls, reason: str, status: int | None = None,
              retry_after: float | None = None) -> SendResult:
        return cls(Outcome.RETRY, reason, status, retry_after)

    @classmethod
    def from_status(cls, status: int, detail: str = "", *, already_stored: bool = False,
                    retry_after: float | None = None) -> SendResult:
        """Classify an HTTP answer: 2xx acknowledged (``already_stored`` when the host said
        it had the document: a replay), 408/429/5xx retried, other 4xx refused for good.
        Anything else (1xx, 3xx) is retried: a configuration fault, not the document's."""
        if 200 <= status < 300:
            return (cls.already_stored(detail, status) if already_stored
                    else cls.stored(detail, status))
        if status in (408, 429) or 500 <= status < 600:
            return cls.retry(detail or f"HTTP {status}", status, retry_after)
        if 400 <= status < 500:
            return cls.refused(detail or f"HTTP {status}", status)
        return cls.retry(detail or f"unexpected HTTP {status}", status, retry_after)

    @property
    def acknowledged(self) -> bool:
        return self.outcome in (Outcome.STORED, Outcome.ALREADY_STORED)


@dataclass(frozen=True)
class Item:
    """One deposit in the outbox (a snapshot: read again with `Outbox.get`)."""

    id: int
    unique_id: str
    patient: str
    state: ItemState
    attempts: int
    last_error: str | None
    next_attempt: float  # epoch seconds
    created: float
    updated: float
    metadata: Mapping[str, Any]
    size: int
    sha256: str
    payload_path: Path | None  # None once acknowledged: the host has it, the copy is removed
    acknowledged: float | None
    acknowledgement: str | None

    def read_payload(self) -> bytes:
        """The bundle's bytes, checked against the size and SHA-256 recorded at `add`."""
        if self.payload_path is None:
            raise OutboxError(f"item {self.id} was acknowledged: its bundle is not kept")
        try:
            data = self.payload_path.read_bytes()
        except OSError as error:
            raise OutboxError(f"item {self.id}: bundle unreadable ({error.strerror})") from None
        if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.sha256:
            raise OutboxError(f"item {self.id}: bundle damaged (size or SHA-256 mismatch)")
        return data


@dataclass(frozen=True)
class Counts:
    pending: int = 0
    sending: int = 0
    done: int = 0
    failed: int = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unique_id TEXT NOT NULL UNIQUE,
    patient TEXT NOT NULL,
    bundle TEXT,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    metadata TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt REAL NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    acknowledged REAL,
    acknowledgement TEXT
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id);
"""


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


class Outbox:
    """The outbox database at ``path`` (bundles in ``path.parent/bundles``), owned by this
    process until `close`. Thread-safe: the worker thread and the API share one instance."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.directory = private_dir(self.path.parent)
        self.bundles = private_dir(self.directory / BUNDLES)
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
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self._recover()
        except BaseException:
            self._process_lock.release()
            raise

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
        mid-send, and items whose bundle vanished (marked failed, never dropped)."""
        now = self._clock()
        with self._transaction() as db:
            db.execute("UPDATE items SET state = 'pending', updated = ? WHERE state = 'sending'",
                       (now,))
            referenced = {row["bundle"]: row for row in db.execute(
                "SELECT id, bundle, size, state FROM items WHERE bundle IS NOT NULL")}
            for name, row in referenced.items():
                file = self.bundles / name
                try:
                    size = file.stat().st_size
                except FileNotFoundError:
                    size = None
                if size != row["size"]:
                    reason = ("bundle file missing" if size is None
                              else "bundle file damaged (size differs)")
                    db.execute("UPDATE items SET state = 'failed', last_error = ?, updated = ? "
                               "WHERE id = ?", (f"outbox: {reason}", now, row["id"]))
        for file in self.bundles.iterdir():
            if file.name not in referenced:
                # A temp file, or a bundle renamed in place whose row was never committed.
                log.info("outbox: removing %s, left by an interrupted add", file.name)
                file.unlink(missing_ok=True)

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
        try:
            metadata_json = json.dumps(dict(metadata or {}), ensure_ascii=False,
                                       sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise OutboxError(f"metadata must be JSON-serialisable ({error})") from None
        temp, size, digest = self._write_temp(payload)
        try:
            existing = self._by_unique_id(unique_id)
            if existing is not None:
                if existing.sha256 != digest:
                    raise OutboxError(f"uniqueId {unique_id} is already in the outbox "
                                      f"(item {existing.id}) with other content")
                return existing.id
            name = secrets.token_hex(16) + _SUFFIX
            final = self.bundles / name
            os.replace(temp, final)
            temp = final
            fsync_dir(self.bundles)  # the rename is durable before the row points to it
            now = self._clock()
            try:
                with self._transaction() as db:
                    cursor = db.execute(
                        "INSERT INTO items (unique_id, patient, bundle, size, sha256, metadata, "
                        "state, attempts, next_attempt, created, updated) "
                        "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                        (unique_id, patient, name, size, digest, metadata_json, now, now, now))
            except sqlite3.IntegrityError:
                raise OutboxError(f"uniqueId {unique_id} was added meanwhile") from None
            temp = None  # the row owns the file now
            assert cursor.lastrowid is not None
            return cursor.lastrowid
        finally:
            if temp is not None:
                Path(temp).unlink(missing_ok=True)

    def _write_temp(
        self, payload: bytes | bytearray | memoryview | os.PathLike[str]
    ) -> tuple[Path, int, str]:
        fd, name = tempfile.mkstemp(dir=self.bundles, prefix=_TEMP_PREFIX)  # 0600
        temp = Path(name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(payload, bytes | bytearray | memoryview):
                    data = bytes(payload)
                    out.write(data)
                    digest.update(data)
                    size = len(data)
                elif isinstance(payload, os.PathLike):
                    with open(payload, "rb") as source:
                        size = _copy_hashing(source, out, digest)
                else:
                    raise OutboxError("payload must be bytes or a path to the bundle file")
                out.flush()
                os.fsync(out.fileno())
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise OutboxError(f"cannot write the bundle: {error}") from error
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, size, digest.hexdigest()

    # -- reading -----------------------------------------------------------------------------

    def _item(self, row: sqlite3.Row) -> Item:
        return Item(
            id=row["id"], unique_id=row["unique_id"], patient=row["patient"],
            state=ItemState(row["state"]), attempts=row["attempts"],
            last_error=row["last_error"], next_attempt=row["next_attempt"],
            created=row["created"], updated=row["updated"],
            metadata=json.loads(row["metadata"]), size=row["size"], sha256=row["sha256"],
            payload_path=self.bundles / row["bundle"] if row["bundle"] else None,
            acknowledged=row["acknowledged"], acknowledgement=row["acknowledgement"],
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
            rows = db.execute("SELECT id, patient, attempts, next_attempt FROM items "
                              "WHERE state = 'pending' ORDER BY id").fetchall()
            heads: dict[str, sqlite3.Row] = {}
            for row in rows:
                heads.setdefault(row["patient"], row)
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
            rows = self._db.execute("SELECT patient, next_attempt FROM items "
                                    "WHERE state = 'pending' ORDER BY id").fetchall()
        heads: dict[str, float] = {}
        for row in rows:
            heads.setdefault(row["patient"], min(row["next_attempt"], now + horizon))
        return min(heads.values(), default=None)

    def _acknowledge(self, item: Item, result: SendResult, now: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE items SET state = 'done', bundle = NULL, acknowledged = ?, "
                       "acknowledgement = ?, last_error = NULL, updated = ? WHERE id = ?",
                       (now, f"{result.outcome}: {result.detail}".rstrip(": "), now, item.id))
        log.info("outbox: item %d acknowledged by the host (%s)", item.id, result.outcome)
        # After the commit: a crash before this unlink leaves an orphan removed at next open.
        if item.payload_path is not None:
            item.payload_path.unlink(missing_ok=True)

    def _fail(self, item: Item, reason: str, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE items SET state = 'failed', last_error = ?, updated = ? "
                             "WHERE id = ?", (reason, now, item.id))
        log.warning("outbox: item %d refused for good, kept with its reason", item.id)

    def _reschedule(self, item: Item, reason: str, when: float, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE items SET state = 'pending', last_error = ?, "
                             "next_attempt = ?, updated = ? WHERE id = ?",
                             (reason, when, now, item.id))
        log.info("outbox: item %d will be sent again in %.0f s", item.id, max(0.0, when - now))


def _copy_hashing(source: IO[bytes], out: IO[bytes], digest: Any) -> int:
    size = 0
    while chunk := source.read(1 << 20):
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    return size


# -- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base * 2**(n-1)`` after the n-th failure, at most ``maximum``,
    spread by ``jitter`` (a fraction) so that workstations do not retry in step."""

    base: float = 5.0
    maximum: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.maximum >= self.base and 0 <= self.jitter <= 1):
            raise ValueError("need base > 0, maximum >= base, 0 <= jitter <= 1")

    @classmethod
    def from_config(cls, config: AgentConfig) -> RetryPolicy:
        return cls(config.retry_base, config.retry_max, config.retry_jitter)

    def delay(self, failures: int, random: Callable[[], float] = _random.random,
              retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (>= 1); a host's
        Retry-After is honoured up to ``maximum``."""
        exponent = min(max(failures, 1) - 1, 60)  # 2**60 * base is past any maximum
        plain = min(self.maximum, self.base * 2.0 ** exponent)
        spread = plain * (1 + self.jitter * (2 * random() - 1))
        wait = min(self.maximum, max(0.0, spread))
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.maximum))
        return wait


@dataclass(frozen=True)
class Progress:
    """One step of the sender, for the tray and the page: ``kind`` is sending, done,
    retry or failed; ``item`` is the item after the step; ``counts`` the whole outbox."""

    kind: str
    item: Item
    counts: Counts


Send = Callable[[Item], SendResult]


@dataclass(frozen=True)
class PassReport:
    sent: int = 0  # acknowledged (stored or already stored)
    failed: int = 0  # refused for good
    retried: int = 0  # 0 or 1: a pass stops at the first transient failure


class Sender:
    """Sends an outbox's due items, one at a time, and records what the host said.

    Safe to run again after a crash at any instant: an item is marked done only after the
    host acknowledged it, and the host is idempotent on the document uniqueId. A transient
    failure ends the pass and pauses the whole sender (the host or the network is in
    trouble, so hammering it with the next items helps nobody); the pause grows with
    consecutive transient failures and resets as soon as the host answers anything else.
    """

    def __init__(
        self,
        outbox: Outbox,
        policy: RetryPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._random = random
        self._on_progress = on_progress
        self._pass_lock = threading.Lock()  # one pass at a time, whoever calls
        self._host_failures = 0
        self.paused_until = 0.0

    def _report(self, kind: str, item: Item) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(Progress(kind, self.outbox.get(item.id), self.outbox.counts()))
        except Exception:
            log.exception("outbox: progress callback failed")  # a view's bug stops nothing

    def next_due(self) -> float | None:
        """When the next attempt is due (epoch seconds), or None when nothing is pending."""
        now = self._clock()
        due = self.outbox._next_due(now, self.policy.maximum)
        return None if due is None else max(due, self.paused_until)

    def send_pending(self, send: Send, *, stop: Callable[[], bool] | None = None) -> PassReport:
        """Send every due item in order until none is due, a transient failure, or
        ``stop()``. ``send`` raising counts as a transient failure (never a lost item),
        except `OutboxError` (the bundle on disk is damaged), which fails the item."""
        sent = failed = retried = 0
        with self._pass_lock:
            while not (stop and stop()):
                now = self._clock()
                if now < self.paused_until:
                    break
                item = self.outbox._claim(now, self.policy.maximum)
                if item is None:
                    break
                self._report("sending", item)
                try:
                    result = send(item)
                except OutboxError as error:
                    result = SendResult.refused(f"outbox: {error}")
                except Exception as error:
                    result = SendResult.retry(f"{type(error).__name__}: {error}")
                now = self._clock()
                if result.acknowledged:
                    self.outbox._acknowledge(item, result, now)
                    self._host_failures = 0
                    sent += 1
                    self._report("done", item)
                elif result.outcome is Outcome.REFUSED:
                    reason = f"{result.status} {result.detail}" if result.status else result.detail
                    self.outbox._fail(item, reason, now)
                    self._host_failures = 0
                    failed += 1
                    self._report("failed", item)
                else:
                    self._host_failures += 1
                    reason = f"{result.status} {result.detail}" if result.status else result.detail
                    when = now + self.policy.delay(item.attempts, self._random, result.retry_after)
                    self.outbox._reschedule(item, reason, when, now)
                    self.paused_until = now + self.policy.delay(
                        self._host_failures, self._random, result.retry_after)
                    retried += 1
                    self._report("retry", item)
                    break
        return PassReport(sent, failed, retried)


class OutboxWorker:
    """A background thread that sends the outbox: it sleeps until the next due attempt or
    until ``wakeup`` is set (set it after `Outbox.add`, or when the network comes back),
    never polling. ``on_progress`` is called on the worker thread."""

    def __init__(
        self,
        outbox: Outbox,
        send: Send,
        wakeup: threading.Event,
        *,
        policy: RetryPolicy | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.sender = Sender(outbox, policy, on_progress=on_progress, random=random)
        self.send = send
        self.wakeup = wakeup
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dmp-outbox", daemon=True)

    def start(self) -> OutboxWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the current attempt (an attempt in flight is not cut short)."""
        self._stopping.set()
        self.wakeup.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the pass: a wakeup set during the pass triggers another one.
            self.wakeup.clear()
            try:
                self.sender.send_pending(self.send, stop=self._stopping.is_set)
                due = self.sender.next_due()
            except Exception:
                # The database itself failed (disk full...): wait, then try again.
                log.exception("outbox: pass failed")
                due = time.time() + self.sender.policy.base
            if self._stopping.is_set():
                break
            self.wakeup.wait(None if due is None else max(0.0, due - time.time()))


__all__ = [
    "Counts",
    "Item",
    "ItemState",
    "Outbox",
    "OutboxBusyError",
    "OutboxError",
    "OutboxWorker",
    "Outcome",
    "PassReport",
    "Progress",
    "RetryPolicy",
    "SendResult",
    "Sender",
]
