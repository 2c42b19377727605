"""The document wire both sides read: FHIR R4 / IHE MHD resources as profiled by PDSm 3.1.1,
one module per concept, gathered here for callers that want them all.

- `wire.fhir`: strict JSON access, `WireError` (every parser raises only it, with a stable
  ``code``), datetimes, codings.
- `wire.documents`: `Patient`, `Author`, `DocumentEntry` (a DocumentReference) and
  `SubmissionSet` (a List), each to JSON and back.
- `wire.provide`: ITI-65, `build_provide_bundle` (the agent), `parse_provide_bundle` (the
  host), and the transaction-response.
- `wire.search`: ITI-67, `SearchQuery` and the searchset Bundle.
- `wire.patch`: RFC 6902 JSON Patch for metadata changes.

Codes and systems are in `wire.codes`; the format is described in docs/host-documents.md.
"""

from __future__ import annotations

from .documents import (
    FHIR_STATUSES,
    Author,
    DocumentEntry,
    FhirStatus,
    Patient,
    SubmissionSet,
    document_entry_from_json,
    document_reference_json,
    is_archived,
    is_archived_extension,
    parse_security_labels,
    sanitise_resource,
    security_labels,
    stored_document_reference,
    submission_set_from_json,
    submission_set_json,
)
from .fhir import (
    FHIR_JSON,
    JSON_PATCH,
    MAX_ENTRIES,
    MAX_TEXT,
    WireError,
    format_datetime,
    load_json,
    parse_datetime,
)
from .patch import (
    MAX_PATCH_OPS,
    PATCH_OPS,
    PatchOp,
    apply_json_patch,
    parse_json_patch,
)
from .provide import (
    ProvideBundle,
    ProvidedDocument,
    ResponseEntry,
    build_provide_bundle,
    parse_provide_bundle,
    parse_transaction_response,
    transaction_response_json,
)
from .search import (
    MAX_COUNT,
    SEARCH_PARAMETERS,
    DateOp,
    SearchPage,
    SearchQuery,
    parse_search_bundle,
    parse_search_query,
    search_bundle_bytes,
    search_bundle_json,
)

__all__ = [
    "FHIR_JSON",
    "FHIR_STATUSES",
    "JSON_PATCH",
    "MAX_COUNT",
    "MAX_ENTRIES",
    "MAX_PATCH_OPS",
    "MAX_TEXT",
    "PATCH_OPS",
    "SEARCH_PARAMETERS",
    "Author",
    "DateOp",
    "DocumentEntry",
    "FhirStatus",
    "PatchOp",
    "Patient",
    "ProvideBundle",
    "ProvidedDocument",
    "ResponseEntry",
    "SearchPage",
    "SearchQuery",
    "SubmissionSet",
    "WireError",
    "apply_json_patch",
    "build_provide_bundle",
    "document_entry_from_json",
    "document_reference_json",
    "format_datetime",
    "is_archived",
    "is_archived_extension",
    "load_json",
    "parse_datetime",
    "parse_json_patch",
    "parse_provide_bundle",
    "parse_search_bundle",
    "parse_search_query",
    "parse_security_labels",
    "parse_transaction_response",
    "sanitise_resource",
    "search_bundle_bytes",
    "search_bundle_json",
    "security_labels",
    "stored_document_reference",
    "submission_set_from_json",
    "submission_set_json",
    "transaction_response_json",
]
