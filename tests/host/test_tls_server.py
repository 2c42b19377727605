"""The host's TLS layer at its boundary: a real uvicorn server with host.tls's context and
protocol, reached by curl, openssl s_client and httpx over loopback."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from host import pki, tls
from host.session_crypto import CardHolder, issue_session_certificate

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl"
)


@dataclass
class Seen:
    """What the app received: one entry per request that reached it."""

    subjects: list[str | None] = field(default_factory=list)


def echo_app(seen: Seen) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        tls_info = request.scope.get("extensions", {}).get("tls")
        if tls_info is None:
            return JSONResponse({"tls": None})
        chain = tls_info["client_cert_chain"]
        subject = (
            x509.load_pem_x509_certificate(chain[0].encode()).subject.rfc4514_string()
            if chain else None
        )
        seen.subjects.append(subject)
        return JSONResponse(
            {"subject": subject, "name": tls_info["client_cert_name"],
             "tls_version": tls_info["tls_version"], "chain": len(chain)}
        )

    return Starlette(routes=[Route("/whoami", echo)])


@dataclass
class Setup:
    paths: pki.PkiPaths
    url: str
    seen: Seen
    context: ssl.SSLContext
    certs: dict[str, tuple[Path, Path]]
    crl_time: datetime


def _write(directory: Path, name: str, cert: x509.Certificate, key: object) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _foreign_workstation(directory: Path, paths: pki.PkiPaths) -> tuple[Path, Path]:
    """A workstation certificate from a CA with the establishment CA's very name, another
    key: what an attacker could forge."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = pki.load_establishment_ca(paths.root).certificate.subject
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "intruder")]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _write(directory, "foreign", cert, key)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("tls")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(pki.PASSPHRASE_ENV, raising=False)
        paths = pki.init_pki(base / "pki")
        now = datetime.now(UTC)
        certs = {
            "sandbox": paths.workstation("sandbox"),
            "expired": pki.issue_workstation(
                paths.root, "expired", not_before=now - timedelta(days=30),
                not_after=now - timedelta(days=1),
            ),
            "revoked": pki.issue_workstation(paths.root, "revoked"),
            "late-revoked": pki.issue_workstation(paths.root, "late-revoked"),
            "foreign": _foreign_workstation(base, paths),
        }
        revoked = x509.load_pem_x509_certificate(certs["revoked"][0].read_bytes())
        pki.revoke(paths.establishment_ca, revoked, now=now)

        session_key = ec.generate_private_key(ec.SECP256R1())
        holder = CardHolder("810001234565", "10", "SM54", "MARTIN", "Claire", True, 1)
        session_cert = issue_session_certificate(
            pki.load_session_ca(paths.root), session_key.public_key(), holder,
            "581234567800015", timedelta(minutes=10),
        )
        certs["session"] = _write(base, "session", session_cert, session_key)

        seen = Seen()
        context = tls.server_ssl_context(paths.root)
        with tls.running_server(echo_app(seen), context) as url:
            yield Setup(paths, url, seen, context, certs, now)


def curl(setup: Setup, who: str | None, *extra: str) -> subprocess.CompletedProcess[str]:
    command = ["curl", "-sS", "--max-time", "5", "--cacert", str(setup.paths.server_ca)]
    if who is not None:
        cert, key = setup.certs[who]
        command += ["--cert", str(cert), "--key", str(key)]
    return subprocess.run(
        [*command, *extra, setup.url + "/whoami"], capture_output=True, text=True, timeout=10
    )


def s_client(setup: Setup, who: str | None, *extra: str) -> str:
    port = setup.url.rsplit(":", 1)[1]
    command = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
        "-CAfile", str(setup.paths.server_ca), "-verify_return_error", "-ign_eof",
    ]
    if who is not None:
        cert, key = setup.certs[who]
        command += ["-cert", str(cert), "-key", str(key)]
    result = subprocess.run(
        [*command, *extra], input="GET /whoami HTTP/1.1\r\nHost: localhost\r\n"
        "Connection: close\r\n\r\n", capture_output=True, text=True, timeout=10,
    )
    return result.stdout + result.stderr


def test_a_workstation_certificate_reaches_the_app_which_sees_its_subject(
    setup: Setup,
) -> None:
    result = curl(setup, "sandbox", "-w", "\n%{http_code}")
    body, status = result.stdout.rsplit("\n", 1)
    assert (result.returncode, status) == (0, "200"), result.stderr
    answer = httpx.Response(200, content=body).json()
    assert answer["subject"] == "CN=sandbox,O=ETABLISSEMENT DE TEST,C=FR"
    assert answer["name"] == answer["subject"]
    assert answer["tls_version"] == 0x0304 and answer["chain"] == 1


def test_s_client_sees_tls13_and_a_verified_server(setup: Setup) -> None:
    output = s_client(setup, "sandbox")
    assert "Protocol  : TLSv1.3" in output or "TLSv1.3" in output
    assert "Verify return code: 0 (ok)" in output
    assert "HTTP/1.1 200 OK" in output and "CN=sandbox" in output


REFUSED = [
    (None, (), ()),
    ("foreign", (), ()),
    ("expired", (), ()),
    ("revoked", (), ()),
    ("sandbox", ("-tls1_2",), ("--tls-max", "1.2")),
]
REFUSED_IDS = ["no-certificate", "other-ca", "expired", "revoked", "tls1.2"]


@pytest.mark.parametrize(("who", "s_client_extra", "curl_extra"), REFUSED, ids=REFUSED_IDS)
def test_refused_clients_never_reach_the_app(
    setup: Setup, who: str | None, s_client_extra: tuple[str, ...],
    curl_extra: tuple[str, ...],
) -> None:
    # The server closes the connection without a TLS alert: asyncio drops the alert OpenSSL
    # wrote (CPython gh-98078, fixed after 3.11), so clients see an EOF, not the reason.
    before = len(setup.seen.subjects)
    output = s_client(setup, who, *s_client_extra)
    # Same command line as the accepted case: it connected, and got no HTTP answer.
    assert "CONNECTED(" in output and "HTTP/1.1" not in output, output[-1500:]
    result = curl(setup, who, *curl_extra)
    assert result.returncode != 0, result.stdout
    assert len(setup.seen.subjects) == before


def test_tls12_is_not_even_negotiated(setup: Setup) -> None:
    output = s_client(setup, "sandbox", "-tls1_2")
    assert "Cipher is (NONE)" in output and "Protocol  : TLSv1.2" in output


def test_a_session_certificate_is_accepted_and_names_the_professional(setup: Setup) -> None:
    result = curl(setup, "session")
    assert result.returncode == 0, result.stderr
    subject = httpx.Response(200, content=result.stdout).json()["subject"]
    assert "2.5.4.5=810001234565" in subject or "serialNumber=810001234565" in subject
    assert "O=581234567800015" in subject


def _httpx_context(setup: Setup, who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(setup.paths.server_ca))
    if who is not None:
        cert, key = setup.certs[who]
        context.load_cert_chain(cert, key)
    return context


def test_the_python_client_path_with_httpx(setup: Setup) -> None:
    with httpx.Client(verify=_httpx_context(setup, "sandbox"), timeout=5) as client:
        first = client.get(setup.url + "/whoami")
        second = client.get(setup.url + "/whoami")  # same connection, same identity
    assert first.status_code == second.status_code == 200
    assert first.json()["subject"] == second.json()["subject"] == (
        "CN=sandbox,O=ETABLISSEMENT DE TEST,C=FR"
    )
    with (
        httpx.Client(verify=_httpx_context(setup, None), timeout=5) as client,
        pytest.raises(httpx.TransportError),
    ):
        client.get(setup.url + "/whoami")


def test_a_revocation_applies_to_new_connections_once_crls_are_reloaded(setup: Setup) -> None:
    assert curl(setup, "late-revoked").returncode == 0
    # OpenSSL keeps the CRL with the latest thisUpdate; it counts in whole seconds.
    wait = (setup.crl_time + timedelta(seconds=1.1) - datetime.now(UTC)).total_seconds()
    if wait > 0:
        time.sleep(wait)
    late = x509.load_pem_x509_certificate(setup.certs["late-revoked"][0].read_bytes())
    pki.revoke(setup.paths.establishment_ca, late)
    assert curl(setup, "late-revoked").returncode == 0  # not reloaded yet
    tls.load_crls(setup.context, setup.paths.root)
    assert curl(setup, "late-revoked").returncode != 0
    assert curl(setup, "sandbox").returncode == 0


def test_the_context_is_tls13_only_with_required_client_certificates(setup: Setup) -> None:
    context = setup.context
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    # Only our two roots: no system CA can vouch for a client.
    subjects = {ca["subject"] for ca in context.get_ca_certs()}
    assert len(subjects) == 2
