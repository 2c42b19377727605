"""The host link (agent.client.link): each failure classified in words with what to do, the
time it began kept while it lasts, listeners told of changes only; and a real client's
calls reported (a port where nothing listens)."""

from __future__ import annotations

import datetime as dt
import ssl

import httpx
import pytest

from agent.client.link import LINK, SLOW_SECONDS, HostLink, classify, linked_client
from tests.live import free_port


def _wrapped(cause: BaseException, kind: type[httpx.TransportError]) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise kind("failed") from inner
    except BaseException as error:
        return error


@pytest.mark.parametrize(("error", "state", "words"), [
    (_wrapped(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] x"),
              httpx.ConnectError), "certificate", "non reconnu"),
    (httpx.ConnectError("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert"), "certificate",
     "refuse le certificat du poste"),
    (httpx.ConnectError("[SSL: SSLV3_ALERT_CERTIFICATE_REVOKED] alert"), "certificate",
     "refuse le certificat du poste"),
    (httpx.ConnectError("[Errno 111] Connection refused"), "unreachable", "injoignable"),
    (httpx.ConnectTimeout("timed out"), "unreachable", "délai dépassé"),
    (httpx.ReadTimeout("timed out"), "unreachable", "ne répond pas"),
    (httpx.RemoteProtocolError("Server disconnected"), "unreachable", "coupée"),
])
def test_each_failure_is_said_in_words_with_what_to_do(
    error: BaseException, state: str, words: str
) -> None:
    found, reason, fix = classify(error)
    assert (found, words in reason, bool(fix)) == (state, True, True)
    assert type(error).__name__ not in reason


def test_since_is_when_the_state_began_and_listeners_hear_changes_only() -> None:
    now = [dt.datetime(2026, 12, 6, 14, 30, tzinfo=dt.UTC)]
    link = HostLink(clock=lambda: now[0])
    heard: list[str] = []
    link.subscribe(lambda state: heard.append(state.state))
    link.succeeded(0.1)
    ok_at = now[0]
    now[0] += dt.timedelta(minutes=2)
    link.failed(httpx.ConnectError("refused"))
    began = now[0]
    now[0] += dt.timedelta(minutes=3)
    link.failed(httpx.ConnectError("refused"))
    state = link.state
    assert (state.state, state.since, state.last_ok) == ("unreachable", began, ok_at)
    link.succeeded(SLOW_SECONDS + 1)
    assert link.state.state == "slow" and "lent" in link.state.reason
    link.succeeded(0.2)
    assert heard == ["reachable", "unreachable", "slow", "reachable"]
    assert link.state.as_json()["since"] == now[0].isoformat()


def test_a_real_clients_failed_call_reaches_the_link() -> None:
    with linked_client(base_url=f"http://127.0.0.1:{free_port()}", timeout=2) as client, \
            pytest.raises(httpx.ConnectError):
        client.get("/session")
    assert LINK.state.state == "unreachable"
