"""The document wire both sides read: FHIR R4 / IHE MHD resources as profiled by PDSm 3.1.1.

- `DocumentEntry` / `SubmissionSet` are the XDS metadata as frozen dataclasses;
  `document_reference_json` / `document_entry_from_json` turn one into a DocumentReference
  and back, `submission_set_json` / `submission_set_from_json` the same for the List.
- `build_provide_bundle` makes the ITI-65 transaction Bundle (the agent);
  `parse_provide_bundle` reads one back (the host), refusing anything malformed with a
  `WireError` whose ``code`` is stable.
- `transaction_response_json` / `parse_transaction_response`: the ITI-65 answer.
- `parse_search_query` / `SearchQuery.to_query_string`: ITI-67 parameters;
  `search_bundle_json` / `parse_search_bundle`: the searchset answer.
- `parse_json_patch` / `apply_json_patch`: RFC 6902 patches for metadata changes.

Every parser takes bytes or str from the network and raises only `WireError`. Codes and
systems are in `wire.codes`. The format is described in docs/host-documents.md.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from . import codes

MAX_ENTRIES = 1000  # request entries in one transaction
MAX_TEXT = 1000  # any single string field but base64 data
FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"

_UNIQUE_ID = re.compile(
    r"urn:(?:oid:[0-2](?:\.(?:0|[1-9][0-9]{0,19}))+"
    r"|uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
_INS = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}")
_ID_NAT = re.compile(r"[0-9A-Za-z]{2,32}")
_CODE = re.compile(r"[\x21-\x7e]{1,128}")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URN_UUID = re.compile(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Z]{2})?")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")


class WireError(ValueError):
    """A message that does not follow the wire format. ``code`` is stable (for programs and
    tests), ``message`` says what and where (for people)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# -- strict JSON access ---------------------------------------------------------------------------


def load_json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise WireError("not-json", f"{what} is not valid JSON") from None


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


# -- metadata -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    """The patient's INS and the OID saying which kind (NIR, NIA, test NIR)."""

    ins: str
    oid: str = codes.INS_NIR_OID

    def __post_init__(self) -> None:
        if not _INS.fullmatch(self.ins):
            raise WireError("invalid-ins", f"{self.ins[:40]!r} is not an INS")
        if self.oid not in codes.INS_OIDS:
            raise WireError("invalid-ins-oid", f"{self.oid[:60]!r} is not an INS OID")

    @property
    def system(self) -> str:
        return f"urn:oid:{self.oid}"

    def identifier(self) -> dict[str, str]:
        return {"system": self.system, "value": self.ins}

    def reference(self) -> dict[str, Any]:
        return {"reference": f"Patient/{self.ins}", "identifier": self.identifier()}

    @classmethod
    def from_reference(cls, value: Any, where: str) -> Patient:
        ref = _obj(value, where)
        identifier = _obj(ref.get("identifier"), f"{where}.identifier")
        system = _req(identifier, "system", f"{where}.identifier")
        if not system.startswith("urn:oid:"):
            raise WireError("invalid-ins-oid", f"{where}.identifier.system: an INS OID is expected")
        patient = cls(_req(identifier, "value", f"{where}.identifier"), system[8:])
        reference = ref.get("reference")
        if reference is not None and reference != f"Patient/{patient.ins}":
            raise WireError("patient-mismatch", f"{where}: reference and identifier disagree")
        return patient

    @classmethod
    def from_token(cls, token: str) -> Patient:
        """``system|value`` (patient.identifier) with an INS OID system."""
        system, sep, value = token.partition("|")
        if not sep or not system.startswith("urn:oid:"):
            raise WireError("invalid-ins-oid", "patient.identifier: urn:oid:<INS OID>|<INS>")
        return cls(value, system[8:])


@dataclass(frozen=True)
class Author:
    """The professional who deposits, for the practice situation of the session."""

    id_nat_ps: str
    profession: str  # G15
    structure_id: str
    specialty: str | None = None  # R38 for doctors
    last_name: str | None = None
    first_name: str | None = None

    def __post_init__(self) -> None:
        _match(_ID_NAT, self.id_nat_ps, "invalid-author", "author idNat_PS")
        _match(_ID_NAT, self.structure_id, "invalid-author", "author structure")
        _match(_CODE, self.profession, "invalid-author", "author profession")
        if self.specialty is not None:
            _match(_CODE, self.specialty, "invalid-author", "author specialty")


def _author_contained(author: Author) -> list[dict[str, Any]]:
    practitioner: dict[str, Any] = {
        "resourceType": "Practitioner", "id": "author",
        "identifier": [{"system": codes.ID_NAT_PS_SYSTEM, "value": author.id_nat_ps}],
    }
    if author.last_name or author.first_name:
        name: dict[str, Any] = {}
        if author.last_name:
            name["family"] = author.last_name
        if author.first_name:
            name["given"] = [author.first_name]
        practitioner["name"] = [name]
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole", "id": "author-role",
        "practitioner": {"reference": "#author"},
        "organization": {"reference": "#author-org"},
        "code": [_concept(codes.PROFESSION_SYSTEM, author.profession)],
    }
    if author.specialty:
        role["specialty"] = [_concept(codes.SPECIALTY_SYSTEM, author.specialty)]
    organization = {
        "resourceType": "Organization", "id": "author-org",
        "identifier": [{"system": codes.STRUCTURE_SYSTEM, "value": author.structure_id}],
    }
    return [practitioner, role, organization]


def _identifier_value(resource: Mapping[str, Any], system: str, where: str) -> str:
    identifiers = _list(resource.get("identifier"), f"{where}.identifier", max_items=8)
    for index, item in enumerate(identifiers):
        item = _obj(item, f"{where}.identifier[{index}]")
        if item.get("system") == system:
            return _req(item, "value", f"{where}.identifier[{index}]", max_length=64)
    raise WireError("invalid-author", f"{where}: no identifier in {system}")


def _author_from(resource: Mapping[str, Any], ref_holder: Any, where: str) -> Author:
    """The author a DocumentReference (``author[0]``) or List (``source``) points at."""
    contained = {}
    for index, item in enumerate(_list(resource.get("contained", []), f"{where}.contained",
                                       max_items=16)):
        item = _obj(item, f"{where}.contained[{index}]")
        contained[f"#{item.get('id')}"] = item

    def follow(ref: Any, kind: str, at: str) -> dict[str, Any]:
        target = contained.get(_req(_obj(ref, at), "reference", at))
        if target is None or target.get("resourceType") != kind:
            raise WireError("invalid-author", f"{at}: a contained {kind} is expected")
        return target

    role = follow(ref_holder, "PractitionerRole", where)
    practitioner = follow(role.get("practitioner"), "Practitioner", f"{where}.practitioner")
    organization = follow(role.get("organization"), "Organization", f"{where}.organization")
    role_codes = _list(role.get("code"), f"{where}.code", max_items=1)
    if len(role_codes) != 1:
        raise WireError("invalid-author", f"{where}: one profession code is expected")
    system, profession = _coding(role_codes[0], f"{where}.code[0]")
    if system != codes.PROFESSION_SYSTEM:
        raise WireError("invalid-author", f"{where}: the profession is a G15 code")
    specialty = None
    if "specialty" in role:
        specialties = _list(role["specialty"], f"{where}.specialty", max_items=1)
        if specialties:
            specialty = _coding(specialties[0], f"{where}.specialty[0]")[1]
    last = first = None
    if "name" in practitioner:
        names = _list(practitioner["name"], f"{where}.name", max_items=1)
        if names:
            name = _obj(names[0], f"{where}.name[0]")
            last = _text(name, "family", f"{where}.name[0]", required=False, max_length=100)
            given = _list(name.get("given", []), f"{where}.name[0].given", max_items=4)
            if given:
                if not isinstance(given[0], str) or not given[0] or len(given[0]) > 100:
                    raise WireError("invalid-author", f"{where}.name[0].given[0]")
                first = given[0]
    return Author(
        _identifier_value(practitioner, codes.ID_NAT_PS_SYSTEM, f"{where}.practitioner"),
        profession,
        _identifier_value(organization, codes.STRUCTURE_SYSTEM, f"{where}.organization"),
        specialty, last, first,
    )


FhirStatus = Literal["current", "superseded", "entered-in-error"]
FHIR_STATUSES: tuple[str, ...] = ("current", "superseded", "entered-in-error")


@dataclass(frozen=True)
class DocumentEntry:
    """An XDS DocumentEntry (a FHIR DocumentReference).

    ``confidentiality`` is N, R or V; ``visibility`` holds MASQUE_PS, INVISIBLE_PATIENT and
    INVISIBLE_REPRESENTANTS_LEGAUX as they apply. ``sha1_b64`` is FHIR's Attachment.hash,
    ``sha256`` (hex) our extension. ``replaces`` is the uniqueId of the document this one
    replaces. ``id``, ``version_id``, ``status``, ``archived`` and ``content_url`` are the
    host's (None/defaults in a deposit).
    """

    unique_id: str
    patient: Patient
    class_code: str
    type_code: str
    type_system: str
    format_code: str
    mime_type: str
    title: str
    author: Author
    creation_time: datetime
    size: int
    sha1_b64: str
    sha256: str
    confidentiality: str = "N"
    visibility: frozenset[str] = frozenset()
    facility_type: str | None = None
    practice_setting: str | None = None
    service_start: datetime | None = None
    service_stop: datetime | None = None
    language: str = "fr-FR"
    description: str | None = None
    replaces: str | None = None
    id: str | None = None
    version_id: int | None = None
    status: str = "current"
    archived: bool = False
    content_url: str | None = None
    date: datetime | None = None  # DocumentReference.date: when the host registered it

    def __post_init__(self) -> None:
        _match(_UNIQUE_ID, self.unique_id, "invalid-unique-id", "uniqueId")
        if self.replaces is not None:
            _match(_UNIQUE_ID, self.replaces, "invalid-unique-id", "relatesTo")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise WireError("invalid-size", "size: a non-negative integer is expected")
        _match(_SHA256_HEX, self.sha256, "invalid-hash", "SHA-256")
        try:
            if len(base64.b64decode(self.sha1_b64, validate=True)) != 20:
                raise ValueError
        except (ValueError, binascii.Error):
            raise WireError("invalid-hash", "hash: base64 of a SHA-1 is expected") from None
        if self.confidentiality not in codes.CONFIDENTIALITY_LEVELS:
            raise WireError("unknown-confidentiality",
                            f"confidentiality {self.confidentiality[:20]!r}: N, R or V")
        for label in self.visibility:
            if label not in codes.VISIBILITY_STATUSES:
                raise WireError("unknown-confidentiality", f"unknown visibility {label[:40]!r}")
        if self.status not in FHIR_STATUSES:
            raise WireError("invalid-status", f"status {self.status[:30]!r}")
        _match(_MIME, self.mime_type, "invalid-mime-type", "contentType")
        _match(_LANGUAGE, self.language, "invalid-language", "language")
        for name in ("class_code", "type_code", "format_code"):
            _match(_CODE, getattr(self, name), "invalid-code", name)

    @property
    def masked(self) -> bool:
        return codes.MASQUE_PS in self.visibility

    @property
    def invisible_to_patient(self) -> bool:
        return codes.INVISIBLE_PATIENT in self.visibility

    @property
    def invisible_to_legal_representatives(self) -> bool:
        return codes.INVISIBLE_REPRESENTANTS_LEGAUX in self.visibility

    @property
    def is_signature(self) -> bool:
        return self.type_code == codes.SIGNATURE_TYPE_CODE


def security_labels(confidentiality: str, visibility: Iterable[str]) -> list[dict[str, Any]]:
    labels = [_concept(codes.CONFIDENTIALITY_SYSTEM, confidentiality)]
    labels += [_concept(codes.VISIBILITY_SYSTEM, code) for code in sorted(visibility)]
    return labels


def parse_security_labels(value: Any, where: str) -> tuple[str, frozenset[str]]:
    """(confidentiality level, visibility statuses) from a securityLabel array."""
    level: str | None = None
    visibility: set[str] = set()
    for index, concept in enumerate(_list(value, where, max_items=8)):
        system, code = _coding(concept, f"{where}[{index}]")
        if system == codes.CONFIDENTIALITY_SYSTEM and code in codes.CONFIDENTIALITY_LEVELS:
            if level is not None:
                raise WireError("unknown-confidentiality", f"{where}: two confidentiality levels")
            level = code
        elif system == codes.VISIBILITY_SYSTEM and code in codes.VISIBILITY_STATUSES:
            visibility.add(code)
        else:
            raise WireError("unknown-confidentiality",
                            f"{where}[{index}]: unknown security label {code!r}")
    if level is None:
        raise WireError("unknown-confidentiality", f"{where}: a level N, R or V is required")
    return level, frozenset(visibility)


def document_reference_json(entry: DocumentEntry, *, content_url: str | None = None
                            ) -> dict[str, Any]:
    """The PDSm DocumentReference for ``entry``; ``content_url`` overrides attachment.url."""
    resource: dict[str, Any] = {"resourceType": "DocumentReference"}
    if entry.id is not None:
        resource["id"] = entry.id
    if entry.version_id is not None:
        resource["meta"] = {"versionId": str(entry.version_id)}
    resource["contained"] = _author_contained(entry.author)
    resource["extension"] = [{"url": codes.IS_ARCHIVED_URL, "valueBoolean": entry.archived}]
    resource["masterIdentifier"] = {"system": codes.RFC3986, "value": entry.unique_id}
    if entry.id is not None:
        resource["identifier"] = [{"system": codes.DOCUMENT_ID_SYSTEM, "value": entry.id}]
    resource["status"] = entry.status
    resource["type"] = _concept(entry.type_system, entry.type_code)
    resource["category"] = [_concept(codes.CLASS_SYSTEM, entry.class_code)]
    resource["subject"] = entry.patient.reference()
    if entry.date is not None:
        resource["date"] = format_datetime(entry.date)
    resource["author"] = [{"reference": "#author-role"}]
    if entry.description:
        resource["description"] = entry.description
    resource["securityLabel"] = security_labels(entry.confidentiality, entry.visibility)
    if entry.replaces:
        resource["relatesTo"] = [{"code": "replaces", "target": {
            "identifier": {"system": codes.RFC3986, "value": entry.replaces}}}]
    url = content_url or entry.content_url
    attachment: dict[str, Any] = {
        "contentType": entry.mime_type, "language": entry.language,
        "size": entry.size, "hash": entry.sha1_b64, "title": entry.title,
        "creation": format_datetime(entry.creation_time),
        "extension": [{
            "url": codes.SHA256_EXTENSION_URL,
            "valueBase64Binary": base64.b64encode(bytes.fromhex(entry.sha256)).decode(),
        }],
    }
    if url:
        attachment["url"] = url
    format_system = (codes.FORMATS[entry.format_code].system if entry.format_code in codes.FORMATS
                     else codes.FORMAT_SYSTEM)
    resource["content"] = [{"attachment": attachment,
                            "format": {"system": format_system, "code": entry.format_code}}]
    context: dict[str, Any] = {}
    if entry.service_start or entry.service_stop:
        period = {}
        if entry.service_start:
            period["start"] = format_datetime(entry.service_start)
        if entry.service_stop:
            period["end"] = format_datetime(entry.service_stop)
        context["period"] = period
    if entry.facility_type:
        context["facilityType"] = _concept(codes.FACILITY_SYSTEM, entry.facility_type)
    if entry.practice_setting:
        context["practiceSetting"] = _concept(codes.PRACTICE_SYSTEM, entry.practice_setting)
    if context:
        resource["context"] = context
    return resource


def is_archived(resource: Mapping[str, Any], where: str) -> bool:
    archived = False
    for index, extension in enumerate(_list(resource.get("extension", []), f"{where}.extension",
                                            max_items=16)):
        extension = _obj(extension, f"{where}.extension[{index}]")
        if extension.get("url") == codes.IS_ARCHIVED_URL:
            value = extension.get("valueBoolean")
            if not isinstance(value, bool):
                raise WireError("invalid-field", f"{where}.extension[{index}].valueBoolean")
            archived = value
    return archived


def document_entry_from_json(resource: Any, where: str = "DocumentReference") -> DocumentEntry:
    """Read a DocumentReference (as `document_reference_json` writes it). Raises WireError."""
    doc = _obj(resource, where)
    if doc.get("resourceType") != "DocumentReference":
        raise WireError("invalid-resource", f"{where}: a DocumentReference is expected")
    master = _obj(doc.get("masterIdentifier"), f"{where}.masterIdentifier")
    if master.get("system", codes.RFC3986) != codes.RFC3986:
        raise WireError("invalid-unique-id", f"{where}.masterIdentifier.system: {codes.RFC3986}")
    unique_id = _req(master, "value", f"{where}.masterIdentifier", max_length=128)
    status = doc.get("status")
    if status not in FHIR_STATUSES:
        raise WireError("invalid-status", f"{where}.status: current, superseded or "
                        "entered-in-error")
    type_system, type_code = _coding(doc.get("type"), f"{where}.type")
    categories = _list(doc.get("category"), f"{where}.category", max_items=1)
    if len(categories) != 1:
        raise WireError("missing-field", f"{where}.category: one class is required")
    class_system, class_code = _coding(categories[0], f"{where}.category[0]")
    if class_system != codes.CLASS_SYSTEM:
        raise WireError("unknown-class", f"{where}.category: the system is TRE_A03")
    patient = Patient.from_reference(doc.get("subject"), f"{where}.subject")
    authors = _list(doc.get("author"), f"{where}.author", max_items=1)
    if len(authors) != 1:
        raise WireError("invalid-author", f"{where}.author: one author is expected")
    author = _author_from(doc, authors[0], f"{where}.author[0]")
    confidentiality, visibility = parse_security_labels(doc.get("securityLabel"),
                                                        f"{where}.securityLabel")
    replaces = None
    if "relatesTo" in doc:
        relations = _list(doc["relatesTo"], f"{where}.relatesTo", max_items=1)
        if relations:
            relation = _obj(relations[0], f"{where}.relatesTo[0]")
            if relation.get("code") != "replaces":
                raise WireError("unsupported-relation", f"{where}.relatesTo[0].code: replaces")
            target = _obj(relation.get("target"), f"{where}.relatesTo[0].target")
            identifier = _obj(target.get("identifier"), f"{where}.relatesTo[0].target.identifier")
            replaces = _req(identifier, "value", f"{where}.relatesTo[0].target.identifier",
                            max_length=128)
    contents = _list(doc.get("content"), f"{where}.content", max_items=1)
    if len(contents) != 1:
        raise WireError("invalid-content", f"{where}.content: exactly one content is expected")
    content = _obj(contents[0], f"{where}.content[0]")
    attachment = _obj(content.get("attachment"), f"{where}.content[0].attachment")
    at = f"{where}.content[0].attachment"
    size = attachment.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 2**62:
        raise WireError("invalid-size", f"{at}.size: a non-negative integer is required")
    sha256 = None
    for index, extension in enumerate(_list(attachment.get("extension", []), f"{at}.extension",
                                            max_items=8)):
        extension = _obj(extension, f"{at}.extension[{index}]")
        if extension.get("url") == codes.SHA256_EXTENSION_URL:
            raw = _req(extension, "valueBase64Binary", f"{at}.extension[{index}]", max_length=64)
            try:
                digest = base64.b64decode(raw, validate=True)
            except (ValueError, binascii.Error):
                digest = b""
            if len(digest) != 32:
                raise WireError("invalid-hash", f"{at}: the SHA-256 is 32 bytes in base64")
            sha256 = digest.hex()
    if sha256 is None:
        raise WireError("missing-field", f"{at}: the SHA-256 extension is required")
    format_concept = _obj(content.get("format"), f"{where}.content[0].format")
    format_code = _req(format_concept, "code", f"{where}.content[0].format", max_length=128)
    context = _obj(doc.get("context", {}), f"{where}.context")
    period = _obj(context.get("period", {}), f"{where}.context.period")
    facility = practice = None
    if "facilityType" in context:
        system, facility = _coding(context["facilityType"], f"{where}.context.facilityType")
        if system != codes.FACILITY_SYSTEM:
            raise WireError("unknown-facility-type", f"{where}.context.facilityType: TRE_R02")
    if "practiceSetting" in context:
        system, practice = _coding(context["practiceSetting"],
                                   f"{where}.context.practiceSetting")
        if system != codes.PRACTICE_SYSTEM:
            raise WireError("unknown-practice-setting",
                            f"{where}.context.practiceSetting: TRE_A01")
    meta = _obj(doc.get("meta", {}), f"{where}.meta")
    version = None
    if "versionId" in meta:
        raw_version = _req(meta, "versionId", f"{where}.meta", max_length=12)
        if not (raw_version.isascii() and raw_version.isdigit()):
            raise WireError("invalid-field", f"{where}.meta.versionId: a number is expected")
        version = int(raw_version)
    doc_id = doc.get("id")
    if doc_id is not None and (not isinstance(doc_id, str) or not _FHIR_ID.fullmatch(doc_id)):
        raise WireError("invalid-field", f"{where}.id")
    return DocumentEntry(
        unique_id=unique_id, patient=patient, class_code=class_code, type_code=type_code,
        type_system=type_system, format_code=format_code,
        mime_type=_req(attachment, "contentType", at, max_length=128),
        title=_req(attachment, "title", at, max_length=300), author=author,
        creation_time=parse_datetime(attachment.get("creation"), f"{at}.creation"),
        size=size, sha1_b64=_req(attachment, "hash", at, max_length=64), sha256=sha256,
        confidentiality=confidentiality, visibility=visibility, facility_type=facility,
        practice_setting=practice,
        service_start=(parse_datetime(period["start"], f"{where}.context.period.start")
                       if "start" in period else None),
        service_stop=(parse_datetime(period["end"], f"{where}.context.period.end")
                      if "end" in period else None),
        language=_text(attachment, "language", at, required=False, max_length=10) or "fr-FR",
        description=_text(doc, "description", where, required=False),
        replaces=replaces, id=doc_id, version_id=version, status=status,
        archived=is_archived(doc, where),
        content_url=_text(attachment, "url", at, required=False, max_length=200),
        date=parse_datetime(doc["date"], f"{where}.date") if "date" in doc else None,
    )


@dataclass(frozen=True)
class SubmissionSet:
    """An XDS SubmissionSet (the MHD SubmissionSet List)."""

    unique_id: str
    source_id: str
    patient: Patient
    submission_time: datetime
    author: Author
    content_type_code: str | None = None  # designationType (TRE_R02 here)
    title: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        _match(_UNIQUE_ID, self.unique_id, "invalid-unique-id", "submission set uniqueId")
        _match(_UNIQUE_ID, self.source_id, "invalid-unique-id", "submission set sourceId")


def submission_set_json(submission: SubmissionSet, items: Sequence[str]) -> dict[str, Any]:
    """The SubmissionSet List whose entries reference ``items`` (fullUrls or ids)."""
    resource: dict[str, Any] = {"resourceType": "List"}
    if submission.id:
        resource["id"] = submission.id
    resource["contained"] = _author_contained(submission.author)
    extensions: list[dict[str, Any]] = [
        {"url": codes.SOURCE_ID_URL,
         "valueIdentifier": {"system": codes.RFC3986, "value": submission.source_id}},
    ]
    if submission.content_type_code:
        extensions.append({"url": codes.DESIGNATION_TYPE_URL, "valueCodeableConcept": _concept(
            codes.FACILITY_SYSTEM, submission.content_type_code)})
    resource["extension"] = extensions
    resource["identifier"] = [{"use": "usual", "system": codes.RFC3986,
                               "value": submission.unique_id}]
    resource["status"] = "current"
    resource["mode"] = "working"
    if submission.title:
        resource["title"] = submission.title
    resource["code"] = _concept(codes.MHD_LIST_TYPES, "submissionset")
    resource["subject"] = submission.patient.reference()
    resource["date"] = format_datetime(submission.submission_time)
    resource["source"] = {"reference": "#author-role"}
    resource["entry"] = [{"item": {"reference": item}} for item in items]
    return resource


def submission_set_from_json(resource: Any, where: str = "List"
                             ) -> tuple[SubmissionSet, tuple[str, ...]]:
    """The submission set and the references its entries hold. Raises WireError."""
    lst = _obj(resource, where)
    if lst.get("resourceType") != "List":
        raise WireError("invalid-resource", f"{where}: a List is expected")
    system, code = _coding(lst.get("code"), f"{where}.code")
    if code != "submissionset" or not system.endswith("/MHDlistTypes"):
        raise WireError("invalid-submission-set", f"{where}.code: MHDlistTypes#submissionset")
    unique_id = source_id = None
    content_type = None
    for index, identifier in enumerate(_list(lst.get("identifier"), f"{where}.identifier",
                                             max_items=4)):
        identifier = _obj(identifier, f"{where}.identifier[{index}]")
        if identifier.get("use", "usual") == "usual":
            unique_id = _req(identifier, "value", f"{where}.identifier[{index}]", max_length=128)
    for index, extension in enumerate(_list(lst.get("extension", []), f"{where}.extension",
                                            max_items=16)):
        extension = _obj(extension, f"{where}.extension[{index}]")
        if extension.get("url") == codes.SOURCE_ID_URL:
            value = _obj(extension.get("valueIdentifier"), f"{where}.extension[{index}]")
            source_id = _req(value, "value", f"{where}.extension[{index}]", max_length=128)
        elif extension.get("url") == codes.DESIGNATION_TYPE_URL:
            content_type = _coding(extension.get("valueCodeableConcept"),
                                   f"{where}.extension[{index}]")[1]
    if unique_id is None or source_id is None:
        raise WireError("invalid-submission-set", f"{where}: uniqueId and sourceId are required")
    items = []
    for index, entry in enumerate(_list(lst.get("entry"), f"{where}.entry")):
        item = _obj(_obj(entry, f"{where}.entry[{index}]").get("item"),
                    f"{where}.entry[{index}].item")
        items.append(_req(item, "reference", f"{where}.entry[{index}].item", max_length=200))
    submission = SubmissionSet(
        unique_id=unique_id, source_id=source_id,
        patient=Patient.from_reference(lst.get("subject"), f"{where}.subject"),
        submission_time=parse_datetime(lst.get("date"), f"{where}.date"),
        author=_author_from(lst, lst.get("source"), f"{where}.source"),
        content_type_code=content_type,
        title=_text(lst, "title", where, required=False),
        id=lst.get("id") if isinstance(lst.get("id"), str) else None,
    )
    return submission, tuple(items)


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


# -- metadata changes: JSON Patch (RFC 6902) ----------------------------------------------------

PATCH_OPS = frozenset({"add", "remove", "replace", "test", "move", "copy"})
MAX_PATCH_OPS = 50


@dataclass(frozen=True)
class PatchOp:
    op: str
    path: tuple[str, ...]
    value: Any = None
    from_path: tuple[str, ...] | None = None


def _pointer(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, str) or len(value) > 200 or (value and not value.startswith("/")):
        raise WireError("invalid-patch", f"{where}: a JSON pointer is expected")
    if value == "":
        return ()
    parts = value[1:].split("/")
    if any(re.search(r"~[^01]|~$", part) for part in parts):
        raise WireError("invalid-patch", f"{where}: bad escape in the pointer")
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in parts)


def parse_json_patch(data: bytes | str) -> tuple[PatchOp, ...]:
    """An RFC 6902 document: an array of operations. Raises WireError("invalid-patch")."""
    try:
        document = load_json(data, "the patch")
    except WireError:
        raise WireError("invalid-patch", "the patch is not valid JSON") from None
    if not isinstance(document, list) or not document or len(document) > MAX_PATCH_OPS:
        raise WireError("invalid-patch", f"a JSON Patch is an array of 1 to {MAX_PATCH_OPS} "
                        "operations")
    ops = []
    for index, raw in enumerate(document):
        where = f"patch[{index}]"
        if not isinstance(raw, dict):
            raise WireError("invalid-patch", f"{where}: an object is expected")
        op = raw.get("op")
        if op not in PATCH_OPS:
            raise WireError("invalid-patch", f"{where}.op: one of {sorted(PATCH_OPS)}")
        path = _pointer(raw.get("path"), f"{where}.path")
        if op in ("add", "replace", "test") and "value" not in raw:
            raise WireError("invalid-patch", f"{where}: {op} needs a value")
        from_path = _pointer(raw.get("from"), f"{where}.from") if op in ("move", "copy") else None
        ops.append(PatchOp(op, path, copy.deepcopy(raw.get("value")), from_path))
    return tuple(ops)


def _walk(document: Any, path: tuple[str, ...]) -> tuple[Any, str]:
    """The container of ``path``'s last step, and that step."""
    if not path:
        raise WireError("patch-failed", "the whole resource cannot be patched")
    node = document
    for part in path[:-1]:
        node = _child(node, part)
    return node, path[-1]


def _index_of(node: list[Any], part: str, *, append: bool = False) -> int:
    if append and part == "-":
        return len(node)
    if not re.fullmatch(r"0|[1-9][0-9]{0,5}", part):
        raise WireError("patch-failed", f"{part[:20]!r} is not an array index")
    index = int(part)
    if index > len(node) or (index == len(node) and not append):
        raise WireError("patch-failed", f"index {index} is out of the array")
    return index


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            raise WireError("patch-failed", f"no member {part[:40]!r}")
        return node[part]
    if isinstance(node, list):
        return node[_index_of(node, part)]
    raise WireError("patch-failed", f"{part[:40]!r}: not a container")


def _remove(document: Any, path: tuple[str, ...]) -> Any:
    parent, last = _walk(document, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise WireError("patch-failed", f"no member {last[:40]!r} to remove")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index_of(parent, last))
    raise WireError("patch-failed", "not a container")


def _add(document: Any, path: tuple[str, ...], value: Any) -> None:
    parent, last = _walk(document, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index_of(parent, last, append=True), value)
    else:
        raise WireError("patch-failed", "not a container")


def apply_json_patch(resource: Mapping[str, Any], ops: Sequence[PatchOp]) -> dict[str, Any]:
    """The patched copy of ``resource`` (never modified). Raises WireError("patch-failed")."""
    document = copy.deepcopy(dict(resource))
    for op in ops:
        if op.op == "add":
            _add(document, op.path, copy.deepcopy(op.value))
        elif op.op == "remove":
            _remove(document, op.path)
        elif op.op == "replace":
            _remove(document, op.path)
            _add(document, op.path, copy.deepcopy(op.value))
        elif op.op == "test":
            parent, last = _walk(document, op.path)
            if _child(parent, last) != op.value:
                raise WireError("patch-failed", "a test operation failed")
        else:
            assert op.from_path is not None
            if op.op == "move" and op.path[: len(op.from_path)] == op.from_path:
                raise WireError("patch-failed", "cannot move a value into itself")
            parent, last = _walk(document, op.from_path)
            value = copy.deepcopy(_child(parent, last))
            if op.op == "move":
                _remove(document, op.from_path)
            _add(document, op.path, value)
    return document
