"""ITI-65 Provide Document Bundle: the transaction Bundle the agent builds and the host
parses, and the transaction-response that answers it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .documents import (
    DocumentEntry,
    SubmissionSet,
    document_entry_from_json,
    document_reference_json,
    submission_set_from_json,
    submission_set_json,
)
from .fhir import (
    _FHIR_ID,
    _URN_UUID,
    WireError,
    _list,
    _match,
    _obj,
    _req,
    _text,
    format_datetime,
    load_json,
)

# -- ITI-65: the provide bundle -----------------------------------------------------------------


@dataclass(frozen=True)
class ProvidedDocument:
    """One document of a deposit: its metadata and either its bytes (an inline Binary) or the
    id of a Binary uploaded before (``POST /fhir/Binary``)."""

    entry: DocumentEntry
    data: bytes | None = None
    binary_id: str | None = None
    reference_index: int | None = None  # the bundle entry of the DocumentReference
    binary_index: int | None = None  # the bundle entry of the inline Binary


@dataclass(frozen=True)
class ProvideBundle:
    """A parsed ITI-65 transaction. ``kinds`` lists each request entry's resource type, in
    order, so the answer can have one entry per request entry."""

    submission_set: SubmissionSet
    documents: tuple[ProvidedDocument, ...]
    kinds: tuple[str, ...] = field(default=())
    submission_set_index: int = 0


def _urn_uuid() -> str:
    import uuid

    return f"urn:uuid:{uuid.uuid4()}"


def build_provide_bundle(
    submission_set: SubmissionSet,
    documents: Sequence[tuple[DocumentEntry, bytes | str]],
) -> dict[str, Any]:
    """The ITI-65 transaction Bundle. Each document comes with its content: bytes (sent as an
    inline Binary in the bundle) or a str, the id of a Binary uploaded before."""
    entries: list[dict[str, Any]] = []
    references: list[str] = []
    binaries: list[dict[str, Any]] = []
    for entry, content in documents:
        reference_url = _urn_uuid()
        if isinstance(content, bytes):
            binary_url = _urn_uuid()
            binaries.append({
                "fullUrl": binary_url,
                "resource": {"resourceType": "Binary", "contentType": entry.mime_type,
                             "data": base64.b64encode(content).decode("ascii")},
                "request": {"method": "POST", "url": "Binary"},
            })
        else:
            _match(_FHIR_ID, content, "invalid-binary-id", "Binary id")
            binary_url = f"Binary/{content}"
        references.append(reference_url)
        entries.append({
            "fullUrl": reference_url,
            "resource": document_reference_json(entry, content_url=binary_url),
            "request": {"method": "POST", "url": "DocumentReference"},
        })
    head = {
        "fullUrl": _urn_uuid(),
        "resource": submission_set_json(submission_set, references),
        "request": {"method": "POST", "url": "List"},
    }
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [
            "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
            "pdsm-comprehensive-provide-document-bundle"]},
        "type": "transaction",
        "timestamp": format_datetime(submission_set.submission_time),
        "entry": [head, *entries, *binaries],
    }


def parse_provide_bundle(data: bytes | str) -> ProvideBundle:
    """Read an ITI-65 transaction Bundle: one SubmissionSet List, its DocumentReferences (each
    in the List), their contents (an inline Binary of the bundle or ``Binary/<id>`` uploaded
    before), every reference resolved, every patient the same. Raises WireError."""
    bundle = _obj(load_json(data, "the bundle"), "Bundle")
    if bundle.get("resourceType") != "Bundle":
        raise WireError("not-a-bundle", "a FHIR Bundle is expected")
    if bundle.get("type") != "transaction":
        raise WireError("bundle-type", "Bundle.type must be 'transaction' (ITI-65)")
    raw_entries = _list(bundle.get("entry"), "Bundle.entry")
    lists: list[tuple[int, dict[str, Any]]] = []
    references: dict[str, tuple[int, dict[str, Any]]] = {}
    binaries: dict[str, tuple[int, dict[str, Any]]] = {}
    kinds: list[str] = []
    for index, raw in enumerate(raw_entries):
        where = f"Bundle.entry[{index}]"
        entry = _obj(raw, where)
        full_url = _req(entry, "fullUrl", where, max_length=200)
        if not _URN_UUID.fullmatch(full_url):
            raise WireError("invalid-full-url", f"{where}.fullUrl: urn:uuid:<uuid> expected")
        if full_url in references or full_url in binaries or any(
            raw_entries[i].get("fullUrl") == full_url for i, _ in lists
        ):
            raise WireError("duplicate-full-url", f"{where}.fullUrl is used twice")
        resource = _obj(entry.get("resource"), f"{where}.resource")
        request = _obj(entry.get("request"), f"{where}.request")
        kind = resource.get("resourceType")
        if request.get("method") != "POST" or request.get("url") != kind:
            raise WireError("invalid-request", f"{where}.request: POST {kind}")
        if kind == "List":
            lists.append((index, resource))
        elif kind == "DocumentReference":
            references[full_url] = (index, resource)
        elif kind == "Binary":
            binaries[full_url] = (index, resource)
        else:
            raise WireError("unsupported-resource",
                            f"{where}: {str(kind)[:40]!r} is not part of a deposit")
        kinds.append(kind)
    if len(lists) != 1:
        raise WireError("submission-set-count", "exactly one SubmissionSet List is expected")
    list_index, list_resource = lists[0]
    submission, items = submission_set_from_json(list_resource, f"Bundle.entry[{list_index}]")
    if not items:
        raise WireError("no-document", "the submission set lists no document")
    if sorted(items) != sorted(references) or len(set(items)) != len(items):
        raise WireError("unresolved-reference",
                        "the submission set must list every DocumentReference of the bundle")
    used_binaries: set[str] = set()
    documents: list[ProvidedDocument] = []
    for item in items:
        index, resource = references[item]
        where = f"Bundle.entry[{index}]"
        entry = document_entry_from_json(resource, where)
        if entry.patient != submission.patient:
            raise WireError("patient-mismatch", f"{where}: another patient than the submission set")
        if entry.status != "current" or entry.id is not None or entry.archived:
            raise WireError("invalid-status", f"{where}: a new document is current, without id")
        url = entry.content_url
        if url is None:
            raise WireError("missing-content", f"{where}: attachment.url names the content")
        if url in binaries:
            if url in used_binaries:
                raise WireError("duplicate-content", f"{where}: a Binary serves two documents")
            used_binaries.add(url)
            binary_index, binary = binaries[url]
            content_type = binary.get("contentType")
            if content_type != entry.mime_type:
                raise WireError("content-type-mismatch",
                                f"Bundle.entry[{binary_index}]: contentType differs from the "
                                "DocumentReference's")
            raw = binary.get("data")
            if not isinstance(raw, str):
                raise WireError("missing-content", f"Bundle.entry[{binary_index}].data")
            try:
                content = base64.b64decode(raw, validate=True)
            except (ValueError, binascii.Error):
                raise WireError("invalid-base64",
                                f"Bundle.entry[{binary_index}].data is not base64") from None
            documents.append(ProvidedDocument(
                replace(entry, content_url=None), data=content, reference_index=index,
                binary_index=binary_index))
        elif url.startswith("Binary/") and _FHIR_ID.fullmatch(url[7:]):
            documents.append(ProvidedDocument(
                replace(entry, content_url=None), binary_id=url[7:], reference_index=index))
        else:
            raise WireError("unresolved-reference", f"{where}: attachment.url {url[:80]!r} is "
                            "neither a Binary of the bundle nor Binary/<id>")
    if set(binaries) != used_binaries:
        raise WireError("binary-unreferenced", "a Binary of the bundle belongs to no document")
    unique_ids = [document.entry.unique_id for document in documents]
    if len(set(unique_ids)) != len(unique_ids):
        raise WireError("duplicate-unique-id", "two documents share a uniqueId")
    return ProvideBundle(submission, tuple(documents), tuple(kinds), list_index)


# -- ITI-65: the answer -------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseEntry:
    status: str  # "201 Created" or "200 OK" (already stored)
    location: str
    etag: str | None = None


def transaction_response_json(entries: Sequence[ResponseEntry], *,
                              note: str | None = None) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for entry in entries:
        response: dict[str, Any] = {"status": entry.status, "location": entry.location}
        if entry.etag:
            response["etag"] = entry.etag
        if note:
            response["outcome"] = {"resourceType": "OperationOutcome", "issue": [
                {"severity": "information", "code": "informational", "diagnostics": note}]}
        out.append({"response": response})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": out}


def parse_transaction_response(data: bytes | str) -> tuple[ResponseEntry, ...]:
    bundle = _obj(load_json(data, "the answer"), "Bundle")
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction-response":
        raise WireError("bundle-type", "a transaction-response Bundle is expected")
    out = []
    for index, entry in enumerate(_list(bundle.get("entry"), "Bundle.entry")):
        response = _obj(_obj(entry, f"Bundle.entry[{index}]").get("response"),
                        f"Bundle.entry[{index}].response")
        status = _req(response, "status", f"Bundle.entry[{index}].response", max_length=60)
        if not status[:3].isdigit() or not status.startswith("2"):
            raise WireError("entry-failed", f"Bundle.entry[{index}]: {status}")
        out.append(ResponseEntry(
            status, _req(response, "location", f"Bundle.entry[{index}].response", max_length=200),
            _text(response, "etag", f"Bundle.entry[{index}].response", required=False)))
    return tuple(out)
