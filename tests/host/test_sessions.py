"""Card-rooted sessions through the real TLS server, on SQLite and PostgreSQL: a virtual CPS
signs the statement, the host issues a session certificate, later calls use it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from agent.client.session import SessionError
from cardreader.virtual.pki import TestHealthCA
from host.pki import revoke
from tests.host.tls_harness import TlsHost, make_pki, tls_host


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, pki: Path, tmp_path: Path):
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def test_open_use_and_close_a_session(host: TlsHost) -> None:
    session = host.session("gp")
    me = session.client.get("/session")
    assert me.status_code == 200
    assert me.json()["idNatPs"] == "810001234565" and me.json()["profession"] == "10"
    assert me.json()["structureId"]
    assert dt.datetime.fromisoformat(me.json()["notAfter"]) == session.not_after
    session.close()
    with pytest.raises(RuntimeError, match="closed"):  # no call after closing, locally
        session.client.get("/session")


def test_closed_session_certificate_is_refused(host: TlsHost) -> None:
    session = host.session("pharmacist")
    client = session.client
    assert client.delete("/session").status_code == 204
    refused = client.get("/session")
    assert refused.status_code == 401
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "session-revoked"


def test_one_tls_handshake_for_many_calls(host: TlsHost) -> None:
    session = host.session("optician")
    handshakes = set()
    for _ in range(5):
        response = session.client.get("/session")
        assert response.status_code == 200
        handshakes.add(id(response.extensions["network_stream"]))
    assert len(handshakes) == 1  # one kept-alive connection
    session.close()


def test_workstation_certificate_cannot_call_the_api(host: TlsHost) -> None:
    with host.anonymous() as client:
        refused = client.get("/session")
    assert refused.status_code == 401
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_session_certificate_cannot_open_another_session(host: TlsHost) -> None:
    session = host.session("gp")
    refused = session.client.post("/session/challenge")
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "not-a-workstation"


def _code(error: pytest.ExceptionInfo[SessionError]) -> str:
    return error.value.code


def test_card_from_another_health_ca_is_refused(host: TlsHost) -> None:
    from cardreader.apdu import ApduProtocol
    from cardreader.cps import CpsCard
    from cardreader.virtual.cps import VirtualCps
    from cardreader.virtual.direct import DirectConnection

    foreign = VirtualCps.from_profile("gp", ca=TestHealthCA.create())
    card = CpsCard(ApduProtocol(DirectConnection(foreign)))
    card.verify_pin("1234")
    with pytest.raises(SessionError) as refused:
        host.open_session(card)
    assert _code(refused) == "card-cert-untrusted" and refused.value.status == 403


def test_expired_card_is_refused(host: TlsHost) -> None:
    card = host.card("nurse", not_after=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                     not_before=dt.datetime(2022, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(SessionError) as refused:
        host.open_session(card)
    assert _code(refused) == "card-cert-expired"


def test_revoked_card_is_refused(host: TlsHost, pki: Path) -> None:
    from cardreader.cps import CpsKey

    card = host.card("orthoptist")
    revoke(pki / "health-ca", card.certificate(CpsKey.AUTHENTICATION))
    with pytest.raises(SessionError) as refused:
        host.open_session(card)
    assert _code(refused) == "card-cert-revoked"


def test_real_card_is_refused_by_a_test_host(host: TlsHost) -> None:
    with pytest.raises(SessionError) as refused:
        host.open_session(host.card("gp", is_test_card=False))
    assert _code(refused) == "real-card-refused"


def test_test_card_is_refused_by_a_production_host(db_url, pki, tmp_path) -> None:
    with (
        tls_host(db_url, pki, tmp_path / "blobs", mode="production") as production,
        pytest.raises(SessionError) as refused,
    ):
        production.session("gp")
    assert _code(refused) == "test-card-refused"


def test_statement_signed_for_another_structure_still_names_it(host: TlsHost) -> None:
    card = host.card("gp")
    second = card.read_situations()[1].structure_id
    session = host.open_session(card, structure_id=second)
    assert session.client.get("/session").json()["structureId"] == second
