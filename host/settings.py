"""The host's settings: one small value object handed to `create_app` (no global state)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MiB = 1024 * 1024


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
    extra: dict[str, str] = field(default_factory=dict)
