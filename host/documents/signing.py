"""The deposit's signature document (IHE DSG detached XAdES, `wire.dsg`): it verifies, its
certificate is a CPS signature certificate from the health CA (valid, not revoked) of the
session's professional, and its manifest names exactly this deposit's documents with the SHA-256
of the bytes the host received. docs/wire-signature.md lists every refusal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from wire import dsg
from wire.mhd import SubmissionSet

from ..actors import SessionActor
from ..errors import HostError, bad_request
from ..pki import CA_FILE, CRL_FILE, HEALTH_CA, ROOT_FILE, PkiError, load_certificate, load_crl


def refused(code: str, message: str) -> HostError:
    return HostError(403, code, message, issue_type="security")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def check_signer_certificate(certificate: x509.Certificate, pki_dir: Path,
                             actor: SessionActor, now: dt.datetime) -> None:
    directory = Path(pki_dir) / HEALTH_CA
    try:
        ca = load_certificate(directory / CA_FILE)
        root = load_certificate(directory / ROOT_FILE) if (directory / ROOT_FILE).exists() \
            else None
        crl = load_crl(directory / CRL_FILE) if (directory / CRL_FILE).exists() else None
    except PkiError:
        raise HostError(503, "health-ca-unavailable",
                        "Autorité de santé non configurée / the health CA is not configured on "
                        "this host", issue_type="transient") from None
    if not _issued_by(certificate, ca) or (root is not None and not _issued_by(ca, root)):
        raise refused("signature-cert-untrusted",
                      "Le certificat de signature n'est pas émis par l'autorité de santé / the "
                      "signing certificate is not from the health CA")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise refused("signature-cert-expired",
                      "Le certificat de signature n'est pas valide à cette date / the signing "
                      "certificate is expired or not yet valid")
    if crl is not None:
        current = crl.next_update_utc is not None and now <= crl.next_update_utc
        if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()) \
                or not current:  # type: ignore[arg-type]
            raise HostError(503, "crl-unavailable",
                            "Liste de révocation invalide ou périmée / the health CA's CRL is "
                            "invalid or out of date", issue_type="transient")
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            raise refused("signature-cert-revoked",
                          "Le certificat de signature est révoqué / the signing certificate "
                          "is revoked")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        fit = usage.content_commitment
    except x509.ExtensionNotFound:
        fit = False
    if not fit:
        raise refused("signature-cert-unfit",
                      "Ce certificat ne sert pas à signer (clé de signature de la CPS attendue) "
                      "/ not a non-repudiation certificate: sign with the card's signature key")
    holders = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(holders) != 1 or holders[0].value != actor.id_nat_ps:
        raise refused("signature-wrong-signer",
                      "La signature n'est pas celle du professionnel de la session / the "
                      "deposit is signed by another card than the session's")


MAX_SIGNATURE_BYTES = dsg.MAX_SIGNATURE_BYTES


def too_large() -> HostError:
    return bad_request("signature-too-large", _DOCUMENT_REFUSALS["signature-too-large"][1])


# Each refusal of the signature document itself: (status, French / English message).
_DOCUMENT_REFUSALS = {
    "signature-too-large": (400, "Document de signature trop volumineux / the signature document "
                                 "is too large"),
    "signature-dtd": (400, "Document de signature refusé : DTD ou entités interdites / DTD and "
                           "entity declarations are refused in the signature document"),
    "signature-malformed": (400, "Document de signature illisible / malformed signature "
                                 "document"),
    "bad-signature": (403, "Signature du lot invalide / the submission-set signature does not "
                           "verify"),
}


def check_signature(data: bytes, submission_set: SubmissionSet,
                    digests: Sequence[tuple[str, str]], pki_dir: Path, actor: SessionActor,
                    now: dt.datetime) -> None:
    """Raise HostError unless ``data`` is the session professional's valid DSG signature of this
    exact deposit. ``digests``: (uniqueId, SHA-256 hex the host computed from the bytes it
    received) of every document but the signature — never the declared hashes."""
    try:
        signed = dsg.verify(data)
    except dsg.DsgError as error:
        status, message = _DOCUMENT_REFUSALS[error.code]
        if status == 403:
            raise refused(error.code, message) from None
        raise bad_request(error.code, f"{message}: {error.message}") from None
    check_signer_certificate(signed.certificate, pki_dir, actor, now)
    problem = dsg.mismatch(signed, submission_set.unique_id, submission_set.patient, digests)
    if problem is not None:
        raise refused("signature-manifest-mismatch",
                      f"La signature porte sur un autre lot / the signature covers other "
                      f"documents, bytes or another patient than this deposit: {problem}")
