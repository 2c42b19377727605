"""Secrets at rest bound to this machine, opened again after a restart with nobody typing.

The scheme of the workstation key (agent/install/enrol.py, docs/agent-enrolment.md) and of the
outbox key when there is no OS keyring (agent/outbox/keys.py): a 32-byte random *secret* in
a 0600 file of the data directory, and a key derived from it and this machine's identity,
``HKDF-SHA256(secret, info = purpose + "\\n" + machine identity)``, which encrypts what is
kept in the credentials directory. Copying one directory alone, or the home directory to
another machine, opens nothing; anything running as this user on this machine can.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.errors import AgentError

_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_SEALED_MAGIC = b"dmp-sealed-v1\n"
_NONCE = 12


class SealError(AgentError):
    """A sealed secret that does not open: another machine, another secret, or damaged."""

    code = "sealed-secret-unreadable"


def machine_id() -> str | None:
    """This machine's stable identity, or None where there is none to read."""
    for file in _MACHINE_ID_FILES:
        try:
            value = file.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return value
    if sys.platform == "win32":
        try:
            import winreg

            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE,
                                r"SOFTWARE\Microsoft\Cryptography") as key:
                return str(winreg.QueryValueEx(key, "MachineGuid")[0])
        except OSError:
            return None
    return None


def binding_digest(identity: str | None) -> str | None:
    """A digest of the machine identity: enough to say "another machine", no more."""
    if identity is None:
        return None
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"dmp-agent machine binding\n" + identity.encode())
    return digest.finalize().hex()


def derive_key(secret: bytes, identity: str | None, purpose: bytes) -> bytes:
    """32 bytes bound to ``secret``, this machine's ``identity`` and ``purpose``."""
    info = purpose + b"\n" + (identity or "").encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def seal(data: bytes, secret: bytes, identity: str | None, purpose: bytes) -> bytes:
    """``data`` encrypted and authenticated (AES-256-GCM) under `derive_key`."""
    nonce = os.urandom(_NONCE)
    key = derive_key(secret, identity, purpose)
    return _SEALED_MAGIC + nonce + AESGCM(key).encrypt(nonce, data, _SEALED_MAGIC + purpose)


def unseal(blob: bytes, secret: bytes, identity: str | None, purpose: bytes) -> bytes:
    """What `seal` sealed, or `SealError`."""
    if not blob.startswith(_SEALED_MAGIC) or len(blob) < len(_SEALED_MAGIC) + _NONCE + 16:
        raise SealError("not a sealed secret of this agent")
    nonce = blob[len(_SEALED_MAGIC):len(_SEALED_MAGIC) + _NONCE]
    key = derive_key(secret, identity, purpose)
    try:
        return AESGCM(key).decrypt(nonce, blob[len(_SEALED_MAGIC) + _NONCE:],
                                   _SEALED_MAGIC + purpose)
    except InvalidTag:
        raise SealError("the sealed secret does not open here (another machine, another "
                        "secret, or damaged)") from None


__all__ = ["SealError", "binding_digest", "derive_key", "machine_id", "seal", "unseal"]
