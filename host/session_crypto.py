"""The cryptographic checks that open a card-rooted session (pure: no database, no clock).

The host opens a professional session in three steps (docs/host-pki-tls.md):

1. `verify_card_certificate`: the CPS authentication certificate is from the health CA, in
   its validity, not revoked, fit for authentication, of the category this host accepts;
2. `verify_statement`: the card signed the `wire.SessionStatement`, which names this TLS
   connection's workstation certificate, the session key, the holder, a fresh time, and a
   challenge the host issued;
3. `issue_session_certificate`: a short-lived certificate for the session key, from the
   session CA, whose subject is the professional.

Every refusal is a `SessionRefused` with a stable ``code`` (for programs and tests) and a
sentence in French and English (for people).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wire.session import SessionStatement, sha256

from .pki import CertificateAuthority

Mode = Literal["test", "production"]
SessionPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
TEST_ORGANIZATION = "TEST"  # subject O of a test card (docs/cps.md); a real card says "CPS"
CARD_ORGANIZATIONS = ("TEST", "CPS")
# A session certificate starts a little before "now" so that a client whose clock is
# slightly behind still accepts it.
SESSION_BACKDATE = timedelta(minutes=1)

MESSAGES = {
    "card-cert-malformed": (
        "Le certificat de la carte est illisible ou incomplet.",
        "The card certificate cannot be read or lacks holder data.",
    ),
    "card-cert-untrusted": (
        "Le certificat de la carte n'a pas été émis par l'autorité de santé reconnue.",
        "The card certificate was not issued by the trusted health authority.",
    ),
    "card-cert-not-yet-valid": (
        "Le certificat de la carte n'est pas encore valide.",
        "The card certificate is not valid yet.",
    ),
    "card-cert-expired": (
        "Le certificat de la carte a expiré : la carte doit être renouvelée.",
        "The card certificate has expired: the card must be renewed.",
    ),
    "crl-unavailable": (
        "La liste de révocation de l'autorité de santé est absente ou périmée.",
        "The health authority's revocation list is missing, invalid or out of date.",
    ),
    "card-cert-revoked": (
        "Le certificat de la carte a été révoqué (carte perdue, volée ou remplacée).",
        "The card certificate has been revoked (card lost, stolen or replaced).",
    ),
    "card-cert-unfit": (
        "Ce certificat de la carte ne sert pas à l'authentification.",
        "This card certificate is not meant for authentication.",
    ),
    "test-card-refused": (
        "Carte de test refusée : ce serveur est un serveur de production.",
        "Test card refused: this is a production host.",
    ),
    "real-card-refused": (
        "Carte réelle refusée : ce serveur est un serveur de test.",
        "Real card refused: this is a test host.",
    ),
    "bad-signature": (
        "La signature de la carte ne correspond pas à la demande d'ouverture de session.",
        "The card's signature does not match the session request.",
    ),
    "identity-mismatch": (
        "La demande de session ne porte pas l'identifiant du titulaire de la carte.",
        "The session request does not name the card holder.",
    ),
    "session-key-mismatch": (
        "La clé de session présentée n'est pas celle que la carte a signée.",
        "The session key presented is not the one the card signed.",
    ),
    "workstation-mismatch": (
        "La demande de session a été signée pour un autre poste de travail.",
        "The session request was signed for another workstation.",
    ),
    "clock-skew": (
        "L'heure du poste de travail est trop éloignée de celle du serveur.",
        "The workstation clock is too far from the host's.",
    ),
    "structure-not-on-card": (
        "La structure demandée n'est pas une situation d'exercice de cette carte.",
        "The structure requested is not one of this card's practice situations.",
    ),
    "challenge-unknown": (
        "Le défi de la demande de session est inconnu, expiré ou déjà utilisé.",
        "The session challenge is unknown, expired or already used.",
    ),
}


class SessionRefused(Exception):
    """A session request the host refuses. ``code`` is stable (a key of `MESSAGES`)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        if message is None:
            french, english = MESSAGES[code]
            message = f"{french} / {english}"
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class CardHolder:
    """The professional a verified card certificate names."""

    id_nat_ps: str
    profession: str
    specialty: str | None
    last_name: str
    first_name: str
    is_test_card: bool
    serial: int  # the certificate's serial number
    structures: tuple[str, ...] = ()
    """The structures of the card's practice situations (signed by the health CA)."""

    def check_structure(self, structure_id: str) -> None:
        """SessionRefused("structure-not-on-card") unless the card holds ``structure_id``:
        a client may not act for a structure it names at will (a care team is a structure)."""
        if structure_id not in self.structures:
            raise SessionRefused("structure-not-on-card")


@dataclass(frozen=True)
class SubjectFields:
    """What a card or session certificate subject says (one layout for both, docs/cps.md)."""

    id_nat_ps: str
    profession: str
    specialty: str | None
    last_name: str
    first_name: str
    organization: str


def subject_fields(certificate: x509.Certificate) -> SubjectFields:
    """Read a card or session certificate subject; SessionRefused("card-cert-malformed") when
    an attribute is missing or repeated."""

    def one(oid: x509.ObjectIdentifier, *, required: bool = True) -> str | None:
        values = certificate.subject.get_attributes_for_oid(oid)
        if len(values) > 1 or (required and not values):
            raise SessionRefused("card-cert-malformed")
        if not values:
            return None
        value = values[0].value
        if not isinstance(value, str) or not value:
            raise SessionRefused("card-cert-malformed")
        return value

    return SubjectFields(
        id_nat_ps=one(NameOID.SERIAL_NUMBER),  # type: ignore[arg-type]
        profession=one(NameOID.TITLE),  # type: ignore[arg-type]
        specialty=one(NameOID.ORGANIZATIONAL_UNIT_NAME, required=False),
        last_name=one(NameOID.SURNAME),  # type: ignore[arg-type]
        first_name=one(NameOID.GIVEN_NAME),  # type: ignore[arg-type]
        organization=one(NameOID.ORGANIZATION_NAME),  # type: ignore[arg-type]
    )


# -- 1. the card certificate --------------------------------------------------------------------


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def verify_card_certificate(
    cert_der: bytes,
    health_ca: CertificateAuthority,
    crl: x509.CertificateRevocationList,
    *,
    mode: Mode,
    now: datetime,
) -> CardHolder:
    """Check a CPS authentication certificate, in this order: readable, issued by the health
    CA (signature, and the CA under its root), valid at ``now``, CRL from that CA and current,
    not revoked, fit for authentication, holder data present, category accepted by ``mode``
    (a production host refuses test cards, a test host real ones). Raises SessionRefused."""
    if mode not in ("test", "production"):
        raise ValueError(f"mode is 'test' or 'production', not {mode!r}")
    try:
        certificate = x509.load_der_x509_certificate(cert_der)
        public_key = certificate.public_key()
    except (ValueError, TypeError):
        raise SessionRefused("card-cert-malformed") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SessionRefused("card-cert-malformed")

    issuing = health_ca.certificate
    trusted = _issued_by(certificate, issuing) and (
        health_ca.root is None or _issued_by(issuing, health_ca.root)
    )
    if not trusted:
        raise SessionRefused("card-cert-untrusted")
    if now < certificate.not_valid_before_utc:
        raise SessionRefused("card-cert-not-yet-valid")
    if now > certificate.not_valid_after_utc:
        raise SessionRefused("card-cert-expired")

    if (
        crl.issuer != issuing.subject
        or not crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
        or crl.next_update_utc is None
        or now > crl.next_update_utc
    ):
        raise SessionRefused("crl-unavailable")
    if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
        raise SessionRefused("card-cert-revoked")

    _check_authentication_use(certificate)
    fields = subject_fields(certificate)
    if fields.organization not in CARD_ORGANIZATIONS:
        raise SessionRefused("card-cert-malformed")
    is_test = fields.organization == TEST_ORGANIZATION
    if is_test and mode == "production":
        raise SessionRefused("test-card-refused")
    if not is_test and mode == "test":
        raise SessionRefused("real-card-refused")
    return CardHolder(
        fields.id_nat_ps, fields.profession, fields.specialty, fields.last_name,
        fields.first_name, is_test, certificate.serial_number,
        card_structures(certificate),
    )


PRACTICE_STRUCTURES_OID = x509.ObjectIdentifier("2.25.50182812799741733247400899438690472056")
"""Our extension listing a card's practice structures (docs/cps.md; written by the card's
issuer, `cardreader.virtual.pki` for the test health CA)."""


class _StructureIds(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.PrintableString


def card_structures(certificate: x509.Certificate) -> tuple[str, ...]:
    """The structure ids the card certificate lists (none when the extension is absent);
    SessionRefused("card-cert-malformed") when it is there but unreadable."""
    try:
        raw = certificate.extensions.get_extension_for_oid(PRACTICE_STRUCTURES_OID).value
    except x509.ExtensionNotFound:
        return ()
    try:
        parsed = _StructureIds.load(raw.value, strict=True)  # type: ignore[attr-defined]
        values = tuple(str(item.native) for item in parsed)
    except (ValueError, TypeError):
        raise SessionRefused("card-cert-malformed") from None
    if len(values) > 16 or not all(v.isascii() and v.isalnum() for v in values):
        raise SessionRefused("card-cert-malformed")
    return values


def _check_authentication_use(certificate: x509.Certificate) -> None:
    """Key usage digitalSignature, EKU (when present) clientAuth, not a CA: the
    authentication certificate, not the card's non-repudiation one."""
    extensions = certificate.extensions
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise SessionRefused("card-cert-unfit")
    except x509.ExtensionNotFound:
        raise SessionRefused("card-cert-unfit") from None
    try:
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise SessionRefused("card-cert-unfit")
    except x509.ExtensionNotFound:
        pass
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise SessionRefused("card-cert-unfit")
    except x509.ExtensionNotFound:
        pass


# -- 2. the signed statement --------------------------------------------------------------------


def public_key_sha256(public_key: SessionPublicKey) -> bytes:
    """SHA-256 of the key's DER SubjectPublicKeyInfo (`SessionStatement`'s binding)."""
    return sha256(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def verify_statement(
    statement: SessionStatement,
    signature: bytes,
    card_cert: x509.Certificate,
    *,
    tls_client_cert_sha256: bytes,
    now: datetime,
    max_skew: timedelta,
    session_public_key: SessionPublicKey,
    challenge_known: Callable[[bytes], bool],
) -> None:
    """Check a statement the card signed, in this order: the RSA PKCS#1 v1.5 SHA-256
    signature by ``card_cert``'s key over ``statement.to_bytes()``; the statement names the
    card holder (``id_nat_ps``); it names the session key presented (when given); its
    workstation fingerprint is the TLS client certificate's; its time is within ``max_skew``
    of ``now``; its challenge is one the host issued (``challenge_known``, called last, so
    it may consume the challenge once everything else holds). ``card_cert`` must have passed
    `verify_card_certificate`. Raises SessionRefused.
    """
    public_key = card_cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SessionRefused("card-cert-malformed")
    try:
        public_key.verify(signature, statement.to_bytes(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise SessionRefused("bad-signature") from None
    if subject_fields(card_cert).id_nat_ps != statement.id_nat_ps:
        raise SessionRefused("identity-mismatch")
    if not hmac.compare_digest(
        public_key_sha256(session_public_key), statement.session_public_key_sha256
    ):
        raise SessionRefused("session-key-mismatch")
    if not hmac.compare_digest(statement.workstation_cert_sha256, tls_client_cert_sha256):
        raise SessionRefused("workstation-mismatch")
    if abs(statement.time - now) > max_skew:
        raise SessionRefused("clock-skew")
    if not challenge_known(statement.challenge):
        raise SessionRefused("challenge-unknown")


# -- 3. the session certificate -----------------------------------------------------------------


def session_subject(holder: CardHolder, structure_id: str) -> x509.Name:
    """The card's subject layout with the structure in O: `subject_fields` reads both."""
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, structure_id),
        x509.NameAttribute(NameOID.TITLE, holder.profession),
    ]
    if holder.specialty:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, holder.specialty))
    attributes += [
        x509.NameAttribute(NameOID.SURNAME, holder.last_name),
        x509.NameAttribute(NameOID.GIVEN_NAME, holder.first_name),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, holder.id_nat_ps),
        x509.NameAttribute(
            NameOID.COMMON_NAME,
            f"{holder.id_nat_ps}/{holder.first_name} {holder.last_name}"[:64],
        ),
    ]
    return x509.Name(attributes)


def issue_session_certificate(
    session_ca: CertificateAuthority,
    session_public_key: SessionPublicKey,
    holder: CardHolder,
    structure_id: str,
    lifetime: timedelta,
    *,
    now: datetime | None = None,
) -> x509.Certificate:
    """A session certificate (clientAuth) for ``session_public_key``, valid until
    ``now + lifetime``, whose subject is the professional in ``structure_id``."""
    if lifetime <= timedelta(0):
        raise ValueError("a session lifetime is positive")
    now = now or datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(session_subject(holder, structure_id))
        .issuer_name(session_ca.certificate.subject)
        .public_key(session_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SESSION_BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(session_public_key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(session_ca.key.public_key()),
            False,
        )
        .sign(session_ca.key, hashes.SHA256())
    )
