"""The outbox and this workstation's disk: who holds the outbox (the process lock, with the
holder's pid and port), free space, and what a refused write means for people (full,
read-only, permission, I/O), each as one sentence with its fix (docs/agent-outbox.md,
"What survives what")."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

from agent.i18n import _
from agent.outbox.model import OutboxBusyError, OutboxFullError, OutboxStorageError, megabytes

# Room kept free beyond what a deposit needs: the database, its log, our log file.
RESERVE = 1 << 20
_HOLDER_OFFSET = 16  # the holder's line sits after the locked byte (Windows locks a range)

_FULL = {errno.ENOSPC, errno.EDQUOT} if hasattr(errno, "EDQUOT") else {errno.ENOSPC}
_SQLITE_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_SQLITE_STORAGE = {
    13: "disk-full",  # SQLITE_FULL
    8: "read-only",  # SQLITE_READONLY
    14: "cantopen",  # SQLITE_CANTOPEN: a directory we may not write, or no file
    3: "permission",  # SQLITE_PERM
    23: "permission",  # SQLITE_AUTH
    10: "io",  # SQLITE_IOERR
}


class ProcessLock:
    """An exclusive lock on ``path``, released by the kernel if the process dies. The
    holder writes its pid and ``holder`` (what it is: "dmp-agent run, port 17771") in the
    file, so that the next one says who is in the way."""

    def __init__(self, path: Path, holder: str = "") -> None:
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
            raise _busy(path) from None
        self._fd: int | None = fd
        try:  # who holds it: said to the next one, never relied upon
            os.lseek(fd, _HOLDER_OFFSET, os.SEEK_SET)
            os.write(fd, json.dumps({"pid": os.getpid(), "holder": holder}).encode() + b"\n")
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
        except OSError:
            pass  # a full disk: the lock holds all the same

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def _busy(path: Path) -> OutboxBusyError:
    pid, holder = None, ""
    try:
        with open(path, "rb") as file:
            file.seek(_HOLDER_OFFSET)
            said = json.loads(file.readline() or b"{}")
        pid = int(said["pid"]) if isinstance(said.get("pid"), int) else None
        holder = str(said.get("holder", ""))
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    who = ", ".join(part for part in (f"pid {pid}" if pid else "", holder) if part)
    who = f" ({who})" if who else ""
    return OutboxBusyError(
        _("The outbox is held by another DMP agent{who} ({folder}): stop it, or use that one "
          "(dmp-agent page)").format(who=who, folder=path.parent), pid, holder)


def free_space(directory: Path) -> int:
    """Bytes free for this user on ``directory``'s file system (0 if it cannot be told)."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0


def ensure_room(directory: Path, needed: int) -> None:
    """`OutboxFullError` unless ``needed`` bytes, and the reserve, are free there."""
    free = free_space(directory)
    if free < needed + RESERVE:
        raise OutboxFullError(needed + RESERVE, free, directory)


def is_damaged(error: sqlite3.Error) -> bool:
    """The database file itself is not a sound SQLite database (not an I/O refusal)."""
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_DAMAGED


def is_storage(error: BaseException) -> bool:
    """A refusal of the disk (full, read-only, permission, I/O), not a fault of ours."""
    if isinstance(error, sqlite3.Error):
        return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_STORAGE
    return isinstance(error, OSError) and error.errno is not None


def _reason(error: BaseException, directory: Path) -> str:
    if isinstance(error, sqlite3.Error):
        reason = _SQLITE_STORAGE.get(getattr(error, "sqlite_errorcode", 0) & 0xFF, "other")
    elif isinstance(error, OSError) and error.errno in _FULL:
        reason = "disk-full"
    elif isinstance(error, OSError) and error.errno == errno.EROFS:
        reason = "read-only"
    elif isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM):
        reason = "permission"
    elif isinstance(error, OSError) and error.errno == errno.EIO:
        reason = "io"
    else:
        reason = "other"
    if reason in ("cantopen", "permission", "other", "read-only"):
        # SQLite says "cannot open" or "read-only" for all of these: the directory tells.
        reason = _unwritable(directory) or ("permission" if reason == "cantopen" else reason)
    return reason


def _unwritable(directory: Path) -> str | None:
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if sys.platform != "win32":  # no statvfs there: os.access says it below
        try:
            if os.statvfs(probe).f_flag & os.ST_RDONLY:
                return "read-only"
        except OSError:
            pass
    return None if os.access(probe, os.W_OK) else "permission"


def storage_error(error: BaseException, directory: Path) -> OutboxStorageError:
    """``error`` (an OSError or a SQLite error from the disk) as one sentence with its fix,
    for people: what failed is for the logs."""
    reason = _reason(error, directory)
    detail = getattr(error, "strerror", None) or str(error)
    if reason == "disk-full":
        free = free_space(directory)
        text = _("disk full: the outbox cannot write ({free} MB free) in {folder}; free some "
                 "space").format(free=megabytes(free), folder=directory)
    elif reason == "read-only":
        text = _("the outbox folder is read-only: {folder}; make it writable (mount, "
                 "permissions)").format(folder=directory)
    elif reason == "permission":
        text = _("permission denied on the outbox folder: {folder} ({detail}); give it back "
                 "to this user").format(folder=directory, detail=detail)
    elif reason == "io":
        text = _("disk input/output error in {folder} ({detail}); check the disk").format(
            folder=directory, detail=detail)
    else:
        text = _("outbox: {folder}: {detail}").format(folder=directory, detail=detail)
    return OutboxStorageError(text, reason)


__all__ = ["RESERVE", "ProcessLock", "ensure_room", "free_space", "is_damaged", "is_storage",
           "storage_error"]
