"""ITI-67 Find Document References: the query parameters and the searchset Bundle.

`PARAMETERS` is the one table of what the host serves: the parser reads it, the host's
CapabilityStatement is written from it (docs/wire-search.md). Each occurrence of a parameter
is one `Criterion` whose values are OR'ed (``a,b``); occurrences are AND'ed (``x=a&x=b``).
Tokens keep their system (``system|code``, ``|code``: no system, ``code``: any system).
"""

from __future__ import annotations

import calendar
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from .documents import FHIR_STATUSES, DocumentEntry, Patient, document_entry_from_json
from .fhir import _CODE, WireError, _list, _obj, _req, load_json

# -- the parameters -----------------------------------------------------------------------------

ParamType = Literal["token", "date", "reference", "string", "number", "special"]
FHIR_SP = "http://hl7.org/fhir/SearchParameter/"
MHD_SP = "https://profiles.ihe.net/ITI/MHD/SearchParameter/"
PDSM_SP = "https://interop.esante.gouv.fr/ig/fhir/pdsm/SearchParameter/"


@dataclass(frozen=True)
class Parameter:
    """One search parameter: its name on the wire, FHIR type, canonical definition (None:
    ours), the modifiers accepted and what it searches (for the CapabilityStatement)."""

    name: str
    type: ParamType
    definition: str | None
    documentation: str
    modifiers: frozenset[str] = frozenset()


_STRING_MODIFIERS = frozenset({"exact", "contains"})
_REFERENCE_MODIFIERS = frozenset({"identifier"})
PARAMETERS: tuple[Parameter, ...] = (
    Parameter("patient", "reference", f"{FHIR_SP}clinical-patient",
              "Patient/<INS> (the NIR OID assumed) or the INS"),
    Parameter("patient.identifier", "token", f"{FHIR_SP}Patient-identifier",
              "urn:oid:<INS OID>|<INS> (chained on subject)"),
    Parameter("status", "token", f"{FHIR_SP}DocumentReference-status",
              "current, superseded, entered-in-error (no system, as MHD says)"),
    Parameter("identifier", "token", f"{FHIR_SP}clinical-identifier",
              "masterIdentifier (urn:ietf:rfc:3986|<uniqueId>) or identifier "
              "(urn:dmp:host:document-id|<id>)"),
    Parameter("type", "token", f"{FHIR_SP}clinical-type", "type (LOINC, local or ASTM)"),
    Parameter("category", "token", f"{FHIR_SP}DocumentReference-category",
              "the class (TRE_A03)"),
    Parameter("format", "token", f"{FHIR_SP}DocumentReference-format",
              "content.format (TRE_A11)"),
    Parameter("facility", "token", f"{FHIR_SP}DocumentReference-facility",
              "context.facilityType (TRE_R02)"),
    Parameter("setting", "token", f"{FHIR_SP}DocumentReference-setting",
              "context.practiceSetting (TRE_A01)"),
    Parameter("event", "token", f"{FHIR_SP}DocumentReference-event", "context.event"),
    Parameter("security-label", "token", f"{FHIR_SP}DocumentReference-security-label",
              "N/R/V (HL7 v3) or a TRE_A07 visibility status"),
    Parameter("isArchived", "token", f"{PDSM_SP}PDSm-isArchived",
              "the PDSm isArchived extension: true or false"),
    Parameter("author", "reference", f"{FHIR_SP}DocumentReference-author",
              "the author's idNat_PS (urn:oid:1.2.250.1.71.4.2.1)"),
    Parameter("author.identifier", "token", f"{FHIR_SP}Practitioner-identifier",
              "the author's idNat_PS (chained on author)"),
    Parameter("author.given", "string", f"{FHIR_SP}individual-given",
              "the author's given name (chained on author)", _STRING_MODIFIERS),
    Parameter("author.family", "string", f"{FHIR_SP}individual-family",
              "the author's family name (chained on author)", _STRING_MODIFIERS),
    Parameter("creation", "date", f"{MHD_SP}DocumentReference-Creation",
              "content.attachment.creation"),
    Parameter("date", "date", f"{FHIR_SP}clinical-date",
              "DocumentReference.date: when the host registered the document"),
    Parameter("period", "date", f"{FHIR_SP}DocumentReference-period",
              "context.period (the act), overlapping the value"),
    Parameter("period-start", "date", f"{PDSM_SP}PDSm-DocumentReference-period-start",
              "context.period.start"),
    Parameter("period-end", "date", f"{PDSM_SP}PDSm-DocumentReference-period-end",
              "context.period.end"),
    Parameter("relatesto", "reference", f"{FHIR_SP}DocumentReference-relatesto",
              "relatesTo.target: DocumentReference/<id>, or :identifier=<system>|<uniqueId>",
              _REFERENCE_MODIFIERS),
    Parameter("related", "reference", f"{FHIR_SP}DocumentReference-related",
              "context.related: a reference, or :identifier=<system>|<value>",
              _REFERENCE_MODIFIERS),
    Parameter("_count", "number", None, "page size (at most the host's page size)"),
    Parameter("_cursor", "special", None, "opaque paging cursor of a next link (ours)"),
)
BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}
SEARCH_PARAMETERS = frozenset(BY_NAME)
# Parameters that are one value, not a filter that AND's.
_SINGLE = frozenset({"patient", "patient.identifier", "isArchived", "_count", "_cursor"})
MAX_COUNT = 1000
MAX_VALUES = 50
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
DateOp = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]


class SearchError(WireError):
    """A search the host refuses: ``parameter`` names the parameter at fault (the
    OperationOutcome's expression), ``issue`` is the FHIR issue type; the message is in French
    then English."""

    def __init__(self, code: str, message: str, parameter: str | None = None,
                 issue: str = "invalid") -> None:
        super().__init__(code, message)
        self.parameter = parameter
        self.issue = issue


def _bad_value(name: str, value: str, expected: str) -> SearchError:
    shown = value[:60].encode("unicode_escape").decode("ascii")
    return SearchError("invalid-search",
                       f"{name} : valeur {shown!r} refusée / invalid value {shown!r} "
                       f"({expected})", name, "value")


class Token(NamedTuple):
    """``system`` None: any system (``code``); "": no system (``|code``)."""

    system: str | None
    code: str

    def text(self) -> str:
        return self.code if self.system is None else f"{self.system}|{self.code}"


class DateBound(NamedTuple):
    """A date search value: prefix, the text as given, and the interval its precision covers,
    ``[low, high)`` (``2026-11`` is the whole month)."""

    op: str
    text: str
    low: datetime
    high: datetime


CriterionValue = Token | DateBound | str


class Criterion(NamedTuple):
    """One occurrence of a parameter: its modifier ("" when none) and its OR'ed values."""

    name: str
    modifier: str
    values: tuple[CriterionValue, ...]

    def text(self) -> str:
        return ",".join(v.op + v.text if isinstance(v, DateBound)
                        else v.text() if isinstance(v, Token) else v for v in self.values)


@dataclass(frozen=True)
class SearchQuery:
    """ITI-67 parameters: the patient, the statuses, then the criteria (AND'ed)."""

    patient: Patient
    status: tuple[str, ...]
    criteria: tuple[Criterion, ...] = ()
    archived: bool | None = None
    count: int | None = None
    cursor: str | None = None

    def of(self, name: str) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if c.name == name)

    def to_query_string(self) -> str:
        pairs: list[tuple[str, str]] = [
            ("patient.identifier", f"{self.patient.system}|{self.patient.ins}"),
            ("status", ",".join(self.status)),
        ]
        pairs += [(f"{c.name}:{c.modifier}" if c.modifier else c.name, c.text())
                  for c in self.criteria]
        if self.archived is not None:
            pairs.append(("isArchived", "true" if self.archived else "false"))
        if self.count is not None:
            pairs.append(("_count", str(self.count)))
        if self.cursor is not None:
            pairs.append(("_cursor", self.cursor))
        return urllib.parse.urlencode(pairs)


@dataclass(frozen=True)
class ParsedSearch:
    query: SearchQuery
    ignored: tuple[str, ...]  # unknown parameters, ignored (lenient handling)


_SYSTEM = re.compile(r"[\x21-\x7b\x7d\x7e]{1,200}")  # printable ASCII but "|"
_DATE = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?P<f>\.[0-9]{1,6})?)?"
    r"(?P<z>Z|[+-][0-9]{2}:[0-9]{2}))?)?)?")


def _token(value: str, name: str) -> Token:
    system, sep, code = value.partition("|")
    if not sep:
        system, code = "", value
    if (sep and system and not _SYSTEM.fullmatch(system)) or not _CODE.fullmatch(code):
        raise _bad_value(name, value, "[system|]code")
    return Token(system if sep else None, code)


def date_bound(value: str, name: str) -> DateBound:
    """``[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.f]](Z|±hh:mm)]]]``; the interval of its precision."""
    op, text = ("eq", value)
    if value[:2] in DATE_PREFIXES:
        op, text = value[:2], value[2:]
    elif value[:2].isalpha():
        raise _bad_value(name, value, f"prefix {', '.join(DATE_PREFIXES)}")
    match = _DATE.fullmatch(text)
    if match is None:
        raise _bad_value(name, value, "YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with a zone")
    part = match.groupdict()
    try:
        year, month, day = int(part["y"]), int(part["m"] or 1), int(part["d"] or 1)
        if part["H"] is None:
            low = datetime(year, month, day, tzinfo=UTC)
            if part["d"]:
                high = low + timedelta(days=1)
            elif part["m"]:
                high = low + timedelta(days=calendar.monthrange(year, month)[1])
            else:
                high = low.replace(year=year + 1)
        else:
            low = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
            step = (timedelta(minutes=1) if part["S"] is None
                    else timedelta(seconds=1) if part["f"] is None
                    else timedelta(microseconds=10 ** (6 - len(part["f"]) + 1)))
            high = low + step
    except (ValueError, OverflowError):
        raise _bad_value(name, value, "not a calendar date") from None
    return DateBound(op, text, low, high)


def _criterion(name: str, modifier: str, value: str) -> Criterion:
    parameter = BY_NAME[name]
    if not value:
        raise _bad_value(name, value, "empty")
    parts = value.split(",")
    if len(parts) > MAX_VALUES:
        raise SearchError("invalid-search", f"{name} : plus de {MAX_VALUES} valeurs / "
                          f"more than {MAX_VALUES} values", name, "too-costly")
    values: tuple[CriterionValue, ...]
    if parameter.type == "date":
        values = tuple(date_bound(part, name) for part in parts)
    elif parameter.type == "string":
        if any(not part or len(part) > 100 or not part.isprintable() for part in parts):
            raise _bad_value(name, value, "1 to 100 printable characters")
        values = tuple(parts)
    elif parameter.type == "reference" and not modifier:
        if any(not re.fullmatch(r"[\x21-\x7e]{1,200}", part) for part in parts):
            raise _bad_value(name, value, "a reference Type/id or an id")
        values = tuple(parts)
    else:  # token, and reference:identifier
        values = tuple(_token(part, name) for part in parts)
    return Criterion(name, modifier, values)


def parse_search(query: str, *, strict: bool) -> ParsedSearch:
    """The ITI-67 query string (``a=b&c=d``). ``patient`` (``Patient/<INS>`` or the INS; the
    NIR OID is assumed) or ``patient.identifier`` (``urn:oid:<OID>|<INS>``), and ``status``
    are mandatory. Unknown parameters are ignored and listed (``strict``: refused)."""
    if len(query) > 8000:
        raise SearchError("invalid-search", "Requête trop longue / the query is too long",
                          None, "too-long")
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False,
                                       max_num_fields=100, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise SearchError("invalid-search", "Requête mal formée / the query string is "
                          "malformed") from None
    single: dict[str, str] = {}
    criteria: list[Criterion] = []
    statuses: list[str] = []
    ignored: list[str] = []
    for key, value in pairs:
        name, _, modifier = key.partition(":")
        parameter = BY_NAME.get(name)
        if parameter is None:
            shown = key[:40].encode("unicode_escape").decode("ascii")
            if strict:
                raise SearchError("unknown-search-parameter",
                                  f"Paramètre inconnu {shown!r} (Prefer: handling=strict) / "
                                  f"unknown search parameter {shown!r}", shown, "not-supported")
            ignored.append(shown)
            continue
        if modifier and modifier not in parameter.modifiers:
            raise SearchError("unsupported-modifier",
                              f"{name} : modificateur {modifier[:20]!r} non pris en charge / "
                              f"unsupported modifier {modifier[:20]!r}", name, "not-supported")
        if name in _SINGLE:
            if name in single:
                raise SearchError("invalid-search", f"{name} est donné deux fois / {name} is "
                                  "given twice", name, "invalid")
            single[name] = value
        elif name == "status":
            if not statuses:
                statuses = value.split(",")
            else:  # AND'ed with the statuses before: only both allow
                statuses = [s for s in statuses if s in value.split(",")]
            if any(s not in FHIR_STATUSES for s in value.split(",")):
                raise _bad_value(name, value, "current, superseded or entered-in-error, "
                                 "without a system")
        else:
            criteria.append(_criterion(name, modifier, value))
    patient = _patient(single.get("patient"), single.get("patient.identifier"))
    if not any(key.partition(":")[0] == "status" for key, _ in pairs):
        raise SearchError("status-required", "Le statut est obligatoire / status is required "
                          "(current, superseded, entered-in-error)", "status", "required")
    archived_text = single.get("isArchived")
    if archived_text not in (None, "true", "false"):
        raise _bad_value("isArchived", archived_text or "", "true or false")
    count_text = single.get("_count")
    count = None
    if count_text is not None:
        if not re.fullmatch(r"[0-9]{1,6}", count_text) or not 1 <= int(count_text) <= MAX_COUNT:
            raise _bad_value("_count", count_text, f"1 to {MAX_COUNT}")
        count = int(count_text)
    cursor = single.get("_cursor")
    if cursor is not None and not re.fullmatch(r"[A-Za-z0-9_=-]{1,200}", cursor):
        raise _bad_value("_cursor", cursor, "a cursor this host gave")
    return ParsedSearch(SearchQuery(
        patient=patient, status=tuple(statuses), criteria=tuple(criteria),
        archived=None if archived_text is None else archived_text == "true",
        count=count, cursor=cursor,
    ), tuple(ignored))


def _patient(reference: str | None, identifier: str | None) -> Patient:
    if (reference is None) == (identifier is None):
        raise SearchError("patient-required", "Nommez le patient : patient ou "
                          "patient.identifier / name the patient: patient or "
                          "patient.identifier", "patient", "required")
    name = "patient" if reference is not None else "patient.identifier"
    try:
        if reference is not None:
            return Patient(reference.removeprefix("Patient/"))
        assert identifier is not None
        return Patient.from_token(identifier)
    except WireError as error:
        raise SearchError(error.code, f"{name} : INS ou OID refusé / {error.message}", name,
                          "value") from None


def parse_search_query(query: str) -> SearchQuery:
    """`parse_search` refusing unknown parameters: for callers with no way to report them."""
    return parse_search(query, strict=True).query


# -- the searchset Bundle -----------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPage:
    entries: tuple[DocumentEntry, ...]
    next_url: str | None
    warnings: tuple[str, ...] = ()  # the texts of a search.mode = outcome OperationOutcome


def search_bundle_json(resources: Sequence[Mapping[str, Any]], *, base: str, self_url: str,
                       next_url: str | None, outcome: Mapping[str, Any] | None = None
                       ) -> dict[str, Any]:
    """``outcome``: an OperationOutcome of warnings, added as an entry of search.mode
    outcome (FHIR R4 search, "ignored parameters")."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/DocumentReference/{resource['id']}", "resource": resource,
         "search": {"mode": "match"}} for resource in resources]
    if outcome is not None:
        entries.append({"resource": dict(outcome), "search": {"mode": "outcome"}})
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


# What json.dumps writes for a str (ASCII-escaped), without its per-call set-up.
_json_string = json.encoder.encode_basestring_ascii


def search_bundle_bytes(resources: Sequence[tuple[str, str]], *, base: str, self_url: str,
                        next_url: str | None, outcome: Mapping[str, Any] | None = None
                        ) -> bytes:
    """The Bundle `search_bundle_json` makes, from (id, DocumentReference as JSON text) pairs
    a store kept as JSON: the texts are spliced in, not parsed and written again (a search
    page is mostly these resources)."""
    envelope = search_bundle_json([], base=base, self_url=self_url, next_url=next_url,
                                  outcome=outcome)
    tail = [json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
            for entry in envelope.pop("entry")]
    head = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))[:-1]
    prefix = f"{base}/DocumentReference/"
    entries = [
        '{"fullUrl":' + _json_string(prefix + resource_id)
        + ',"resource":' + text + ',"search":{"mode":"match"}}'
        for resource_id, text in resources
    ]
    return (head + ',"entry":[' + ",".join(entries + tail) + "]}").encode()


def parse_search_bundle(data: bytes | str) -> SearchPage:
    bundle = _obj(load_json(data, "the search answer"), "Bundle")
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
        raise WireError("bundle-type", "a searchset Bundle is expected")
    next_url = None
    for index, link in enumerate(_list(bundle.get("link", []), "Bundle.link", max_items=8)):
        link = _obj(link, f"Bundle.link[{index}]")
        if link.get("relation") == "next":
            next_url = _req(link, "url", f"Bundle.link[{index}]", max_length=9000)
    entries, warnings = [], []
    for index, entry in enumerate(_list(bundle.get("entry", []), "Bundle.entry")):
        entry = _obj(entry, f"Bundle.entry[{index}]")
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            warnings += [str(issue.get("diagnostics", ""))[:500]
                         for issue in _list(resource.get("issue", []), "issue", max_items=100)
                         if isinstance(issue, dict)]
            continue
        entries.append(document_entry_from_json(resource, f"Bundle.entry[{index}].resource"))
    return SearchPage(tuple(entries), next_url, tuple(warnings))
