"""The provider's TLS identity: a server certificate from the test PKI's establishment CA
(``PKI/psc/cert.pem``, ``key.pem``, ``ca.pem``: what the host, the agent and the e-CPS app
trust), made on first use. Unlike the host, the provider asks for no client certificate: a
browser and a phone reach it too; clients authenticate at the OAuth layer."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import pki

PSC_DIR = "psc"


def psc_paths(pki_dir: Path) -> tuple[Path, Path, Path]:
    """(certificate, key, CA) of the provider in ``pki_dir``."""
    directory = Path(pki_dir) / PSC_DIR
    return directory / "cert.pem", directory / "key.pem", directory / pki.CA_FILE


def ensure_certificate(pki_dir: Path) -> tuple[Path, Path, Path]:
    """The provider's certificate, issued now if the PKI has none yet."""
    cert, key_path, ca = psc_paths(pki_dir)
    if cert.exists() and key_path.exists():
        return cert, key_path, ca
    authority = pki.load_establishment_ca(Path(pki_dir))
    now = datetime.now(UTC)
    key = pki.new_key()
    certificate = pki.leaf_certificate(
        authority,
        x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                   x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PRO SANTE CONNECT (TEST)"),
                   x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        key.public_key(), not_before=now - timedelta(minutes=5),
        not_after=now + pki.SERVER_LIFETIME, usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alternative_names=[x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1")),
                           x509.IPAddress(IPv6Address("::1"))],
    )
    cert.parent.mkdir(parents=True, exist_ok=True)
    pki.write_private_key(key_path, key)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    ca.write_bytes(authority.certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key_path, ca


def psc_ssl_context(pki_dir: Path) -> ssl.SSLContext:
    """TLS 1.3 server context of the provider (no client certificate asked)."""
    cert, key, _ca = ensure_certificate(pki_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    secret = pki.passphrase()
    context.load_cert_chain(cert, key, password=secret.decode("utf-8") if secret else None)
    context.set_alpn_protocols(["http/1.1"])
    return context
