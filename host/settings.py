"""The host's settings: one small value object handed to `create_app` (no global state)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .psc_token import PscTrust

MiB = 1024 * 1024


@dataclass(frozen=True)
class NotifySettings:
    """The notification sender (host/notify.py): where and how it sends.

    ``smtp_url``: ``smtp://host:port`` (plain, for a local relay or the sandbox),
    ``smtp+starttls://user:pass@host:587`` or ``smtps://user:pass@host:465`` (TLS, the
    system's trusted CAs); user and password percent-encoded. None: nothing is sent.
    """

    smtp_url: str | None = None
    sender: str = "Mon DMP <ne-pas-repondre@dmp.localhost>"
    interval: float = 5.0  # seconds between two looks at the queue when it is empty
    backoff: dt.timedelta = dt.timedelta(seconds=30)  # first retry; doubles each attempt
    backoff_cap: dt.timedelta = dt.timedelta(hours=6)
    max_attempts: int = 10  # then the row is "failed" (reported by `notify status`)
    timeout: float = 30.0  # SMTP socket timeout, seconds
    batch: int = 100  # rows read per look at the queue


@dataclass(frozen=True)
class HostSettings:
    """Everything the host needs to know; defaults fit the sandbox.

    ``mode`` decides which cards are accepted: a test host refuses real cards, a production
    host refuses test cards (and test or demo Vitale identities).
    """

    database_url: str
    blob_dir: Path
    pki_dir: Path
    mode: Literal["test", "production"] = "test"
    session_lifetime: dt.timedelta = dt.timedelta(hours=4)
    challenge_lifetime: dt.timedelta = dt.timedelta(minutes=2)
    max_clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    max_document_size: int = 64 * MiB
    retention_after_closure: dt.timedelta = dt.timedelta(days=3653)  # 10 years
    page_size: int = 100  # search results per page (the Bundle links to the next page)
    seed_identities: bool = True  # load the test INSi identities into a new database
    notify: NotifySettings = field(default_factory=NotifySettings)
    # The Pro Santé Connect provider whose ID tokens open e-CPS sessions (docs/psc.md);
    # None: this host takes the CPS card only.
    psc: PscTrust | None = None
    extra: dict[str, str] = field(default_factory=dict)
