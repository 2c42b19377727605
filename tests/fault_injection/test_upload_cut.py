"""A client that goes away in the middle of an upload: the host (`dmp-host serve`, its own
process) writes no traceback in its log for it, keeps nothing of the body, and serves on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from agent.client.session import HostSession
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.direct import DirectConnection
from tests.fault_injection.world import PIN, Site
from tests.host.tls_harness import workstation

pytestmark = pytest.mark.pcsc


def _session(site: Site) -> HostSession:
    card = CpsCard(ApduProtocol(DirectConnection(site.cps("gp"))))
    card.verify_pin(PIN)
    identity = card.read_identity()
    return HostSession.open(
        site.host.url, workstation(site.pki),
        card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(Encoding.DER),
        sign=lambda data: card.sign(CpsKey.AUTHENTICATION, data),
        id_nat_ps=identity.id_nat_ps, structure_id=card.read_situations()[0].structure_id)


def _cut_body() -> Iterator[bytes]:
    yield b"%PDF-1.4\n" + b"x" * 200_000
    time.sleep(0.2)
    raise ConnectionAbortedError("the client goes away")  # httpx drops the connection


def test_a_client_leaving_mid_upload_leaves_no_traceback_and_no_file(site: Site) -> None:
    log = site.root / "host.log"
    before = log.stat().st_size
    incoming = site.host.data / "blobs" / "incoming"
    with _session(site) as session:
        for _ in range(3):
            with pytest.raises((ConnectionAbortedError, httpx.HTTPError)):
                session.client.post("/fhir/Binary", content=_cut_body(),
                                    headers={"content-type": "application/pdf"})
        time.sleep(0.5)  # let the host see the end of each connection
        answer = session.client.post("/fhir/Binary", content=b"%PDF-1.4\nok\n",
                                     headers={"content-type": "application/pdf"})
        assert answer.status_code == 201, answer.text  # the host serves on
    written = log.read_bytes()[before:].decode(errors="replace")
    assert "Traceback" not in written and "ClientDisconnect" not in written, written
    assert not incoming.exists() or not any(incoming.iterdir())  # nothing half-written kept
