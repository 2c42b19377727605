"""Document bodies, content-addressed by SHA-256, behind a small storage interface.

A directory on disk here; an S3-compatible object store in production would implement the
same three methods. A body is streamed to a temporary file while its hashes and size are
computed, and only then moved to its address, so a half-received body never appears.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import HostError

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    sha256: str  # hex
    sha1_b64: str  # FHIR Attachment.hash
    size: int


def too_large(limit: int) -> HostError:
    return HostError(413, "document-too-large",
                     f"Document trop volumineux / the document exceeds {limit} bytes",
                     issue_type="too-costly")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "incoming").mkdir(exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def _writer(self) -> tuple[int, str]:
        return tempfile.mkstemp(dir=self.root / "incoming")

    def _commit(self, temp: str, sha256: str) -> None:
        target = self.path(sha256)
        target.parent.mkdir(exist_ok=True)
        os.replace(temp, target)  # atomic: readers see the whole body or nothing

    def put_bytes(self, data: bytes, limit: int) -> StoredBlob:
        if len(data) > limit:
            raise too_large(limit)
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.exists(sha256):
            fd, temp = self._writer()
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            self._commit(temp, sha256)
        return StoredBlob(sha256, base64.b64encode(hashlib.sha1(data).digest()).decode(),
                          len(data))

    async def put_stream(self, chunks: AsyncIterator[bytes], limit: int) -> StoredBlob:
        """Store a body arriving in chunks, refusing it (and keeping nothing) past ``limit``."""
        fd, temp = self._writer()
        sha256, sha1, size = hashlib.sha256(), hashlib.sha1(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise too_large(limit)
                    sha256.update(chunk)
                    sha1.update(chunk)
                    out.write(chunk)
            digest = sha256.hexdigest()
            if self.exists(digest):
                os.unlink(temp)
            else:
                self._commit(temp, digest)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
        return StoredBlob(digest, base64.b64encode(sha1.digest()).decode(), size)

    def read(self, sha256: str) -> Iterator[bytes]:
        with open(self.path(sha256), "rb") as body:
            while chunk := body.read(CHUNK):
                yield chunk
