"""The patients' identity checks, kept in the outbox database (schema 4): that a user of this
workstation checked a high-trust identity document for the identity the INS service returned
(RNIV: the identity is then *qualifiée*), so the check is not asked again at each visit.

A record holds no personal data in clear: the INS and the traits the service answered are
keyed hashes (the outbox key's tag), the rest is the document's kind, when, and who. A record
is worth only the traits it was made for: when the INS service later answers other traits
for the same INS, `IdentityChecks.checked` says so and the caller forgets the record (the
identity is only *récupérée* until a document is checked again). A database rebuilt from
its files after damage (docs/agent-outbox.md) has no record: the checks are asked again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from agent.outbox.sealed import OutboxCipher

__all__ = ["IdentityCheck", "IdentityChecks"]


@dataclass(frozen=True)
class IdentityCheck:
    """A recorded check: ``same_traits`` says whether it was made for the traits asked."""

    document: str
    parent_document: str | None
    validated: float
    professional: str
    same_traits: bool


class IdentityChecks:
    """Mixed into `Outbox` (which provides the attributes below)."""

    _cipher: OutboxCipher
    _db: sqlite3.Connection
    _lock: threading.RLock
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def _tags(self, ins: str, traits: str) -> tuple[str, str]:
        return self._cipher.tag(f"ins:{ins}"), self._cipher.tag(f"traits:{traits}")

    def checked(self, ins: str, traits: str) -> IdentityCheck | None:
        """The check recorded for ``ins`` (None: never), and whether it was made for
        ``traits`` (`wire.ins.InsIdentity.traits_key`)."""
        patient, wanted = self._tags(ins, traits)
        with self._lock:
            row = self._db.execute(
                "SELECT traits_tag, document, parent_document, validated, professional FROM "
                "identities WHERE patient_tag = ?", (patient,)).fetchone()
        if row is None:
            return None
        return IdentityCheck(row["document"], row["parent_document"], row["validated"],
                             row["professional"], row["traits_tag"] == wanted)

    def record_check(self, ins: str, traits: str, *, document: str,
                     parent_document: str | None, professional: str,
                     when: float | None = None) -> IdentityCheck:
        """Record (or replace) the check of ``ins`` for ``traits``."""
        patient, tag = self._tags(ins, traits)
        validated = time.time() if when is None else when
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO identities (patient_tag, traits_tag, document, "
                       "parent_document, validated, professional) VALUES (?, ?, ?, ?, ?, ?)",
                       (patient, tag, document, parent_document, validated, professional))
        return IdentityCheck(document, parent_document, validated, professional, True)

    def forget_check(self, ins: str) -> bool:
        """Forget the check of ``ins`` (the INS service answered other traits); True when
        there was one."""
        patient = self._cipher.tag(f"ins:{ins}")
        with self._transaction() as db:
            return db.execute("DELETE FROM identities WHERE patient_tag = ?",
                              (patient,)).rowcount > 0
