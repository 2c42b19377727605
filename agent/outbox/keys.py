"""Where the outbox key lives: never beside the outbox (docs/agent-outbox.md, "At rest").

- **The OS keyring** (`keyring`: Windows Credential Manager, macOS Keychain, the Secret
  Service on Linux) when a real backend is there: service ``dmp-agent``, user
  ``outbox-key-<id>``, the key in base64.
- **Else a sealed file**, the way the workstation key is kept (agent/sealing.py):
  ``<credentials dir>/outbox-<id>.key`` holds the key AES-GCM-sealed under
  ``HKDF(secret, "dmp-agent outbox key v1 <id>" + machine identity)``, where ``secret`` is 32
  random bytes in ``<data dir>/keys/outbox-<id>.secret``.

``<id>`` is random, recorded in the outbox database with a check value of the key: a
re-created or moved data directory finds its own key, and the wrong key is named as such.
A key is looked for in every place (the keyring may have been locked when it was made).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from pathlib import Path
from typing import Any, Protocol

from agent.config import AgentConfig, write_private_file
from agent.outbox.model import OutboxKeyError
from agent.outbox.sealed import KEY_BYTES, OutboxCipher, new_key
from agent.sealing import SealError, machine_id, seal, unseal

log = logging.getLogger(__name__)

KEYRING_SERVICE = "dmp-agent"
_PURPOSE = b"dmp-agent outbox key v1"


class KeyStore(Protocol):
    """A place for outbox keys: `load` returns None when the key is not there and raises
    `OutboxKeyError` when the place cannot be read; `save` raises `OutboxKeyError`."""

    def load(self, key_id: str) -> bytes | None: ...

    def save(self, key_id: str, key: bytes) -> None: ...

    def describe(self, key_id: str) -> str: ...


def usable_keyring(backend: Any = None) -> Any | None:
    """The `keyring` backend to use (``backend`` or the configured one), or None when it is
    a stand-in: none found (``fail``), ``null``, or keyrings.alt's files (plain or password
    protected: no better than our sealed file, or needing someone to type)."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null

        backend = backend if backend is not None else keyring.get_keyring()
    except Exception as error:  # a broken installation or D-Bus: the sealed file will do
        log.info("outbox: no OS keyring (%s)", error)
        return None

    def acceptable(candidate: Any) -> bool:
        if isinstance(candidate, chainer.ChainerBackend):
            chained = list(candidate.backends)
            return bool(chained) and all(acceptable(c) for c in chained)
        return not (isinstance(candidate, fail.Keyring | null.Keyring)
                    or type(candidate).__module__.startswith("keyrings.alt")
                    or candidate.priority <= 0)

    return backend if acceptable(backend) else None


class KeyringKeyStore:
    """The OS keyring, through a `keyring` backend."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @staticmethod
    def _user(key_id: str) -> str:
        return f"outbox-key-{key_id}"

    def load(self, key_id: str) -> bytes | None:
        try:
            value = self.backend.get_password(KEYRING_SERVICE, self._user(key_id))
        except Exception as error:  # KeyringError, or the D-Bus or OS error under it
            raise OutboxKeyError(f"the OS keyring cannot be read ({error}): unlock it") from None
        if value is None:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise OutboxKeyError(f"{self.describe(key_id)} is not a key of this agent") from None

    def save(self, key_id: str, key: bytes) -> None:
        try:
            self.backend.set_password(KEYRING_SERVICE, self._user(key_id),
                                      base64.b64encode(key).decode("ascii"))
        except Exception as error:  # KeyringError, or the D-Bus or OS error under it
            raise OutboxKeyError(f"the OS keyring refused the key ({error})") from None

    def describe(self, key_id: str) -> str:
        return (f"the OS keyring ({type(self.backend).__name__}, service {KEYRING_SERVICE}, "
                f"user {self._user(key_id)})")


class LazyKeyringStore:
    """The OS keyring, found only when first needed: finding it imports `keyring` and asks
    D-Bus or the OS (100-300 ms), which an agent whose key is in its sealed file never pays."""

    def __init__(self, backend: Any = None) -> None:
        self._given = backend
        self._store: KeyringKeyStore | None = None
        self._looked = False

    def _keyring(self) -> KeyringKeyStore | None:
        if not self._looked:
            backend = usable_keyring(self._given)
            self._store = KeyringKeyStore(backend) if backend is not None else None
            self._looked = True
        return self._store

    def load(self, key_id: str) -> bytes | None:
        store = self._keyring()
        return store.load(key_id) if store is not None else None

    def save(self, key_id: str, key: bytes) -> None:
        store = self._keyring()
        if store is None:
            raise OutboxKeyError("no OS keyring on this workstation")
        store.save(key_id, key)

    def describe(self, key_id: str) -> str:
        store = self._keyring() if self._looked else None
        return store.describe(key_id) if store is not None else "the OS keyring"


class SealedFileKeyStore:
    """The key sealed in ``sealed_dir`` (the credentials directory, beside the workstation
    key) under a secret of ``secret_dir`` (``<data dir>/keys``) and the machine identity."""

    def __init__(self, sealed_dir: Path, secret_dir: Path) -> None:
        self.sealed_dir, self.secret_dir = Path(sealed_dir), Path(secret_dir)

    @classmethod
    def from_config(cls, config: AgentConfig) -> SealedFileKeyStore:
        return cls(config.credentials_dir, config.data_dir / "keys")

    def _paths(self, key_id: str) -> tuple[Path, Path]:
        return (self.sealed_dir / f"outbox-{key_id}.key",
                self.secret_dir / f"outbox-{key_id}.secret")

    def load(self, key_id: str) -> bytes | None:
        sealed_path, secret_path = self._paths(key_id)
        try:
            sealed = sealed_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise OutboxKeyError(f"{sealed_path}: unreadable ({error.strerror})") from None
        try:
            secret = secret_path.read_bytes()
        except OSError as error:
            raise OutboxKeyError(f"{secret_path}: {error.strerror}: the outbox key "
                                 f"{sealed_path} cannot be opened without it") from None
        try:
            return unseal(sealed, secret, machine_id(), _PURPOSE + b" " + key_id.encode())
        except SealError as error:
            raise OutboxKeyError(f"{sealed_path}: {error}") from None

    def save(self, key_id: str, key: bytes) -> None:
        sealed_path, secret_path = self._paths(key_id)
        secret = new_key()  # 32 random bytes, like the workstation key's secret
        try:
            # The secret first: a sealed key without its secret would be a dead end.
            write_private_file(secret_path, secret)
            write_private_file(sealed_path, seal(key, secret, machine_id(),
                                                 _PURPOSE + b" " + key_id.encode()))
        except OSError as error:
            raise OutboxKeyError(f"cannot write the outbox key ({error})") from None

    def describe(self, key_id: str) -> str:
        sealed_path, secret_path = self._paths(key_id)
        return f"the sealed file {sealed_path} (with {secret_path})"


class KeyStores:
    """Several places: a new key goes to the first that takes it, a key is looked for in
    each. This is what `Outbox` takes."""

    def __init__(self, *stores: KeyStore, look_first: KeyStore | None = None) -> None:
        if not stores:
            raise ValueError("at least one key store")
        self.stores = stores
        # Where a key is looked for first (the cheap place); a new key still goes to the
        # first store that takes it.
        self._lookup = (look_first, *(s for s in stores if s is not look_first)) \
            if look_first is not None else stores

    def load(self, key_id: str) -> bytes:
        problems = []
        for store in self._lookup:
            try:
                key = store.load(key_id)
            except OutboxKeyError as error:
                problems.append(str(error))
                continue
            if key is not None:
                if len(key) != KEY_BYTES:
                    raise OutboxKeyError(f"{store.describe(key_id)} holds no 32-byte key")
                return key
            problems.append(f"not in {store.describe(key_id)}")
        raise OutboxKeyError(f"the outbox key {key_id} is missing ({'; '.join(problems)})")

    def save(self, key_id: str, key: bytes) -> str:
        """Store ``key``; returns where it went."""
        problems = []
        for store in self.stores:
            try:
                store.save(key_id, key)
            except OutboxKeyError as error:
                log.warning("outbox: %s; trying the next place", error)
                problems.append(str(error))
                continue
            return store.describe(key_id)
        raise OutboxKeyError("the outbox key could not be stored: " + "; ".join(problems))


def open_key(keys: KeyStores, key_id: str, key_check: str) -> OutboxCipher:
    """The cipher of the key ``key_id``, checked against ``key_check`` (recorded beside the
    outbox when the key was made); `OutboxKeyError` if it is missing or not that key."""
    cipher = OutboxCipher(keys.load(key_id), key_id)
    if not hmac.compare_digest(cipher.check, key_check):
        raise OutboxKeyError(f"the key found as {key_id} is not the one this outbox was "
                             "sealed with")
    return cipher


def outbox_keys(config: AgentConfig, *, keyring_backend: Any = None) -> KeyStores:
    """The configured places: the OS keyring when there is a real one (a new key goes
    there first), then the sealed file (always: it is also where a key made while the
    keyring was locked went). A key is looked for in the sealed file first: a file read,
    where finding the keyring costs an import and a D-Bus or OS call."""
    sealed = SealedFileKeyStore.from_config(config)
    return KeyStores(LazyKeyringStore(keyring_backend), sealed, look_first=sealed)


__all__ = ["KeyStore", "KeyStores", "KeyringKeyStore", "LazyKeyringStore", "SealedFileKeyStore",
           "open_key",
           "outbox_keys", "usable_keyring"]
