"""The submission-set signature document of a deposit: its DocumentEntry and its bytes.

The author's CPS card signs, with its *signature* key (non-repudiation), an IHE DSG detached
XAdES signature (`wire.dsg`) whose manifest names every other document of the submission set
by uniqueId and SHA-256. It travels in a Binary of the same bundle, described by its own
DocumentReference: type E1762 (ASTM), class 99, format `urn:ihe:iti:dsg:detached:2014`, mime
type text/xml, language "art". docs/wire-signature.md describes the format.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime

from . import codes, dsg
from .documents import Author, DocumentEntry, SubmissionSet

__all__ = ["sign_submission", "signature_entry"]


def signature_entry(
    signature: bytes,
    submission_set: SubmissionSet,
    author: Author,
    *,
    unique_id: str,
    creation_time: datetime,
) -> DocumentEntry:
    """The DocumentEntry describing the signature document ``signature`` in the same deposit."""
    return DocumentEntry(
        unique_id=unique_id, patient=submission_set.patient,
        class_code=codes.SIGNATURE_CLASS_CODE, type_code=codes.SIGNATURE_TYPE_CODE,
        type_system=codes.SIGNATURE_TYPE_SYSTEM, format_code=codes.SIGNATURE_FORMAT_CODE,
        mime_type=codes.SIGNATURE_MIME_TYPE, title="Signature du lot de soumission",
        author=author, creation_time=creation_time, size=len(signature),
        sha1_b64=base64.b64encode(hashlib.sha1(signature).digest()).decode("ascii"),
        sha256=hashlib.sha256(signature).hexdigest(),
        language=codes.SIGNATURE_LANGUAGE,
        # PDSm date 1.. and context.period.start 1..: the signing is the act it records.
        date=creation_time, service_start=creation_time,
    )


def sign_submission(
    submission_set: SubmissionSet,
    entries: Sequence[DocumentEntry],
    sign: Callable[[bytes], bytes],
    certificate_der: bytes,
    *,
    unique_id: str,
    signer: str = dsg.SIGNER_CARD,
) -> tuple[DocumentEntry, bytes]:
    """Sign a deposit: the signature document's entry and its XML bytes, to add to the
    documents given to `build_provide_bundle`. Every entry but a signature is in the manifest,
    with its ``sha256`` (hex); ``sign(data)`` is the card's signature key (RSA PKCS#1 v1.5,
    SHA-256), ``certificate_der`` its certificate; ``signer`` says whose key that is (the
    workstation's establishment key under e-CPS: `dsg.SIGNER_ESTABLISHMENT`)."""
    signature = dsg.sign(
        submission_set.unique_id, submission_set.patient,
        [dsg.SignedDocument(e.unique_id, e.sha256) for e in entries if not e.is_signature],
        sign, certificate_der, signing_time=submission_set.submission_time, signer=signer,
    )
    entry = signature_entry(signature, submission_set, submission_set.author,
                            unique_id=unique_id, creation_time=submission_set.submission_time)
    return entry, signature
