"""The reference PSC's HTTP endpoints (Starlette), built by `create_psc_app` from its settings.

Paths follow the public layout of PSC's Keycloak realm (``/auth/realms/esante-wallet/...``,
docs/psc.md); the e-CPS app's endpoints (``/ecps/...``) are ours: the real app's protocol is
not public. OAuth errors are ``{"error", "error_description"}`` as RFC 6749 and CIBA say;
descriptions are French then English, as the host's messages.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..bodies import read_body, read_json
from ..errors import HostError
from .devices import Devices
from .directory import Professional, load_directory
from .keys import ALGORITHM, KeyRing
from .logins import Login, LoginPending, Logins

REALM = "/auth/realms/esante-wallet"
OIDC = f"{REALM}/protocol/openid-connect"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
# PSC's one level (ansforge/keycloak-prosanteconnect, EidasLevel): strong authentication by
# CPS card or e-CPS.
STRONG_ACR = "eidas1"
MAX_FORM = 8 * 1024
MAX_BINDING_MESSAGE = 64
DEVICE_AUDIENCE_SUFFIX = "/ecps"
DEVICE_TOKEN_LIFETIME = 120  # seconds a device-signed request token may live


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Client:
    """A registered relying party. ``secret`` None: a public client (a browser page with
    PKCE), which may not use CIBA (CIBA core 4: confidential clients only)."""

    id: str
    secret: str | None
    redirect_uris: tuple[str, ...] = ()


@dataclass
class PscSettings:
    """``issuer``: the provider's public URL with the realm path (set before serving)."""

    data_dir: Path
    clients: dict[str, Client]
    issuer: str = ""
    ciba_interval: int = 2  # seconds between two polls (CIBA ``interval``)
    default_expiry: int = 120  # seconds a login waits for the phone
    max_expiry: int = 600
    token_lifetime: int = 300  # seconds an ID token (and its access token) is valid
    code_lifetime: int = 60  # seconds an authorization code may be redeemed
    directory: dict[str, Professional] = field(default_factory=load_directory)


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.extra = extra or {}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="psc"'} if self.status == 401 else None
        return JSONResponse({"error": self.error, "error_description": self.description,
                             **self.extra}, status_code=self.status, headers=headers,
                            media_type="application/json")


class Provider:
    """The provider's state: settings, keys, logins, devices, access tokens."""

    def __init__(self, settings: PscSettings, clock: Callable[[], dt.datetime]) -> None:
        self.settings = settings
        self.clock = clock
        self.keys = KeyRing(settings.data_dir)
        self.logins = Logins()
        self.devices = Devices(settings.data_dir)
        self._access: dict[str, tuple[str, dt.datetime]] = {}
        self._seen_jti: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def discovery(self) -> dict[str, Any]:
        base = self.issuer + "/protocol/openid-connect"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/certs",
            "backchannel_authentication_endpoint": f"{base}/ext/ciba/auth",
            "backchannel_token_delivery_modes_supported": ["poll"],
            "backchannel_user_code_parameter_supported": False,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", CIBA_GRANT],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": [STRONG_ACR],
            "scopes_supported": ["openid", "scope_all"],
            "claims_supported": ["sub", "SubjectNameID", "SubjectRefPro", "given_name",
                                 "family_name", "preferred_username", "acr", "nonce"],
        }

    # -- tokens ---------------------------------------------------------------------------------

    def tokens(self, login: Login) -> dict[str, Any]:
        """The token response of an approved login: ID token signed by the active key."""
        professional = self.settings.directory[login.id_nat_ps]
        now = self.clock()
        lifetime = self.settings.token_lifetime
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": login.id_nat_ps, "aud": login.client_id,
            "iat": int(now.timestamp()), "exp": int(now.timestamp()) + lifetime,
            "auth_time": int((login.decided or now).timestamp()), "acr": login.acr,
            **professional.claims(),
        }
        if login.nonce is not None:
            claims["nonce"] = login.nonce
        key = self.keys.active()
        id_token = jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims,
                              key.key)
        access = secrets.token_urlsafe(32)
        with self._lock:
            self._access = {token: value for token, value in self._access.items()
                            if value[1] > now}
            self._access[access] = (login.id_nat_ps, now + dt.timedelta(seconds=lifetime))
        return {"access_token": access, "token_type": "Bearer", "expires_in": lifetime,
                "id_token": id_token, "scope": login.scope}

    def userinfo(self, access_token: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._access.get(access_token)
        if entry is None or entry[1] <= self.clock():
            return None
        professional = self.settings.directory[entry[0]]
        return {"sub": professional.id_nat_ps, **professional.claims()}

    # -- the e-CPS app's requests ---------------------------------------------------------------

    def device_claims(self, request: Request) -> dict[str, Any]:
        """The claims of the device-signed token of an e-CPS app request (Bearer), checked:
        signed by an enrolled device's key, for this provider, fresh, never seen before."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise OAuthError("invalid_token", "Jeton de l'application absent / no app token",
                             401)
        token = header.removeprefix("Bearer ").strip()
        try:
            kid = extract_compact(token.encode("ascii")).headers().get("kid")
            if not isinstance(kid, str):
                raise KeyError("kid")
            unverified = jwt.decode(token, self.devices.key(kid), algorithms=["ES256"])
        except (JoseError, ValueError, KeyError):
            raise OAuthError("invalid_token", "Jeton de l'application invalide ou appareil non "
                             "enrôlé / invalid app token or device not enrolled", 401) from None
        claims = unverified.claims
        now = int(self.clock().timestamp())
        # The device speaks for itself only: iss is the device whose key signed.
        if (claims.get("iss") != kid or claims.get("aud") != self.issuer + DEVICE_AUDIENCE_SUFFIX
                or not isinstance(claims.get("iat"), int)
                or not isinstance(claims.get("exp"), int)
                or claims["exp"] <= now or claims["iat"] > now + 60
                or claims["exp"] - claims["iat"] > DEVICE_TOKEN_LIFETIME
                or not isinstance(claims.get("jti"), str)):
            raise OAuthError("invalid_token", "Jeton de l'application périmé ou mal formé / "
                             "app token expired or malformed", 401)
        with self._lock:
            cutoff = self.clock()
            self._seen_jti = {jti: until for jti, until in self._seen_jti.items()
                              if until > cutoff}
            if claims["jti"] in self._seen_jti:
                raise OAuthError("invalid_token", "Jeton de l'application rejoué / app token "
                                 "replayed", 401)
            self._seen_jti[claims["jti"]] = cutoff + dt.timedelta(seconds=DEVICE_TOKEN_LIFETIME)
        return claims


def _provider(request: Request) -> Provider:
    return request.app.state.provider  # type: ignore[no-any-return]


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; a repeated parameter is invalid_request
    (RFC 6749 3.1)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Formulaire attendu / form-encoded body expected")
    try:
        raw = await read_body(request, MAX_FORM)
    except HostError:
        raise OAuthError("invalid_request", "Requête trop longue / request too large") from None
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                       max_num_fields=30)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "Formulaire illisible / unreadable form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"Paramètre répété / repeated parameter {name}")
        form[name] = value
    return form


def _client(request: Request, form: dict[str, str], provider: Provider) -> Client:
    """The authenticated client: HTTP Basic, or client_id + client_secret in the form, or a
    public client by its client_id alone."""
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            user, _, password = decoded.partition(":")
            client_id, secret = urllib.parse.unquote(user), urllib.parse.unquote(password)
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Authentification du client illisible / "
                             "unreadable client authentication", 401) from None
    client = provider.settings.clients.get(client_id or "")
    if client is None:
        raise OAuthError("invalid_client", "Client inconnu / unknown client", 401)
    if client.secret is not None and (
            secret is None or not secrets.compare_digest(secret.encode(), client.secret.encode())):
        raise OAuthError("invalid_client", "Secret du client incorrect / wrong client secret",
                         401)
    return client


def _binding_message(value: str | None) -> str:
    if not value:
        raise OAuthError("invalid_binding_message", "binding_message obligatoire / required")
    if len(value) > MAX_BINDING_MESSAGE or not value.isprintable():
        raise OAuthError("invalid_binding_message", f"binding_message : {MAX_BINDING_MESSAGE} "
                         "caractères imprimables au plus / at most "
                         f"{MAX_BINDING_MESSAGE} printable characters")
    return value


def _acr(value: str | None) -> str:
    # Only the strong level exists: a request for anything else is not served weaker.
    if value and STRONG_ACR not in value.split():
        raise OAuthError("invalid_request", f"acr_values : seul {STRONG_ACR} est proposé / "
                         f"only {STRONG_ACR} is offered")
    return STRONG_ACR


def _scope(value: str | None) -> str:
    if not value or "openid" not in value.split():
        raise OAuthError("invalid_scope", "scope doit contenir openid / scope must include "
                         "openid")
    return value


# -- discovery and keys -------------------------------------------------------------------------


async def discovery(request: Request) -> Response:
    return JSONResponse(_provider(request).discovery())


async def certs(request: Request) -> Response:
    provider = _provider(request)
    return JSONResponse(provider.keys.jwks(provider.clock()),
                        headers={"Cache-Control": "max-age=300"})


# -- CIBA ---------------------------------------------------------------------------------------


async def backchannel_authentication(request: Request) -> Response:
    """CIBA core 7: login_hint = the professional's idNat_PS; binding_message shown on the
    phone; requested_expiry in seconds; poll mode only."""
    provider = _provider(request)
    try:
        form = await _form(request)
        client = _client(request, form, provider)
        if client.secret is None:
            raise OAuthError("unauthorized_client", "CIBA réservé aux clients confidentiels / "
                             "CIBA needs a confidential client")
        scope = _scope(form.get("scope"))
        acr = _acr(form.get("acr_values"))
        id_nat_ps = form.get("login_hint", "")
        if not id_nat_ps:
            raise OAuthError("invalid_request", "login_hint (idNat_PS) obligatoire / required")
        if id_nat_ps not in provider.settings.directory \
                or not provider.devices.enrolled(id_nat_ps):
            raise OAuthError("unknown_user_id", "Aucune e-CPS activée pour ce professionnel / "
                             "no e-CPS enrolled for this professional")
        binding = _binding_message(form.get("binding_message"))
        expiry = provider.settings.default_expiry
        if "requested_expiry" in form:
            text = form["requested_expiry"]
            if not text.isascii() or not text.isdigit() \
                    or not 0 < int(text) <= provider.settings.max_expiry:
                raise OAuthError("invalid_request", "requested_expiry : un nombre de secondes "
                                 f"de 1 à {provider.settings.max_expiry} / seconds, 1 to "
                                 f"{provider.settings.max_expiry}")
            expiry = int(text)
        nonce = form.get("nonce") or None
        try:
            login = provider.logins.start(
                provider.clock(), expiry, provider.settings.ciba_interval,
                client_id=client.id, id_nat_ps=id_nat_ps, binding_message=binding,
                scope=scope, acr=acr, nonce=nonce)
        except LoginPending as pending:
            raise OAuthError(
                "invalid_request", "Une demande attend déjà la validation sur l'e-CPS de ce "
                "professionnel : validez-la, refusez-la ou attendez son expiration / a request "
                "is already waiting on this professional's e-CPS",
                extra={"pending_expires_in": pending.expires_in}) from None
    except OAuthError as error:
        return error.response()
    return JSONResponse({"auth_req_id": login.id, "expires_in": expiry,
                         "interval": login.interval})


# -- token --------------------------------------------------------------------------------------


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def token(request: Request) -> Response:
    provider = _provider(request)
    try:
        form = await _form(request)
        client = _client(request, form, provider)
        grant = form.get("grant_type")
        if grant == CIBA_GRANT:
            login, outcome = provider.logins.poll(form.get("auth_req_id", ""), client.id,
                                                  provider.clock())
            if outcome != "approved" or login is None:
                raise OAuthError(outcome, _POLL_MESSAGES[outcome])
            return JSONResponse(provider.tokens(login), headers={"Cache-Control": "no-store"})
        if grant == "authorization_code":
            return _redeem_code(provider, client, form)
        raise OAuthError("unsupported_grant_type", "grant_type non pris en charge / "
                         "unsupported grant_type")
    except OAuthError as error:
        return error.response()


_POLL_MESSAGES = {
    "authorization_pending": "En attente de la validation sur l'e-CPS / waiting for the "
                             "e-CPS approval",
    "slow_down": "Interrogations trop rapprochées : espacez-les de 5 s de plus / polling too "
                 "fast: wait 5 more seconds between polls",
    "expired_token": "La demande a expiré sans réponse sur l'e-CPS / the request expired "
                     "without an answer on the e-CPS",
    "access_denied": "Connexion refusée sur l'e-CPS / login denied on the e-CPS",
    "invalid_grant": "auth_req_id inconnu, d'un autre client ou déjà utilisé / unknown, "
                     "another client's or already used",
}


def _redeem_code(provider: Provider, client: Client, form: dict[str, str]) -> Response:
    login = provider.logins.redeem(form.get("code", ""), client.id)
    now = provider.clock()
    if login is None or login.decided is None \
            or now - login.decided > dt.timedelta(seconds=provider.settings.code_lifetime):
        raise OAuthError("invalid_grant", "Code inconnu, expiré ou déjà utilisé / unknown, "
                         "expired or used code")
    if form.get("redirect_uri") != login.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri différente / redirect_uri differs")
    verifier = form.get("code_verifier", "")
    if not 43 <= len(verifier) <= 128 or not secrets.compare_digest(
            _s256(verifier), login.code_challenge or ""):
        raise OAuthError("invalid_grant", "code_verifier ne correspond pas (PKCE S256) / "
                         "code_verifier does not match")
    return JSONResponse(provider.tokens(login), headers={"Cache-Control": "no-store"})


async def userinfo(request: Request) -> Response:
    header = request.headers.get("authorization", "")
    info = (_provider(request).userinfo(header[7:].strip())
            if header.startswith("Bearer ") else None)
    if info is None:
        return JSONResponse({"error": "invalid_token"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return JSONResponse(info)


# -- the browser's authorization (code + PKCE) --------------------------------------------------


def _page(title: str, body: str, *, status: int = 200, refresh: str | None = None
          ) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{html.escape(refresh)}">' if refresh else ""
    return HTMLResponse(
        f'<!doctype html><html lang="fr"><head><meta charset="utf-8">{meta}'
        f"<title>{html.escape(title)}</title></head><body><h1>Pro Santé Connect (test)</h1>"
        f"{body}</body></html>", status_code=status,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'",
                 "X-Frame-Options": "DENY"})


def _error_page(message: str) -> HTMLResponse:
    return _page("Erreur", f"<p>{html.escape(message)}</p>", status=400)


def _authorization(provider: Provider, params: dict[str, str]) -> tuple[Client, dict[str, str]]:
    """The checked parameters of an authorization request; OAuthError when the client or
    its redirect_uri is wrong (shown, never redirected), ValueError (redirected back)."""
    client = provider.settings.clients.get(params.get("client_id", ""))
    if client is None or params.get("redirect_uri") not in client.redirect_uris:
        raise OAuthError("invalid_request", "Client ou redirect_uri inconnus / unknown client "
                         "or redirect_uri")
    if params.get("response_type") != "code":
        raise ValueError("unsupported_response_type")
    if params.get("code_challenge_method") != "S256" or len(params.get("code_challenge",
                                                                        "")) != 43:
        raise ValueError("invalid_request")  # PKCE S256 only (no "plain")
    if "openid" not in params.get("scope", "").split() or not params.get("nonce"):
        raise ValueError("invalid_request")
    if params.get("acr_values") and STRONG_ACR not in params["acr_values"].split():
        raise ValueError("invalid_request")
    return client, params


def _back(params: dict[str, str], **values: str) -> RedirectResponse:
    query = dict(values)
    if params.get("state"):
        query["state"] = params["state"]
    separator = "&" if "?" in params["redirect_uri"] else "?"
    return RedirectResponse(params["redirect_uri"] + separator + urllib.parse.urlencode(query),
                            status_code=303)


_KEPT = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
         "code_challenge", "code_challenge_method", "acr_values")


async def authorize(request: Request) -> Response:
    """GET: the sign-in page (idNat_PS, then approval on the e-CPS); POST: start the login."""
    provider = _provider(request)
    if request.method == "GET":
        params = dict(request.query_params)
    else:
        try:
            params = await _form(request)
        except OAuthError as error:
            return _error_page(error.description)
    try:
        client, params = _authorization(provider, params)
    except OAuthError as error:
        return _error_page(error.description)
    except ValueError as error:
        return _back(params, error=str(error))
    if request.method == "GET":
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(params[name])}">'
            for name in _KEPT if name in params)
        return _page("Connexion", (
            f'<form method="post" action="{OIDC}/auth">{hidden}'
            '<label>Identifiant national (RPPS) <input name="login_hint" required '
            f'value="{html.escape(params.get("login_hint", ""))}"></label>'
            "<button>Se connecter avec l'e-CPS</button></form>"))
    id_nat_ps = params.get("login_hint", "")
    if id_nat_ps not in provider.settings.directory or not provider.devices.enrolled(id_nat_ps):
        return _error_page("Aucune e-CPS activée pour cet identifiant.")
    code = f"{secrets.randbelow(10000):04d}"
    try:
        login = provider.logins.start(
            provider.clock(), provider.settings.default_expiry,
            provider.settings.ciba_interval, client_id=client.id, id_nat_ps=id_nat_ps,
            binding_message=f"Connexion navigateur, code {code}", scope=params["scope"],
            acr=STRONG_ACR, nonce=params["nonce"], redirect_uri=params["redirect_uri"],
            state=params.get("state"), code_challenge=params["code_challenge"])
    except LoginPending:
        return _error_page("Une demande attend déjà la validation sur votre e-CPS.")
    return RedirectResponse(f"{OIDC}/auth/wait?login={urllib.parse.quote(login.id)}",
                            status_code=303)


async def authorize_wait(request: Request) -> Response:
    provider = _provider(request)
    login = provider.logins.get(request.query_params.get("login", ""))
    if login is None or login.redirect_uri is None:
        return _error_page("Demande de connexion inconnue.")
    params = {"redirect_uri": login.redirect_uri, "state": login.state or ""}
    status = login.status_at(provider.clock())
    if status == "approved" and login.code is not None:
        return _back(params, code=login.code)
    if status in ("denied", "expired"):
        return _back(params, error="access_denied")
    return _page("En attente", (
        "<p>Validez la connexion sur votre application e-CPS.</p>"
        f"<p>Message affiché : <strong>{html.escape(login.binding_message)}</strong></p>"),
        refresh="2")


# -- the e-CPS app (ours) -----------------------------------------------------------------------


async def enrol_device(request: Request) -> Response:
    """Body {idNatPs, publicKey: JWK (EC P-256)}: the app's key for this professional.

    Ours: the real activation proves the holder (CPS card or identity check); the reference
    provider enrols any professional of its directory, as virtual cards are issued to anyone.
    """
    provider = _provider(request)
    try:
        body = await read_json(request, limit=8 * 1024)
    except HostError as error:
        return OAuthError("invalid_request", error.message).response()
    id_nat_ps, public = body.get("idNatPs"), body.get("publicKey")
    if id_nat_ps not in provider.settings.directory:
        return OAuthError("unknown_user_id", "Professionnel inconnu de l'annuaire / not in the "
                          "directory").response()
    try:
        device_id = provider.devices.enrol(str(id_nat_ps), public, provider.clock())
    except ValueError as error:
        return OAuthError("invalid_request", str(error)).response()
    return JSONResponse({"deviceId": device_id, "audience": provider.issuer
                         + DEVICE_AUDIENCE_SUFFIX}, status_code=201)


async def device_logins(request: Request) -> Response:
    provider = _provider(request)
    try:
        claims = provider.device_claims(request)
    except OAuthError as error:
        return error.response()
    id_nat_ps = provider.devices.owner(claims["iss"])
    now = provider.clock()
    return JSONResponse({"logins": [{
        "id": login.id, "bindingMessage": login.binding_message, "client": login.client_id,
        "expiresIn": max(0, int((login.expires - now).total_seconds())),
    } for login in provider.logins.pending_for(id_nat_ps, now)]})


async def device_decision(request: Request) -> Response:
    """The device token carries ``login`` and ``decision`` (approve / deny): the signature
    covers the answer, not only the device."""
    provider = _provider(request)
    try:
        claims = provider.device_claims(request)
        login_id = request.path_params["login_id"]
        if claims.get("login") != login_id or claims.get("decision") not in ("approve", "deny"):
            raise OAuthError("invalid_request", "Décision mal formée / malformed decision")
        id_nat_ps = provider.devices.owner(claims["iss"])
        try:
            status = provider.logins.decide(login_id, id_nat_ps,
                                            claims["decision"] == "approve", provider.clock())
        except KeyError:
            raise OAuthError("not_found", "Demande inconnue / unknown request", 404) from None
    except OAuthError as error:
        return error.response()
    if status == "expired":
        return OAuthError("expired_token", _POLL_MESSAGES["expired_token"], 409).response()
    return JSONResponse({"status": status})


def create_psc_app(settings: PscSettings, *,
                   clock: Callable[[], dt.datetime] = utc_now) -> Starlette:
    routes = [
        Route(f"{REALM}/.well-known/openid-configuration", discovery),
        # PSC publishes its discovery document under this name too (psc.properties).
        Route(f"{REALM}/.well-known/wallet-openid-configuration", discovery),
        Route(f"{OIDC}/certs", certs),
        Route(f"{OIDC}/auth", authorize, methods=["GET", "POST"]),
        Route(f"{OIDC}/auth/wait", authorize_wait),
        Route(f"{OIDC}/token", token, methods=["POST"]),
        Route(f"{OIDC}/userinfo", userinfo, methods=["GET"]),
        Route(f"{OIDC}/ext/ciba/auth", backchannel_authentication, methods=["POST"]),
        Route("/ecps/devices", enrol_device, methods=["POST"]),
        Route("/ecps/logins", device_logins, methods=["GET"]),
        Route("/ecps/logins/{login_id}", device_decision, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.provider = Provider(settings, clock)
    return app
