"""Session revocations the host has not acknowledged yet: kept on disk, sent in the background.

When a professional session ends (CPS removed, pcscd lost, logout, lock, agent stopped), the
agent clears the patient's data at once; telling the host is this module's work, off the
thread that saw the card leave (docs/agent-session.md, "The end"):

- `RevocationQueue` is a small JSON file in the agent's data directory
  (``revocations.json``) holding, per session not yet revoked at the host, its id, the
  reason and two times (when it ended, when its certificate expires). No personal data.
  Written atomically (temporary file, fsync, rename), owner-only; a file that cannot be
  read is set aside as ``revocations.json.corrupt`` and said in the log. Several processes
  of the same user (`dmp-agent run` and a command) share it under a lock file.
- `Revoker` delivers: first ``DELETE /session`` with the session's own client (short
  timeout), whose key is then dropped; what failed stays in the queue and is retried with
  a backoff (1 s, 2 s, 4 s... up to 60 s) through ``POST /session/$revoke`` with the
  workstation's own certificate. `flush` sends what is pending on the workstation's
  connection before its next request (the challenge of a new session). At start the agent
  delivers what a previous run left (a crash, a power cut).

A revocation is dropped once the session's certificate has expired (the host refuses it
anyway) plus a margin, so a host gone for good does not grow the file.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.client.session import host_client, shutdown_sockets, workstation_client
from agent.config import write_private_file

if TYPE_CHECKING:
    import httpx

    from agent.client.session import HostSession, Workstation

__all__ = ["REVOCATIONS_FILE", "Revocation", "RevocationQueue", "Revoker"]

log = logging.getLogger(__name__)

REVOCATIONS_FILE = "revocations.json"
FORMAT = 1
MAX_PENDING = 1000  # the oldest are dropped beyond (each session expires on its own anyway)
MAX_TEXT = 64  # characters of a session id or a reason (the host's limit)
BATCH = 100  # sessions per POST /session/$revoke (the host's limit)
EXPIRY_MARGIN = dt.timedelta(minutes=10)  # kept this long after the certificate's expiry
UNKNOWN_LIFETIME = dt.timedelta(hours=24)  # kept this long when the expiry is not known
LOCK_WAIT = 2.0  # seconds to wait for another process's write before writing anyway

# Seconds per network step of a background attempt: a TLS handshake on a new connection over
# a 3 s RTT link takes 3 s and more, a TCP connect as much again.
REVOKE_TIMEOUT = 10.0
BACKOFF_FIRST = 1.0  # seconds before the first retry, doubled at each failure...
BACKOFF_MAX = 60.0  # ...up to this
STOP_WAIT = 1.0  # seconds `Revoker.stop` waits for an attempt in flight


@dataclass(frozen=True)
class Revocation:
    """A session to revoke at the host: its id, why it ended, when, and until when its
    certificate is valid (None: not known)."""

    session_id: str
    reason: str
    ended_at: dt.datetime
    not_after: dt.datetime | None = None

    def expired(self, now: dt.datetime) -> bool:
        end = self.not_after or self.ended_at + UNKNOWN_LIFETIME
        return now > end + EXPIRY_MARGIN

    def to_json(self) -> dict[str, Any]:
        return {"sessionId": self.session_id, "reason": self.reason,
                "endedAt": self.ended_at.isoformat(),
                "notAfter": self.not_after.isoformat() if self.not_after else None}

    @classmethod
    def from_json(cls, value: Any) -> Revocation:
        """One entry of the file; ValueError when it is not one."""
        if not isinstance(value, dict):
            raise ValueError("entry: an object is expected")
        session_id, reason = value.get("sessionId"), value.get("reason")
        if not (isinstance(session_id, str) and isinstance(reason, str)
                and 0 < len(session_id) <= MAX_TEXT and 0 < len(reason) <= MAX_TEXT):
            raise ValueError("entry: sessionId and reason expected")
        not_after = value.get("notAfter")
        return cls(session_id, reason, _time(value.get("endedAt")),
                   None if not_after is None else _time(not_after))


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("a time is expected")
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError("a time with its zone is expected")
    return when


def _clean(text: str) -> str:
    """A reason as the host takes it: printable, at most 64 characters."""
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_TEXT] or "closed"


class RevocationQueue:
    """The revocations not yet acknowledged by the host, in ``path`` (None: in memory only,
    for a session used alone). Thread-safe, and shared safely by the user's processes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Entries this process could not write (a full or read-only disk): still delivered.
        self._unsaved: dict[str, Revocation] = {}

    @property
    def corrupt_path(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".corrupt")

    def add(self, session_id: str, reason: str, not_after: dt.datetime | None = None,
            *, now: dt.datetime | None = None) -> None:
        """Record that ``session_id`` ended for ``reason`` (written before this returns)."""
        entry = Revocation(session_id[:MAX_TEXT], _clean(reason),
                           now or dt.datetime.now(dt.UTC), not_after)
        with self._changing() as entries:
            entries.pop(entry.session_id, None)
            entries[entry.session_id] = entry
            while len(entries) > MAX_PENDING:
                dropped = next(iter(entries))
                log.warning("session revocation queue full: the oldest (%s) is dropped",
                            dropped)
                del entries[dropped]

    def pending(self, now: dt.datetime | None = None) -> list[Revocation]:
        """The revocations still to deliver, oldest first (the expired ones left out)."""
        now = now or dt.datetime.now(dt.UTC)
        # Under the file lock too: Windows refuses to replace a file another process reads.
        with self._lock, self._file_lock():
            entries = self._read()
            entries.update(self._unsaved)
        return [e for e in entries.values() if not e.expired(now)]

    def delivered(self, ids: Iterable[str]) -> None:
        """The host has these (or does not need them any more): forget them."""
        gone = set(ids)
        if not gone:
            return
        with self._changing() as entries:
            for session_id in gone:
                entries.pop(session_id, None)

    # -- the file -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, Revocation]]:
        """The entries, read again under the locks, changed by the caller, written back."""
        with self._lock, self._file_lock():
            entries = self._read()
            entries.update(self._unsaved)
            yield entries
            now = dt.datetime.now(dt.UTC)
            kept = {k: e for k, e in entries.items() if not e.expired(now)}
            self._write(kept)

    def _read(self) -> dict[str, Revocation]:
        if self.path is None:
            return {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as error:  # unreadable now (permissions, I/O): not set aside
            log.warning("session revocations unreadable (%s): %s", self.path, error)
            return {}
        try:
            document = json.loads(raw)
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError("not a revocation file of this agent")
            listed = document.get("pending")
            if not isinstance(listed, list):
                raise ValueError("pending: a list is expected")
            entries = [Revocation.from_json(item) for item in listed]
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            self._set_aside(error)
            return {}
        return {e.session_id: e for e in entries}

    def _set_aside(self, error: BaseException) -> None:
        assert self.path is not None and self.corrupt_path is not None
        try:
            os.replace(self.path, self.corrupt_path)
        except OSError as failure:
            log.error("session revocations unreadable (%s: %s) and not set aside: %s",
                      self.path, error, failure)
            return
        log.error("session revocations unreadable (%s): set aside as %s; those sessions "
                  "end at the host when their certificates expire", error, self.corrupt_path)

    def _write(self, entries: dict[str, Revocation]) -> None:
        if self.path is None:
            self._unsaved = dict(entries)
            return
        try:
            if entries:
                document = {"format": FORMAT,
                            "pending": [e.to_json() for e in entries.values()]}
                write_private_file(self.path, json.dumps(document, indent=1).encode())
            else:
                self.path.unlink(missing_ok=True)
        except OSError as error:  # a full or read-only disk: kept in memory, delivered
            log.warning("session revocations not written (%s): %s", self.path, error)
            self._unsaved = dict(entries)
            return
        self._unsaved = {}

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """An exclusive lock on ``<file>.lock`` while the file is read and written again,
        so another process's change is not lost; waits at most `LOCK_WAIT`, then writes
        anyway (a stuck process must not stop this one)."""
        if self.path is None:
            yield
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"),
                         os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield
            return
        locked = False
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while not locked:
                try:
                    _lock(fd)
                    locked = True
                except OSError:
                    if time.monotonic() > deadline:
                        log.warning("session revocations: lock not obtained, written anyway")
                        break
                    time.sleep(0.01)
            yield
        finally:
            if locked:
                with contextlib.suppress(OSError):
                    _unlock(fd)
            os.close(fd)


def _lock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


@dataclass
class _First:
    """A session just ended: its TLS context still holds the key, for one DELETE /session."""

    host: HostSession | None
    session_id: str
    reason: str


class Revoker:
    """Delivers session revocations to the host, in the background.

    `revoke` records the end and returns at once; one daemon thread (only while something
    is pending: an idle agent has none) tries the session's own DELETE /session first, then
    the workstation's POST /session/$revoke with a backoff. `flush` is the `Opening`'s hook.
    `stop` ends the thread, waiting at most `STOP_WAIT` for an attempt in flight; what is
    left stays in the file for the next start.
    """

    def __init__(self, host_url: str, workstation: Workstation,
                 queue: RevocationQueue | None = None, *, timeout: float = REVOKE_TIMEOUT,
                 backoff_first: float = BACKOFF_FIRST, backoff_max: float = BACKOFF_MAX
                 ) -> None:
        self.host_url, self.workstation = host_url, workstation
        self.queue = queue if queue is not None else RevocationQueue(None)
        self.timeout = timeout
        self._backoff = (backoff_first, backoff_max)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._first: collections.deque[_First] = collections.deque()
        self._attempting: set[str] = set()  # ids of a first attempt in flight
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._in_flight: httpx.Client | None = None
        self.attempts = 0  # attempts made (DELETE or $revoke), for tests and benches

    # -- what the session and the core call -------------------------------------------------
    def start(self) -> Revoker:
        """Deliver, in the background, what a previous run left pending."""
        if self.queue.pending():
            with self._lock:
                self._run()
        return self

    def revoke(self, host: HostSession, reason: str) -> None:
        """``host`` ended for ``reason``: its client is closed now (no call goes out on it
        any more), the revocation recorded (persisted when the queue has a file) and sent by
        the thread, on a client of its own; the session key goes after that one try."""
        if host.context is not None:
            with contextlib.suppress(Exception):
                host.client.close()
        try:
            self.queue.add(host.session_id, reason, host.not_after)
        except Exception:  # a bug must not stop the end of a session: still sent once
            log.exception("session revocation not recorded")
        with self._lock:
            if self._stopping:  # the agent stops: in the file for the next start, key gone
                with contextlib.suppress(Exception):
                    host.client.close()
                return
            self._first.append(_First(host, host.session_id, reason))
            self._attempting.add(host.session_id)
            self._run()

    def flush(self, client: httpx.Client) -> None:
        """Send what is pending on ``client`` (the workstation's connection) before its next
        request. Raises httpx.HTTPError when the host cannot be reached (the request after
        would fail as well); a host that refuses is said in the log, and the request goes."""
        pending = self.queue.pending()
        if pending:
            # The opening's own timeouts: the flush is the first request of its connection.
            self._send(client, pending, client_timeout=True)

    def wait_delivered(self, ids: Collection[str] | None = None,
                       timeout: float | None = None) -> bool:
        """Wait until the host has the revocations of ``ids`` (all when None); True then."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def settled() -> bool:
            attempting = self._attempting if ids is None else self._attempting & set(ids)
            if attempting:
                return False
            pending = {e.session_id for e in self.queue.pending()}
            return not (pending if ids is None else pending & set(ids))

        with self._changed:
            while not settled():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(0.1 if left is None else min(left, 0.1))
            return True

    def stop(self, timeout: float = STOP_WAIT) -> None:
        """Stop delivering: an attempt in flight has ``timeout`` seconds, then its sockets
        are shut down. What is left stays pending (in the file) for the next start."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                client = self._in_flight
                if client is not None:
                    shutdown_sockets(client)
                thread.join(0.2)

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        """Start the thread unless it runs (called under the lock)."""
        self._wake.set()
        if self._stopping or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._loop, name="session-revocations",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        delay, backing_off = self._backoff[0], False
        while True:
            self._wake.clear()
            with self._lock:
                if self._stopping:
                    self._drop_firsts()
                    self._thread = None
                    self._changed.notify_all()
                    return
                first = self._first.popleft() if self._first else None
            if first is not None:  # each ended session's own try comes at once
                if self._first_attempt(first):
                    delay = self._backoff[0]
                else:
                    backing_off = True
                with self._lock:
                    self._attempting.discard(first.session_id)
                    self._changed.notify_all()
                continue
            pending = self.queue.pending()
            if not pending:
                with self._lock:
                    if not self._first:  # else a session ended meanwhile: go on
                        self._thread = None
                        self._changed.notify_all()
                        return
                continue
            if backing_off:
                self._wake.wait(delay)  # a stop or a session just ended wakes it
                delay = min(delay * 2, self._backoff[1])
                with self._lock:
                    if self._stopping or self._first:
                        continue
            if self._retry(pending):
                delay, backing_off = self._backoff[0], False
            else:
                backing_off = True

    def _drop_firsts(self) -> None:
        """Stopping: the sessions not yet tried keep their queue entry; their clients (and
        keys) go now. Called under the lock."""
        while self._first:
            first = self._first.popleft()
            self._attempting.discard(first.session_id)
            if first.host is not None:
                with contextlib.suppress(Exception):
                    first.host.client.close()  # closed already, unless made elsewhere
            first.host = None

    def _first_attempt(self, first: _First) -> bool:
        """DELETE /session with the session's certificate, then drop it and its key."""
        import httpx  # loaded by the session's opening already

        host, first.host = first.host, None
        assert host is not None
        client = host.client if host.context is None else host_client(
            host.base_url, host.context, self.timeout, host.proxy)
        del host  # the session key lives in the TLS context only: dropped with the client
        self._in_flight = client
        self.attempts += 1
        try:
            answer = client.delete("/session", params={"reason": first.reason},
                                   timeout=self.timeout)
        except (httpx.HTTPError, OSError) as error:
            log.info("session end not told to the host yet (%s): retried in the "
                     "background", type(error).__name__)
            return False
        finally:
            self._in_flight = None
            client.close()
        # 401: the host holds it as ended already (revoked, expired): nothing left to say.
        if answer.status_code in (204, 401):
            self.queue.delivered([first.session_id])
            self._notify()
            return True
        log.info("the host answered %d to the session's end: retried", answer.status_code)
        return False

    def _retry(self, pending: list[Revocation]) -> bool:
        """POST /session/$revoke with the workstation's certificate."""
        import httpx  # the first host call: not at start

        try:
            client = workstation_client(self.host_url, self.workstation, self.timeout)
        except Exception as error:  # the workstation's credentials: said, retried later
            log.warning("session revocations: no workstation client (%s)", error)
            return False
        self._in_flight = client
        try:
            return self._send(client, pending)
        except (httpx.HTTPError, OSError) as error:
            log.info("session revocations not delivered yet (%s): retried",
                     type(error).__name__)
            return False
        finally:
            self._in_flight = None
            client.close()

    def _send(self, client: httpx.Client, pending: list[Revocation], *,
              client_timeout: bool = False) -> bool:
        """POST /session/$revoke by batches; True when the host has them all. Network errors
        are raised. ``client_timeout``: the client's own timeouts, not this revoker's."""
        import httpx  # loaded by the client given

        step: Any = httpx.USE_CLIENT_DEFAULT if client_timeout else self.timeout
        done = True
        for start in range(0, len(pending), BATCH):
            batch = pending[start:start + BATCH]
            self.attempts += 1
            answer = client.post("/session/$revoke", json={"sessions": [
                {"sessionId": e.session_id, "reason": e.reason} for e in batch]},
                timeout=step)
            ids = [e.session_id for e in batch]
            if answer.status_code == 200:
                log.info("session revocations delivered (%d): %s", len(ids),
                         answer.text[:200])
                self.queue.delivered(ids)
            elif answer.status_code == 400:
                # What the host calls malformed never becomes acceptable: not sent again.
                log.error("the host refused session revocations as malformed: %s",
                          answer.text[:300])
                self.queue.delivered(ids)
            else:  # an older host (404), a revoked workstation (403), a host in trouble
                log.warning("the host answered %d to session revocations: retried",
                            answer.status_code)
                done = False
        self._notify()
        return done

    def _notify(self) -> None:
        with self._lock:
            self._changed.notify_all()
