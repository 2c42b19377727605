"""Authorizations and médecins traitants DMP, on the patient's INS (rows: host.dossiers.grants).

A professional records the authorization the patient gives *them* (policies: GRANT, an
explicit user action); revoking, listing and ending belong to the patient (policies:
PATIENT_ONLY), who acts through `host/patient.py`. The care team is not stored: it is derived
from the structures of valid authorizations (`host.guard.dossier_state`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from policies import AccessMode, Action, ReasonCode

from ..actors import SessionActor
from ..bodies import read_json
from ..dossiers import grants
from ..errors import HostError, bad_request
from ..guard import Guard, check_as, professional_fields, record_access
from ..structures import STRUCTURE_ID
from .dossiers import patient_request


def _refuse(
    guard: Guard, ins: str, actor: SessionActor, action: str, mode: AccessMode, *,
    reason: str, message: str,
) -> HostError:
    """Trace a refusal the host makes before asking the policies (the request is about
    another professional, or the caller is not a doctor) and build the 403 to raise."""
    record_access(
        guard.engine, ins=ins, at=guard.clock(), **professional_fields(actor), action=action,
        mode=mode, allowed=False, reason=reason,
    )
    return HostError(403, reason.lower().replace("_", "-"), message, issue_type="forbidden")


def _not_own(guard: Guard, ins: str, actor: SessionActor, action: str,
             mode: AccessMode) -> HostError:
    # Recording someone else's authorization is managing the patient's authorizations.
    return _refuse(guard, ins, actor, action, mode, reason=ReasonCode.PATIENT_ONLY.code,
                   message=ReasonCode.PATIENT_ONLY.message)


def _expiry(body: dict[str, Any], now: dt.datetime) -> dt.datetime | None:
    raw = body.get("expiresAt")
    if raw is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise bad_request("bad-expiry", "expiresAt: an ISO 8601 date-time with its time zone")
    if moment <= now:
        raise bad_request("bad-expiry", "expiresAt: a moment in the future")
    return moment.astimezone(dt.UTC)


async def put_authorization(request: Request) -> JSONResponse:
    """Record the authorization the patient gives the calling professional.
    ---
    summary: Record an authorization (explicit user action)
    description: >
      The professional records the authorization the patient gives them (policies: grant);
      idNatPs must be the caller's own (another's is the patient's business: 403
      patient-only). A valid authorization makes the professional's structure a care team.
      Granting again renews it (new expiry, structure). Traced.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
      - {name: idNatPs, in: path, required: true, schema: {type: string}}
    requestBody:
      content:
        application/json:
          schema:
            type: object
            properties:
              expiresAt: {type: string, format: date-time, description: none = no expiry}
              structureId: {type: string, description: "default: the session's structure"}
    responses:
      201:
        description: The new authorization.
      200:
        description: The renewed authorization.
      400:
        description: "OperationOutcome: bad-ins, bad-id-nat-ps, bad-json, bad-expiry,
          bad-structure."
      403:
        description: "OperationOutcome: patient-only, blocked, dossier-absent,
          dossier-closed, action-not-in-emergency-mode."
    """
    app, actor, ins, mode = patient_request(request, Action.GRANT.value)
    target = grants.checked_id_nat_ps(request.path_params["idNatPs"])
    now = app.clock()
    body = await read_json(request, optional=True)
    expires_at = _expiry(body, now)
    structure = body.get("structureId", actor.structure_id)
    if not isinstance(structure, str) or not STRUCTURE_ID.match(structure):
        raise bad_request("bad-structure", "structureId: 3 + FINESS, 4 + SIREN or 5 + SIRET")
    if structure != actor.structure_id:
        # The care team is the structure: it must be the one the card proved at opening.
        raise _refuse(app.guard, ins, actor, Action.GRANT.value, mode,
                      reason="STRUCTURE_NOT_SESSION",
                      message="La structure doit être celle de la session / the structure "
                      "must be the session's (a practice situation of the card)")
    if target != actor.id_nat_ps:
        raise _not_own(app.guard, ins, actor, Action.GRANT.value, mode)
    with app.engine.begin() as connection:
        app.guard.check(connection, ins=ins, actor=actor, action=Action.GRANT, mode=mode)
        new, document = grants.grant(connection, ins, target, structure_id=structure,
                              expires_at=expires_at, granted_by=actor.id_nat_ps, now=now)
    return JSONResponse(document, status_code=201 if new else 200)


async def delete_authorization(request: Request) -> JSONResponse:
    """Revoke an authorization.
    ---
    summary: Revoke an authorization
    description: >
      Decided by the policies as action revoke: the patient's (a professional is answered
      403 patient-only and traced); the patient revokes through host/patient.py.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
      - {name: idNatPs, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: The revoked authorization.
      403:
        description: "OperationOutcome: patient-only, blocked, dossier-absent, dossier-closed."
      404:
        description: "OperationOutcome: authorization-unknown."
    """
    app, actor, ins, mode = patient_request(request, Action.REVOKE.value)
    target = grants.checked_id_nat_ps(request.path_params["idNatPs"])
    with app.engine.begin() as connection:
        app.guard.check(connection, ins=ins, actor=actor, action=Action.REVOKE, mode=mode)
        document = grants.revoke(connection, ins, target, app.clock())
    return JSONResponse(document)


async def get_authorizations(request: Request) -> JSONResponse:
    """List the authorizations and médecins traitants.
    ---
    summary: List authorizations, blocks and médecins traitants DMP
    description: >
      Who may see whom the patient authorised or blocked is the patient's business: decided
      by the policies as read_access_log (patient only), traced as list_authorizations.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: "{ins, authorizations: [...], medecinsTraitants: [...]}"
      403:
        description: "OperationOutcome: patient-only, blocked, dossier-absent, dossier-closed."
    """
    app, actor, ins, mode = patient_request(request, "list_authorizations")
    with app.engine.connect() as connection:
        check_as(app.guard, connection, ins=ins, actor=actor, action=Action.READ_ACCESS_LOG,
                 mode=mode, log_action="list_authorizations")
        return JSONResponse(grants.list_authorizations(connection, ins, app.clock()))


async def put_medecin_traitant(request: Request) -> JSONResponse:
    """Record the patient's choice of the calling doctor as médecin traitant DMP.
    ---
    summary: Designate a médecin traitant DMP (several allowed)
    description: >
      The doctor records that the patient designates them (decided by the policies as
      grant, an explicit user action); idNatPs must be the caller's own (patient-only
      otherwise) and the caller a doctor (profession 10: not-a-doctor otherwise). Traced as
      designate_medecin_traitant.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
      - {name: idNatPs, in: path, required: true, schema: {type: string}}
    responses:
      201:
        description: "Designated: {idNatPs, designatedAt, designatedBy}."
      200:
        description: Already designated (unchanged).
      403:
        description: "OperationOutcome: patient-only, not-a-doctor, blocked, dossier-absent,
          dossier-closed."
    """
    action = "designate_medecin_traitant"
    app, actor, ins, mode = patient_request(request, action)
    target = grants.checked_id_nat_ps(request.path_params["idNatPs"])
    if target != actor.id_nat_ps:
        raise _not_own(app.guard, ins, actor, action, mode)
    if actor.profession != grants.DOCTOR:
        raise _refuse(app.guard, ins, actor, action, mode, reason="NOT_A_DOCTOR",
                      message="Seul un médecin peut être médecin traitant DMP / only a doctor "
                      "can be a médecin traitant DMP")
    with app.engine.begin() as connection:
        check_as(app.guard, connection, ins=ins, actor=actor, action=Action.GRANT,
                 mode=mode, log_action=action)
        new, document = grants.designate(connection, ins, target, actor.id_nat_ps, app.clock())
    return JSONResponse(document, status_code=201 if new else 200)


async def delete_medecin_traitant(request: Request) -> JSONResponse:
    """End a médecin traitant DMP designation.
    ---
    summary: End a médecin traitant DMP designation
    description: >
      Decided by the policies as revoke (the patient's: 403 patient-only for a professional),
      traced as end_medecin_traitant; the patient ends it through host/patient.py.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
      - {name: idNatPs, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: "{idNatPs, endedAt}"
      403:
        description: "OperationOutcome: patient-only, blocked, dossier-absent, dossier-closed."
      404:
        description: "OperationOutcome: medecin-traitant-unknown."
    """
    app, actor, ins, mode = patient_request(request, "end_medecin_traitant")
    target = grants.checked_id_nat_ps(request.path_params["idNatPs"])
    with app.engine.begin() as connection:
        check_as(app.guard, connection, ins=ins, actor=actor, action=Action.REVOKE,
                 mode=mode, log_action="end_medecin_traitant")
        document = grants.end_designation(connection, ins, target, app.clock())
    return JSONResponse(document)


routes = [
    Route("/dossiers/{ins}/authorizations", get_authorizations, methods=["GET"]),
    Route("/dossiers/{ins}/authorizations/{idNatPs}", put_authorization, methods=["PUT"]),
    Route("/dossiers/{ins}/authorizations/{idNatPs}", delete_authorization, methods=["DELETE"]),
    Route("/dossiers/{ins}/medecins-traitants/{idNatPs}", put_medecin_traitant,
          methods=["PUT"]),
    Route("/dossiers/{ins}/medecins-traitants/{idNatPs}", delete_medecin_traitant,
          methods=["DELETE"]),
]
