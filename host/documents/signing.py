"""The deposit's signature document (IHE DSG detached XAdES, `wire.dsg`): it verifies, its
certificate is a CPS signature certificate from the health CA (valid, not revoked) of the
session's professional, and its manifest names exactly this deposit's documents with the SHA-256
of the bytes the host received. docs/wire-signature.md lists every refusal.

A signature that says it is the establishment's (`dsg.SIGNER_ESTABLISHMENT`: a deposit made
without a card) is accepted only on an e-CPS session, and only from the establishment
certificate of the workstation that opened that session, issued by the establishment CA,
valid and not revoked (docs/psc.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from wire import dsg
from wire.mhd import SubmissionSet

from ..actors import ECPS, SessionActor, fingerprint
from ..errors import HostError, bad_request
from ..pki import (
    CA_FILE,
    CRL_FILE,
    ESTABLISHMENT_CA,
    HEALTH_CA,
    ROOT_FILE,
    PkiError,
    load_certificate,
    load_crl,
)


def refused(code: str, message: str) -> HostError:
    return HostError(403, code, message, issue_type="security")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


# The refusals of an establishment signature (code: French / English message).
_ESTABLISHMENT = {
    "untrusted": "Le certificat de signature n'est pas émis par l'autorité des établissements "
                 "/ the establishment signing certificate is not from the establishment CA",
    "expired": "Le certificat d'établissement n'est pas valide à cette date / the "
               "establishment certificate is expired or not yet valid",
    "revoked": "Le certificat d'établissement est révoqué / the establishment certificate is "
               "revoked",
}


def check_establishment_signer(certificate: x509.Certificate, pki_dir: Path,
                               actor: SessionActor, now: dt.datetime) -> None:
    """An establishment signature (no card): an e-CPS session's, by the establishment
    certificate of the very workstation that opened it; trusted, valid, not revoked."""
    if actor.auth_means != ECPS:
        raise refused("signature-establishment-card-session",
                      "Signature d'établissement refusée : la session est ouverte par carte CPS, "
                      "le lot doit être signé par la carte / an establishment signature is "
                      "accepted on an e-CPS session only: sign with the card")
    directory = Path(pki_dir) / ESTABLISHMENT_CA
    _check_chain(certificate, directory, now, "signature-establishment-", _ESTABLISHMENT)
    if fingerprint(certificate) != actor.workstation_sha256:
        raise refused("signature-establishment-other-workstation",
                      "Le lot est signé par le certificat d'un autre poste que celui de la "
                      "session / the deposit is signed by another establishment certificate "
                      "than the one of the workstation that opened the session")


def _check_chain(certificate: x509.Certificate, directory: Path, now: dt.datetime,
                 prefix: str, messages: dict[str, str]) -> None:
    """``certificate`` issued by the CA of ``directory`` (and its root), valid at ``now``,
    absent from its CRL; each refusal ``prefix`` + untrusted / expired / revoked."""
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
        raise refused(prefix + "untrusted", messages["untrusted"])
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise refused(prefix + "expired", messages["expired"])
    if crl is not None:
        current = crl.next_update_utc is not None and now <= crl.next_update_utc
        if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()) \
                or not current:  # type: ignore[arg-type]
            raise HostError(503, "crl-unavailable",
                            "Liste de révocation invalide ou périmée / the health CA's CRL is "
                            "invalid or out of date", issue_type="transient")
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            raise refused(prefix + "revoked", messages["revoked"])


# The refusals of a card's signing certificate (code suffix: French / English message).
_CARD = {
    "untrusted": "Le certificat de signature n'est pas émis par l'autorité de santé / the "
                 "signing certificate is not from the health CA",
    "expired": "Le certificat de signature n'est pas valide à cette date / the signing "
               "certificate is expired or not yet valid",
    "revoked": "Le certificat de signature est révoqué / the signing certificate is revoked",
}


def check_signer_certificate(certificate: x509.Certificate, pki_dir: Path,
                             actor: SessionActor, now: dt.datetime) -> None:
    _check_chain(certificate, Path(pki_dir) / HEALTH_CA, now, "signature-cert-", _CARD)
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
    if signed.signer == dsg.SIGNER_ESTABLISHMENT:
        check_establishment_signer(signed.certificate, pki_dir, actor, now)
    else:
        check_signer_certificate(signed.certificate, pki_dir, actor, now)
    problem = dsg.mismatch(signed, submission_set.unique_id, submission_set.patient, digests)
    if problem is not None:
        raise refused("signature-manifest-mismatch",
                      f"La signature porte sur un autre lot / the signature covers other "
                      f"documents, bytes or another patient than this deposit: {problem}")
