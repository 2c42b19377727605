"""The outbox's encryption at rest (docs/agent-outbox.md, "At rest").

Everything comes from one 32-byte outbox key (agent/outbox/keys.py says where it lives),
through HKDF-SHA256 subkeys, so that no subkey serves two purposes:

- **files** (``bundles/``, ``contents/``): a streamed AEAD, constant memory for any size,
  ending with a sealed label that says what the file is (format 3)::

      header  MAGIC (8 bytes) + key id (8 bytes) + salt (16 random bytes)
      chunk i AES-256-GCM(file key, nonce = i as 12 bytes big-endian,
                          aad = header + final flag (1 byte)) of <= 64 KiB, + 16-byte tag
      label   AES-256-GCM(file key, nonce = 12 bytes 0xff,
                          aad = header + 0x02 + length of the chunks (8 bytes)) + tag
      footer  length of the sealed label (4 bytes big-endian)

  with file key = HKDF(outbox key, salt, "dmp-agent outbox file v2\\n" + the file's name):
  a file renamed or swapped for another item's does not open, a chunk moved fails its
  nonce, and only the last chunk carries the final flag, so a file cut short (even at a
  chunk boundary) fails too. Each chunk is authenticated before a byte of it is returned.
  The label (the item's uniqueId, patient, size, SHA-256...: `model.Description`) lets the
  outbox rebuild its queue from the files alone when its database is lost; the key id in
  clear says which key to ask for then. Format 2 (no key id, no label) is still read, for
  the migration of the files written before.
- **rows**: small fields sealed with AES-256-GCM (random nonce) whose associated data names
  the item and the field, so a value copied to another row or column does not open;
- **patient tag**: HMAC-SHA256 of the INS, to keep one patient's items in order without
  storing the INS;
- **key check**: an HMAC stored in the database, so the wrong key is one clear error
  instead of every item failing as damaged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.config import fsync_dir
from agent.outbox.model import OutboxDamagedError, OutboxError

MAGIC = b"DMPOBX\x03\n"
MAGIC_V2 = b"DMPOBX\x02\n"  # no key id, no label: read for the migration only
KEY_ID = 8  # bytes: the 16 hex digits of the key's id
SALT = 16
HEADER = len(MAGIC) + KEY_ID + SALT
HEADER_V2 = len(MAGIC_V2) + SALT
CHUNK = 64 * 1024  # plaintext bytes per sealed chunk
TAG = 16
NONCE = 12
FOOTER = 4
MAX_LABEL = 64 * 1024  # a label is a small JSON object
KEY_BYTES = 32
TEMP_PREFIX = ".tmp-"
_FINAL, _MORE, _LABEL = b"\x01", b"\x00", b"\x02"
_LABEL_NONCE = b"\xff" * NONCE  # never a chunk's: chunk numbers stay far below 2**96 - 1


def _subkey(key: bytes, purpose: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=b"dmp-agent outbox v2 " + purpose).derive(key)


def _file_aead(key: bytes, name: str, header: bytes) -> AESGCM:
    return AESGCM(_subkey(key, b"file\n" + name.encode(), header[-SALT:]))


def _label_aad(header: bytes, chunks_length: int) -> bytes:
    return header + _LABEL + chunks_length.to_bytes(8, "big")


def sealed_size(size: int, label: int = 0) -> int:
    """The size on disk of a sealed file of ``size`` plaintext bytes and a label of
    ``label`` bytes (an empty file still has its final chunk)."""
    chunks = max(1, -(-size // CHUNK))
    return HEADER + size + chunks * TAG + label + TAG + FOOTER


def _key_id_bytes(key_id: str) -> bytes:
    try:
        raw = bytes.fromhex(key_id)
    except ValueError:
        raw = b""
    return raw if len(raw) == KEY_ID else bytes(KEY_ID)  # unknown: zeros


class SealedWriter:
    """A sealed file being written under a temporary name in ``directory``; `install`
    seals the last chunk and the label, fsyncs it and renames it to `name` (durably).
    Leaving the ``with`` block without `install` removes the temporary file. ``size`` and
    `sha256` describe the plaintext written so far."""

    def __init__(self, key: bytes, key_id: bytes, directory: Path, suffix: str) -> None:
        self.directory = directory
        self.name = secrets.token_hex(16) + suffix
        self.size = 0  # plaintext bytes written
        self._digest = hashlib.sha256()
        self._header = MAGIC + key_id + os.urandom(SALT)
        self._aead = _file_aead(key, self.name, self._header)
        self._counter = 0
        self._chunks_length = 0
        self._buffer = bytearray()
        fd, temp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)  # 0600
        self._temp: Path | None = Path(temp)
        self._out = os.fdopen(fd, "wb")
        try:
            self._out.write(self._header)
        except BaseException:
            self.__exit__(None, None, None)
            raise

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        self._digest.update(view)
        while len(view):
            # A full buffer is sealed only once more data shows it is not the last chunk.
            if len(self._buffer) == CHUNK:
                self._seal(_MORE)
            take = CHUNK - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]

    def _seal(self, flag: bytes) -> None:
        nonce = self._counter.to_bytes(NONCE, "big")
        sealed = self._aead.encrypt(nonce, bytes(self._buffer), self._header + flag)
        self._out.write(sealed)
        self._chunks_length += len(sealed)
        self._counter += 1
        self._buffer.clear()

    def install(self, label: bytes = b"") -> Path:
        """Finish the file with ``label`` (what the file is, sealed with it) and give it its
        final name; returns its path."""
        assert self._temp is not None, "installed twice"
        if len(label) > MAX_LABEL:
            raise ValueError("label too large")
        self._seal(_FINAL)
        sealed = self._aead.encrypt(_LABEL_NONCE, label,
                                    _label_aad(self._header, self._chunks_length))
        self._out.write(sealed + len(sealed).to_bytes(FOOTER, "big"))
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
            try:
                self._out.close()  # may fail to flush on a full disk: the file goes anyway
            except OSError:
                pass
            finally:
                self._temp.unlink(missing_ok=True)
                self._temp = None


def _damaged(what: str) -> OutboxDamagedError:
    return OutboxDamagedError(f"damaged ({what})")


class SealedFiles:
    """Writes and reads the outbox's sealed files under one outbox key (``key_id`` names it
    in each file's header)."""

    def __init__(self, key: bytes, key_id: str = "") -> None:
        self._key = key
        self._key_id = _key_id_bytes(key_id)

    def create(self, directory: Path, suffix: str) -> SealedWriter:
        return SealedWriter(self._key, self._key_id, directory, suffix)

    def _layout(self, file: BinaryIO, name: str) -> tuple[bytes, int, bytes | None]:
        """(header, end of the chunks, authenticated label or None for format 2)."""
        magic = file.read(len(MAGIC))
        file.seek(0)
        header = file.read(HEADER_V2 if magic == MAGIC_V2 else HEADER)
        total = os.fstat(file.fileno()).st_size
        if magic == MAGIC_V2 and len(header) == HEADER_V2:
            return header, total, None
        if len(header) != HEADER or magic != MAGIC:
            raise _damaged("not a sealed file of this outbox")
        if total < HEADER + 2 * TAG + FOOTER:
            raise _damaged("cut short")
        file.seek(total - FOOTER)
        length = int.from_bytes(file.read(FOOTER), "big")
        end = total - FOOTER - length
        if not TAG <= length <= MAX_LABEL + TAG or end < HEADER + TAG:
            raise _damaged("cut short, or its end is not a label")
        file.seek(end)
        try:
            label = _file_aead(self._key, name, header).decrypt(
                _LABEL_NONCE, file.read(length), _label_aad(header, end - HEADER))
        except InvalidTag:
            raise _damaged("its label fails authentication: altered, cut short, or not "
                           "sealed with this outbox's key") from None
        file.seek(HEADER)
        return header, end, label

    def label(self, path: Path) -> bytes | None:
        """The file's authenticated label (None for a file of format 2, which has none);
        `OutboxDamagedError` when it is not genuine. OSError when it cannot be opened."""
        with open(path, "rb") as file:
            return self._layout(file, path.name)[2]

    def read(self, path: Path) -> Generator[bytes, None, None]:
        """The plaintext of ``path``, chunk by chunk, each authenticated before it is
        yielded; `OutboxDamagedError` at the first chunk that is not genuine, or if the
        file ends before its final chunk. OSError when the file cannot be opened."""
        with open(path, "rb") as file:
            header, end, _label = self._layout(file, path.name)
            aead = _file_aead(self._key, path.name, header)
            position = len(header)

            def block() -> bytes:
                nonlocal position
                data = file.read(min(CHUNK + TAG, end - position))
                position += len(data)
                return data

            current, counter = block(), 0
            while True:
                # Read on even after a short chunk: bytes after the final one are damage too.
                following = block()
                flag = _MORE if following else _FINAL
                try:
                    plain = aead.decrypt(counter.to_bytes(NONCE, "big"), current, header + flag)
                except InvalidTag:
                    raise _damaged(f"chunk {counter} fails authentication: altered, cut "
                                   "short, or not sealed with this outbox's key") from None
                if plain:
                    yield plain
                if not following:
                    return
                current, counter = following, counter + 1


def key_id_of(path: Path) -> str | None:
    """The id of the key a file of format 3 was sealed with (clear in its header), or None."""
    try:
        with open(path, "rb") as file:
            header = file.read(HEADER)
    except OSError:
        return None
    if len(header) != HEADER or not header.startswith(MAGIC):
        return None
    raw = header[len(MAGIC):len(MAGIC) + KEY_ID]
    return raw.hex() if any(raw) else None


class OutboxCipher:
    """The outbox key and its subkeys (see the module's docstring)."""

    def __init__(self, key: bytes, key_id: str = "") -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the outbox key is 32 bytes")
        self.key_id = key_id
        self.files = SealedFiles(key, key_id)
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


def write_payload(payload: bytes | bytearray | memoryview | os.PathLike[str],
                  writer: SealedWriter) -> None:
    """Write ``payload`` into ``writer``; OSError on the source becomes OutboxError (the
    caller's file), OSError on the writer is the outbox's disk."""
    if isinstance(payload, bytes | bytearray | memoryview):
        writer.write(payload)
        return
    try:
        source = open(payload, "rb")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise OutboxError(f"cannot read the bundle: {error}") from error
    with source:
        while True:
            try:
                chunk = source.read(1 << 20)
            except OSError as error:
                raise OutboxError(f"cannot read the bundle: {error}") from error
            if not chunk:
                return
            writer.write(chunk)


__all__ = ["CHUNK", "OutboxCipher", "SealedFiles", "SealedWriter", "key_id_of", "new_key",
           "sealed_size", "write_payload"]
