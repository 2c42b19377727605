"""Revocation while serving: the CRLs are read again as soon as their files change.

The TLS layer loads the CRLs when the server starts; a certificate revoked afterwards
(``dmp-host pki revoke`` rewrites the CA's ``crl.pem``) must stop working at once, not at
the next restart. Every authenticated request asks `Revocations` about the certificates it
rests on: the workstation certificate (establishment CA) and, for a session, the card
certificate it was opened with (health CA) and its workstation. A file is parsed again only
when its size or modification time changed (one ``stat`` per CA and request), and at least
every ``recheck`` seconds in case a copy kept both. A CRL that cannot be read keeps the
last good one in force (a half-written file must not revoke nor un-revoke anyone); the
session-opening path reads the health CRL itself and refuses when it is missing or stale.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from .pki import CRL_FILE

log = logging.getLogger(__name__)

HEALTH, ESTABLISHMENT = "health-ca", "establishment-ca"


@dataclass
class _Loaded:
    signature: tuple[int, int] | None = None
    checked_at: float = 0.0
    serials: frozenset[int] = field(default_factory=frozenset)


class Revocations:
    def __init__(self, pki_dir: Path, *, recheck: float = 30.0) -> None:
        self.pki_dir = Path(pki_dir)
        self.recheck = recheck
        self._lock = threading.Lock()
        self._loaded: dict[str, _Loaded] = {HEALTH: _Loaded(), ESTABLISHMENT: _Loaded()}

    def _serials(self, ca: str) -> frozenset[int]:
        path = self.pki_dir / ca / CRL_FILE
        try:
            info = os.stat(path)
        except OSError:
            return self._loaded[ca].serials
        signature = (info.st_size, info.st_mtime_ns)
        now = time.monotonic()
        with self._lock:
            loaded = self._loaded[ca]
            if loaded.signature == signature and now - loaded.checked_at < self.recheck:
                return loaded.serials
            try:
                crl = x509.load_pem_x509_crl(path.read_bytes())
                serials = frozenset(entry.serial_number for entry in crl)
            except (OSError, ValueError) as error:
                log.warning("CRL %s unreadable, the last one read stays in force: %s",
                            path, error)
                return loaded.serials
            self._loaded[ca] = _Loaded(signature, now, serials)
            return serials

    def card_revoked(self, serial: int) -> bool:
        return serial in self._serials(HEALTH)

    def workstation_revoked(self, serial: int) -> bool:
        return serial in self._serials(ESTABLISHMENT)
