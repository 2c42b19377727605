"""The reference host's test PKI: made by `dmp-host pki init DIR`, never committed.

Layout (docs/host-pki-tls.md)::

    DIR/health-ca/         ca.pem ca.key root.pem crl.pem   issues CPS card certificates
    DIR/establishment-ca/  ca.pem ca.key crl.pem            issues workstation and server certs
    DIR/session-ca/        ca.pem ca.key crl.pem            issues short-lived session certs
    DIR/server/            cert.pem key.pem ca.pem          the host's TLS identity (+ its CA)
    DIR/workstations/      <name>.pem <name>.key            workstation client certificates

``health-ca`` has exactly the layout of `cardreader.virtual.pki.TestHealthCA` (the issuing CA
"AC IGC-SANTE FORT PERSONNES TEST" in ``ca.pem``/``ca.key``, its root "AC RACINE IGC-SANTE
TEST" in ``root.pem``), so ``dmp-vcard --ca DIR/health-ca`` issues virtual cards from it. The
health root's key is thrown away once it has signed the issuing CA: nothing else needs it.
The establishment and session CAs are single self-signed roots: they are the only CAs the TLS
server trusts (`host.tls`).

Private keys are files of mode 0600. With the environment variable ``DMP_PKI_PASSPHRASE`` set
they are encrypted with it (and read with it); otherwise they are written in clear and a
warning line is printed on stderr: acceptable for a test PKI only.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSPHRASE_ENV = "DMP_PKI_PASSPHRASE"
KEY_SIZE = 2048

HEALTH_CA, ESTABLISHMENT_CA, SESSION_CA = "health-ca", "establishment-ca", "session-ca"
SERVER, WORKSTATIONS = "server", "workstations"
CA_FILE, CA_KEY_FILE, ROOT_FILE, CRL_FILE = "ca.pem", "ca.key", "root.pem", "crl.pem"
SANDBOX_WORKSTATION = "sandbox"

HEALTH_ROOT_NAME = "AC RACINE IGC-SANTE TEST"
HEALTH_ISSUING_NAME = "AC IGC-SANTE FORT PERSONNES TEST"
ESTABLISHMENT_CA_NAME = "AC DMP ETABLISSEMENTS TEST"
SESSION_CA_NAME = "AC DMP SESSIONS TEST"
TEST_ORGANIZATION = "ANS (TEST)"

DEFAULT_CRL_LIFETIME = timedelta(days=30)
CA_LIFETIME = timedelta(days=20 * 365)
SERVER_LIFETIME = timedelta(days=825)
WORKSTATION_LIFETIME = timedelta(days=3 * 365)
# Card and workstation certificates may be issued with dates in the past (tests of expired
# ones), so the CAs start well before today.
CA_BACKDATE = timedelta(days=2 * 365)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PkiError(Exception):
    """A PKI directory or file that is missing, unreadable or inconsistent."""


# -- keys ---------------------------------------------------------------------------------------


def passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def warn_if_unencrypted() -> None:
    if passphrase() is None:
        print(
            f"warning: {PASSPHRASE_ENV} is not set: private keys are written unencrypted "
            "(acceptable for a test PKI only)",
            file=sys.stderr,
        )


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def write_private_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """PEM PKCS#8, created 0600 (never wider, even for a moment), encrypted when
    ``DMP_PKI_PASSPHRASE`` is set."""
    secret = passphrase()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        os.write(fd, data)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """Read a key written by `write_private_key` (with ``DMP_PKI_PASSPHRASE`` if set)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=passphrase())
    except (OSError, ValueError, TypeError) as error:
        raise PkiError(f"{path}: cannot read the private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PkiError(f"{path} is not an RSA private key")
    return key


def _write_pem(path: Path, *objects: x509.Certificate | x509.CertificateRevocationList) -> None:
    path.write_bytes(b"".join(o.public_bytes(serialization.Encoding.PEM) for o in objects))


def load_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise PkiError(f"{path}: cannot read the certificate ({error})") from None


def load_crl(path: Path) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(Path(path).read_bytes())
    except (OSError, ValueError) as error:
        raise PkiError(f"{path}: cannot read the CRL ({error})") from None


# -- certificate authorities --------------------------------------------------------------------


@dataclass
class CertificateAuthority:
    """An issuing CA loaded from its directory (``ca.pem``, ``ca.key``, optional ``root.pem``,
    ``crl.pem``)."""

    directory: Path
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    root: x509.Certificate | None = None

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The issuing CA then its root when it has one."""
        return (self.certificate,) if self.root is None else (self.certificate, self.root)

    @property
    def crl_path(self) -> Path:
        return self.directory / CRL_FILE

    def crl(self) -> x509.CertificateRevocationList:
        return load_crl(self.crl_path)

    def issued(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` carries this CA's signature."""
        if certificate.issuer != self.certificate.subject:
            return False
        try:
            certificate.verify_directly_issued_by(self.certificate)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    def sign_crl(
        self,
        revoked: list[x509.RevokedCertificate],
        *,
        number: int,
        now: datetime | None = None,
        lifetime: timedelta = DEFAULT_CRL_LIFETIME,
    ) -> x509.CertificateRevocationList:
        now = now or datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + lifetime)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        for entry in revoked:
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, hashes.SHA256())


def load_ca(directory: Path) -> CertificateAuthority:
    """Load one CA directory of the PKI (``DIR/health-ca``, ``DIR/session-ca``, ...)."""
    directory = Path(directory)
    certificate = load_certificate(directory / CA_FILE)
    key = load_private_key(directory / CA_KEY_FILE)
    if key.public_key().public_numbers() != _rsa_public(certificate).public_numbers():
        raise PkiError(f"{directory}: ca.key does not match ca.pem")
    root = load_certificate(directory / ROOT_FILE) if (directory / ROOT_FILE).exists() else None
    return CertificateAuthority(directory, certificate, key, root)


def load_health_ca(pki_dir: Path) -> CertificateAuthority:
    return load_ca(Path(pki_dir) / HEALTH_CA)


def load_establishment_ca(pki_dir: Path) -> CertificateAuthority:
    return load_ca(Path(pki_dir) / ESTABLISHMENT_CA)


def load_session_ca(pki_dir: Path) -> CertificateAuthority:
    return load_ca(Path(pki_dir) / SESSION_CA)


_CA_CACHE: dict[Path, tuple[object, CertificateAuthority]] = {}
_CA_CACHE_LOCK = threading.Lock()


def _ca_files_state(directory: Path) -> object:
    state: list[tuple[int, ...] | None] = []
    for name in (CA_FILE, CA_KEY_FILE, ROOT_FILE):
        try:
            stat = (directory / name).stat()
        except FileNotFoundError:
            state.append(None)
            continue
        state.append((stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino))
    return tuple(state), passphrase()


def cached_ca(directory: Path) -> CertificateAuthority:
    """`load_ca`, read again only when one of the CA's files changes (or the passphrase):
    the opening of a session needs the health and session CAs on every request, and loading
    a CA checks its RSA key (~45 ms each). A file that cannot be read raises PkiError as
    `load_ca` does; nothing is kept then."""
    directory = Path(directory)
    state = _ca_files_state(directory)
    with _CA_CACHE_LOCK:
        cached = _CA_CACHE.get(directory)
    if cached is not None and cached[0] == state:
        return cached[1]
    authority = load_ca(directory)
    with _CA_CACHE_LOCK:
        _CA_CACHE[directory] = (state, authority)
    return authority


def cached_health_ca(pki_dir: Path) -> CertificateAuthority:
    return cached_ca(Path(pki_dir) / HEALTH_CA)


def cached_session_ca(pki_dir: Path) -> CertificateAuthority:
    return cached_ca(Path(pki_dir) / SESSION_CA)


def _rsa_public(certificate: x509.Certificate) -> rsa.RSAPublicKey:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PkiError("CA certificates of this PKI carry RSA keys")
    return key


def _name(common_name: str, organization: str = TEST_ORGANIZATION) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    path_length: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer_key is not key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
        crl_sign=crl_sign, encipher_only=False, decipher_only=False,
    )


def leaf_certificate(
    ca: CertificateAuthority,
    subject: x509.Name,
    public_key: rsa.RSAPublicKey | object,
    *,
    not_before: datetime,
    not_after: datetime,
    usage: x509.ObjectIdentifier,
    alternative_names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """An end-entity certificate signed by ``ca`` (one EKU: clientAuth or serverAuth)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),  # type: ignore[arg-type]
            False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )
    if alternative_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternative_names), critical=False
        )
    return builder.sign(ca.key, hashes.SHA256())


# -- the whole PKI ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PkiPaths:
    """Where each file of a PKI directory lives."""

    root: Path

    @property
    def health_ca(self) -> Path:
        return self.root / HEALTH_CA

    @property
    def establishment_ca(self) -> Path:
        return self.root / ESTABLISHMENT_CA

    @property
    def session_ca(self) -> Path:
        return self.root / SESSION_CA

    @property
    def server_cert(self) -> Path:
        return self.root / SERVER / "cert.pem"

    @property
    def server_key(self) -> Path:
        return self.root / SERVER / "key.pem"

    @property
    def server_ca(self) -> Path:
        """What a client trusts to verify the host (the CA that issued the server cert)."""
        return self.root / SERVER / CA_FILE

    def workstation(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of a workstation."""
        _check_name(name)
        return (
            self.root / WORKSTATIONS / f"{name}.pem",
            self.root / WORKSTATIONS / f"{name}.key",
        )


def _check_name(name: str) -> None:
    # The name becomes a file name: no separators, no dot-dot, no hidden files.
    if not _NAME.fullmatch(name):
        raise PkiError(
            f"workstation name {name!r}: letters, digits, '.', '_' and '-' only (64 at most)"
        )


def _new_root_ca(directory: Path, common_name: str, now: datetime) -> CertificateAuthority:
    directory.mkdir(parents=True, exist_ok=True)
    key = new_key()
    name = _name(common_name)
    certificate = _ca_certificate(
        name, key, name, key, path_length=0,
        not_before=now - CA_BACKDATE, not_after=now + CA_LIFETIME,
    )
    _write_pem(directory / CA_FILE, certificate)
    write_private_key(directory / CA_KEY_FILE, key)
    return CertificateAuthority(directory, certificate, key)


def _new_health_ca(directory: Path) -> CertificateAuthority:
    directory.mkdir(parents=True, exist_ok=True)
    root_key, key = new_key(), new_key()
    root_name, name = _name(HEALTH_ROOT_NAME), _name(HEALTH_ISSUING_NAME)
    # Wide validity, as TestHealthCA: virtual cards with past or future dates can be issued.
    start = datetime(2010, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=365 * 40)
    root = _ca_certificate(
        root_name, root_key, root_name, root_key, path_length=1, not_before=start, not_after=end
    )
    issuing = _ca_certificate(
        name, key, root_name, root_key, path_length=0, not_before=start, not_after=end
    )
    _write_pem(directory / CA_FILE, issuing)
    _write_pem(directory / ROOT_FILE, root)
    write_private_key(directory / CA_KEY_FILE, key)
    return CertificateAuthority(directory, issuing, key, root)


def init_pki(
    directory: Path,
    *,
    force: bool = False,
    now: datetime | None = None,
    crl_lifetime: timedelta = DEFAULT_CRL_LIFETIME,
) -> PkiPaths:
    """Generate the whole test PKI under ``directory`` (see the module docstring).

    Refuses (PkiError) to overwrite an existing PKI unless ``force``.
    """
    paths = PkiPaths(Path(directory))
    if not force and any(
        (p / CA_FILE).exists() for p in (paths.health_ca, paths.establishment_ca, paths.session_ca)
    ):
        raise PkiError(f"{directory} already holds a PKI (use --force to replace it)")
    warn_if_unencrypted()
    now = now or datetime.now(UTC)
    paths.root.mkdir(parents=True, exist_ok=True)
    health = _new_health_ca(paths.health_ca)
    establishment = _new_root_ca(paths.establishment_ca, ESTABLISHMENT_CA_NAME, now)
    session = _new_root_ca(paths.session_ca, SESSION_CA_NAME, now)
    for ca in (health, establishment, session):
        _write_pem(ca.crl_path, ca.sign_crl([], number=1, now=now, lifetime=crl_lifetime))

    server_dir = paths.server_cert.parent
    server_dir.mkdir(parents=True, exist_ok=True)
    server_key = new_key()
    server = leaf_certificate(
        establishment, _name("localhost", "DMP HOST (TEST)"), server_key.public_key(),
        not_before=now - timedelta(minutes=5), not_after=now + SERVER_LIFETIME,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alternative_names=[
            x509.DNSName("localhost"),
            x509.IPAddress(IPv4Address("127.0.0.1")),
            x509.IPAddress(IPv6Address("::1")),
        ],
    )
    _write_pem(paths.server_cert, server)
    write_private_key(paths.server_key, server_key)
    _write_pem(paths.server_ca, establishment.certificate)
    issue_workstation(paths.root, SANDBOX_WORKSTATION, now=now, _warn=False)
    return paths


def issue_workstation(
    pki_dir: Path,
    name: str,
    *,
    organization: str = "ETABLISSEMENT DE TEST",
    now: datetime | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    lifetime: timedelta = WORKSTATION_LIFETIME,
    _warn: bool = True,
) -> tuple[Path, Path]:
    """Issue a workstation client certificate (clientAuth, from the establishment CA) into
    ``DIR/workstations/<name>.pem`` and ``.key``; returns both paths.

    ``not_before``/``not_after`` override the validity (default: from now for ``lifetime``).
    """
    paths = PkiPaths(Path(pki_dir))
    cert_path, key_path = paths.workstation(name)
    ca = load_establishment_ca(paths.root)
    if _warn:
        warn_if_unencrypted()
    now = now or datetime.now(UTC)
    start = not_before or now - timedelta(minutes=5)
    end = not_after or now + lifetime
    key = new_key()
    certificate = leaf_certificate(
        ca, _name(name, organization), key.public_key(), not_before=start, not_after=end,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    write_private_key(key_path, key)
    _write_pem(cert_path, certificate)
    return cert_path, key_path


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def _entries(
    crl: x509.CertificateRevocationList,
) -> list[x509.RevokedCertificate]:
    # Rebuilt rather than reused: a loaded entry is kept exactly (serial, date, reason).
    entries = []
    for old in crl:
        builder = (
            x509.RevokedCertificateBuilder()
            .serial_number(old.serial_number)
            .revocation_date(old.revocation_date_utc)
        )
        for extension in old.extensions:
            builder = builder.add_extension(extension.value, extension.critical)
        entries.append(builder.build())
    return entries


def revoke(
    ca_dir: Path,
    certificate: x509.Certificate,
    *,
    reason: x509.ReasonFlags | None = None,
    now: datetime | None = None,
    crl_lifetime: timedelta = DEFAULT_CRL_LIFETIME,
) -> x509.CertificateRevocationList:
    """Add ``certificate`` to the CRL of the CA in ``ca_dir`` and rewrite ``crl.pem``.

    Raises PkiError when that CA did not issue the certificate. Revoking twice is harmless.
    """
    ca = load_ca(ca_dir)
    if not ca.issued(certificate):
        raise PkiError(f"{ca_dir}: this CA did not issue the certificate")
    now = now or datetime.now(UTC)
    old = ca.crl()
    entries = _entries(old)
    if old.get_revoked_certificate_by_serial_number(certificate.serial_number) is None:
        builder = (
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(now)
        )
        if reason is not None:
            builder = builder.add_extension(x509.CRLReason(reason), critical=False)
        entries.append(builder.build())
    crl = ca.sign_crl(entries, number=_crl_number(old) + 1, now=now, lifetime=crl_lifetime)
    _write_pem(ca.crl_path, crl)
    return crl


def refresh_crl(
    ca_dir: Path, *, now: datetime | None = None, crl_lifetime: timedelta = DEFAULT_CRL_LIFETIME
) -> x509.CertificateRevocationList:
    """Re-sign the CA's CRL with the same entries and a new validity (CRLs expire: an expired
    CRL makes the TLS server refuse every client)."""
    ca = load_ca(ca_dir)
    old = ca.crl()
    crl = ca.sign_crl(_entries(old), number=_crl_number(old) + 1, now=now, lifetime=crl_lifetime)
    _write_pem(ca.crl_path, crl)
    return crl


def issuer_directory(pki_dir: Path, certificate: x509.Certificate) -> Path:
    """The directory of the PKI's CA that issued ``certificate`` (PkiError if none did)."""
    paths = PkiPaths(Path(pki_dir))
    for directory in (paths.health_ca, paths.establishment_ca, paths.session_ca):
        if (directory / CA_FILE).exists():
            ca_cert = load_certificate(directory / CA_FILE)
            if certificate.issuer == ca_cert.subject:
                try:
                    certificate.verify_directly_issued_by(ca_cert)
                except (InvalidSignature, ValueError, TypeError):
                    continue  # a different key under the same name: keep looking
                return directory
    raise PkiError(f"no CA of {pki_dir} issued this certificate")
