"""A test health PKI for the virtual CPS: a root and an issuing CA, made on the fly or loaded.

Real CPS certificates come from the IGC-Santé CAs ("AC IGC-SANTE FORT PERSONNES" under
"AC RACINE IGC-SANTE ..."); the test CAs here carry the same names with " TEST" appended so a
test certificate can never be mistaken for a real one.

Subject of a card certificate (ours: the real layout was not found, see docs/cps.md):

    C=FR, O=<"TEST" for a test card, else "CPS">, title=<profession code, G15>,
    OU=<specialty code, when there is one>, SN=<last name>, GN=<first name>,
    serialNumber=<idNat_PS>, CN=<idNat_PS>/<first name> <last name>

A verifier reads idNat_PS from the subject ``serialNumber`` attribute (OID 2.5.4.5), the
profession from ``title`` (2.5.4.12) and the specialty from ``OU``.

The card's practice situations (the structures it may act for) travel in a non-critical
extension of ours, ``PRACTICE_STRUCTURES_OID`` (a UUID OID, 2.25...), whose value is a DER
``SEQUENCE OF PrintableString`` of structure ids: signed by the health CA, so a host can
check that the structure a session claims is one of the card's (docs/cps.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .atomic import write_atomic

ROOT_NAME = "AC RACINE IGC-SANTE TEST"
ISSUING_NAME = "AC IGC-SANTE FORT PERSONNES TEST"
KEY_SIZE = 2048
CA_FILE, CA_KEY_FILE, ROOT_FILE = "ca.pem", "ca.key", "root.pem"
PRACTICE_STRUCTURES_OID = x509.ObjectIdentifier("2.25.50182812799741733247400899438690472056")


class StructureIds(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.PrintableString


@dataclass(frozen=True)
class CertificateSubject:
    """What a card certificate says about its holder."""

    id_nat_ps: str
    last_name: str
    first_name: str
    profession_code: str
    specialty_code: str | None
    is_test_card: bool
    not_before: datetime
    not_after: datetime
    structures: tuple[str, ...] = ()
    """The structure ids of the card's practice situations."""


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ANS (TEST)"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    path_length: int,
) -> x509.Certificate:
    # Wide validity so that cards with past or future validity can still be issued.
    not_before = datetime(2010, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=365 * 40))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(issuer_key, hashes.SHA256())
    )


class TestHealthCA:
    """An issuing CA (with its root) that signs the certificates of virtual CPS cards."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        certificate: x509.Certificate,
        key: rsa.RSAPrivateKey,
        root: x509.Certificate | None = None,
    ) -> None:
        self.certificate = certificate
        self.key = key
        self.root = root

    @classmethod
    def create(cls, *, name: str = ISSUING_NAME, root_name: str = ROOT_NAME) -> TestHealthCA:
        root_key, key = new_rsa_key(), new_rsa_key()
        root = _ca_cert(_name(root_name), root_key, _name(root_name), root_key, 1)
        issuing = _ca_cert(_name(name), key, root.subject, root_key, 0)
        return cls(issuing, key, root)

    @classmethod
    def load(cls, directory: Path, password: bytes | None = None) -> TestHealthCA:
        """Load ``ca.pem`` and ``ca.key`` (PEM; encrypted under ``password`` if given, as
        `dmp-host pki init` writes it when DMP_PKI_PASSPHRASE is set) and ``root.pem``."""
        directory = Path(directory)
        certificate = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key(
            (directory / CA_KEY_FILE).read_bytes(), password=password
        )
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{directory / CA_KEY_FILE} is not an RSA private key")
        root_path = directory / ROOT_FILE
        root = None
        if root_path.exists():
            root = x509.load_pem_x509_certificate(root_path.read_bytes())
        return cls(certificate, key, root)

    def save(self, directory: Path) -> None:
        """Write ``ca.pem``, ``root.pem`` and ``ca.key`` (mode 0600) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CA_FILE).write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        if self.root is not None:
            (directory / ROOT_FILE).write_bytes(self.root.public_bytes(serialization.Encoding.PEM))
        write_private_key(directory / CA_KEY_FILE, self.key)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The issuing CA then the root (what a verifier needs above a card certificate)."""
        return (self.certificate,) if self.root is None else (self.certificate, self.root)

    def issue_card_certificates(
        self,
        identity: CertificateSubject,
        auth_key: rsa.RSAPublicKey | rsa.RSAPrivateKey,
        sign_key: rsa.RSAPublicKey | rsa.RSAPrivateKey,
    ) -> tuple[x509.Certificate, x509.Certificate]:
        """The authentication and signature certificates of one card."""
        return (
            self._issue(identity, _public(auth_key), signature=False),
            self._issue(identity, _public(sign_key), signature=True),
        )

    def _issue(
        self, who: CertificateSubject, public_key: rsa.RSAPublicKey, *, signature: bool
    ) -> x509.Certificate:
        attributes = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TEST" if who.is_test_card else "CPS"),
            x509.NameAttribute(NameOID.TITLE, who.profession_code),
        ]
        if who.specialty_code:
            attributes.append(
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, who.specialty_code)
            )
        attributes += [
            x509.NameAttribute(NameOID.SURNAME, who.last_name),
            x509.NameAttribute(NameOID.GIVEN_NAME, who.first_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, who.id_nat_ps),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"{who.id_nat_ps}/{who.first_name} {who.last_name}"[:64]
            ),
        ]
        usage = x509.KeyUsage(
            digital_signature=not signature, content_commitment=signature,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(who.not_before)
            .not_valid_after(who.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if not signature:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        if who.structures:
            value = StructureIds(list(who.structures)).dump()
            builder = builder.add_extension(
                x509.UnrecognizedExtension(PRACTICE_STRUCTURES_OID, value), critical=False
            )
        return builder.sign(self.key, hashes.SHA256())


def _public(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> rsa.RSAPublicKey:
    return key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write a PEM private key readable by its owner only (created 0600, never wider)."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, data)


def read_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key
