"""Errors the host answers with: a FHIR OperationOutcome carrying a stable code and a
sentence a person understands (French / English)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

FHIR_JSON = "application/fhir+json"
# The OperationOutcome.issue.details system for our codes (documented in the OpenAPI file).
CODE_SYSTEM = "urn:dmp:host:error"


class HostError(Exception):
    """A refusal or failure with an HTTP status, a stable code and a human sentence."""

    def __init__(
        self, status: int, code: str, message: str, *, issue_type: str = "processing"
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.issue_type = issue_type  # FHIR IssueType: invalid, security, not-found...


def operation_outcome(
    code: str, message: str, *, issue_type: str = "processing", severity: str = "error"
) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": issue_type,
                "details": {"coding": [{"system": CODE_SYSTEM, "code": code}], "text": message},
                "diagnostics": message,
            }
        ],
    }


def error_response(error: HostError) -> JSONResponse:
    return JSONResponse(
        operation_outcome(error.code, error.message, issue_type=error.issue_type),
        status_code=error.status,
        media_type=FHIR_JSON,
    )


def bad_request(code: str, message: str) -> HostError:
    return HostError(400, code, message, issue_type="invalid")


def forbidden(code: str, message: str) -> HostError:
    return HostError(403, code, message, issue_type="forbidden")


def not_found(code: str, message: str) -> HostError:
    return HostError(404, code, message, issue_type="not-found")
