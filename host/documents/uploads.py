"""Bodies streamed before a deposit (`POST /fhir/Binary`), referenced from the bundle by id.

The body goes to the content-addressed blob store as it arrives (never whole in memory); a
small claim file records who uploaded it and until when it may be used. Only the session's
professional may reference their upload, so a deposit cannot borrow someone else's body by
guessing its hash. An upload no deposit claims stays unreferenced.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..blobs import BlobStore, StoredBlob
from ..errors import bad_request

LIFETIME = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Upload:
    blob: StoredBlob
    content_type: str
    owner: str  # idNat_PS
    expires_at: dt.datetime


class Uploads:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        # Beside the blob directories (two hex characters), never mistaken for one.
        self.root = blobs.root / "uploads"
        self.root.mkdir(exist_ok=True)

    def record(self, blob: StoredBlob, content_type: str, owner: str, now: dt.datetime) -> str:
        token = secrets.token_hex(16)
        claim = {"sha256": blob.sha256, "sha1_b64": blob.sha1_b64, "size": blob.size,
                 "content_type": content_type, "owner": owner,
                 "expires_at": (now + LIFETIME).isoformat()}
        temp = self.root / f".{token}.tmp"
        temp.write_text(json.dumps(claim))
        os.replace(temp, self.root / f"{token}.json")
        return token

    def claim(self, token: str, owner: str, now: dt.datetime) -> Upload:
        """The upload ``token`` of ``owner``, still valid at ``now``; 400 otherwise."""
        unknown = bad_request(
            "unknown-binary",
            f"Contenu Binary/{token[:40]} inconnu ou expiré / unknown or expired upload: send "
            "the body again with POST /fhir/Binary",
        )
        if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
            raise unknown
        path = Path(self.root / f"{token}.json")
        try:
            claim = json.loads(path.read_text())
        except (OSError, ValueError):
            raise unknown from None
        expires = dt.datetime.fromisoformat(claim["expires_at"])
        if claim["owner"] != owner or expires <= now or not self.blobs.exists(claim["sha256"]):
            raise unknown
        return Upload(StoredBlob(claim["sha256"], claim["sha1_b64"], claim["size"]),
                      claim["content_type"], claim["owner"], expires)
