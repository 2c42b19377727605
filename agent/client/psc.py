"""The agent as a client of Pro Santé Connect (PSC): the CIBA requests of an e-CPS login.

The agent is a confidential OpenID client (``psc.client_id`` and the secret in
``psc.secret_file``): it reads the provider's discovery document, starts a CIBA backchannel
authentication request for a professional (the phone shows the binding message) and polls
the token endpoint in poll mode (OpenID CIBA Core 1.0). Each answer of the provider that a
person can act on is an `AgentError` with its own code; the ID token that comes back is
handed on as it is: the host verifies it (docs/psc.md), the agent only reads its payload
for display and the choice of the practice situation.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError
from agent.i18n import _

if TYPE_CHECKING:
    import httpx

    from agent.config import AgentConfig

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
STRONG_ACR = "eidas1"  # the one assurance level PSC offers (docs/psc.md)
SECRET_FILE = "psc-secret"  # in the credentials directory when psc.secret_file is ""


class PscError(AgentError):
    """A login the provider refused or could not be reached for; ``code`` says which."""

    status = 409


@dataclass(frozen=True)
class CibaRequest:
    """A backchannel request waiting on the phone."""

    auth_req_id: str
    expires_in: int
    interval: int


def not_configured() -> PscError:
    return PscError(_("e-CPS login is not configured on this workstation (psc.issuer in "
                      "agent.toml): use the CPS card"), code="psc-not-configured")


def unreachable(issuer: str, error: BaseException) -> PscError:
    return PscError(_("Pro Santé Connect cannot be reached ({issuer}): try again later, or "
                      "use the CPS card").format(issuer=issuer), code="psc-unreachable",
                    status=503)


def _refused(answer: httpx.Response) -> PscError:
    """A 4xx/5xx of the provider: the OAuth error in words a professional can act on."""
    try:
        body = answer.json()
        error, description = str(body.get("error", "")), str(body.get("error_description", ""))
    except ValueError:
        body, error, description = {}, "", answer.text[:200]
    if error == "unknown_user_id":
        return PscError(_("No e-CPS is activated for this professional: activate the e-CPS "
                          "app, or use the CPS card"), code="ecps-unknown-user")
    if error == "invalid_request" and "pending_expires_in" in body:
        seconds = int(body["pending_expires_in"])
        return PscError(_("An e-CPS login already waits for approval on this professional's "
                          "phone: answer it, or try again in {seconds} s").format(
                              seconds=seconds), code="ecps-pending", pendingExpiresIn=seconds)
    if error == "access_denied":
        return PscError(_("e-CPS login denied on the phone"), code="ecps-denied")
    if error == "expired_token":
        return PscError(_("No answer on the phone in time: the e-CPS login expired"),
                        code="ecps-expired", status=408)
    if error == "invalid_client":
        return PscError(_("Pro Santé Connect does not know this practice's client (psc."
                          "client_id, psc.secret_file): {detail}").format(detail=description),
                        code="psc-client-refused", status=502)
    return PscError(_("Pro Santé Connect refused: {detail}").format(
        detail=description or error or answer.status_code), code="psc-refused", status=502)


def read_secret(config: AgentConfig) -> str:
    """The practice's client secret, from ``psc.secret_file`` (default: the credentials
    directory's ``psc-secret``)."""
    path = config.psc_secret_file or config.credentials_dir / SECRET_FILE
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        secret = ""
    if not secret:
        raise PscError(_("The Pro Santé Connect client secret is missing ({path}): the "
                         "practice's PSC registration gives it").format(path=path),
                       code="psc-secret-missing")
    return secret


def token_claims(id_token: str) -> dict[str, Any]:
    """The ID token's payload, NOT verified (display and the situation's choice only: the
    host verifies the token before opening anything)."""
    try:
        payload = id_token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise PscError(_("Pro Santé Connect answered an unreadable ID token"),
                       code="psc-refused", status=502) from None
    if not isinstance(data, dict):
        raise PscError(_("Pro Santé Connect answered an unreadable ID token"),
                       code="psc-refused", status=502)
    return data


class PscClient:
    """Discovery (read once, kept), CIBA requests and polls, over HTTPS with ``ca``."""

    def __init__(self, issuer: str, ca: Path | None, client_id: str, secret: str,
                 timeout: float = 10.0) -> None:
        self.issuer = issuer.rstrip("/")
        self._ca, self._auth = ca, (client_id, secret)
        self._timeout = timeout
        self._endpoints: dict[str, str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: AgentConfig) -> PscClient:
        if not config.psc_issuer:
            raise not_configured()
        return cls(config.psc_issuer, config.psc_ca, config.psc_client_id,
                   read_secret(config), min(config.host_timeout, 10.0))

    def _client(self) -> httpx.Client:
        import httpx  # with the first login, not at start

        context = ssl.create_default_context(cafile=str(self._ca) if self._ca else None)
        return httpx.Client(verify=context, timeout=self._timeout)

    def _post(self, url: str, form: dict[str, str]) -> httpx.Response:
        import httpx

        try:
            with self._client() as client:
                return client.post(url, data=form, auth=self._auth)
        except httpx.HTTPError as error:
            raise unreachable(self.issuer, error) from None

    def endpoints(self) -> dict[str, str]:
        import httpx

        with self._lock:
            if self._endpoints is not None:
                return self._endpoints
        try:
            with self._client() as client:
                answer = client.get(f"{self.issuer}/.well-known/openid-configuration")
            document = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as error:
            raise unreachable(self.issuer, error) from None
        try:
            assert isinstance(document, dict) and document["issuer"] == self.issuer
            endpoints = {"ciba": str(document["backchannel_authentication_endpoint"]),
                         "token": str(document["token_endpoint"])}
        except (AssertionError, KeyError):
            raise PscError(_("{issuer} is not a Pro Santé Connect with CIBA (its discovery "
                             "document)").format(issuer=self.issuer), code="psc-refused",
                           status=502) from None
        with self._lock:
            self._endpoints = endpoints
        return endpoints

    def start(self, login_hint: str, binding_message: str, nonce: str,
              requested_expiry: int) -> CibaRequest:
        """Ask the professional's phone: raises `PscError` (unknown user, one already
        pending, unreachable...)."""
        answer = self._post(self.endpoints()["ciba"], {
            "scope": "openid", "login_hint": login_hint, "binding_message": binding_message,
            "acr_values": STRONG_ACR, "nonce": nonce,
            "requested_expiry": str(requested_expiry)})
        if answer.status_code != 200:
            raise _refused(answer)
        body = answer.json()
        return CibaRequest(str(body["auth_req_id"]), int(body["expires_in"]),
                           int(body.get("interval", 5)))

    def poll(self, request: CibaRequest) -> str | None:
        """The ID token once approved; None while pending; "slow_down" grows nothing here:
        the caller adds 5 s (`SlowDown`). Raises `PscError` (denied, expired...)."""
        answer = self._post(self.endpoints()["token"], {
            "grant_type": CIBA_GRANT, "auth_req_id": request.auth_req_id})
        if answer.status_code == 200:
            token = answer.json().get("id_token")
            if not isinstance(token, str):
                raise PscError(_("Pro Santé Connect answered no ID token"), code="psc-refused",
                               status=502)
            return token
        try:
            error = answer.json().get("error")
        except ValueError:
            error = None
        if error == "authorization_pending":
            return None
        if error == "slow_down":
            raise SlowDown()
        raise _refused(answer)


class SlowDown(Exception):
    """The provider asks for polls 5 s further apart (CIBA `slow_down`)."""
