"""``POST /identity/$resolve``: the identity lookup, decided and traced (the service itself
is `host.identities`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from policies import Action

from .. import audit
from ..actors import access_mode
from ..bodies import read_json
from ..errors import HostError, not_found
from ..identities import identity_document, parse_traits, refuse_test_identity, resolve
from ..state import host_state

MAX_TRACED_MATCHES = 20  # homonyms are few; a bound keeps one request's writes bounded


async def resolve_identity(request: Request) -> JSONResponse:
    """Resolve Vitale traits to the patient's INS (INSi-like).
    ---
    summary: Resolve a patient's INS from the traits on the Vitale card
    description: >
      Decided by the policies as resolve_identity: any professional with a session may ask,
      except those the law excludes (occupational health, insurers, mutuals: 403
      excluded-practice). The card's traits are sent as read (not edited); the insured's NIR
      and the birth rank narrow the search (a child covered under a parent's NIR has no NIR
      of their own on the card). The lookup, allowed or refused, is traced in the access log
      of every person the traits match. A production host refuses test and demo identities.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [birthName, firstNames, birthDate]
            properties:
              birthName: {type: string, description: nom de naissance}
              firstNames: {type: string, description: first name(s) as on the card}
              sex: {type: string, enum: [M, F]}
              birthDate: {type: string, pattern: '^[0-9]{8}$',
                          description: 'YYYYMMDD as on the card, may be lunar (00)'}
              birthPlace: {type: string, description: INSEE code of the birth commune}
              insuredNir: {type: string, description: NIR + key of the insured on the card}
              birthRank: {type: integer, minimum: 1, maximum: 9}
              quality: {type: integer, description: the card's quality code (not used)}
    responses:
      200:
        description: The patient's INS and reference traits.
        content:
          application/json:
            schema:
              type: object
              properties:
                ins: {type: string}
                insOid: {type: string, description: '1.2.250.1.213.1.4.8 NIR, .9 NIA, .10 test'}
                birthName: {type: string}
                firstNames: {type: string}
                firstName: {type: string}
                sex: {type: string}
                birthDate: {type: string}
                birthPlace: {type: string}
      400:
        description: "OperationOutcome: bad-request, missing-trait, bad-trait."
      401:
        description: "OperationOutcome: no-session, session-expired, session-revoked."
      403:
        description: "OperationOutcome: excluded-practice, unknown-profession,
          test-identity-refused (production host)."
      404:
        description: "OperationOutcome: identity-unknown (no identity matches)."
      409:
        description: "OperationOutcome: identity-ambiguous (several identities match)."
    """
    app = host_state(request)
    actor = app.authenticator.session(request)
    mode = access_mode(request)
    decision = app.guard.decide_identity_lookup(actor, mode)
    traits = parse_traits(await read_json(request))
    with app.engine.connect() as connection:
        found = resolve(connection, traits)
    # Each person the traits designate learns of the lookup (allowed or refused).
    for row in found[:MAX_TRACED_MATCHES]:
        app.guard.trace(row.ins, actor, Action.RESOLVE_IDENTITY, mode, decision)
    if decision.refused:
        raise HostError(403, decision.reason.code.lower().replace("_", "-"),
                        decision.reason.message, issue_type="forbidden")
    audit.settle()  # traced above, for every person found (none: no patient to tell)
    if not found:
        raise not_found(
            "identity-unknown",
            "Identité inconnue du service INS / no identity matches these traits",
        )
    if len(found) > 1:
        raise HostError(
            409, "identity-ambiguous",
            f"Plusieurs identités correspondent ({len(found)}) / several identities match "
            "these traits: check the card and add the insured's NIR or the birth place",
            issue_type="multiple-matches",
        )
    refuse_test_identity(app.settings.mode == "production", found[0].ins_oid)
    return JSONResponse(identity_document(found[0]))


routes = [Route("/identity/$resolve", resolve_identity, methods=["POST"])]
