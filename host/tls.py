"""The host's TLS layer: a TLS 1.3 mutual-TLS server context, and uvicorn wired to pass the
client certificate to the app (docs/host-pki-tls.md).

- `server_ssl_context(pki_dir)`: TLS 1.3 only, a client certificate required, trusted only
  if issued by the establishment CA or the session CA (no system CAs), leaf checked against
  both CRLs, no session tickets (every connection verifies the certificate afresh).
- `TlsH11Protocol`: uvicorn does not put the client certificate in the ASGI scope; this h11
  protocol adds the ASGI TLS extension to every HTTP request's scope:
  ``scope["extensions"]["tls"] = {"client_cert_chain": [PEM], "client_cert_name": ...,
  "tls_version": 0x0304, "cipher_suite": ..., "server_cert": None, "client_cert_error": None}``.
  Python's ssl (before 3.13) exposes only the peer's leaf certificate, so the chain holds
  the leaf alone. WebSocket upgrades do not get it (uvicorn builds them from the config's app).
- `build_server`, `serve`, `running_server`: uvicorn with that protocol and that context.

uvicorn 0.54 speaks HTTP/2 only through the optional ``zttp`` protocol package, with its own
protocol classes; this layer serves HTTP/1.1 (h11), which every client here speaks.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

from .pki import CA_FILE, CRL_FILE, PkiPaths, passphrase

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TLS_VERSIONS = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303}
# The TLS 1.3 suites (RFC 8446 B.4): the only ones this server negotiates.
TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "TLS_AES_128_CCM_SHA256": 0x1304,
    "TLS_AES_128_CCM_8_SHA256": 0x1305,
}


def server_ssl_context(
    pki_dir: Path,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> ssl.SSLContext:
    """The host's server context from a PKI made by `host.pki.init_pki`.

    Server certificate and key default to ``DIR/server/{cert,key}.pem`` (the key read with
    ``DMP_PKI_PASSPHRASE`` when set). CRLs are read now: after a revocation, build a new
    context or call `load_crls` on this one.
    """
    paths = PkiPaths(Path(pki_dir))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    secret = passphrase()
    context.load_cert_chain(
        certfile or paths.server_cert, keyfile or paths.server_key,
        password=secret.decode("utf-8") if secret else None,
    )
    for directory in (paths.establishment_ca, paths.session_ca):
        context.load_verify_locations(cafile=directory / CA_FILE)
    load_crls(context, paths.root)
    # Only the leaf: both CAs are roots, which no CRL lists.
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    # No resumption: a resumed TLS 1.3 session skips the certificate (and CRL) check.
    context.num_tickets = 0
    context.options |= ssl.OP_NO_TICKET
    context.set_alpn_protocols(["http/1.1"])
    return context


def load_crls(context: ssl.SSLContext, pki_dir: Path) -> None:
    """Load the establishment and session CRLs into ``context`` (also a live one: among
    several CRLs of one CA, OpenSSL uses the one with the latest thisUpdate)."""
    paths = PkiPaths(Path(pki_dir))
    for directory in (paths.establishment_ca, paths.session_ca):
        # A file given as cafile may hold CRLs: OpenSSL's file lookup loads both kinds.
        context.load_verify_locations(cafile=directory / CRL_FILE)


# -- the ASGI TLS extension ---------------------------------------------------------------------


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for one connection (None when it is not TLS)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain, name = [], None
    if der:
        chain = [ssl.DER_cert_to_PEM_cert(der)]
        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,  # a certificate that fails verification ends the handshake
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": TLS13_SUITES.get(cipher[0]) if cipher else None,
    }


def with_tls_extension(app: ASGIApp, tls: dict[str, Any]) -> ASGIApp:
    """``app`` with ``tls`` added to each HTTP request's scope (a copy per request)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {**tls, "client_cert_chain": list(tls["client_cert_chain"])}
            scope["extensions"] = extensions
        await app(scope, receive, send)

    return wrapped


class TlsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension in every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # h11 writes the head and the body apart; without this, Nagle holds the body for
            # the client's delayed ACK (~40 ms a response).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = tls_extension(transport)
        if tls is not None:
            # One protocol object per connection, so the wrapped app is this connection's.
            self.app = with_tls_extension(self.app, tls)


# -- running uvicorn ----------------------------------------------------------------------------


KEEP_ALIVE_SECONDS = 300


def build_server(
    app: ASGIApp,
    ssl_context: ssl.SSLContext,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    **options: Any,
) -> uvicorn.Server:
    """A uvicorn server with `TlsH11Protocol` and exactly ``ssl_context``.

    uvicorn 0.54's ``ssl_context_factory`` hands it our context, so it never builds its own
    (which would allow TLS 1.2 and load no CRL); uvicorn also knows it serves https.
    """
    options.setdefault("log_level", "warning")
    # No request log: the URLs carry patients' INS, which must never reach a log file; every
    # access is traced in the host's own access_log table instead.
    options.setdefault("access_log", False)
    options.setdefault("timeout_graceful_shutdown", 2)
    # An agent's connection lives as long as its professional's session (it pings within
    # this): no request of a slow link pays a new TCP and TLS handshake (issue 18).
    options.setdefault("timeout_keep_alive", KEEP_ALIVE_SECONDS)
    # The Date header on every answer: agents compare their clock with it before judging
    # certificates (a skewed workstation clock makes this server's certificate look invalid).
    options.setdefault("date_header", True)
    config = uvicorn.Config(
        app, host=host, port=port, http=TlsH11Protocol,
        ssl_context_factory=lambda _config, _default: ssl_context, **options,
    )
    config.load()
    if config.ssl is not ssl_context:  # a uvicorn change must not silently weaken TLS
        raise RuntimeError("uvicorn did not take the host's SSL context")
    return uvicorn.Server(config)


def serve(
    app: ASGIApp, host: str, port: int, ssl_context: ssl.SSLContext, **options: Any
) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM)."""
    build_server(app, ssl_context, host=host, port=port, **options).run()


@contextmanager
def running_server(
    app: ASGIApp, ssl_context: ssl.SSLContext, *, startup_timeout: float = 10.0, **options: Any
) -> Iterator[str]:
    """Run ``app`` in a background thread on 127.0.0.1 on a free port; yields the base URL
    (``https://127.0.0.1:<port>``) and stops the server on exit."""
    # Bound here, handed to uvicorn: the port is ours before the server starts (no race).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = build_server(app, ssl_context, host="127.0.0.1", port=port, **options)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the TLS server did not start")
            time.sleep(0.01)
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
