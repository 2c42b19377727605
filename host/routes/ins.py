"""The reference INS service's routes (INSi-like, docs/ins.md): search from the Vitale card,
search from typed traits, verification of a known INS. Each is decided as an identity lookup
(a professional's session; excluded practices refused) and traced in the access log of every
person it answers, and logged (never the traits) with the number of identities found."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from policies import Action
from wire.ins import Verification, searchset, verification_json

from .. import audit
from ..actors import access_mode
from ..bodies import read_json
from ..errors import FHIR_JSON, HostError, bad_request
from ..identities import checked_ins, find_patient, refuse_test_identity
from ..ins.query import (
    MAX_ANSWERS,
    by_card,
    by_traits,
    differences,
    identity_of,
    parse_card,
    parse_traits,
)
from ..state import host_state

log = logging.getLogger("host.ins")

_RESPONSES = """
    responses:
      200:
        description: {answer}
      400:
        description: "OperationOutcome: bad-request, missing-trait, bad-trait, bad-ins."
      401:
        description: "OperationOutcome: no-session, session-expired, session-revoked."
      403:
        description: "OperationOutcome: excluded-practice, unknown-profession,
          test-identity-refused (production host)."
      422:
        description: "OperationOutcome: too-many-identities (more than 20: add traits)."
"""
_SEARCHSET = ("A searchset Bundle of fr-core-patient-ins Patients: total 0 (no identity), "
              "1, or more (homonyms: the user chooses, the service never does).")


async def _lookup(request: Request, kind: str,
                  run: Callable[[Connection, Any], list[Row[Any]]],
                  parse: Callable[[Any], Any]) -> tuple[Any, list[Row[Any]]]:
    """Decide, parse, query, trace: the rows the question designates (a refusal raised)."""
    app = host_state(request)
    actor = app.authenticator.session(request)
    mode = access_mode(request)
    decision = app.guard.decide_identity_lookup(actor, mode)
    question = parse(await read_json(request))
    with app.engine.connect() as connection:
        found = run(connection, question)
    for row in found[:MAX_ANSWERS]:  # each person designated learns of the lookup
        app.guard.trace(row.ins, actor, Action.RESOLVE_IDENTITY, mode, decision,
                        extra={"query": kind})
    log.info("ins %s by %s: %s, %d identit%s", kind, actor.id_nat_ps,
             "refused" if decision.refused else "answered", len(found),
             "y" if len(found) == 1 else "ies")
    if decision.refused:
        raise HostError(403, decision.reason.code.lower().replace("_", "-"),
                        decision.reason.message, issue_type="forbidden")
    audit.settle()  # traced above, for every person found (none: no patient to tell)
    if len(found) > MAX_ANSWERS:
        raise HostError(422, "too-many-identities",
                        f"Plus de {MAX_ANSWERS} identités correspondent / more than "
                        f"{MAX_ANSWERS} identities match: add traits (birth place, all the "
                        "first names)", issue_type="too-costly")
    production = app.settings.mode == "production"
    for row in found:
        refuse_test_identity(production, row.ins_oid)
    return question, found


def _bundle(found: list[Row[Any]]) -> JSONResponse:
    return JSONResponse(searchset([identity_of(row) for row in found]), media_type=FHIR_JSON)


async def search_card(request: Request) -> JSONResponse:
    """Search the INS from the Vitale card's data.
    ---
    summary: INS search from the Vitale card (INSi-like)
    description: >
      The NIR the card shows for the beneficiary (the insured's, for a child covered under
      a parent), the beneficiary's birth date as on the card (lunar dates allowed) and the
      birth rank (which tells twins apart). Every identity designated is answered.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [nir, birthDate]
            properties:
              nir: {type: string, description: NIR + key (15 characters) as on the card}
              birthDate: {type: string, pattern: '^[0-9]{8}$'}
              birthRank: {type: integer, minimum: 1, maximum: 9}
    """
    _, found = await _lookup(request, "search-card", by_card, parse_card)
    return _bundle(found)


async def search_traits(request: Request) -> JSONResponse:
    """Search the INS from typed traits.
    ---
    summary: INS search from typed traits (no card needed)
    description: >
      Birth name, the list of first names (all, or the first ones in order), sex, birth
      date (YYYYMMDD, 00 for an unknown month or day) and, optionally, the birth place's
      INSEE code (99xxx abroad). Names are compared without case, accents nor hyphens.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [birthName, firstNames, sex, birthDate]
            properties:
              birthName: {type: string}
              firstNames: {type: array, items: {type: string}}
              sex: {type: string, enum: [M, F]}
              birthDate: {type: string, pattern: '^[0-9]{8}$'}
              birthPlace: {type: string}
    """
    _, found = await _lookup(request, "search-traits", by_traits, parse_traits)
    return _bundle(found)


def _known(connection: Connection, question: tuple[str, Any]) -> list[Row[Any]]:
    row = find_patient(connection, question[0])
    return [] if row is None else [row]


def _parse_verify(body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("ins"), str):
        raise bad_request("missing-trait", "Trait manquant / missing trait 'ins'")
    return checked_ins(body["ins"]), parse_traits(body)


async def verify(request: Request) -> JSONResponse:
    """Verify a known INS with its traits.
    ---
    summary: Verification of a known INS (INSi-like)
    description: >
      The INS and the traits the caller holds for it. The answer says match, mismatch (with
      the traits that differ: the service's identity changed, or the caller's is wrong) or
      unknown, with the identity as the service holds it.
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [ins, birthName, firstNames, sex, birthDate]
            properties:
              ins: {type: string}
              birthName: {type: string}
              firstNames: {type: array, items: {type: string}}
              sex: {type: string, enum: [M, F]}
              birthDate: {type: string}
              birthPlace: {type: string}
    """
    question, found = await _lookup(request, "verify", _known, _parse_verify)
    if not found:
        verdict = Verification("unknown")
    else:
        changed = differences(found[0], question[1])
        verdict = Verification("mismatch" if changed else "match", tuple(changed),
                               identity_of(found[0]))
    return JSONResponse(verification_json(verdict), media_type=FHIR_JSON)


# The answers each operation documents, after its docstring's request (the OpenAPI file is
# built from the docstrings: host.app).
for _route, _answer in ((search_card, _SEARCHSET), (search_traits, _SEARCHSET),
                        (verify, "A Parameters resource: result (match, mismatch, unknown), "
                                 "difference (repeated), patient.")):
    _route.__doc__ = (_route.__doc__ or "").rstrip() + "\n" + _RESPONSES.format(
        answer=json.dumps(_answer))

routes = [
    Route("/ins/$search-card", search_card, methods=["POST"]),
    Route("/ins/$search-traits", search_traits, methods=["POST"]),
    Route("/ins/$verify", verify, methods=["POST"]),
]
