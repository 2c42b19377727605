"""ITI-67 Find Document References: the query parameters and the searchset Bundle."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .documents import FHIR_STATUSES, DocumentEntry, Patient, document_entry_from_json
from .fhir import _CODE, WireError, _list, _obj, _req, format_datetime, load_json, parse_datetime

# -- ITI-67: search -----------------------------------------------------------------------------

DateOp = Literal["ge", "le", "gt", "lt", "eq"]
_DATE_PREFIXES = ("ge", "le", "gt", "lt", "eq")
SEARCH_PARAMETERS = frozenset({
    "patient", "patient.identifier", "status", "category", "class", "type", "creation", "date",
    "author", "author.identifier", "security-label", "format", "isArchived", "_count",
    "_cursor",
})
MAX_COUNT = 1000


@dataclass(frozen=True)
class SearchQuery:
    """ITI-67 parameters. Token lists are OR'ed; the date bounds are AND'ed."""

    patient: Patient
    status: tuple[str, ...]
    classes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    creation: tuple[tuple[str, datetime], ...] = ()
    date: tuple[tuple[str, datetime], ...] = ()
    authors: tuple[str, ...] = ()
    security_labels: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    archived: bool | None = None
    count: int | None = None
    cursor: str | None = None

    def to_query_string(self) -> str:
        pairs: list[tuple[str, str]] = [
            ("patient.identifier", f"{self.patient.system}|{self.patient.ins}"),
            ("status", ",".join(self.status)),
        ]
        for name, values in (("category", self.classes), ("type", self.types),
                             ("author", self.authors), ("security-label", self.security_labels),
                             ("format", self.formats)):
            if values:
                pairs.append((name, ",".join(values)))
        for name, bounds in (("creation", self.creation), ("date", self.date)):
            pairs += [(name, op + format_datetime(moment)) for op, moment in bounds]
        if self.archived is not None:
            pairs.append(("isArchived", "true" if self.archived else "false"))
        if self.count is not None:
            pairs.append(("_count", str(self.count)))
        if self.cursor is not None:
            pairs.append(("_cursor", self.cursor))
        return urllib.parse.urlencode(pairs)


def _tokens(values: list[str], name: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for token in value.split(","):
            code = token.rpartition("|")[2]  # system|code: the code is enough here
            if not _CODE.fullmatch(code):
                raise WireError("invalid-search", f"{name}: {token[:60]!r} is not a code")
            out.append(code)
    if len(out) > 50:
        raise WireError("invalid-search", f"{name}: too many values")
    return tuple(out)


def _date_bound(value: str, name: str) -> tuple[str, datetime]:
    op, rest = ("eq", value)
    if value[:2] in _DATE_PREFIXES:
        op, rest = value[:2], value[2:]
    if len(rest) == 10:  # a date alone: midnight UTC
        rest += "T00:00:00Z"
    return op, parse_datetime(rest, name)


def parse_search_query(query: str) -> SearchQuery:
    """The ITI-67 query string (``a=b&c=d``). ``patient`` (``Patient/<INS>`` or the INS; the
    NIR OID is assumed) or ``patient.identifier`` (``urn:oid:<OID>|<INS>``), and ``status``
    are mandatory. Unknown parameters are refused (a typo must not widen a search)."""
    if len(query) > 8000:
        raise WireError("invalid-search", "the query is too long")
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False,
                                       max_num_fields=100, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise WireError("invalid-search", "the query string is malformed") from None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in SEARCH_PARAMETERS:
            raise WireError("unknown-search-parameter", f"unknown parameter {name[:40]!r}")
        params.setdefault(name, []).append(value)

    def one(name: str) -> str | None:
        values = params.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise WireError("invalid-search", f"{name} is given twice")
        return values[0]

    patient_ref, patient_identifier = one("patient"), one("patient.identifier")
    if (patient_ref is None) == (patient_identifier is None):
        raise WireError("patient-required", "name the patient: patient or patient.identifier")
    if patient_ref is not None:
        patient = Patient(patient_ref.removeprefix("Patient/"))
    else:
        assert patient_identifier is not None
        patient = Patient.from_token(patient_identifier)
    raw_status = one("status")
    if not raw_status:
        raise WireError("status-required", "status is required (current, superseded, "
                        "entered-in-error)")
    status = tuple(raw_status.split(","))
    if any(value not in FHIR_STATUSES for value in status):
        raise WireError("invalid-search", "status: current, superseded or entered-in-error")
    archived_text = one("isArchived")
    if archived_text not in (None, "true", "false"):
        raise WireError("invalid-search", "isArchived: true or false")
    count_text = one("_count")
    count = None
    if count_text is not None:
        if not re.fullmatch(r"[0-9]{1,6}", count_text) or not 1 <= int(count_text) <= MAX_COUNT:
            raise WireError("invalid-search", f"_count: 1 to {MAX_COUNT}")
        count = int(count_text)
    cursor = one("_cursor")
    if cursor is not None and not re.fullmatch(r"[A-Za-z0-9_=-]{1,200}", cursor):
        raise WireError("invalid-search", "_cursor is not one this host gave")
    return SearchQuery(
        patient=patient, status=status,
        classes=_tokens(params.get("category", []) + params.get("class", []), "category"),
        types=_tokens(params.get("type", []), "type"),
        creation=tuple(_date_bound(v, "creation") for v in params.get("creation", [])),
        date=tuple(_date_bound(v, "date") for v in params.get("date", [])),
        authors=_tokens(params.get("author", []) + params.get("author.identifier", []),
                        "author"),
        security_labels=_tokens(params.get("security-label", []), "security-label"),
        formats=_tokens(params.get("format", []), "format"),
        archived=None if archived_text is None else archived_text == "true",
        count=count, cursor=cursor,
    )


@dataclass(frozen=True)
class SearchPage:
    entries: tuple[DocumentEntry, ...]
    next_url: str | None


def search_bundle_json(resources: Sequence[Mapping[str, Any]], *, base: str, self_url: str,
                       next_url: str | None) -> dict[str, Any]:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle", "type": "searchset", "link": links,
        "entry": [{"fullUrl": f"{base}/DocumentReference/{resource['id']}",
                   "resource": resource, "search": {"mode": "match"}} for resource in resources],
    }


# What json.dumps writes for a str (ASCII-escaped), without its per-call set-up.
_json_string = json.encoder.encode_basestring_ascii


def search_bundle_bytes(resources: Sequence[tuple[str, str]], *, base: str, self_url: str,
                        next_url: str | None) -> bytes:
    """The Bundle `search_bundle_json` makes, from (id, DocumentReference as JSON text) pairs
    a store kept as JSON: the texts are spliced in, not parsed and written again (a search
    page is mostly these resources)."""
    envelope = search_bundle_json([], base=base, self_url=self_url, next_url=next_url)
    del envelope["entry"]
    head = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))[:-1]
    prefix = f"{base}/DocumentReference/"
    entries = ",".join(
        '{"fullUrl":' + _json_string(prefix + resource_id)
        + ',"resource":' + text + ',"search":{"mode":"match"}}'
        for resource_id, text in resources
    )
    return (head + ',"entry":[' + entries + "]}").encode()


def parse_search_bundle(data: bytes | str) -> SearchPage:
    bundle = _obj(load_json(data, "the search answer"), "Bundle")
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
        raise WireError("bundle-type", "a searchset Bundle is expected")
    next_url = None
    for index, link in enumerate(_list(bundle.get("link", []), "Bundle.link", max_items=8)):
        link = _obj(link, f"Bundle.link[{index}]")
        if link.get("relation") == "next":
            next_url = _req(link, "url", f"Bundle.link[{index}]", max_length=9000)
    entries = []
    for index, entry in enumerate(_list(bundle.get("entry", []), "Bundle.entry")):
        entry = _obj(entry, f"Bundle.entry[{index}]")
        entries.append(document_entry_from_json(entry.get("resource"),
                                                f"Bundle.entry[{index}].resource"))
    return SearchPage(tuple(entries), next_url)
