"""The host's check of a Pro Santé Connect ID token, the e-CPS way into a session.

The host trusts one provider (`PscTrust`: issuer URL, the CA of its TLS certificate, the
client id tokens are issued to). It reads the provider's discovery document and JWKS over
HTTPS and keeps the JWKS; a token signed with a key it does not know makes it read the JWKS
again (a rotation), at most every `PscTrust.refetch_after`. JOSE is joserfc's; what a
token must say is checked here, each refusal with its own `SessionRefused` code:

    psc-token-malformed   not a compact JWS, or claims that are not a JSON object
    psc-alg-refused       alg outside the allow-list (``none`` and every HS* among them)
    psc-unknown-key       no kid, or a kid the provider's JWKS does not publish
    psc-bad-signature     the signature does not verify with that key
    psc-wrong-issuer      iss is not the provider the host trusts
    psc-wrong-audience    aud does not name the host's client id
    psc-token-expired     exp passed (or iat in the future beyond the allowed skew)
    psc-acr-insufficient  acr is not the strong-authentication level (eidas1)
    psc-nonce-mismatch    nonce is not the one of this challenge and session key
    psc-claims-missing    no SubjectNameID, names or profession
    psc-unavailable       the provider's discovery or JWKS cannot be read (503)
"""

from __future__ import annotations

import datetime as dt
import secrets
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from .session_crypto import CardHolder, SessionRefused

MESSAGES = {
    "psc-token-malformed": (
        "Le jeton Pro Santé Connect est illisible.",
        "The Pro Santé Connect token cannot be read."),
    "psc-alg-refused": (
        "Le jeton Pro Santé Connect utilise un algorithme de signature refusé.",
        "The Pro Santé Connect token uses a refused signature algorithm."),
    "psc-unknown-key": (
        "Le jeton Pro Santé Connect est signé d'une clé que le fournisseur ne publie pas.",
        "The Pro Santé Connect token is signed with a key the provider does not publish."),
    "psc-bad-signature": (
        "La signature du jeton Pro Santé Connect est invalide.",
        "The Pro Santé Connect token's signature is invalid."),
    "psc-wrong-issuer": (
        "Le jeton n'a pas été émis par le fournisseur Pro Santé Connect reconnu.",
        "The token was not issued by the trusted Pro Santé Connect provider."),
    "psc-wrong-audience": (
        "Le jeton Pro Santé Connect a été émis pour un autre service.",
        "The Pro Santé Connect token was issued for another service."),
    "psc-token-expired": (
        "Le jeton Pro Santé Connect a expiré : reconnectez-vous avec l'e-CPS.",
        "The Pro Santé Connect token has expired: log in with the e-CPS again."),
    "psc-acr-insufficient": (
        "Le jeton Pro Santé Connect ne vient pas d'une authentification forte (eidas1).",
        "The Pro Santé Connect token does not come from a strong authentication (eidas1)."),
    "psc-nonce-mismatch": (
        "Le jeton Pro Santé Connect n'a pas été demandé pour ce défi et cette clé de session.",
        "The Pro Santé Connect token was not requested for this challenge and session key."),
    "psc-nonce-replayed": (
        "Ce jeton Pro Santé Connect a déjà ouvert une session : il ne sert qu'une fois.",
        "This Pro Santé Connect token already opened a session: it is good for one only."),
    "psc-claims-missing": (
        "Le jeton Pro Santé Connect ne dit pas qui est le professionnel.",
        "The Pro Santé Connect token does not say who the professional is."),
    "psc-unavailable": (
        "Le fournisseur Pro Santé Connect ne répond pas : réessayez ou utilisez la carte CPS.",
        "The Pro Santé Connect provider does not answer: retry or use the CPS card."),
    "psc-not-configured": (
        "Ce serveur n'accepte pas la connexion par e-CPS.",
        "This host does not accept e-CPS logins."),
    "structure-not-in-psc": (
        "La structure demandée n'est pas une situation d'exercice connue de Pro Santé Connect.",
        "The structure requested is not one of the professional's practice situations."),
}


def refused(code: str) -> SessionRefused:
    french, english = MESSAGES[code]
    return SessionRefused(code, f"{french} / {english}")


@dataclass(frozen=True)
class PscTrust:
    """The Pro Santé Connect provider a host accepts tokens from (HostSettings.psc)."""

    issuer: str
    ca_file: Path
    client_id: str = "dmp-agent"
    acr: str = "eidas1"
    # Asymmetric algorithms only: ``none`` and HS* (a secret shared with every client) never.
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    jwks_max_age: dt.timedelta = dt.timedelta(minutes=10)
    refetch_after: dt.timedelta = dt.timedelta(seconds=30)
    timeout: float = 5.0


Fetch = Callable[[str], Any]


class PscVerifier:
    """Checks ID tokens against one provider; keeps its JWKS (thread-safe)."""

    def __init__(self, trust: PscTrust, fetch: Fetch | None = None) -> None:
        self.trust = trust
        self._fetch = fetch or self._https_json
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched: dt.datetime | None = None

    def _https_json(self, url: str) -> Any:
        context = ssl.create_default_context(cafile=str(self.trust.ca_file))
        with httpx.Client(verify=context, timeout=self.trust.timeout) as client:
            answer = client.get(url)
            answer.raise_for_status()
            return answer.json()

    def _load_jwks(self, now: dt.datetime) -> None:
        try:
            discovery = self._fetch(self.trust.issuer.rstrip("/")
                                    + "/.well-known/openid-configuration")
            if discovery.get("issuer") != self.trust.issuer:
                raise ValueError("the discovery document names another issuer")
            jwks = self._fetch(str(discovery["jwks_uri"]))
            keys = KeySet.import_key_set(jwks)
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError, AttributeError,
                JoseError):
            raise refused("psc-unavailable") from None
        self._keys = keys
        self._kids = {str(key.kid) for key in keys.keys if key.kid}
        self._fetched = now

    def key_set(self, kid: str, now: dt.datetime) -> KeySet:
        """The JWKS holding ``kid``, read again when stale or when ``kid`` is new (at most
        every ``refetch_after``); psc-unknown-key when the provider does not publish it."""
        with self._lock:
            stale = self._fetched is None or now - self._fetched > self.trust.jwks_max_age
            may_refetch = self._fetched is None or now - self._fetched > self.trust.refetch_after
            if stale or (kid not in self._kids and may_refetch):
                self._load_jwks(now)
            if kid not in self._kids or self._keys is None:
                raise refused("psc-unknown-key")
            return self._keys

    def verify(self, id_token: str, *, expected_nonce: str, now: dt.datetime,
               max_skew: dt.timedelta) -> CardHolder:
        """The professional an ID token names, once every check passed (module docstring);
        SessionRefused otherwise."""
        try:
            header = extract_compact(id_token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeEncodeError, TypeError):
            raise refused("psc-token-malformed") from None
        alg = header.get("alg")
        if alg not in self.trust.algorithms:
            raise refused("psc-alg-refused")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise refused("psc-unknown-key")
        keys = self.key_set(kid, now)
        try:
            token = jwt.decode(id_token, keys.get_by_kid(kid), algorithms=[str(alg)])
        except BadSignatureError:
            raise refused("psc-bad-signature") from None
        except (JoseError, ValueError, TypeError):  # a key of another type, claims not JSON
            raise refused("psc-token-malformed") from None
        if not isinstance(token.claims, dict):
            raise refused("psc-token-malformed")
        return self._professional(token.claims, expected_nonce, now, max_skew)

    def _professional(self, claims: dict[str, Any], expected_nonce: str, now: dt.datetime,
                      max_skew: dt.timedelta) -> CardHolder:
        if claims.get("iss") != self.trust.issuer:
            raise refused("psc-wrong-issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.trust.client_id not in audiences or (
                len(audiences) > 1 and claims.get("azp") != self.trust.client_id):
            raise refused("psc-wrong-audience")
        exp, iat = claims.get("exp"), claims.get("iat")
        skew = max_skew.total_seconds()
        if not isinstance(exp, int | float) or exp + skew <= now.timestamp() or (
                isinstance(iat, int | float) and iat - skew > now.timestamp()):
            raise refused("psc-token-expired")
        if claims.get("acr") != self.trust.acr:
            raise refused("psc-acr-insufficient")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not secrets.compare_digest(nonce.encode(),
                                                                    expected_nonce.encode()):
            raise refused("psc-nonce-mismatch")
        return holder_from_claims(claims)


def holder_from_claims(claims: dict[str, Any]) -> CardHolder:
    """The professional of PSC claims (SubjectNameID, given_name, family_name,
    SubjectRefPro.exercices[].codeProfession / codeSavoirFaire / activities[])."""
    try:
        id_nat_ps = claims["SubjectNameID"]
        exercices = claims["SubjectRefPro"]["exercices"]
        first = exercices[0]
        structures = tuple(
            activity["ancienIdentifiantDeLaStructure"]
            for exercice in exercices for activity in exercice.get("activities") or ()
            if activity.get("ancienIdentifiantDeLaStructure"))
        holder = CardHolder(
            id_nat_ps=id_nat_ps, profession=first["codeProfession"],
            specialty=first.get("codeSavoirFaire") or None,
            last_name=claims["family_name"], first_name=claims["given_name"],
            is_test_card=False, serial=0, structures=structures)
    except (KeyError, IndexError, TypeError, AttributeError):
        raise refused("psc-claims-missing") from None
    if not all(isinstance(value, str) and value for value in (
            holder.id_nat_ps, holder.profession, holder.last_name, holder.first_name)):
        raise refused("psc-claims-missing")
    if claims.get("sub") not in (None, id_nat_ps):
        raise refused("psc-claims-missing")
    return holder
