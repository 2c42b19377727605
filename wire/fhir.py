"""FHIR R4 JSON read strictly: the limits, the `WireError` every parser raises, typed
access to objects, lists and strings, datetimes, codings (shared by the `wire` modules)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

MAX_ENTRIES = 1000  # request entries in one transaction
MAX_TEXT = 1000  # any single string field but base64 data
FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"

# Any well-formed OID (ITU-T X.660: arcs of any length, no leading zero; 2.25.<the UUID as an
# integer> has a 39-digit arc) or a lowercase UUID, as FHIR's oid and uuid types say. Values
# are capped at 128 characters where they are read.
_OID = r"[0-2](?:\.(?:0|[1-9][0-9]*))+"
_UNIQUE_ID = re.compile(
    rf"urn:(?:oid:{_OID}"
    r"|uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
_INS = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}")
_ID_NAT = re.compile(r"[0-9A-Za-z]{2,32}")
_CODE = re.compile(r"[\x21-\x7e]{1,128}")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URN_UUID = re.compile(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}")
# A bundle entry's fullUrl (FHIR R4 Bundle: a urn:uuid:, a urn:oid: or an absolute URL).
_FULL_URL = re.compile(rf"{_URN_UUID.pattern}|urn:oid:{_OID}|https?://[\x21-\x7e]{{1,180}}")
# A relative literal reference Type/id (FHIR R4 Reference.reference).
_RELATIVE_REFERENCE = re.compile(r"([A-Z][A-Za-z]{1,40})/([A-Za-z0-9\-.]{1,64})")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Z]{2})?")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")


# Where a message names the element at fault, it starts with its FHIRPath ("Bundle.entry[2]
# .resource.subject: ...", "DocumentReference.status is required"): that path is the error's
# expression, which the host returns as OperationOutcome.issue.expression.
_EXPRESSION = re.compile(
    r"(?:Bundle|DocumentReference|List|Binary|Patient|Practitioner|PractitionerRole|"
    r"Organization|Parameters)(?:\.[A-Za-z]+|\[[0-9]+\])*(?=[: ]|$)"
)


class WireError(ValueError):
    """A message that does not follow the wire format. ``code`` is stable (for programs and
    tests), ``message`` says what and where (for people); ``expression`` is the FHIRPath of
    the element at fault, when the message names one."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        found = _EXPRESSION.match(message)
        self.expression = found.group(0) if found else None


# -- strict JSON access ---------------------------------------------------------------------------


def load_json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise WireError("not-json", f"{what} is not valid JSON") from None


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (what `load_json` gave): through the C JSON codec, several
    times faster than copy.deepcopy on a deposit's resources."""
    return json.loads(json.dumps(value))


def check_depth(value: Any, limit: int, what: str) -> None:
    """WireError ``too-deep`` when ``value`` nests more than ``limit`` levels (iterative: a
    hostile depth must not reach Python's recursion limit in later copies and walks)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise WireError("too-deep", f"{what}: nested more than {limit} levels")
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError("invalid-structure", f"{where}: an object is expected")
    return value


def _list(value: Any, where: str, *, max_items: int = MAX_ENTRIES) -> list[Any]:
    if not isinstance(value, list):
        raise WireError("invalid-structure", f"{where}: an array is expected")
    if len(value) > max_items:
        raise WireError("too-many-items", f"{where}: more than {max_items} items")
    return value


def _text(parent: Mapping[str, Any], key: str, where: str, *, required: bool = True,
          max_length: int = MAX_TEXT) -> str | None:
    value = parent.get(key)
    if value is None:
        if required:
            raise WireError("missing-field", f"{where}.{key} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise WireError("invalid-field", f"{where}.{key}: a non-empty string is expected")
    return value


def _req(parent: Mapping[str, Any], key: str, where: str, **kw: Any) -> str:
    value = _text(parent, key, where, required=True, **kw)
    assert value is not None
    return value


def _match(pattern: re.Pattern[str], value: str, code: str, where: str) -> str:
    if not pattern.fullmatch(value):
        raise WireError(code, f"{where}: {value[:80]!r} is not well formed")
    return value


def parse_datetime(value: Any, where: str) -> datetime:
    """A FHIR dateTime with seconds and a timezone (an instant), as an aware UTC datetime."""
    if not isinstance(value, str) or not 19 <= len(value) <= 40 or value[4:5] != "-":
        raise WireError("invalid-date", f"{where}: a dateTime with a timezone is expected")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WireError("invalid-date", f"{where}: {value[:40]!r} is not a dateTime") from None
    if moment.tzinfo is None:
        raise WireError("invalid-date", f"{where}: the dateTime has no timezone")
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise WireError("invalid-date", f"{where}: out of range") from None


def format_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime on the wire: use aware datetimes")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _coding(concept: Any, where: str) -> tuple[str, str]:
    """(system, code) of a CodeableConcept's one coding."""
    codings = _list(_obj(concept, where).get("coding"), f"{where}.coding", max_items=4)
    if len(codings) != 1:
        raise WireError("invalid-field", f"{where}.coding: exactly one coding is expected")
    coding = _obj(codings[0], f"{where}.coding[0]")
    system = _req(coding, "system", f"{where}.coding[0]")
    code = _match(_CODE, _req(coding, "code", f"{where}.coding[0]"), "invalid-code",
                  f"{where}.coding[0].code")
    return system, code


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}
