"""The DMP lifecycle on the patient's INS: existence test, creation, closure, reactivation.

Routes parse, ask the guard (`policies.decide`) and answer; every call is traced; the rows
are read and written by `host.dossiers.lifecycle`.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from policies import NORMAL, AccessMode, Action, DossierStatus, ReasonCode

from .. import audit, notify_events
from ..actors import SessionActor, access_mode
from ..bodies import read_json
from ..documents import search
from ..dossiers import lifecycle
from ..errors import HostError, bad_request, not_found
from ..guard import dossier_state
from ..identities import checked_ins, find_patient, refuse_test_identity
from ..state import host_state
from .documents import base_url


def patient_ins(request: Request) -> str:
    return checked_ins(request.path_params["ins"])


def patient_request(request: Request, action: str) -> tuple[Any, SessionActor, str, AccessMode]:
    """(app state, actor, INS, mode) of a request on the dossier in its path; the patient is
    named to the audit at once, so any refusal from here on lands in their access log."""
    return dossier_request(request, request.path_params["ins"], action)


def dossier_request(request: Request, ins: str, action: str
                    ) -> tuple[Any, SessionActor, str, AccessMode]:
    """`patient_request` for a dossier named elsewhere than in the path (a query)."""
    app = host_state(request)
    actor = app.authenticator.session(request)
    ins = checked_ins(ins)
    audit.names_patient(ins, actor, NORMAL, action)
    mode = access_mode(request)
    audit.names_patient(ins, actor, mode, action)
    return app, actor, ins, mode


def known_identity(request: Request, connection: Connection, ins: str) -> None:
    """Only an INS the identity service returned may get a DMP (DOMAIN.md)."""
    patient = find_patient(connection, ins)
    if patient is None:
        raise not_found("identity-unknown",
                        "INS inconnu du service d'identité / this INS was not returned by "
                        "the identity service: resolve the Vitale card first")
    refuse_test_identity(host_state(request).settings.mode == "production", patient.ins_oid)


async def existence_test(request: Request) -> JSONResponse:
    """The DMP existence test for the caller.
    ---
    summary: Existence test (DMP status and the caller's rights)
    description: >
      Answered to every professional with a session for absent, open and closed DMPs, and to a
      professional the patient blocked (authorization "forbidden", traced as refused). In
      break-the-glass (X-DMP-Access-Mode bris_de_glace, with X-DMP-Justification) or centre_15
      mode, the mode's rules apply (justification, the patient's opt-outs) and an answered
      test of an open DMP notifies the patient. Traced as action test_existence.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}, description: the INS}
      - {name: X-DMP-Access-Mode, in: header, schema: {type: string,
         enum: [normal, bris_de_glace, centre_15]}}
      - {name: X-DMP-Justification, in: header, schema: {type: string}}
      - {name: documents, in: query, schema: {type: string, enum: [current]},
         description: "current: the answer also carries `documents`, the first page of
           the default search (a searchset Bundle, its next link for the rest), when the
           DMP is open and the caller may search it (traced as that search)"}
    responses:
      200:
        description: The DMP's status and the caller's rights on it.
        content:
          application/json:
            schema:
              type: object
              properties:
                status: {type: string, enum: [absent, open, closed]}
                closedAt: {type: string, format: date-time, nullable: true}
                closureReason: {type: string, nullable: true}
                retentionUntil: {type: string, format: date-time, nullable: true}
                authorization: {type: string, enum: [none, forbidden, expired, valid]}
                medecinTraitant: {type: boolean}
                lastConsultation:
                  type: string
                  format: date-time
                  nullable: true
                  description: >
                    when the caller last consulted this dossier (an allowed search or read
                    before this request); null: never. Absent when the test was refused.
      400:
        description: "OperationOutcome: bad-ins, bad-access-mode, bad-justification."
      401:
        description: "OperationOutcome: no-session, session-expired, session-revoked."
      403:
        description: >
          OperationOutcome: justification-required, break-the-glass-opted-out,
          centre-15-opted-out, mode-not-for-actor, unknown-profession.
    """
    app, actor, ins, mode = patient_request(request, Action.TEST_EXISTENCE.value)
    return JSONResponse(existence(app, actor, ins, mode,
                                  documents=request.query_params.get("documents") == "current",
                                  base=base_url(request)))


def existence(app: Any, actor: SessionActor, ins: str, mode: AccessMode, *,
              documents: bool = False, base: str = "") -> dict[str, Any]:
    """The existence test's answer for this caller, decided and traced (TEST_EXISTENCE);
    ``documents``: with the first page of the default search when it would be served."""
    with app.engine.connect() as connection:
        state = dossier_state(connection, ins, actor.id_nat_ps, app.clock())
        decision = app.guard.decide(connection, ins=ins, actor=actor,
                                    action=Action.TEST_EXISTENCE, mode=mode, dossier=state)
        row = lifecycle.dossier_row(connection, ins)
        last = lifecycle.last_consultation(connection, ins, actor.id_nat_ps)
    app.guard.trace(ins, actor, Action.TEST_EXISTENCE, mode, decision)
    # A blocked professional is answered "forbidden": that is the answer (traced as refused).
    if decision.refused and decision.reason is not ReasonCode.BLOCKED:
        raise HostError(403, decision.reason.code.lower().replace("_", "-"),
                        decision.reason.message, issue_type="forbidden")
    answer: dict[str, Any] = {"ins": ins, **lifecycle.existence_document(row, state)}
    if decision.allowed:  # what is new since then, for the caller (the ANS's incremental read)
        answer["lastConsultation"] = None if last is None else last.isoformat()
    # The dossier and its documents in one round trip (a slow link's budget, issue 18): the
    # search runs only when it would be served, so nobody's history shows a search refused
    # because an agent asked ahead.
    if (documents and decision.allowed and state.status is DossierStatus.OPEN
            and search.may_search(app, actor, mode, ins)):
        query = search.parse_query(f"patient=Patient/{ins}&status=current")
        bundle = search.search(app, actor, mode, query, base=base)
        answer["documents"] = json.loads(bundle)
    return answer


def _emergency_consents(body: dict[str, Any]) -> dict[str, bool]:
    raw = body.get("emergency", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request("bad-consents", "emergency: an object of three booleans")
    consents = {}
    for name in ("regulationCentre", "breakTheGlass", "emergencySeesMasked"):
        value = raw.get(name, True)  # offered checked by default (DOMAIN.md)
        if not isinstance(value, bool):
            raise bad_request("bad-consents", f"emergency.{name}: true or false")
        consents[name] = value
    return consents


async def create_dossier(request: Request) -> JSONResponse:
    """Create the patient's DMP with their consent.
    ---
    summary: Create a DMP (consent mandatory)
    description: >
      Only an INS returned by the identity service may get a DMP. The answer carries what the
      patient's secrets sheet needs, including a one-time first-access code shown only here
      (the host keeps its SHA-256). Creating an existing open DMP answers 200 with code
      already-exists and its state: nothing is duplicated and no new code is issued.
      Decided by the policies as action create; traced.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [consent]
            properties:
              consent: {type: boolean, enum: [true], description: the patient's consent}
              emergency:
                type: object
                description: the patient's emergency consents, each true by default
                properties:
                  regulationCentre: {type: boolean, default: true}
                  breakTheGlass: {type: boolean, default: true}
                  emergencySeesMasked: {type: boolean, default: true}
              contact:
                type: object
                description: >
                  the patient's address for notifications (optional; one address, 254
                  characters at most, no control characters); the patient may later choose
                  no notification (dmp-host patient notifications --channel none)
                properties:
                  email: {type: string, maxLength: 254}
    responses:
      201:
        description: Created; the first-access code is shown this once.
        content:
          application/json:
            schema:
              type: object
              properties:
                ins: {type: string}
                identifier: {type: string, description: the patient's DMP identifier (the INS)}
                accessCode: {type: string, description: 'one-time first-access code XXXX-XXXX-XXXX'}
                createdAt: {type: string, format: date-time}
                createdBy: {type: string}
                consents: {type: object}
                status: {type: string, description: "open: the existence test's fields
                  (status, authorization, medecinTraitant...) as the creator's test would
                  answer now"}
      200:
        description: "The DMP already exists and is open: code already-exists, its state."
      400:
        description: >
          OperationOutcome: bad-ins, bad-json, consent-required, bad-consents, bad-contact.
      403:
        description: >
          OperationOutcome: a policy refusal (dossier-closed: reactivate it instead; blocked,
          action-not-in-emergency-mode...), test-identity-refused on a production host.
      404:
        description: "OperationOutcome: identity-unknown."
    """
    app, actor, ins, mode = patient_request(request, Action.CREATE.value)
    body = await read_json(request)
    if body.get("consent") is not True:
        raise bad_request("consent-required",
                          "Consentement du patient requis / the patient's consent is required "
                          "to create the DMP")
    consents = _emergency_consents(body)
    email = notify_events.creation_contact(body)
    code = lifecycle.new_access_code()
    with app.engine.begin() as connection:
        try:
            app.guard.check(connection, ins=ins, actor=actor, action=Action.CREATE, mode=mode)
        except HostError as error:
            if error.code != ReasonCode.DOSSIER_EXISTS.code.lower().replace("_", "-"):
                raise
            return JSONResponse(lifecycle.already_exists(connection, ins, actor.id_nat_ps,
                                                         app.clock()))
        known_identity(request, connection, ins)
        now = app.clock()
        created = lifecycle.create(connection, ins, actor.id_nat_ps, consents, code, now,
                                   email=email, creator={
                                       "actor": actor.display_name,
                                       "profession": actor.profession,
                                       "structure": actor.structure_id})
        if created is None:  # created by a concurrent request between check and insert
            return JSONResponse(lifecycle.already_exists(connection, ins, actor.id_nat_ps, now))
        # The creator's existence test as of now: the agent needs no second call (issue 18).
        state = dossier_state(connection, ins, actor.id_nat_ps, now)
        created.update(lifecycle.existence_document(lifecycle.dossier_row(connection, ins),
                                                    state))
    return JSONResponse(created, status_code=201)


async def close(request: Request) -> JSONResponse:
    """Close the DMP.
    ---
    summary: Close a DMP (kept 10 years, can be reactivated)
    description: >
      Decided by the policies as action close: closure belongs to the patient (or their
      legal representative), so a professional is answered 403 patient-only (and traced),
      unless they record the patient's own request (patientRequest true: decided as
      close_at_patient_request, traced so and notified to the patient). The patient
      closes through host/patient.py (dmp-host patient close).
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [reason]
            properties:
              reason: {type: string, maxLength: 200}
              patientRequest: {type: boolean}
    responses:
      200:
        description: "Closed: status, closedAt, closureReason, retentionUntil."
      400:
        description: "OperationOutcome: bad-ins, bad-json, reason-required, reason-too-long."
      403:
        description: "OperationOutcome: patient-only, dossier-absent, dossier-closed, blocked."
    """
    app, actor, ins, mode = patient_request(request, Action.CLOSE.value)
    body = await read_json(request)
    reason = lifecycle.closure_reason(body)
    action = (Action.CLOSE_AT_PATIENT_REQUEST if body.get("patientRequest") is True
              else Action.CLOSE)
    with app.engine.begin() as connection:
        app.guard.check(connection, ins=ins, actor=actor, action=action, mode=mode)
        result = lifecycle.close(connection, ins, reason, app.clock(),
                               app.settings.retention_after_closure)
    return JSONResponse(result)


async def reactivate(request: Request) -> JSONResponse:
    """Reactivate a closed DMP with the patient's consent.
    ---
    summary: Reactivate a closed DMP
    description: >
      Decided by the policies as action reactivate (the patient, or a professional with the
      patient's consent: consent true is mandatory). Traced.
    parameters:
      - {name: ins, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [consent]
            properties:
              consent: {type: boolean, enum: [true]}
    responses:
      200:
        description: "Reopened: status open, reactivatedAt."
      400:
        description: "OperationOutcome: bad-ins, bad-json, consent-required."
      403:
        description: "OperationOutcome: dossier-not-closed, dossier-absent, blocked..."
    """
    app, actor, ins, mode = patient_request(request, Action.REACTIVATE.value)
    if (await read_json(request)).get("consent") is not True:
        raise bad_request("consent-required", "Consentement du patient requis / the patient's "
                          "consent is required to reactivate the DMP")
    with app.engine.begin() as connection:
        app.guard.check(connection, ins=ins, actor=actor, action=Action.REACTIVATE, mode=mode)
        result = lifecycle.reactivate(connection, ins, app.clock())
    return JSONResponse(result)


routes = [
    Route("/dossiers/{ins}", existence_test, methods=["GET"]),
    Route("/dossiers/{ins}", create_dossier, methods=["POST"]),
    Route("/dossiers/{ins}/$close", close, methods=["POST"]),
    Route("/dossiers/{ins}/$reactivate", reactivate, methods=["POST"]),
]
