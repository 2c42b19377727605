"""The provider's signing keys: one active key signs, retired keys stay in the JWKS for a
grace period so that tokens signed just before a rotation still verify (docs/psc.md).

Keys live in ``DATA/keys.json`` (mode 0600: private keys): ``{"keys": [{"jwk": private JWK,
"created": ISO time, "retired": ISO time or null, "publishedUntil": ISO time or null}]}``.
`dmp-host psc rotate-keys` rewrites it; a running provider reads it again when the file
changes, so a rotation needs no restart.
RS256, as PSC's Keycloak publishes. JOSE itself is joserfc's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import RSAKey

KEYS_FILE = "keys.json"
ALGORITHM = "RS256"
DEFAULT_GRACE = dt.timedelta(hours=24)


@dataclass(frozen=True)
class StoredKey:
    key: RSAKey
    created: dt.datetime
    retired: dt.datetime | None
    published_until: dt.datetime | None = None  # a retired key's end of grace

    @property
    def kid(self) -> str:
        return str(self.key.kid)


def new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": ALGORITHM},
                               auto_kid=True)


def _write_private(path: Path, data: dict[str, Any]) -> None:
    # Created 0600 then renamed over the old file: a reader sees the old or the new, whole.
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out)
    os.replace(temporary, path)


class KeyRing:
    """The keys of ``DATA/keys.json``, created with one key when absent."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / KEYS_FILE
        self._lock = threading.Lock()
        self._state: tuple[int, int] | None = None
        self._keys: list[StoredKey] = []
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._save([StoredKey(new_key(), dt.datetime.now(dt.UTC), None)])

    def _save(self, keys: list[StoredKey]) -> None:
        _write_private(self.path, {"keys": [{
            "jwk": stored.key.as_dict(private=True), "created": stored.created.isoformat(),
            "retired": stored.retired.isoformat() if stored.retired else None,
            "publishedUntil": (stored.published_until.isoformat()
                               if stored.published_until else None),
        } for stored in keys]})

    def keys(self) -> list[StoredKey]:
        """The keys on disk (read again when the file changed)."""
        stat = self.path.stat()
        state = (stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            if state != self._state:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._keys = [StoredKey(
                    RSAKey.import_key(entry["jwk"]),
                    dt.datetime.fromisoformat(entry["created"]),
                    _time(entry.get("retired")), _time(entry.get("publishedUntil")),
                ) for entry in data["keys"]]
                self._state = state
            return list(self._keys)

    def active(self) -> StoredKey:
        """The key that signs new tokens (the newest one not retired)."""
        return [stored for stored in self.keys() if stored.retired is None][-1]

    def published(self, now: dt.datetime) -> list[StoredKey]:
        """The keys of the JWKS: the active one and the retired ones still in their grace."""
        return [stored for stored in self.keys()
                if stored.retired is None or (stored.published_until or now) > now]

    def jwks(self, now: dt.datetime) -> dict[str, Any]:
        return {"keys": [stored.key.as_dict(private=False) for stored in self.published(now)]}

    def rotate(self, now: dt.datetime, grace: dt.timedelta = DEFAULT_GRACE) -> StoredKey:
        """Retire the active key (still published for ``grace``), forget keys whose grace
        ended, and make a new active key; returns it."""
        kept = [stored if stored.retired is not None
                else StoredKey(stored.key, stored.created, now, now + grace)
                for stored in self.published(now)]
        fresh = StoredKey(new_key(), now, None)
        self._save([*kept, fresh])
        return fresh


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None
