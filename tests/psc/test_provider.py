"""The reference PSC with the virtual e-CPS app, both over real TLS: discovery, JWKS and its
rotation, CIBA (approve, deny, time out, a second request, polling too fast), the app's code,
and the browser's authorization code with PKCE."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from host.pki import init_pki
from host.psc.app import OIDC, REALM
from host.psc.keys import KeyRing
from host.psc.vecps import EcpsError, WrongCode

from .harness import CLIENT_ID, CODE, GP, NURSE, REDIRECT, RunningPsc, running_psc


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_pki(tmp_path_factory.mktemp("pki")).root


@pytest.fixture
def psc(pki: Path, tmp_path: Path) -> Iterator[RunningPsc]:
    with running_psc(pki, tmp_path / "psc") as running:
        yield running


def _error(answer) -> str:  # type: ignore[no-untyped-def]
    return str(answer.json()["error"])


def test_discovery_names_the_endpoints_and_the_jwks_verifies_an_id_token(
        psc: RunningPsc, tmp_path: Path) -> None:
    with psc.client() as client:
        discovery = client.get(f"{REALM}/.well-known/openid-configuration").json()
        assert discovery["issuer"] == psc.issuer
        assert discovery["backchannel_token_delivery_modes_supported"] == ["poll"]
        assert discovery["code_challenge_methods_supported"] == ["S256"]
        phone = psc.phone(tmp_path / "phone")
        auth_req_id = psc.ciba().json()["auth_req_id"]
        (shown,) = phone.pending(CODE)
        assert shown.binding_message == "Poste ACCUEIL-2 code 4821"
        assert phone.decide(auth_req_id, True, CODE)[1] == "approved"
        tokens = psc.poll(auth_req_id).json()
        jwks = client.get(discovery["jwks_uri"].removeprefix(psc.base_url)).json()
        info = client.get(f"{OIDC}/userinfo",
                          headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    token = jwt.decode(tokens["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    claims = token.claims
    assert (claims["iss"], claims["aud"], claims["acr"]) == (psc.issuer, CLIENT_ID, "eidas1")
    assert claims["SubjectNameID"] == GP
    activity = claims["SubjectRefPro"]["exercices"][0]
    assert activity["codeProfession"] == "10"
    assert activity["activities"][0]["ancienIdentifiantDeLaStructure"] == "581234567800015"
    assert info["SubjectNameID"] == GP
    # The grant is delivered once.
    assert _error(psc.poll(auth_req_id)) == "invalid_grant"


def test_deny_on_the_phone_ends_the_poll_with_access_denied(
        psc: RunningPsc, tmp_path: Path) -> None:
    phone = psc.phone(tmp_path / "phone")
    auth_req_id = psc.ciba().json()["auth_req_id"]
    assert _error(psc.poll(auth_req_id)) == "authorization_pending"
    assert phone.decide(auth_req_id, False, CODE)[1] == "denied"
    assert _error(psc.poll(auth_req_id)) == "access_denied"


def test_unanswered_request_expires(psc: RunningPsc, tmp_path: Path) -> None:
    phone = psc.phone(tmp_path / "phone")
    answer = psc.ciba(requested_expiry="30").json()
    assert answer["expires_in"] == 30
    psc.clock.advance(31)
    assert _error(psc.poll(answer["auth_req_id"])) == "expired_token"
    assert phone.pending(CODE) == []
    with pytest.raises(EcpsError, match="expirée"):
        phone.decide(answer["auth_req_id"], True, CODE)


def test_second_request_while_one_is_pending_is_refused(
        psc: RunningPsc, tmp_path: Path) -> None:
    phone = psc.phone(tmp_path / "phone")
    first = psc.ciba().json()["auth_req_id"]
    second = psc.ciba(binding_message="Autre poste")
    assert second.status_code == 400 and _error(second) == "invalid_request"
    assert "déjà" in second.json()["error_description"]
    assert [login.binding_message for login in phone.pending(CODE)] == [
        "Poste ACCUEIL-2 code 4821"]
    phone.decide(first, False, CODE)
    assert psc.ciba(binding_message="Nouvel essai").status_code == 200  # free again


def test_polling_faster_than_the_interval_is_told_to_slow_down(
        pki: Path, tmp_path: Path) -> None:
    with running_psc(pki, tmp_path / "psc", ciba_interval=30) as psc:
        psc.phone(tmp_path / "phone")
        answer = psc.ciba().json()
        assert answer["interval"] == 30
        assert _error(psc.poll(answer["auth_req_id"])) == "authorization_pending"
        assert _error(psc.poll(answer["auth_req_id"])) == "slow_down"
        psc.clock.advance(36)  # the interval grew by 5 s
        assert _error(psc.poll(answer["auth_req_id"])) == "authorization_pending"


def test_unknown_professional_and_bad_requests_are_refused(
        psc: RunningPsc, tmp_path: Path) -> None:
    psc.phone(tmp_path / "phone")
    assert _error(psc.ciba(login_hint=NURSE)) == "unknown_user_id"  # no e-CPS enrolled
    assert _error(psc.ciba(binding_message="")) == "invalid_binding_message"
    assert _error(psc.ciba(binding_message="x" * 65)) == "invalid_binding_message"
    assert _error(psc.ciba(requested_expiry="0")) == "invalid_request"
    assert _error(psc.ciba(acr_values="eidas0")) == "invalid_request"
    assert _error(psc.ciba(scope="profile")) == "invalid_scope"
    with psc.client() as client:
        wrong = client.post(f"{OIDC}/ext/ciba/auth", auth=(CLIENT_ID, "not-the-secret"),
                            data={"scope": "openid", "login_hint": GP,
                                  "binding_message": "x"})
    assert wrong.status_code == 401 and _error(wrong) == "invalid_client"


def test_wrong_code_sends_nothing_and_three_erase_the_ecps(
        psc: RunningPsc, tmp_path: Path) -> None:
    phone = psc.phone(tmp_path / "phone")
    auth_req_id = psc.ciba().json()["auth_req_id"]
    with pytest.raises(WrongCode) as first:
        phone.decide(auth_req_id, True, "0000")
    assert first.value.tries_left == 2
    assert phone.pending(CODE)  # the right code resets the count; the request still waits
    for left in (2, 1, 0):
        with pytest.raises(WrongCode) as wrong:
            phone.pending("9999")
        assert wrong.value.tries_left == left
    with pytest.raises(EcpsError, match="enrol"):
        phone.pending(CODE)
    assert _error(psc.poll(auth_req_id)) == "authorization_pending"


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(
        psc: RunningPsc, tmp_path: Path) -> None:
    phone = psc.phone(tmp_path / "phone")
    old = psc.provider.keys.active().kid
    KeyRing(psc.data).rotate(psc.clock())
    with psc.client() as client:
        kids = {key["kid"] for key in client.get(f"{OIDC}/certs").json()["keys"]}
    new = psc.provider.keys.active().kid
    assert new != old and kids == {old, new}
    auth_req_id = psc.ciba().json()["auth_req_id"]
    phone.decide(auth_req_id, True, CODE)
    token = psc.poll(auth_req_id).json()["id_token"]
    header = jwt.decode(token, KeySet.import_key_set(psc.provider.keys.jwks(psc.clock())),
                        algorithms=["RS256"]).header
    assert header["kid"] == new
    psc.clock.advance(25 * 3600)  # past the grace period
    with psc.client() as client:
        kids = {key["kid"] for key in client.get(f"{OIDC}/certs").json()["keys"]}
    assert kids == {new}


def _browser_code(psc: RunningPsc, phone, params: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    with psc.client() as client:
        page = client.get(f"{OIDC}/auth", params=params)
        assert page.status_code == 200 and "login_hint" in page.text
        started = client.post(f"{OIDC}/auth", data={**params, "login_hint": GP})
        wait = started.headers["location"]
        assert "Validez" in client.get(wait).text
        (shown,) = phone.pending(CODE)
        assert re.fullmatch(r"Connexion navigateur, code \d{4}", shown.binding_message)
        phone.decide(shown.id, True, CODE)
        location = client.get(wait).headers["location"]
    assert location.startswith(REDIRECT + "?") and "state=s-1" in location
    return re.search(r"code=([^&]+)", location).group(1)  # type: ignore[union-attr]


def test_browser_sign_in_with_code_and_pkce(psc: RunningPsc, tmp_path: Path) -> None:
    phone = psc.phone(tmp_path / "phone")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": "page", "redirect_uri": REDIRECT,
              "scope": "openid", "state": "s-1", "nonce": "n-1", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    with psc.client() as client:
        plain = client.get(f"{OIDC}/auth", params={**params, "code_challenge_method": "plain"})
        assert plain.status_code == 303 and "error=invalid_request" in plain.headers["location"]
    form = {"grant_type": "authorization_code", "client_id": "page", "redirect_uri": REDIRECT}
    code = _browser_code(psc, phone, params)
    with psc.client() as client:
        tokens = client.post(f"{OIDC}/token", data={**form, "code": code,
                                                     "code_verifier": verifier}).json()
        claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(
            client.get(f"{OIDC}/certs").json())).claims
        assert (claims["nonce"], claims["aud"], claims["SubjectNameID"]) == ("n-1", "page", GP)
        replay = client.post(f"{OIDC}/token", data={**form, "code": code,
                                                     "code_verifier": verifier})
        assert _error(replay) == "invalid_grant"
    code = _browser_code(psc, phone, params)
    with psc.client() as client:
        wrong = client.post(f"{OIDC}/token", data={**form, "code": code,
                                                    "code_verifier": secrets.token_urlsafe(48)})
        assert _error(wrong) == "invalid_grant"
        # A guessed verifier spends the code: the right one comes too late.
        late = client.post(f"{OIDC}/token", data={**form, "code": code,
                                                   "code_verifier": verifier})
        assert _error(late) == "invalid_grant"


def test_a_device_speaks_for_itself_only(psc: RunningPsc, tmp_path: Path) -> None:
    """A token signed by one professional's app but naming another's device is refused."""
    gp_phone = psc.phone(tmp_path / "gp")
    nurse_phone = psc.phone(tmp_path / "nurse", NURSE)
    psc.ciba(login_hint=NURSE)
    state, key = gp_phone._unlock(CODE)
    now = int(psc.clock().timestamp())
    forged = jwt.encode({"alg": "ES256", "kid": state["deviceId"]}, {
        "iss": nurse_phone.status()["deviceId"], "aud": state["audience"], "iat": now,
        "exp": now + 60, "jti": secrets.token_urlsafe(8)}, key)
    with psc.client() as client:
        answer = client.get("/ecps/logins", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401 and _error(answer) == "invalid_token"
    assert len(nurse_phone.pending(CODE)) == 1
