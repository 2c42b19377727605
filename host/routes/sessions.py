"""Card-rooted sessions: challenge, opening (card signature → session certificate), closing.

The workstation's establishment certificate asks for a challenge and opens the session; the
session certificate returned is what every later call presents. The checks themselves are in
`host.session_crypto` (pure); this module keeps the challenges and sessions in the database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wire.session import SessionStatement, StatementError, ecps_nonce

from .. import session_store
from ..actors import CARD, ECPS, fingerprint, modes_for
from ..bodies import read_json
from ..errors import HostError, bad_request
from ..pki import cached_health_ca, cached_session_ca, load_crl
from ..psc_token import PscVerifier
from ..psc_token import refused as psc_refused
from ..session_crypto import (
    CardHolder,
    SessionPublicKey,
    SessionRefused,
    issue_session_certificate,
    verify_card_certificate,
    verify_statement,
)
from ..state import HostState, host_state
from ..structures import structure_kind
from ..text import refuse_control_characters

MAX_BODY = 64 * 1024
MAX_REVOCATIONS = 100  # sessions named in one POST /session/$revoke
MAX_REASON = 64  # characters of a closure reason (sessions.revoked_reason)
MAX_SESSION_ID = 64  # characters of a session id (they are UUIDs: 36)
MAX_ID_TOKEN = 16 * 1024  # characters of a PSC ID token (PSC's carry the practice situations)


def _refused(error: SessionRefused, status: int | None = None) -> HostError:
    if status is None:
        status = 400 if error.code in ("card-cert-malformed",) else 403
    return HostError(status, error.code, error.message, issue_type="security")


async def _json(request: Request) -> dict[str, Any]:
    return await read_json(request, limit=MAX_BODY)


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise bad_request("invalid-field", f"{what}: base64 text expected")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("invalid-field", f"{what}: not valid base64") from None


def _workstation_serial(authenticator: object, request: Request) -> str | None:
    """The workstation certificate's serial (hex) when the authenticator reads certificates
    (the in-process test authenticator does not)."""
    reader = getattr(authenticator, "workstation_certificate", None)
    return None if reader is None else format(reader(request).serial_number, "x")


async def challenge(request: Request) -> Response:
    """
    summary: A one-time challenge for opening a session (workstation certificate).
    responses:
      200:
        description: "{challenge: base64 of 32 random bytes, expiresAt: ISO 8601 (the host's
          clock), expiresIn: seconds it stays usable (for a client that fetched it ahead
          and whose clock may differ from the host's)}"
      401:
        description: OperationOutcome (no client certificate)
      403:
        description: OperationOutcome not-a-workstation
    """
    app = host_state(request)
    workstation = app.authenticator.workstation(request)
    value = secrets.token_bytes(32)
    now = app.clock()
    expires = now + app.settings.challenge_lifetime
    session_store.record_challenge(app.engine, value, workstation, now, expires)
    return JSONResponse({"challenge": base64.b64encode(value).decode(),
                         "expiresAt": expires.isoformat(),
                         "expiresIn": app.settings.challenge_lifetime.total_seconds()})


async def open_session(request: Request) -> Response:
    """
    summary: Open a professional session from a statement signed by the CPS card.
    description: >
      Body {statement: the wire.SessionStatement JSON, signature: base64 RSA PKCS#1 v1.5
      SHA-256 signature of the statement bytes by the card's authentication key,
      cardCertificate: base64 DER of the card's authentication certificate,
      sessionPublicKey: base64 DER SubjectPublicKeyInfo}. The host checks the certificate
      chain to the health CA, its CRL, validity and category (test card / real card), the
      signature, the workstation fingerprint against this connection's certificate, the time
      and the challenge, then issues a session certificate.
    responses:
      201:
        description: "{sessionId, certificate: PEM, notAfter, structureKind, accessModes (the
          modes this session may use: centre_15 only for a registered regulation centre)}"
      400:
        description: OperationOutcome (malformed request or card certificate)
      403:
        description: "OperationOutcome: card-cert-untrusted, card-cert-revoked,
          card-cert-expired, test-card-refused, real-card-refused, bad-signature,
          workstation-mismatch, clock-skew, challenge-unknown, structure-not-on-card
          (the statement's structure is not a practice situation of the card),
          workstation-revoked, ..."
    """
    app = host_state(request)
    workstation = app.authenticator.workstation(request)
    workstation_serial = _workstation_serial(app.authenticator, request)
    body = await _json(request)
    try:
        statement = SessionStatement.from_dict(body.get("statement") or {})
    except StatementError as exc:
        raise bad_request("invalid-statement", f"Déclaration de session invalide: {exc}") from None
    signature = _b64(body.get("signature"), "signature")
    card_der = _b64(body.get("cardCertificate"), "cardCertificate")
    try:
        session_key = serialization.load_der_public_key(
            _b64(body.get("sessionPublicKey"), "sessionPublicKey")
        )
    except ValueError:
        raise bad_request("invalid-field", "sessionPublicKey: not a DER public key") from None
    pki = app.settings.pki_dir
    now = app.clock()
    health_ca = cached_health_ca(pki)  # loaded once (a CA load checks its RSA key: ~45 ms)
    try:
        holder = verify_card_certificate(
            card_der, health_ca, load_crl(pki / "health-ca" / "crl.pem"),
            mode=app.settings.mode, now=now,
        )

        def consume(value: bytes) -> bool:
            return session_store.consume_challenge(app.engine, value, workstation, now)

        verify_statement(
            statement, signature, x509.load_der_x509_certificate(card_der),
            tls_client_cert_sha256=bytes.fromhex(workstation), now=now,
            max_skew=app.settings.max_clock_skew,
            session_public_key=session_key,  # type: ignore[arg-type]
            challenge_known=consume,
        )
        holder.check_structure(statement.structure_id)
    except SessionRefused as refused:
        raise _refused(refused) from None
    return _issue_session(app, holder, statement.structure_id,
                          session_key, workstation, workstation_serial,  # type: ignore[arg-type]
                          now, CARD)


def _issue_session(app: HostState, holder: CardHolder, structure_id: str,
                   session_key: SessionPublicKey, workstation: str,
                   workstation_serial: str | None, now: dt.datetime, means: str) -> Response:
    """The session certificate and the session row, the same for every means of
    authentication (card or e-CPS): nothing after this knows how the session was opened
    but the ``auth_means`` column every access-log line copies."""
    certificate = issue_session_certificate(
        cached_session_ca(app.settings.pki_dir), session_key, holder, structure_id,
        app.settings.session_lifetime, now=now,
    )
    session_id = str(uuid.uuid4())
    session_store.record_session(
        app.engine, id=session_id, cert_sha256=fingerprint(certificate),
        cert_serial=format(certificate.serial_number, "x"), id_nat_ps=holder.id_nat_ps,
        last_name=holder.last_name, first_name=holder.first_name,
        profession=holder.profession, specialty=holder.specialty,
        structure_id=structure_id,
        # e-CPS sessions have no card: no card revocation can end them (an empty serial).
        card_serial=format(holder.serial, "x") if means == CARD else "",
        workstation_sha256=workstation, workstation_serial=workstation_serial,
        created_at=now, not_after=certificate.not_valid_after_utc, auth_means=means,
    )
    kind = structure_kind(app.engine, structure_id)
    return JSONResponse(
        {"sessionId": session_id,
         "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
         "notAfter": certificate.not_valid_after_utc.isoformat(),
         "structureKind": kind.value, "accessModes": modes_for(kind), "authMeans": means},
        status_code=201,
    )


def _psc_verifier(app: HostState) -> PscVerifier:
    """The app's verifier of PSC tokens (made at first use: it keeps the provider's JWKS)."""
    trust = app.settings.psc
    if trust is None:
        raise _refused(psc_refused("psc-not-configured"), status=404)
    verifier = getattr(app, "psc_verifier", None)
    if verifier is None or verifier.trust != trust:
        verifier = PscVerifier(trust)
        app.psc_verifier = verifier
    return verifier


async def open_ecps_session(request: Request) -> Response:
    """
    summary: Open a professional session from a Pro Santé Connect ID token (e-CPS).
    description: >
      Body {idToken: the ID token PSC issued to the agent (CIBA or code flow), challenge:
      base64 of a challenge from POST /session/challenge, sessionPublicKey: base64 DER
      SubjectPublicKeyInfo, structureId: the practice situation}. The token's nonce must be
      wire.session.ecps_nonce(challenge, sessionPublicKey): the token then opens this one
      session. The host checks the token (signature against the provider's JWKS, alg
      allow-list, issuer, audience, expiry, acr eidas1, nonce), consumes the challenge,
      and issues the same session certificate as after a card statement (docs/psc.md).
    responses:
      201:
        description: "{sessionId, certificate, notAfter, structureKind, accessModes,
          authMeans: e-cps}"
      400:
        description: OperationOutcome (malformed request)
      403:
        description: "OperationOutcome: psc-token-malformed, psc-alg-refused,
          psc-unknown-key, psc-bad-signature, psc-wrong-issuer, psc-wrong-audience,
          psc-token-expired, psc-acr-insufficient, psc-nonce-mismatch, psc-nonce-replayed,
          psc-claims-missing, challenge-unknown, structure-not-in-psc, workstation-revoked"
      404:
        description: OperationOutcome psc-not-configured (this host takes no e-CPS)
      503:
        description: OperationOutcome psc-unavailable (the provider's JWKS cannot be read)
    """
    app = host_state(request)
    workstation = app.authenticator.workstation(request)
    workstation_serial = _workstation_serial(app.authenticator, request)
    verifier = _psc_verifier(app)
    body = await _json(request)
    id_token, structure_id = body.get("idToken"), body.get("structureId")
    if not isinstance(id_token, str) or not 0 < len(id_token) <= MAX_ID_TOKEN:
        raise bad_request("invalid-field", f"idToken : un jeton de {MAX_ID_TOKEN} caractères "
                          f"au plus est attendu / a token of at most {MAX_ID_TOKEN} characters")
    if not isinstance(structure_id, str) or not 0 < len(structure_id) <= MAX_SESSION_ID:
        raise bad_request("invalid-field", "structureId : identifiant de structure attendu / "
                          "a structure id is expected")
    refuse_control_characters(structure_id, "structureId")
    challenge_value = _b64(body.get("challenge"), "challenge")
    session_key_der = _b64(body.get("sessionPublicKey"), "sessionPublicKey")
    try:
        session_key = serialization.load_der_public_key(session_key_der)
    except ValueError:
        raise bad_request("invalid-field", "sessionPublicKey: not a DER public key") from None
    now = app.clock()
    try:
        holder = await run_in_threadpool(  # may read the provider's JWKS over HTTPS
            verifier.verify, id_token, expected_nonce=ecps_nonce(challenge_value,
                                                                 session_key_der),
            now=now, max_skew=app.settings.max_clock_skew)
        if not session_store.consume_challenge(app.engine, challenge_value, workstation, now):
            # The nonce is bound to the challenge: a used challenge is a token played again.
            raise psc_refused("psc-nonce-replayed" if session_store.challenge_used(
                app.engine, challenge_value, workstation) else "challenge-unknown")
        if structure_id not in holder.structures:
            raise psc_refused("structure-not-in-psc")
    except SessionRefused as refusal:
        raise _refused(refusal, status=503 if refusal.code == "psc-unavailable" else None
                       ) from None
    return _issue_session(app, holder, structure_id,
                          session_key, workstation, workstation_serial,  # type: ignore[arg-type]
                          now, ECPS)


async def close_session(request: Request) -> Response:
    """
    summary: Close the caller's session (CPS removed, logout); later calls are refused.
    responses:
      204:
        description: Closed.
      401:
        description: OperationOutcome (no active session)
    """
    app = host_state(request)
    actor = app.authenticator.session(request)
    reason = request.query_params.get("reason", "closed")[:64]
    session_store.end_session(app.engine, actor.session_id, app.clock(), reason)
    return Response(status_code=204)


def _revocations(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (session id, reason) pairs of a revocation body, or a 400 naming what is wrong."""
    entries = body.get("sessions")
    if not isinstance(entries, list):
        raise bad_request("invalid-field", "sessions: une liste est attendue / a list is "
                          "expected")
    if len(entries) > MAX_REVOCATIONS:
        raise bad_request("too-many", f"sessions: {MAX_REVOCATIONS} au plus par requête / at "
                          f"most {MAX_REVOCATIONS} per request")
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad_request("invalid-field", "sessions[]: un objet {sessionId, reason} est "
                              "attendu / an object {sessionId, reason} is expected")
        session_id, reason = entry.get("sessionId"), entry.get("reason", "closed")
        if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID:
            raise bad_request("invalid-field", f"sessionId: texte de 1 à {MAX_SESSION_ID} "
                              f"caractères attendu / 1 to {MAX_SESSION_ID} characters expected")
        if not isinstance(reason, str) or not 0 < len(reason) <= MAX_REASON:
            raise bad_request("invalid-field", f"reason: texte de 1 à {MAX_REASON} caractères "
                              f"attendu / 1 to {MAX_REASON} characters expected")
        refuse_control_characters(session_id, "sessionId")
        refuse_control_characters(reason, "reason")
        out.append((session_id, reason))
    return out


async def revoke_sessions(request: Request) -> Response:
    """
    summary: End sessions this workstation opened (workstation certificate), e.g. after
      the CPS was removed while the host could not be reached.
    description: >
      Body {sessions: [{sessionId, reason}], at most 100; reason: at most 64 characters, no
      control characters; absent: "closed"}. Each session this workstation opened and that
      has not ended (revoked or expired) is ended with its reason; its certificate is
      refused from then on. A session of another workstation, or an id the host does not
      know, is counted as unknown and left untouched (nothing says whose it is).
      Idempotent: the agent retries until it has the answer, and sends its pending
      revocations here before any other request of the workstation.
    responses:
      200:
        description: "{revoked: sessions ended now, alreadyEnded: sessions of this
          workstation already ended (revoked or expired), unknown: the others}"
      400:
        description: OperationOutcome (malformed body, too many sessions, a reason too long
          or with control characters)
      401:
        description: OperationOutcome (no client certificate)
      403:
        description: OperationOutcome not-a-workstation, workstation-revoked
    """
    app = host_state(request)
    workstation = app.authenticator.workstation(request)
    wanted = _revocations(await _json(request))
    revoked, ended, unknown = session_store.revoke_sessions(app.engine, workstation, wanted,
                                                            app.clock())
    return JSONResponse({"revoked": revoked, "alreadyEnded": ended, "unknown": unknown})


async def whoami(request: Request) -> Response:
    """
    summary: The professional of the caller's session (a cheap authenticated call).
    responses:
      200:
        description: "{idNatPs, lastName, firstName, profession, specialty, structureId,
          structureKind (the registry's: care, regulation_centre...), accessModes (those
          this session may use), notAfter}"
      401:
        description: OperationOutcome (no active session)
    """
    actor = host_state(request).authenticator.session(request)
    return JSONResponse({
        "idNatPs": actor.id_nat_ps, "lastName": actor.last_name,
        "firstName": actor.first_name, "profession": actor.profession,
        "specialty": actor.specialty, "structureId": actor.structure_id,
        "structureKind": actor.structure_kind.value, "accessModes": actor.allowed_modes,
        "notAfter": actor.not_after.isoformat(),
    })


routes = [
    Route("/session/challenge", challenge, methods=["POST"]),
    Route("/session/$revoke", revoke_sessions, methods=["POST"]),
    Route("/session", open_session, methods=["POST"]),
    Route("/session/ecps", open_ecps_session, methods=["POST"]),
    Route("/session", close_session, methods=["DELETE"]),
    Route("/session", whoami, methods=["GET"]),
]
