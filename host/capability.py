"""The FHIR CapabilityStatement of the host (``GET /fhir/metadata``), written from the tables the
host serves from: the document routes (`host.routes.documents.routes`, through `INTERACTIONS`)
and the search parameters (`wire.search.PARAMETERS`). A route of /fhir that `INTERACTIONS`
does not name makes the statement fail to build (and tests/host/test_capability.py fail), so
the statement cannot fall behind the router.

It instantiates the server statements the host implements: PDSm 3.1.1's Gestionnaire de
partage de documents and IHE MHD 4.2.3's Document Recipient (comprehensive) and Document
Responder (docs/wire-search.md, "CapabilityStatement").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from wire.fhir import FHIR_JSON
from wire.search import PARAMETERS

from .state import host_state

PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm"
MHD = "https://profiles.ihe.net/ITI/MHD"
INSTANTIATES = (
    f"{PDSM}/CapabilityStatement/PDSm-GestionnaireDePartageDeDocuments",
    f"{MHD}/CapabilityStatement/IHE.MHD.DocumentRecipient.Comprehensive",
    f"{MHD}/CapabilityStatement/IHE.MHD.DocumentResponder",
)
# What each (route, method) of /fhir is in FHIR: (resource type or "" for the system level,
# interaction, what it does). None: the route is not a FHIR interaction (this statement).
INTERACTIONS: dict[tuple[str, str], tuple[str, str, str] | None] = {
    ("/fhir", "POST"): ("", "transaction",
                        "ITI-65 Provide Document Bundle (PDSm comprehensive provide bundle)"),
    ("/fhir/Binary", "POST"): ("Binary", "create",
                               "a document body sent before its ITI-65 deposit (24 h)"),
    ("/fhir/Binary/{id}", "GET"): ("Binary", "read", "ITI-68 Retrieve Document"),
    ("/fhir/DocumentReference", "GET"): ("DocumentReference", "search-type",
                                         "ITI-67 Find Document References"),
    ("/fhir/DocumentReference", "PATCH"): ("DocumentReference", "patch",
                                           "conditional JSON Patch of the metadata (identifier)"),
    ("/fhir/DocumentReference/{id}", "GET"): ("DocumentReference", "read", "read"),
    ("/fhir/metadata", "GET"): None,
    ("/fhir/Patient", "GET"): ("Patient", "search-type",
                               "TD0.2 DMP existence test by INS (ANS draft PDSM4DMP)"),
}
# The search parameters of the resources other than DocumentReference (whose are the
# parser's, wire.search).
OTHER_SEARCH_PARAMETERS: dict[str, list[dict[str, str]]] = {
    "Patient": [{"name": "identifier", "type": "token",
                 "definition": "http://hl7.org/fhir/SearchParameter/Patient-identifier",
                 "documentation": "the INS, urn:oid:<INS OID>|<INS> (TD0.2)"}],
}
PROFILES = {
    "DocumentReference": f"{PDSM}/StructureDefinition/pdsm-comprehensive-document-reference",
    "Binary": "http://hl7.org/fhir/StructureDefinition/Binary",
}
SUPPORTED_PROFILES = {
    "DocumentReference": [f"{MHD}/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"],
}


def fhir_interactions(routes: Iterable[BaseRoute]) -> list[tuple[str, str, str, str]]:
    """(path, resource type, interaction, documentation) of every FHIR route; KeyError for a
    route under /fhir that `INTERACTIONS` does not describe."""
    found = []
    for route in routes:
        if not isinstance(route, Route) or not (route.path == "/fhir"
                                                or route.path.startswith("/fhir/")):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            described = INTERACTIONS[(route.path, method)]
            if described is not None:
                found.append((route.path, *described))
    return found


def capability_statement(routes: Iterable[BaseRoute], *, base: str, version: str,
                         date: str) -> dict[str, Any]:
    interactions = fhir_interactions(routes)
    resources: list[dict[str, Any]] = []
    for kind in sorted({kind for _, kind, _, _ in interactions if kind}):
        resource: dict[str, Any] = {"type": kind}
        if kind in PROFILES:
            resource["profile"] = PROFILES[kind]
        if kind in SUPPORTED_PROFILES:
            resource["supportedProfile"] = SUPPORTED_PROFILES[kind]
        resource["interaction"] = [{"code": code, "documentation": text}
                                   for _, of, code, text in interactions if of == kind]
        if kind == "DocumentReference":
            resource["conditionalUpdate"] = True  # PATCH ?identifier= (as PDSm declares it)
            resource["searchParam"] = [search_param(p) for p in PARAMETERS]
        elif kind in OTHER_SEARCH_PARAMETERS:
            resource["searchParam"] = OTHER_SEARCH_PARAMETERS[kind]
        resources.append(resource)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "DMP reference host",
        "kind": "instance",
        "instantiates": list(INSTANTIATES),
        "software": {"name": "dmp-host", "version": version},
        "implementation": {"description": "DMP reference host", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "patchFormat": ["application/json-patch+json"],
        "implementationGuide": [f"{PDSM}/ImplementationGuide/ans.fhir.fr.pdsm"],
        "rest": [{
            "mode": "server",
            "documentation": "Mutual TLS 1.3 with a workstation certificate; every call but "
                             "this one needs a card-rooted professional session.",
            "security": {"cors": False, "description": "TLS 1.3 mutual authentication "
                         "(workstation certificate), then a CPS-rooted session."},
            "resource": resources,
            "interaction": [{"code": code, "documentation": text}
                            for _, kind, code, text in interactions if not kind],
        }],
    }


def search_param(parameter: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": parameter.name, "type": parameter.type,
                             "documentation": parameter.documentation}
    if parameter.definition is not None:
        entry["definition"] = parameter.definition
    return entry


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dmp-agent")
    except PackageNotFoundError:
        return "0"


async def metadata(request: Request) -> Response:
    """
    summary: FHIR CapabilityStatement (capabilities interaction)
    description: >
      What this FHIR server serves: interactions, search parameters with their types, the
      PDSm and MHD profiles and the server CapabilityStatements it instantiates. Needs the
      workstation's TLS client certificate but no professional session (FHIR: the
      statement is readable by any client that reaches the server); names no patient.
    responses:
      200: {description: CapabilityStatement}
      401: {description: No workstation certificate}
    """
    host = host_state(request)
    host.authenticator.workstation(request)
    base = str(request.base_url).rstrip("/") + "/fhir"
    statement = capability_statement(request.app.routes, base=base, version=_version(),
                                     date=host.clock().date().isoformat())
    return JSONResponse(statement, media_type=FHIR_JSON)
