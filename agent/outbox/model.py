"""What the outbox holds and what a send answers: items, states, outcomes, causes, the
label each sealed file carries, errors."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError
from agent.i18n import _

if TYPE_CHECKING:
    from agent.outbox.sealed import SealedFiles


class OutboxError(AgentError):
    """A bad call (unknown item, uniqueId reused with other content, bad metadata) or a
    damaged item."""

    code, status = "outbox-error", 503


class OutboxBusyError(OutboxError):
    """Another process holds this outbox (another agent of the same user is running);
    ``pid`` and ``holder`` (e.g. "dmp-agent run, port 17771") say which, when known."""

    code, status = "outbox-busy", 409

    def __init__(self, message: str, pid: int | None = None, holder: str = "") -> None:
        super().__init__(message)
        self.pid, self.holder = pid, holder


class OutboxStorageError(OutboxError):
    """This workstation's disk refused the outbox a write or a read. ``reason``:
    ``disk-full``, ``read-only``, ``permission``, ``io`` or ``other``; the message says
    where and what to do, in the agent's language."""

    status = 507  # insufficient storage: the local API says it with its fix

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message, code="disk-full" if reason == "disk-full" else "disk-refused")
        self.reason = reason


class OutboxFullError(OutboxStorageError):
    """Not enough free space for what is asked, said before anything is written."""

    def __init__(self, needed: int, free: int, directory: Path) -> None:
        super().__init__(
            _("disk full: {needed} MB needed, {free} MB free ({folder}); free some "
              "space").format(needed=megabytes(needed, up=True), free=megabytes(free),
                              folder=directory), "disk-full")
        self.needed, self.free, self.directory = needed, free, directory


class OutboxUnreadableError(OutboxError):
    """The database cannot be read (nor rebuilt from the files, for now): the message names
    the cause, where the damaged database was put aside and ``dmp-agent outbox --recover``."""


def megabytes(count: int, *, up: bool = False) -> int:
    """``count`` bytes in MB (10**6), rounded down, or up for what is needed: "5 MB needed,
    4 MB free" never reads as enough."""
    return math.ceil(count / 1e6) if up else math.floor(count / 1e6)


class OutboxDamagedError(OutboxError):
    """A file or a row of the outbox fails authentication: truncated, altered, swapped, or
    sealed under another key. Never sent: the item fails with this reason."""


class OutboxKeyError(OutboxError):
    """The outbox key cannot be had (missing from the keyring and the sealed file, another
    machine, or not the key this outbox was sealed with): nothing in it can be read."""

    code = "outbox-unusable"


class ItemState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"  # refused for good by the host; kept, retried only by hand


class Cause(enum.StrEnum):
    """Why an item is not (yet) at the host, for people: shown with each waiting item."""

    HOST = "host"  # the host answered 5xx, 408, 429 (or 1xx, 3xx): it is in trouble
    NETWORK = "network"  # no answer: refused, reset, timed out, cut mid-answer
    NO_SESSION = "no-session"  # no host session: the CPS was removed or the session locked
    DISK = "disk"  # this workstation's disk refused a write (full, read-only)
    REFUSED = "refused"  # the host refused the document for good (4xx)
    DAMAGED = "damaged"  # the local copy is missing or fails authentication
    ERROR = "error"  # anything else: see the logs


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
    cause: Cause | None = None  # None: from the outcome and the status (`why`)

    @classmethod
    def stored(cls, detail: str = "", status: int | None = None) -> SendResult:
        return cls(Outcome.STORED, detail, status)

    @classmethod
    def already_stored(cls, detail: str = "", status: int | None = None) -> SendResult:
        return cls(Outcome.ALREADY_STORED, detail or "already stored", status)

    @classmethod
    def refused(cls, reason: str, status: int | None = None,
                cause: Cause | None = None) -> SendResult:
        return cls(Outcome.REFUSED, reason, status, cause=cause)

    @classmethod
    def retry(cls, reason: str, status: int | None = None,
              retry_after: float | None = None, cause: Cause | None = None) -> SendResult:
        return cls(Outcome.RETRY, reason, status, retry_after, cause)

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

    @property
    def why(self) -> Cause:
        """The cause people are shown: given, else the host's when it answered a status."""
        if self.cause is not None:
            return self.cause
        if self.outcome is Outcome.REFUSED:
            return Cause.REFUSED
        return Cause.HOST if self.status is not None else Cause.ERROR


LABEL_VERSION = 3  # the files' format (agent/outbox/sealed.py) that carries labels


@dataclass(frozen=True)
class Description:
    """What a sealed file of the outbox says about itself, in its sealed label: enough to
    rebuild its item when the database is lost (docs/agent-outbox.md, "Recovery").

    ``kind`` is ``bundle`` (the signed bundle, with the item's metadata) or ``content``
    (a document queued by reference); ``size`` and ``sha256`` are of the plaintext;
    ``created`` orders one patient's items; ``state`` is always ``queued``: a file exists
    only while its item is not acknowledged (the database keeps the finer states)."""

    kind: str
    unique_id: str
    patient: str
    size: int
    sha256: str
    created: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    state: str = "queued"

    def to_bytes(self) -> bytes:
        return json.dumps({
            "v": LABEL_VERSION, "kind": self.kind, "uniqueId": self.unique_id,
            "patient": self.patient, "size": self.size, "sha256": self.sha256,
            "created": self.created, "metadata": dict(self.metadata), "state": self.state,
        }, ensure_ascii=False, sort_keys=True, allow_nan=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Description:
        """`OutboxDamagedError` if it is not a label of this outbox (it authenticated, so
        only a newer or buggy writer makes one)."""
        try:
            raw = json.loads(data)
            made = cls(str(raw["kind"]), str(raw["uniqueId"]), str(raw["patient"]),
                       int(raw["size"]), str(raw["sha256"]), float(raw["created"]),
                       dict(raw.get("metadata") or {}), str(raw.get("state", "queued")))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise OutboxDamagedError("damaged (its label is not an outbox label)") from None
        if made.kind not in ("bundle", "content") or not made.unique_id:
            raise OutboxDamagedError("damaged (its label is not an outbox label)")
        return made


@dataclass(frozen=True)
class Item:
    """One deposit in the outbox (a snapshot: read again with `Outbox.get`).

    ``patient`` and ``metadata`` are decrypted from the row; once a done item is purged
    (`Outbox.purge`) they are ``""`` and ``{}`` and ``purged`` says when."""

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
    purged: float | None = None
    cause: Cause | None = None  # why the last attempt failed (None: not tried, or sent)
    last_status: int | None = None  # the host's HTTP status at the last failed attempt
    # The outbox's key, to open the sealed bundle; not part of what the item is.
    files: SealedFiles | None = field(default=None, repr=False, compare=False)

    def read_payload(self) -> bytes:
        """The bundle's bytes, decrypted and checked against the size and SHA-256 recorded
        at `add`; `OutboxDamagedError` if anything differs."""
        if self.payload_path is None or self.files is None:
            raise OutboxError(f"item {self.id} was acknowledged: its bundle is not kept")
        try:
            data = b"".join(self.files.read(self.payload_path))
        except OutboxDamagedError as error:
            raise OutboxDamagedError(f"item {self.id}: bundle {error}") from None
        except OSError as error:
            raise OutboxError(f"item {self.id}: bundle unreadable ({error.strerror})") from None
        if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.sha256:
            raise OutboxDamagedError(
                f"item {self.id}: bundle damaged (size or SHA-256 mismatch)")
        return data


@dataclass(frozen=True)
class Counts:
    pending: int = 0
    sending: int = 0
    done: int = 0
    failed: int = 0
