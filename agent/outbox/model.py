"""What the outbox holds and what a send answers: items, states, outcomes, errors."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sealed import SealedFiles


class OutboxError(Exception):
    """A bad call (unknown item, uniqueId reused with other content, bad metadata) or a
    damaged item."""


class OutboxBusyError(OutboxError):
    """Another process holds this outbox (another agent of the same user is running)."""


class OutboxDamagedError(OutboxError):
    """A file or a row of the outbox fails authentication: truncated, altered, swapped, or
    sealed under another key. Never sent: the item fails with this reason."""


class OutboxKeyError(OutboxError):
    """The outbox key cannot be had (missing from the keyring and the sealed file, another
    machine, or not the key this outbox was sealed with): nothing in it can be read."""


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
