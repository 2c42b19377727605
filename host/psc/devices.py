"""The e-CPS apps enrolled with the provider: one device key (EC P-256) per professional, in
``DATA/devices.json``. A new enrolment replaces the professional's previous device, as the
real e-CPS lives on one phone at a time."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey

DEVICES_FILE = "devices.json"


class Devices:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DEVICES_FILE
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def enrol(self, id_nat_ps: str, public_jwk: object, now: dt.datetime) -> str:
        """Record the app's public key; returns the new device id. ValueError when the key
        is not a public EC P-256 JWK."""
        if not isinstance(public_jwk, dict) or public_jwk.get("kty") != "EC" \
                or public_jwk.get("crv") != "P-256" or "d" in public_jwk:
            raise ValueError("publicKey : une clé publique EC P-256 (JWK) est attendue / a "
                             "public EC P-256 JWK is expected")
        try:
            key = ECKey.import_key(public_jwk)
        except (JoseError, ValueError, TypeError):
            raise ValueError("publicKey : clé illisible / unreadable key") from None
        device_id = "dev-" + secrets.token_urlsafe(12)
        with self._lock:
            devices = {k: v for k, v in self._read().items() if v["idNatPs"] != id_nat_ps}
            devices[device_id] = {"idNatPs": id_nat_ps, "jwk": key.as_dict(private=False),
                                  "enrolled": now.isoformat()}
            temporary = self.path.with_name(self.path.name + ".tmp")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(devices), encoding="utf-8")
            temporary.replace(self.path)
        return device_id

    def key(self, device_id: str) -> ECKey:
        """The public key of ``device_id`` (KeyError when unknown)."""
        entry = self._read()[device_id]
        return ECKey.import_key(entry["jwk"])

    def owner(self, device_id: str) -> str:
        return str(self._read()[device_id]["idNatPs"])

    def enrolled(self, id_nat_ps: str) -> bool:
        return any(entry["idNatPs"] == id_nat_ps for entry in self._read().values())
