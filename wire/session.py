"""The session-opening statement the CPS card signs and the host verifies.

The agent asks the host for a challenge, makes a fresh session key pair in memory and has the
card's authentication key sign `SessionStatement.to_bytes()`; the host recomputes the same
bytes from the fields it received and checks the signature. Both sides must therefore produce
identical bytes, so the encoding is fixed here, once:

    b"DMP-SESSION-V1\\n" + canonical JSON

The JSON is an object with exactly the six keys below, sorted, no whitespace
(``separators=(",", ":")``), ASCII only (``ensure_ascii``): byte strings in lowercase hex,
the time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, always six fraction digits). The prefix
separates these bytes from anything else the same card key signs (a TLS handshake, another
protocol's message), and carries the version.

    {"challenge":"<hex>","id_nat_ps":"810001234565","session_public_key_sha256":"<64 hex>",
     "structure_id":"581234567800015","time":"2026-01-31T09:15:00.000000Z",
     "workstation_cert_sha256":"<64 hex>"}

``session_public_key_sha256`` is SHA-256 of the session public key's DER SubjectPublicKeyInfo;
``workstation_cert_sha256`` is SHA-256 of the DER workstation (establishment) certificate the
TLS connection presents. `to_json` / `from_json` carry the same object over the wire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PREFIX = b"DMP-SESSION-V1\n"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
MIN_CHALLENGE, MAX_CHALLENGE = 16, 64
MAX_ID_LENGTH = 64
FIELDS = (
    "challenge", "id_nat_ps", "session_public_key_sha256", "structure_id", "time",
    "workstation_cert_sha256",
)
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
# National ids and structure ids are short ASCII codes (DOMAIN.md); anything printable is
# accepted so that a new prefix does not need a new version, control characters are not.
_IDENTIFIER = re.compile(r"[\x21-\x7e]+")


class StatementError(ValueError):
    """A statement that is not well formed (wrong size, type, format or unknown field)."""


def sha256(data: bytes) -> bytes:
    """SHA-256 of DER bytes: a certificate (workstation) or a SubjectPublicKeyInfo (session)."""
    return hashlib.sha256(data).digest()


@dataclass(frozen=True)
class SessionStatement:
    """What the card signs to open a professional session (see the module docstring)."""

    challenge: bytes
    session_public_key_sha256: bytes
    workstation_cert_sha256: bytes
    time: datetime
    id_nat_ps: str
    structure_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.challenge, bytes) or not (
            MIN_CHALLENGE <= len(self.challenge) <= MAX_CHALLENGE
        ):
            raise StatementError(
                f"challenge: {MIN_CHALLENGE} to {MAX_CHALLENGE} bytes expected"
            )
        for name in ("session_public_key_sha256", "workstation_cert_sha256"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise StatementError(f"{name}: a 32-byte SHA-256 digest expected")
        if not isinstance(self.time, datetime) or self.time.utcoffset() is None:
            raise StatementError("time: an aware datetime expected (UTC)")
        # One instant has one encoding: store it in UTC so equal statements compare equal.
        try:
            object.__setattr__(self, "time", self.time.astimezone(UTC))
        except OverflowError:
            raise StatementError("time: out of range") from None
        for name in ("id_nat_ps", "structure_id"):
            value = getattr(self, name)
            if (
                not isinstance(value, str)
                or len(value) > MAX_ID_LENGTH
                or not _IDENTIFIER.fullmatch(value)
            ):
                raise StatementError(
                    f"{name}: 1 to {MAX_ID_LENGTH} printable ASCII characters expected"
                )

    # -- canonical bytes --
    def to_dict(self) -> dict[str, str]:
        """The JSON object (all values strings)."""
        return {
            "challenge": self.challenge.hex(),
            "id_nat_ps": self.id_nat_ps,
            "session_public_key_sha256": self.session_public_key_sha256.hex(),
            "structure_id": self.structure_id,
            "time": self.time.strftime(TIME_FORMAT),
            "workstation_cert_sha256": self.workstation_cert_sha256.hex(),
        }

    def to_bytes(self) -> bytes:
        """The exact bytes the card signs."""
        return PREFIX + self.to_json().encode("ascii")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    # -- parsing --
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionStatement:
        """Parse the JSON object; raises StatementError on anything else."""
        if not isinstance(data, Mapping):
            raise StatementError("a JSON object expected")
        keys = set(data)
        if keys != set(FIELDS):
            missing, extra = set(FIELDS) - keys, keys - set(FIELDS)
            raise StatementError(
                f"fields: missing {sorted(missing)}, unknown {sorted(map(str, extra))}"
            )
        if not all(isinstance(data[name], str) for name in FIELDS):
            raise StatementError("every field is a string")
        time_text = data["time"]
        if not _TIME.fullmatch(time_text):
            raise StatementError("time: YYYY-MM-DDTHH:MM:SS.ffffffZ expected")
        try:
            time = datetime.strptime(time_text, TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise StatementError("time: not a valid date") from None
        return cls(
            challenge=_hex(data, "challenge"),
            session_public_key_sha256=_hex(data, "session_public_key_sha256"),
            workstation_cert_sha256=_hex(data, "workstation_cert_sha256"),
            time=time,
            id_nat_ps=data["id_nat_ps"],
            structure_id=data["structure_id"],
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionStatement:
        try:
            data = json.loads(text)
        except (ValueError, TypeError, RecursionError):
            raise StatementError("not JSON") from None
        return cls.from_dict(data)


def _hex(data: Mapping[str, str], name: str) -> bytes:
    # Lowercase only: one value, one spelling (the canonical bytes are compared as sent).
    text = data[name]
    if not _HEX.fullmatch(text):
        raise StatementError(f"{name}: lowercase hex expected")
    return bytes.fromhex(text)


# -- the e-CPS way in (docs/psc.md) -------------------------------------------------------------
ECPS_NONCE_PREFIX = b"DMP-ECPS-NONCE-V1\n"


def ecps_nonce(challenge: bytes, session_public_key_der: bytes) -> str:
    """The OpenID ``nonce`` an agent sends Pro Santé Connect when it opens a session with the
    e-CPS: base64url (no padding) of SHA-256(prefix + the host's challenge + SHA-256 of the
    session key's DER SubjectPublicKeyInfo). The ID token that comes back is thereby bound
    to one challenge (used once, by one workstation) and to one session key: the host
    recomputes it and refuses any other token."""
    digest = hashlib.sha256(ECPS_NONCE_PREFIX + challenge
                            + hashlib.sha256(session_public_key_der).digest()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
