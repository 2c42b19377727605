"""The outbox's encryption at rest (docs/agent-outbox.md, "At rest").

Everything comes from one 32-byte outbox key (agent/outbox/keys.py says where it lives),
through HKDF-SHA256 subkeys, so that no subkey serves two purposes:

- **files** (``bundles/``, ``contents/``): a streamed AEAD, constant memory for any size::

      header  MAGIC (8 bytes) + salt (16 random bytes)
      chunk i AES-256-GCM(file key, nonce = i as 12 bytes big-endian,
                          aad = header + final flag (1 byte)) of <= 64 KiB, + 16-byte tag

  with file key = HKDF(outbox key, salt, "dmp-agent outbox file v2\\n" + the file's name):
  a file renamed or swapped for another item's does not open, a chunk moved fails its
  nonce, and only the last chunk carries the final flag, so a file cut short (even at a
  chunk boundary) fails too. Each chunk is authenticated before a byte of it is returned.
- **rows**: small fields sealed with AES-256-GCM (random nonce) whose associated data names
  the item and the field, so a value copied to another row or column does not open;
- **patient tag**: HMAC-SHA256 of the INS, to keep one patient's items in order without
  storing the INS;
- **key check**: an HMAC stored in the database, so the wrong key is one clear error
  instead of every item failing as damaged.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import fsync_dir
from .model import OutboxDamagedError

MAGIC = b"DMPOBX\x02\n"
SALT = 16
HEADER = len(MAGIC) + SALT
CHUNK = 64 * 1024  # plaintext bytes per sealed chunk
TAG = 16
NONCE = 12
KEY_BYTES = 32
TEMP_PREFIX = ".tmp-"
_FINAL, _MORE = b"\x01", b"\x00"


def _subkey(key: bytes, purpose: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=b"dmp-agent outbox v2 " + purpose).derive(key)


def sealed_size(size: int) -> int:
    """The size on disk of a sealed file of ``size`` plaintext bytes (an empty file still
    has its final chunk)."""
    chunks = max(1, -(-size // CHUNK))
    return HEADER + size + chunks * TAG


class SealedWriter:
    """A sealed file being written under a temporary name in ``directory``; `install`
    seals the last chunk, fsyncs it and renames it to `name` (durably). Leaving the
    ``with`` block without `install` removes the temporary file."""

    def __init__(self, key: bytes, directory: Path, suffix: str) -> None:
        self.directory = directory
        self.name = secrets.token_hex(16) + suffix
        self.size = 0  # plaintext bytes written
        self._header = MAGIC + os.urandom(SALT)
        self._aead = AESGCM(_subkey(key, b"file\n" + self.name.encode(), self._header[-SALT:]))
        self._counter = 0
        self._buffer = bytearray()
        fd, temp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)  # 0600
        self._temp: Path | None = Path(temp)
        self._out = os.fdopen(fd, "wb")
        self._out.write(self._header)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        while len(view):
            # A full buffer is sealed only once more data shows it is not the last chunk.
            if len(self._buffer) == CHUNK:
                self._seal(_MORE)
            take = CHUNK - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]

    def _seal(self, flag: bytes) -> None:
        nonce = self._counter.to_bytes(NONCE, "big")
        self._out.write(self._aead.encrypt(nonce, bytes(self._buffer), self._header + flag))
        self._counter += 1
        self._buffer.clear()

    def install(self) -> Path:
        """Finish the file and give it its final name; returns its path."""
        assert self._temp is not None, "installed twice"
        self._seal(_FINAL)
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        final = self.directory / self.name
        os.replace(self._temp, final)
        self._temp = None
        fsync_dir(self.directory)  # the name is durable before a row points to it
        return final

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._temp is not None:
            self._out.close()
            self._temp.unlink(missing_ok=True)
            self._temp = None


class SealedFiles:
    """Writes and reads the outbox's sealed files under one outbox key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def create(self, directory: Path, suffix: str) -> SealedWriter:
        return SealedWriter(self._key, directory, suffix)

    def read(self, path: Path) -> Iterator[bytes]:
        """The plaintext of ``path``, chunk by chunk, each authenticated before it is
        yielded; `OutboxDamagedError` at the first chunk that is not genuine, or if the
        file ends before its final chunk. OSError when the file cannot be opened."""
        with open(path, "rb") as file:
            header = file.read(HEADER)
            if len(header) != HEADER or not header.startswith(MAGIC):
                raise OutboxDamagedError("damaged (not a sealed file of this outbox)")
            aead = AESGCM(_subkey(self._key, b"file\n" + path.name.encode(), header[-SALT:]))
            block = file.read(CHUNK + TAG)
            counter = 0
            while True:
                # Read on even after a short chunk: bytes after the final one are damage too.
                following = file.read(CHUNK + TAG)
                flag = _MORE if following else _FINAL
                try:
                    plain = aead.decrypt(counter.to_bytes(NONCE, "big"), block, header + flag)
                except InvalidTag:
                    raise OutboxDamagedError(
                        f"damaged (chunk {counter} fails authentication: altered, cut "
                        "short, or not sealed with this outbox's key)") from None
                if plain:
                    yield plain
                if not following:
                    return
                block, counter = following, counter + 1


class OutboxCipher:
    """The outbox key and its subkeys (see the module's docstring)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the outbox key is 32 bytes")
        self.files = SealedFiles(key)
        self._rows = AESGCM(_subkey(key, b"rows"))
        self._tag_key = _subkey(key, b"patient tag")
        self.check = hmac.new(_subkey(key, b"check"), b"dmp-agent outbox key",
                              "sha256").hexdigest()[:32]

    def tag(self, text: str) -> str:
        return hmac.new(self._tag_key, text.encode("utf-8"), "sha256").hexdigest()[:32]

    def seal(self, data: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._rows.encrypt(nonce, data, context.encode("utf-8"))

    def open(self, blob: bytes, context: str) -> bytes:
        try:
            return self._rows.decrypt(blob[:NONCE], blob[NONCE:], context.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise OutboxDamagedError(f"{context}: the sealed value fails authentication "
                                     "(altered, or moved from another row)") from None

    def seal_text(self, text: str | None, context: str) -> bytes | None:
        return None if text is None else self.seal(text.encode("utf-8"), context)

    def open_text(self, blob: bytes | None, context: str) -> str | None:
        return None if blob is None else self.open(blob, context).decode("utf-8")


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


__all__ = ["CHUNK", "OutboxCipher", "SealedFiles", "SealedWriter", "new_key", "sealed_size"]
