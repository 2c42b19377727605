"""Errors the host answers with: a FHIR OperationOutcome carrying a stable code, a sentence a
person understands (French / English) and, where one element is at fault, its FHIRPath
(issue.expression)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from wire.fhir import WireError

FHIR_JSON = "application/fhir+json"
# The OperationOutcome.issue.details system for our codes (documented in the OpenAPI file).
CODE_SYSTEM = "urn:dmp:host:error"


class HostError(Exception):
    """A refusal or failure with an HTTP status, a stable code and a human sentence."""

    def __init__(
        self, status: int, code: str, message: str, *, issue_type: str = "processing",
        expression: str | None = None, location: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.issue_type = issue_type  # FHIR IssueType: invalid, security, not-found...
        self.expression = expression  # FHIRPath of the element at fault, or a parameter
        self.location = location  # XPath in the document at fault (a CDA's failed assertion)


def operation_outcome(
    code: str, message: str, *, issue_type: str = "processing", severity: str = "error",
    expression: str | None = None, location: str | None = None,
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": severity,
        "code": issue_type,
        "details": {"coding": [{"system": CODE_SYSTEM, "code": code}], "text": message},
        "diagnostics": message,
    }
    if expression:
        issue["expression"] = [expression]
    if location:
        issue["location"] = [location]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def error_response(error: HostError) -> JSONResponse:
    return JSONResponse(
        operation_outcome(error.code, error.message, issue_type=error.issue_type,
                          expression=error.expression, location=error.location),
        status_code=error.status,
        media_type=FHIR_JSON,
    )


def bad_request(code: str, message: str, *, expression: str | None = None,
                location: str | None = None) -> HostError:
    return HostError(400, code, message, issue_type="invalid", expression=expression,
                     location=location)


# What each wire refusal means, in French: the English sentence of the `WireError` says which
# element and why.
_WIRE_FRENCH = {
    "not-json": "Corps JSON illisible",
    "not-a-bundle": "Un Bundle est attendu",
    "bundle-type": "Type de Bundle non accepté",
    "too-deep": "Structure trop imbriquée",
    "too-many-items": "Trop d'éléments",
    "resource-too-large": "Ressource trop volumineuse",
    "invalid-structure": "Structure FHIR invalide",
    "missing-field": "Élément obligatoire absent",
    "invalid-field": "Élément invalide",
    "invalid-date": "Date invalide",
    "invalid-code": "Code mal formé",
    "invalid-resource": "Ressource invalide",
    "unsupported-resource": "Ressource non acceptée dans ce lot",
    "unsupported-contained": "Ressource contenue non acceptée",
    "unsupported-folder": "Classeur (folder) non accepté",
    "unsupported-relation": "Relation entre documents non acceptée",
    "unknown-modifier-extension": "Extension modificatrice inconnue",
    "invalid-request": "Requête de transaction invalide",
    "invalid-full-url": "fullUrl invalide",
    "duplicate-full-url": "fullUrl en double",
    "unresolved-reference": "Référence non résolue dans le lot",
    "submission-set-count": "Un seul lot de soumission attendu",
    "invalid-submission-set": "Lot de soumission invalide",
    "no-document": "Aucun document dans le lot",
    "missing-content": "Contenu du document absent",
    "duplicate-content": "Contenu référencé deux fois",
    "binary-unreferenced": "Binary non référencé par un document",
    "invalid-content": "Contenu du document invalide",
    "invalid-base64": "Contenu base64 invalide",
    "content-type-mismatch": "Types MIME en désaccord",
    "invalid-size": "Taille du document incorrecte",
    "invalid-hash": "Empreinte du document incorrecte",
    "invalid-unique-id": "Identifiant unique (uniqueId) mal formé",
    "duplicate-unique-id": "Identifiant unique (uniqueId) en double",
    "invalid-author": "Auteur invalide",
    "unknown-patient": "Patient non identifié par son INS",
    "patient-mismatch": "Le lot nomme deux patients différents",
    "invalid-ins": "INS mal formé",
    "invalid-ins-oid": "OID de l'INS inconnu",
    "invalid-status": "Statut invalide",
    "unknown-class": "Classe de document inconnue",
    "unknown-confidentiality": "Confidentialité ou visibilité inconnue",
    "unknown-facility-type": "Secteur d'activité inconnu (TRE_R02)",
    "unknown-practice-setting": "Cadre d'exercice inconnu (TRE_A01)",
    "invalid-patch": "Patch JSON invalide",
    "patch-failed": "Le patch ne s'applique pas",
    "entry-failed": "Entrée refusée",
}


def wire_refusal(error: WireError) -> HostError:
    """The 400 answering a message that does not follow the wire: its code, the element's
    FHIRPath, a French and an English sentence."""
    french = _WIRE_FRENCH.get(error.code, "Message non conforme")
    return bad_request(error.code, f"{french} / {error.message}", expression=error.expression)


def forbidden(code: str, message: str) -> HostError:
    return HostError(403, code, message, issue_type="forbidden")


def not_found(code: str, message: str) -> HostError:
    return HostError(404, code, message, issue_type="not-found")
