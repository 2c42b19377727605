"""ITI-65 Provide Document Bundle: the transaction Bundle the agent builds and the host
parses, and the transaction-response that answers it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import codes
from .documents import (
    CONTAINED_KINDS,
    MAX_CONTAINED,
    MAX_DEPTH,
    DocumentEntry,
    SubmissionSet,
    document_entry_from_json,
    document_reference_json,
    sanitise_resource,
    submission_set_from_json,
    submission_set_json,
)
from .fhir import (
    _FHIR_ID,
    _FULL_URL,
    _RELATIVE_REFERENCE,
    WireError,
    _list,
    _match,
    _obj,
    _req,
    _text,
    check_depth,
    format_datetime,
    json_copy,
    load_json,
)

# -- ITI-65: the provide bundle -----------------------------------------------------------------


@dataclass(frozen=True)
class ProvidedDocument:
    """One document of a deposit: its metadata and either its bytes (an inline Binary) or the
    id of a Binary uploaded before (``POST /fhir/Binary``). ``resource`` is the
    DocumentReference as submitted, sanitised, its references to resources of the bundle made
    contained (what the host stores under its own elements)."""

    entry: DocumentEntry
    data: bytes | None = None
    binary_id: str | None = None
    reference_index: int | None = None  # the bundle entry of the DocumentReference
    binary_index: int | None = None  # the bundle entry of the inline Binary
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvideBundle:
    """A parsed ITI-65 transaction. ``kinds`` lists each request entry's resource type, in
    order, so the answer can have one entry per request entry; ``submission_set_resource``
    is the List as submitted (sanitised, references made contained)."""

    submission_set: SubmissionSet
    documents: tuple[ProvidedDocument, ...]
    kinds: tuple[str, ...] = field(default=())
    submission_set_index: int = 0
    submission_set_resource: dict[str, Any] = field(default_factory=dict)


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
            # PDSm DocumentReference.date 1..: the resource is created with the submission;
            # context.period.start 1..: the act, when not said, is when the document was made.
            "resource": document_reference_json(
                replace(entry, date=entry.date or submission_set.submission_time,
                        service_start=entry.service_start or entry.creation_time),
                content_url=binary_url),
            "request": {"method": "POST", "url": "DocumentReference"},
        })
    head = {
        "fullUrl": _urn_uuid(),
        "resource": submission_set_json(submission_set, references),
        "request": {"method": "POST", "url": "List"},
    }
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [codes.PROFILE_PROVIDE_BUNDLE]},
        "type": "transaction",
        "timestamp": format_datetime(submission_set.submission_time),
        "entry": [head, *entries, *binaries],
    }


# Resources a bundle may carry beside the deposit's own (MHD 4.2 "UnContained" bundles and the
# PDSm examples reference the patient, the author's role, practitioner and organization by
# Type/id): they are not created here, they become contained resources of what points at
# them, and their entries are answered "200 OK" without a location.
AUXILIARY_KINDS = CONTAINED_KINDS
DEPOSIT_KINDS = ("List", "DocumentReference", "Binary")


@dataclass
class _Entry:
    index: int
    full_url: str
    kind: str
    resource: dict[str, Any]


class _Resolver:
    """FHIR R4 reference resolution inside a transaction: a reference equal to an entry's
    fullUrl, or ``Type/id`` matching an absolute fullUrl's tail or an entry's type and id."""

    def __init__(self, entries: Sequence[_Entry]) -> None:
        self.entries = entries
        self.by_url = {entry.full_url: entry for entry in entries}
        self.by_type_id: dict[tuple[str, str], _Entry] = {}
        for entry in entries:
            keys = []
            if isinstance(entry.resource.get("id"), str):
                keys.append((entry.kind, entry.resource["id"]))
            if entry.full_url.startswith(("http://", "https://")):
                match = _RELATIVE_REFERENCE.fullmatch("/".join(entry.full_url.split("/")[-2:]))
                if match:
                    keys.append((match.group(1), match.group(2)))
            for key in keys:
                self.by_type_id.setdefault(key, entry)

    def resolve(self, reference: str) -> _Entry | None:
        if reference in self.by_url:
            return self.by_url[reference]
        match = _RELATIVE_REFERENCE.fullmatch(reference)
        return self.by_type_id.get((match.group(1), match.group(2))) if match else None

    def inline(self, resource: dict[str, Any], where: str) -> dict[str, Any]:
        """A copy of ``resource`` whose references to auxiliary entries point at contained
        copies of them (``#id``), those copies' own references too."""
        out = json_copy(resource)
        contained = list(_list(out.get("contained", []), f"{where}.contained",
                               max_items=MAX_CONTAINED))
        names = {item["id"] for item in contained
                 if isinstance(item, dict) and isinstance(item.get("id"), str)}
        local: dict[int, str] = {}

        def name_of(entry: _Entry) -> str:
            if entry.index in local:
                return local[entry.index]
            base = entry.resource.get("id")
            if not isinstance(base, str) or not _FHIR_ID.fullmatch(base):
                base = entry.kind.lower()
            name, count = base, 1
            while name in names:
                count += 1
                name = f"{base}-{count}"
            names.add(name)
            local[entry.index] = name
            if len(contained) >= MAX_CONTAINED:
                raise WireError("too-many-items", f"{where}.contained: more than {MAX_CONTAINED}")
            inlined = json_copy(entry.resource)
            inlined["id"] = name
            inlined.pop("contained", None)  # FHIR: a contained resource contains nothing
            contained.append(inlined)
            rewrite(inlined)
            return name

        def rewrite(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "reference" and isinstance(value, str):
                        target = self.resolve(value)
                        if target is not None and target.kind in AUXILIARY_KINDS:
                            node[key] = f"#{name_of(target)}"
                    else:
                        rewrite(value)
            elif isinstance(node, list):
                for item in node:
                    rewrite(item)

        rewrite(out)
        if contained:
            out["contained"] = contained
        return out


def _entries(bundle: Mapping[str, Any]) -> list[_Entry]:
    out: list[_Entry] = []
    seen: set[str] = set()
    for index, raw in enumerate(_list(bundle.get("entry"), "Bundle.entry")):
        where = f"Bundle.entry[{index}]"
        entry = _obj(raw, where)
        full_url = _req(entry, "fullUrl", where, max_length=200)
        if not _FULL_URL.fullmatch(full_url):
            raise WireError("invalid-full-url", f"{where}.fullUrl: urn:uuid:, urn:oid: or an "
                            "absolute URL is expected")
        if full_url in seen:
            raise WireError("duplicate-full-url", f"{where}.fullUrl is used twice")
        seen.add(full_url)
        resource = _obj(entry.get("resource"), f"{where}.resource")
        request = _obj(entry.get("request"), f"{where}.request")
        kind = resource.get("resourceType")
        method, url = request.get("method"), request.get("url")
        if kind in DEPOSIT_KINDS:
            if method != "POST" or url != kind:
                raise WireError("invalid-request", f"{where}.request: POST {kind}")
        elif isinstance(kind, str) and kind in AUXILIARY_KINDS:
            if method not in ("POST", "PUT") or not isinstance(url, str) or not (
                url == kind or url.startswith((f"{kind}/", f"{kind}?"))
            ):
                raise WireError("invalid-request", f"{where}.request: POST or PUT {kind}")
        else:
            raise WireError("unsupported-resource",
                            f"{where}: {str(kind)[:40]!r} is not part of a deposit")
        out.append(_Entry(index, full_url, str(kind), resource))
    return out


def _is_folder(resource: Mapping[str, Any]) -> bool:
    codings = resource.get("code", {}).get("coding") if isinstance(resource.get("code"),
                                                                    dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("code") == "folder" for c in codings)


def parse_provide_bundle(data: bytes | str) -> ProvideBundle:
    """Read an ITI-65 transaction Bundle: one SubmissionSet List, its DocumentReferences (each
    in the List), their contents (an inline Binary of the bundle or ``Binary/<id>`` uploaded
    before), every reference resolved, every patient the same. Patient, Practitioner,
    PractitionerRole, Organization entries are accepted and made contained where referenced.
    Raises WireError."""
    bundle = _obj(load_json(data, "the bundle"), "Bundle")
    if bundle.get("resourceType") != "Bundle":
        raise WireError("not-a-bundle", "a FHIR Bundle is expected")
    if bundle.get("type") != "transaction":
        raise WireError("bundle-type", "Bundle.type must be 'transaction' (ITI-65)")
    check_depth(bundle, MAX_DEPTH + 4, "the bundle")  # entry, resource: 4 levels above
    entries = _entries(bundle)
    resolver = _Resolver(entries)
    lists = [e for e in entries if e.kind == "List"]
    folder = next((e for e in lists if _is_folder(e.resource)), None)
    if folder is not None:
        raise WireError("unsupported-folder", f"Bundle.entry[{folder.index}]: folders (List "
                        "code folder) are not served by this host: send the submission set "
                        "without them")
    if len(lists) != 1:
        raise WireError("submission-set-count", "exactly one SubmissionSet List is expected")
    head = lists[0]
    where = f"Bundle.entry[{head.index}]"
    list_resource = sanitise_resource(resolver.inline(head.resource, where), where)
    submission, items = submission_set_from_json(list_resource, where)
    if not items:
        raise WireError("no-document", "the submission set lists no document")
    listed = [resolver.resolve(item) for item in items]
    references = [e for e in entries if e.kind == "DocumentReference"]
    if any(e is None or e.kind != "DocumentReference" for e in listed) or len(
        {e.index for e in listed if e is not None}
    ) != len(items) or len(items) != len(references):
        raise WireError("unresolved-reference",
                        "the submission set must list every DocumentReference of the bundle")
    used_binaries: set[int] = set()
    documents: list[ProvidedDocument] = []
    for item in listed:
        assert item is not None
        where = f"Bundle.entry[{item.index}]"
        resource = sanitise_resource(resolver.inline(item.resource, where), where)
        entry = document_entry_from_json(resource, where)
        if entry.patient != submission.patient:
            raise WireError("patient-mismatch", f"{where}: another patient than the submission set")
        if entry.status != "current" or entry.archived:
            raise WireError("invalid-status", f"{where}: a new document is current, not archived")
        url = entry.content_url
        if url is None:
            raise WireError("missing-content", f"{where}: attachment.url names the content")
        # A client's id and meta.versionId are not the host's: FHIR create ignores them.
        entry = replace(entry, content_url=None, id=None, version_id=None)
        binary = resolver.resolve(url)
        if binary is not None and binary.kind == "Binary":
            if binary.index in used_binaries:
                raise WireError("duplicate-content", f"{where}: a Binary serves two documents")
            used_binaries.add(binary.index)
            at = f"Bundle.entry[{binary.index}]"
            if binary.resource.get("contentType") != entry.mime_type:
                raise WireError("content-type-mismatch",
                                f"{at}: contentType differs from the DocumentReference's")
            raw = binary.resource.get("data")
            if not isinstance(raw, str):
                raise WireError("missing-content", f"{at}.resource.data")
            try:
                content = base64.b64decode(raw, validate=True)
            except (ValueError, binascii.Error):
                raise WireError("invalid-base64", f"{at}.resource.data is not base64") from None
            documents.append(ProvidedDocument(entry, data=content, reference_index=item.index,
                                              binary_index=binary.index, resource=resource))
        elif binary is None and url.startswith("Binary/") and _FHIR_ID.fullmatch(url[7:]):
            documents.append(ProvidedDocument(entry, binary_id=url[7:],
                                              reference_index=item.index, resource=resource))
        else:
            raise WireError("unresolved-reference", f"{where}: attachment.url {url[:80]!r} is "
                            "neither a Binary of the bundle nor Binary/<id>")
    if {e.index for e in entries if e.kind == "Binary"} != used_binaries:
        raise WireError("binary-unreferenced", "a Binary of the bundle belongs to no document")
    unique_ids = [document.entry.unique_id for document in documents]
    if len(set(unique_ids)) != len(unique_ids):
        raise WireError("duplicate-unique-id", "two documents share a uniqueId")
    return ProvideBundle(submission, tuple(documents), tuple(e.kind for e in entries),
                         head.index, list_resource)


# -- ITI-65: the answer -------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseEntry:
    status: str  # "201 Created" or "200 OK" (already stored, or a resource not created here)
    location: str | None
    etag: str | None = None


def transaction_response_json(entries: Sequence[ResponseEntry], *,
                              note: str | None = None) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for entry in entries:
        response: dict[str, Any] = {"status": entry.status}
        if entry.location:
            response["location"] = entry.location
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
            status,
            _text(response, "location", f"Bundle.entry[{index}].response", required=False,
                  max_length=200),
            _text(response, "etag", f"Bundle.entry[{index}].response", required=False)))
    return tuple(out)
