"""Who may drive the agent: the local API refuses a missing or wrong token, a foreign Host
(DNS rebinding), a foreign Origin (a web page in the user's browser), and anything that
does not come from loopback; the token file is the user's alone."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import subprocess
from typing import Any

import httpx
import pytest

from agent.config import AgentConfig
from agent.views.localapi.guard import Guard, load_or_create_token, token_path
from tests.live import LiveWorld

pytestmark = pytest.mark.pcsc

ROUTES = [("GET", "/api/status"), ("GET", "/api/events"), ("POST", "/api/session"),
          ("DELETE", "/api/session"), ("GET", "/api/documents"), ("POST", "/api/deposits"),
          ("GET", "/api/outbox"), ("POST", "/api/dmp"), ("GET", "/api/dmp/sheet"),
          ("GET", "/api/diagnostics"), ("GET", "/api/settings"), ("POST", "/api/authorizations"),
          ("PUT", "/api/patient/access-mode"), ("GET", "/api/deposit-types")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_missing_or_wrong_token(live: LiveWorld, method: str,
                                                      path: str) -> None:
    url = live.agent.url + path
    assert httpx.request(method, url).status_code == 401
    wrong = httpx.request(method, url, headers={"authorization": "Bearer " + "x" * 43})
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad-token"
    basic = httpx.request(method, url, headers={"authorization": f"Basic {live.agent.token}"})
    assert basic.status_code == 401


def test_the_right_token_is_accepted_and_health_needs_none(live: LiveWorld) -> None:
    assert httpx.get(live.agent.url + "/api/health").json()["status"] == "ok"
    with live.agent.client() as api:
        assert api.get("/api/status").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1",
                                  "127.0.0.1:1", "localhost.evil.example:{port}", ""])
def test_a_foreign_host_header_is_refused_even_with_the_token(live: LiveWorld,
                                                              host: str) -> None:
    with live.agent.client() as api:
        answer = api.get("/api/status", headers={"host": host.format(port=live.agent.port)})
    assert answer.status_code == 403 and answer.json()["code"] == "bad-host"


@pytest.mark.parametrize("origin", ["https://evil.example", "null",
                                    "http://127.0.0.1:1", "http://localhost.evil.example"])
def test_a_foreign_origin_is_refused_even_with_the_token(live: LiveWorld, origin: str) -> None:
    with live.agent.client() as api:
        answer = api.get("/api/status", headers={"origin": origin})
        assert answer.status_code == 403 and answer.json()["code"] == "bad-origin"
        preflight = api.options("/api/status", headers={
            "origin": origin, "access-control-request-method": "GET"})
        assert preflight.status_code == 403
        assert "access-control-allow-origin" not in preflight.headers


def test_the_agents_own_page_origin_is_accepted(live: LiveWorld) -> None:
    with live.agent.client() as api:
        answer = api.get("/api/status", headers={"origin": live.agent.url})
    assert answer.status_code == 200


def test_the_server_listens_on_loopback_only(live: LiveWorld) -> None:
    # An address of this (namespaced) host outside loopback: nothing answers there.
    subprocess.run(["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"], check=False,
                   capture_output=True)
    with socket.socket() as sock:
        sock.settimeout(2)
        code = sock.connect_ex(("10.99.0.1", live.agent.port))
    assert code == errno.ECONNREFUSED


def _call(guard: Guard, client: str, headers: dict[str, str], method: str = "GET",
          path: str = "/api/status") -> tuple[int, dict[str, str]]:
    sent: list[dict[str, Any]] = []
    reached: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard.app = app
    scope = {"type": "http", "method": method, "path": path, "client": (client, 40000),
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(guard(scope, receive, send))
    start = sent[0]
    assert bool(reached) == (start["status"] == 200)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


def test_a_request_from_a_non_loopback_peer_is_refused_before_any_route() -> None:
    guard = Guard(lambda *a: None, token="t" * 43, port=17771)  # type: ignore[arg-type]
    good = {"host": "127.0.0.1:17771", "authorization": "Bearer " + "t" * 43}
    assert _call(guard, "127.0.0.1", good)[0] == 200
    assert _call(guard, "::1", good)[0] == 200
    for peer in ("192.168.1.20", "10.0.0.5", "::ffff:192.168.1.20", "", "testclient"):
        assert _call(guard, peer, good)[0] == 403


def test_an_allowed_origin_gets_cors_and_the_private_network_preflight() -> None:
    practice = "https://logiciel.example.fr"
    guard = Guard(lambda *a: None, token="t" * 43, port=17771,  # type: ignore[arg-type]
                  allowed_origins=(practice,))
    status, headers = _call(guard, "127.0.0.1", {
        "host": "127.0.0.1:17771", "origin": practice, "access-control-request-method": "GET",
        "access-control-request-private-network": "true"}, method="OPTIONS")
    assert status == 204
    assert headers["access-control-allow-origin"] == practice
    assert headers["access-control-allow-private-network"] == "true"
    assert "authorization" in headers["access-control-allow-headers"]
    status, headers = _call(guard, "127.0.0.1", {
        "host": "localhost:17771", "origin": practice, "authorization": "Bearer " + "t" * 43})
    assert status == 200 and headers["access-control-allow-origin"] == practice
    status, _ = _call(guard, "127.0.0.1", {"host": "127.0.0.1:17771", "origin": practice})
    assert status == 401  # an allowed origin still needs the token


def test_the_token_file_is_private_and_a_leaked_one_is_replaced(tmp_path: Any) -> None:
    config = AgentConfig(credentials_dir=tmp_path / "config" / "workstation",
                         data_dir=tmp_path / "data", log_dir=tmp_path / "log")
    token = load_or_create_token(config)
    path = token_path(config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_token(config) == token  # stable across starts
    os.chmod(path, 0o644)  # readable by others: it may have leaked
    replaced = load_or_create_token(config)
    assert replaced != token and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(replaced) >= 40
