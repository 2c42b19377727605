"""The opening in one round trip (docs/agent-session.md "Opening"): the host's challenge is
fetched ahead, the opening proper is POST /session alone; the host's rules do not change
(one use, short life), so a replayed statement is still refused. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from agent.client.session import HostSession, Opening, SessionError
from cardreader.cps import CpsCard, CpsKey
from host.pki import SESSION_CA, cached_ca
from tests.host.tls_harness import TlsHost, make_pki, tls_host, workstation


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, pki: Path, tmp_path: Path):
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def _open(host: TlsHost, card: CpsCard, opening: Opening | None) -> HostSession:
    identity = card.read_identity()
    return HostSession.open(
        host.base_url, workstation(host.pki),
        card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(Encoding.DER),
        sign=lambda data: card.sign(CpsKey.AUTHENTICATION, data),
        id_nat_ps=identity.id_nat_ps, structure_id=card.read_situations()[0].structure_id,
        opening=opening,
    )


def _requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every POST any httpx client makes from now on: (path, json body)."""
    seen: list[tuple[str, Any]] = []
    post = httpx.Client.post

    def spy(self: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
        seen.append((str(url), kwargs.get("json")))
        return post(self, url, **kwargs)

    monkeypatch.setattr(httpx.Client, "post", spy)
    return seen


def test_a_challenge_fetched_ahead_leaves_one_round_trip(host, monkeypatch) -> None:
    card = host.card("gp")
    opening = Opening(host.base_url, workstation(host.pki)).start()
    assert opening._thread is not None
    opening._thread.join(10)
    seen = _requests(monkeypatch)
    session = _open(host, card, opening)
    assert [path for path, _ in seen] == ["/session"]  # the challenge was already there
    assert session.client.get("/session").status_code == 200
    session.close()


def test_the_challenge_says_how_long_it_lives(host) -> None:
    with host.anonymous() as client:
        answer = client.post("/session/challenge").json()
    assert answer["expiresIn"] == host.settings.challenge_lifetime.total_seconds()
    assert answer["expiresAt"]


def test_a_challenge_gone_stale_while_the_pin_was_typed_is_fetched_again(
        host, monkeypatch) -> None:
    card = host.card("pharmacist")
    opening = Opening(host.base_url, workstation(host.pki)).start()
    assert opening._thread is not None
    opening._thread.join(10)
    opening._deadline = 0.0  # as if the professional took minutes over the PIN
    seen = _requests(monkeypatch)
    session = _open(host, card, opening)
    assert [path for path, _ in seen] == ["/session/challenge", "/session"]
    session.close()


def test_a_replayed_opening_is_refused(host, monkeypatch) -> None:
    seen = _requests(monkeypatch)
    session = _open(host, host.card("gp"), Opening(host.base_url, workstation(host.pki)).start())
    body = next(json for path, json in seen if path == "/session")
    with host.anonymous() as client:  # the same workstation, the same signed statement
        refused = client.post("/session", json=body)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "challenge-unknown"
    assert session.client.get("/session").status_code == 200  # the first one is untouched
    session.close()


def test_a_failed_prefetch_is_the_opening_s_error(host) -> None:
    opening = Opening("https://127.0.0.1:9", workstation(host.pki), timeout=2).start()
    with pytest.raises((httpx.HTTPError, SessionError)):
        _open(host, host.card("gp"), opening)


def test_an_unused_opening_closes_its_connection(host) -> None:
    opening = Opening(host.base_url, workstation(host.pki)).start()
    opening.close()  # the PIN was cancelled: whether the fetch ended or not
    assert opening._thread is not None
    opening._thread.join(10)
    assert opening._client is None


def test_the_cas_are_read_again_when_their_files_change(pki: Path) -> None:
    first = cached_ca(pki / SESSION_CA)
    assert cached_ca(pki / SESSION_CA) is first  # no second load: no second RSA check
    certificate = pki / SESSION_CA / "ca.pem"
    stat = certificate.stat()
    os.utime(certificate, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = cached_ca(pki / SESSION_CA)
    assert again is not first and again.certificate == first.certificate
