"""The host through its real boundary: uvicorn with TLS 1.3 mutual TLS, sessions opened
with virtual CPS cards that sign the statement themselves (the agent's `HostSession`)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette

from agent.client.session import HostSession, Workstation, tls_context
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.direct import DirectConnection
from cardreader.virtual.pki import TestHealthCA
from host.app import create_app
from host.pki import init_pki
from host.settings import HostSettings
from host.tls import running_server, server_ssl_context

PIN = "1234"


def make_pki(directory: Path) -> Path:
    init_pki(directory)
    return directory


def workstation(pki: Path, name: str = "sandbox") -> Workstation:
    return Workstation(
        certificate_pem=(pki / "workstations" / f"{name}.pem").read_bytes(),
        key_pem=(pki / "workstations" / f"{name}.key").read_bytes(),
        key_password=None,
        host_ca=pki / "server" / "ca.pem",
    )


@dataclass
class TlsHost:
    base_url: str
    pki: Path
    settings: HostSettings
    app: Starlette

    def card(self, profile: str = "gp", **changes: object) -> CpsCard:
        """A virtual CPS issued by this host's health CA, PIN verified, driven in-process."""
        virtual = VirtualCps.from_profile(
            profile, ca=TestHealthCA.load(self.pki / "health-ca"), **changes  # type: ignore[arg-type]
        )
        card = CpsCard(ApduProtocol(DirectConnection(virtual)))
        card.verify_pin(PIN)
        return card

    def open_session(self, card: CpsCard, structure_id: str | None = None) -> HostSession:
        identity = card.read_identity()
        situation = structure_id or card.read_situations()[0].structure_id
        return HostSession.open(
            self.base_url, workstation(self.pki),
            card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(
                Encoding.DER),
            sign=lambda data: card.sign(CpsKey.AUTHENTICATION, data),
            id_nat_ps=identity.id_nat_ps, structure_id=situation,
        )

    def session(self, profile: str = "gp") -> HostSession:
        return self.open_session(self.card(profile))

    def anonymous(self, client_cert: tuple[Path, Path] | None = None) -> httpx.Client:
        """A client presenting the workstation certificate (or another one)."""
        from agent.client.session import tls_context

        cert, key = client_cert or (self.pki / "workstations" / "sandbox.pem",
                                    self.pki / "workstations" / "sandbox.key")
        context = tls_context(self.pki / "server" / "ca.pem", cert.read_bytes(),
                              key.read_bytes(), None)
        return httpx.Client(base_url=self.base_url, verify=context)


@contextlib.contextmanager
def tls_host(db_url: str, pki: Path, blobs: Path, **settings: object) -> Iterator[TlsHost]:
    host_settings = HostSettings(database_url=db_url, blob_dir=blobs, pki_dir=pki,
                                 **settings)  # type: ignore[arg-type]
    app = create_app(host_settings)
    with running_server(app, server_ssl_context(pki)) as base_url:
        yield TlsHost(base_url, pki, host_settings, app)


def handshake(pki_dir: Path, workstation: Workstation) -> x509.Name:
    """A real TLS 1.3 handshake, the host's server context against the agent's client
    context, over a socket pair; returns the client subject the server saw."""
    server_context = server_ssl_context(pki_dir)
    client_context = tls_context(workstation.host_ca, workstation.certificate_pem,
                                 workstation.key_pem, workstation.key_password)
    left, right = socket.socketpair()
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(left, server_side=True) as tls:
                seen.append(tls.getpeercert(binary_form=True) or b"")
                tls.sendall(b"ok")
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=serve)
    thread.start()
    with client_context.wrap_socket(right, server_hostname="localhost") as tls:
        assert tls.recv(2) == b"ok"
    thread.join(10)
    assert not errors, errors
    return x509.load_der_x509_certificate(seen[0]).subject
