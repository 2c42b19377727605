"""The DMP transactions in the shape the ANS draft PDSM4DMP gives them, where the host does not
already serve that shape (docs/wire-dmp.md has the whole table).

Only TD0.2 is new: the draft maps the existence test onto a FHIR search of ``Patient`` by the
INS (``GET [base]/Patient?identifier=<INS OID>|<INS>``, page transaction_td02.md), answered
by a searchset Bundle of 0 (no DMP) or 1 Patient whose ``active`` is the DMP's status. The
decision, the trace, the break-the-glass and centre 15 rules, the blocked professional's
answer: all are the host's existence test (`host.routes.dossiers.existence`), called
here for the INS of the query; this module only translates its answer into the draft's
Patient. The draft's other transactions are ITI-65, ITI-67, ITI-68 and the conditional PATCH
the host serves already (`host.routes.documents`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from policies import Action
from wire.mhd import FHIR_JSON, Patient, WireError
from wire.search import search_bundle_json

from ..documents.search import ignored_outcome
from ..errors import bad_request
from ..state import host_state
from . import dossiers
from .documents import base_url

# The draft's extensions (transaction_td02.md, "Mapping des données de sortie"); its example
# spells the first two, the third follows the same pattern (the draft names it only).
DMP_SD = "https://interop.esante.gouv.fr/ig/fhir/dmp/StructureDefinition"
CLOSURE_URL = f"{DMP_SD}/dmp-fermeture"
MEDECIN_TRAITANT_URL = f"{DMP_SD}/dmp-medecin-traitant"
SEARCH_PARAMETER = "identifier"  # the only one the draft defines for TD0.2


def _patient_of_query(request: Request) -> tuple[Patient, tuple[str, ...]]:
    """The patient the query names (exactly one ``identifier``, an INS OID system), and the
    parameters ignored (FHIR's lenient search: said in the answer, not refused)."""
    values = request.query_params.getlist(SEARCH_PARAMETER)
    if len(values) != 1:
        raise bad_request("identifier-required",
                          "Un seul identifier attendu : l'INS du patient / exactly one "
                          "identifier is expected: urn:oid:<INS OID>|<INS>")
    try:
        patient = Patient.from_token(values[0])
    except WireError as error:
        raise bad_request(error.code, "identifier : l'INS du patient, urn:oid:<OID INS>|<INS> / "
                          f"the patient's INS, urn:oid:<INS OID>|<INS> ({error.message})",
                          expression="identifier") from None
    ignored = tuple(sorted({name for name in request.query_params if name != SEARCH_PARAMETER}))
    return patient, ignored


def _existence(request: Request, ins: str) -> dict[str, Any]:
    """The host's existence test for ``ins``, as this caller (same session, same access-mode
    headers): decided, traced and refused exactly as ``GET /dossiers/{ins}``."""
    app, actor, ins, mode = dossiers.dossier_request(request, ins, Action.TEST_EXISTENCE.value)
    return dossiers.existence(app, actor, ins, mode)


def patient_resource(patient: Patient, existence: dict[str, Any]) -> dict[str, Any]:
    """The draft's Patient for an existing DMP: ``active`` is its status, the closure and
    the caller's médecin traitant status are the draft's extensions."""
    extensions: list[dict[str, Any]] = []
    if existence["status"] == "closed":
        closure: list[dict[str, Any]] = []
        if existence.get("closedAt"):
            closure.append({"url": "dateFermeture", "valueDate": existence["closedAt"][:10]})
        if existence.get("closureReason"):
            closure.append({"url": "raisonFermeture", "valueString": existence["closureReason"]})
        extensions.append({"url": CLOSURE_URL, "extension": closure})
    extensions.append({"url": MEDECIN_TRAITANT_URL,
                       "valueBoolean": existence["medecinTraitant"] is True})
    return {
        "resourceType": "Patient",
        "id": patient.ins,  # the id DocumentReference.subject uses: Patient/<INS>
        "extension": extensions,
        "identifier": [{"use": "official", **patient.identifier()}],
        "active": existence["status"] == "open",
    }


async def search_patient(request: Request) -> Response:
    """
    summary: TD0.2 existence test as the ANS draft PDSM4DMP maps it (Patient search by INS)
    description: >
      `identifier=urn:oid:<INS OID>|<INS>` (1.2.250.1.213.1.4.8 NIR, .9 NIA, .10 test),
      exactly once. A searchset Bundle: no entry when the patient has no DMP, else one
      Patient (id = the INS) whose `active` is true for an open DMP and false for a closed
      one, with the draft's extensions dmp-fermeture (dateFermeture, raisonFermeture) and
      dmp-medecin-traitant (the caller's status). Decided and traced exactly as GET
      /dossiers/{ins} (action test_existence, the X-DMP-Access-Mode and
      X-DMP-Justification headers, a blocked professional answered and traced as refused);
      the caller's authorization status, which the draft leaves out, is in GET
      /dossiers/{ins}. Other parameters are ignored and named in an OperationOutcome entry.
    parameters:
      - {name: identifier, in: query, required: true, schema: {type: string},
         description: "urn:oid:<INS OID>|<INS>"}
      - {name: X-DMP-Access-Mode, in: header, schema: {type: string,
         enum: [normal, bris_de_glace, centre_15]}}
      - {name: X-DMP-Justification, in: header, schema: {type: string}}
    responses:
      200: {description: searchset Bundle of 0 or 1 Patient}
      400: {description: "OperationOutcome: identifier-required, invalid-ins,
            invalid-ins-oid, bad-ins, bad-access-mode, bad-justification"}
      401: {description: "OperationOutcome: no-session, session-expired, session-revoked"}
      403: {description: "OperationOutcome: the access rules' refusal
            (justification-required, regulation-centre-only, break-the-glass-opted-out...)"}
    """
    host_state(request).authenticator.session(request)  # 401 before any 400, as elsewhere
    patient, ignored = _patient_of_query(request)
    existence = _existence(request, patient.ins)
    base = base_url(request)
    bundle = search_bundle_json([], base=base, self_url=str(request.url), next_url=None,
                                outcome=ignored_outcome(ignored))
    if existence["status"] != "absent":
        bundle["entry"].insert(0, {"fullUrl": f"{base}/Patient/{patient.ins}",
                                   "resource": patient_resource(patient, existence),
                                   "search": {"mode": "match"}})
    bundle["total"] = 0 if existence["status"] == "absent" else 1
    return JSONResponse(bundle, media_type=FHIR_JSON)


routes = [Route("/fhir/Patient", search_patient, methods=["GET"])]
