"""The submission-set signature: a signature document (IHE DSG style, typeCode E1762).

The author's CPS card signs, with its *signature* key (non-repudiation), a canonical manifest
of the deposit: the submission set's uniqueId, the patient, and each document's uniqueId,
SHA-256 and size. The signature travels as a compact JWS (RFC 7515) in a Binary of the same
bundle, described by its own DocumentReference (type E1762, class 99, format
`codes.SIGNATURE_FORMAT_CODE`, mime type application/jose):

    BASE64URL(header) "." BASE64URL(manifest) "." BASE64URL(signature)

- header: ``{"alg":"RS256","cty":"application/vnd.dmp-agent.manifest+json","typ":"JOSE",
  "x5c":["<base64 DER of the card's signature certificate>"]}``
- manifest (canonical JSON: sorted keys, no whitespace, ASCII): ``{"documents":[{"sha256":
  "<hex>","size":123,"uniqueId":"urn:..."}...] (sorted by uniqueId),"patient":{"ins":"...",
  "oid":"1.2.250.1.213.1.4.8"},"submissionSet":"urn:...","version":1}``
- signature: RSA PKCS#1 v1.5 over SHA-256 of the ASCII signing input (JWS RS256) — exactly
  what `CpsCard.sign(CpsKey.SIGNATURE, data)` computes, so the card does it through a callback.

`verify_manifest_signature` checks the JWS against the certificate it carries; whoever calls it
must still check that certificate (chain, revocation, holder) and compare the manifest with
the deposit (`Manifest.for_deposit`). docs/host-documents.md describes the format too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import codes
from .documents import Author, DocumentEntry, Patient, SubmissionSet
from .fhir import WireError

MANIFEST_CONTENT_TYPE = "application/vnd.dmp-agent.manifest+json"
MANIFEST_VERSION = 1
MAX_JWS = 64 * 1024


class SignatureError(WireError):
    """A signature document that is malformed or does not verify."""


@dataclass(frozen=True)
class ManifestDocument:
    unique_id: str
    sha256: str  # hex
    size: int


@dataclass(frozen=True)
class Manifest:
    submission_set: str
    patient: Patient
    documents: tuple[ManifestDocument, ...]

    @classmethod
    def for_deposit(cls, submission_set: SubmissionSet,
                    entries: Sequence[DocumentEntry]) -> Manifest:
        """The manifest of a deposit: every document but the signature itself."""
        return cls(
            submission_set.unique_id, submission_set.patient,
            tuple(sorted(
                (ManifestDocument(e.unique_id, e.sha256, e.size) for e in entries
                 if not e.is_signature),
                key=lambda d: d.unique_id,
            )),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "documents": [{"sha256": d.sha256, "size": d.size, "uniqueId": d.unique_id}
                          for d in sorted(self.documents, key=lambda d: d.unique_id)],
            "patient": {"ins": self.patient.ins, "oid": self.patient.oid},
            "submissionSet": self.submission_set,
            "version": MANIFEST_VERSION,
        }

    def to_bytes(self) -> bytes:
        return _canonical(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            raise SignatureError("signature-malformed", "the manifest is not JSON") from None
        try:
            if not isinstance(value, dict) or value.get("version") != MANIFEST_VERSION:
                raise ValueError
            patient = value["patient"]
            documents = tuple(
                ManifestDocument(str(d["uniqueId"]), str(d["sha256"]), d["size"])
                for d in value["documents"]
            )
            if any(not isinstance(d.size, int) or isinstance(d.size, bool) for d in documents):
                raise ValueError
            manifest = cls(str(value["submissionSet"]),
                           Patient(str(patient["ins"]), str(patient["oid"])), documents)
        except (KeyError, TypeError, ValueError):
            raise SignatureError("signature-malformed",
                                 "the manifest lacks or mistypes a field") from None
        if manifest.to_bytes() != data:
            raise SignatureError("signature-malformed", "the manifest is not canonical")
        return manifest


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str, what: str) -> bytes:
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789-_" for c in text):
        raise SignatureError("signature-malformed", f"the JWS {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        raise SignatureError("signature-malformed", f"the JWS {what} is not base64url") from None


def sign_manifest(manifest: Manifest, sign: Callable[[bytes], bytes],
                  certificate_der: bytes) -> bytes:
    """The compact JWS (ASCII bytes). ``sign(data)`` returns RSA PKCS#1 v1.5 over SHA-256 of
    ``data`` (the card's signature key); ``certificate_der`` is that key's certificate."""
    header = {"alg": "RS256", "cty": MANIFEST_CONTENT_TYPE, "typ": "JOSE",
              "x5c": [base64.b64encode(certificate_der).decode("ascii")]}
    signing_input = f"{_b64url(_canonical(header))}.{_b64url(manifest.to_bytes())}"
    signature = sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url(signature)}".encode("ascii")


@dataclass(frozen=True)
class SignedManifest:
    manifest: Manifest
    certificate: x509.Certificate


def verify_manifest_signature(jws: bytes) -> SignedManifest:
    """Check the JWS with the certificate of its ``x5c`` header and return what it signs.

    Raises SignatureError: ``signature-malformed`` (not such a JWS) or ``bad-signature``.
    The certificate itself is NOT checked here (chain, validity, revocation, holder)."""
    if len(jws) > MAX_JWS:
        raise SignatureError("signature-malformed", "the signature document is too large")
    try:
        text = jws.decode("ascii")
    except UnicodeDecodeError:
        raise SignatureError("signature-malformed", "a JWS is ASCII") from None
    parts = text.split(".")
    if len(parts) != 3:
        raise SignatureError("signature-malformed", "a compact JWS has three parts")
    try:
        header = json.loads(_unb64url(parts[0], "header"))
    except (ValueError, RecursionError):
        raise SignatureError("signature-malformed", "the JWS header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256" or header.get(
        "cty"
    ) != MANIFEST_CONTENT_TYPE or set(header) - {"alg", "cty", "typ", "x5c"}:
        raise SignatureError("signature-malformed", "the JWS header is not RS256 over a manifest")
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise SignatureError("signature-malformed", "the JWS header has no x5c certificate")
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
        public_key = certificate.public_key()
    except (ValueError, TypeError, binascii.Error):
        raise SignatureError("signature-malformed", "the x5c certificate is unreadable") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SignatureError("signature-malformed", "the signing certificate is not RSA")
    payload = _unb64url(parts[1], "payload")
    signature = _unb64url(parts[2], "signature")
    try:
        public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"),
                          padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise SignatureError("bad-signature",
                             "the submission-set signature does not verify") from None
    return SignedManifest(Manifest.from_bytes(payload), certificate)


def signature_entry(
    jws: bytes,
    submission_set: SubmissionSet,
    author: Author,
    *,
    unique_id: str,
    creation_time: datetime,
) -> DocumentEntry:
    """The DocumentEntry describing the signature document ``jws`` in the same deposit."""
    return DocumentEntry(
        unique_id=unique_id, patient=submission_set.patient,
        class_code=codes.SIGNATURE_CLASS_CODE, type_code=codes.SIGNATURE_TYPE_CODE,
        type_system=codes.SIGNATURE_TYPE_SYSTEM, format_code=codes.SIGNATURE_FORMAT_CODE,
        mime_type=codes.SIGNATURE_MIME_TYPE, title="Signature du lot de soumission",
        author=author, creation_time=creation_time, size=len(jws),
        sha1_b64=base64.b64encode(hashlib.sha1(jws).digest()).decode("ascii"),
        sha256=hashlib.sha256(jws).hexdigest(),
    )


def sign_submission(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    sign: Callable[[bytes], bytes],
    certificate_der: bytes,
    *,
    unique_id: str,
) -> tuple[DocumentEntry, bytes]:
    """Sign a deposit: the signature document's entry and its JWS bytes, to add to the
    documents given to `build_provide_bundle`."""
    jws = sign_manifest(Manifest.for_deposit(submission_set, entries), sign, certificate_der)
    entry = signature_entry(jws, submission_set, submission_set.author, unique_id=unique_id,
                            creation_time=submission_set.submission_time)
    return entry, jws
