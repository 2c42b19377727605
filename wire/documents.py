"""XDS metadata as FHIR resources (PDSm 3.1.1): the patient, the author, the DocumentEntry
(a DocumentReference) and the SubmissionSet (a List), each to JSON and back."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from . import codes
from .fhir import (
    _CODE,
    _FHIR_ID,
    _ID_NAT,
    _INS,
    _LANGUAGE,
    _MIME,
    _SHA256_HEX,
    _UNIQUE_ID,
    WireError,
    _coding,
    _concept,
    _list,
    _match,
    _obj,
    _req,
    _text,
    format_datetime,
    json_copy,
    parse_datetime,
)
from .ins import (
    IdentityReliability,
    InsIdentity,
    patient_resource,
    reliability_extension,
    reliability_of,
)

PATIENT_ID = "patient"  # the contained Patient of a submission set carrying the identity

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
    def from_reference(cls, value: Any, where: str,
                       contained: Mapping[str, Mapping[str, Any]] | None = None) -> Patient:
        """The patient of a Reference: its ``identifier`` (INS OID system), or the INS
        identifier of the Patient resource it points at (contained, or in the bundle and made
        contained by `wire.provide`), as the PDSm examples reference ``fr-patient-123``."""
        ref = _obj(value, where)
        reference = ref.get("reference")
        if "identifier" in ref:
            identifier = _obj(ref.get("identifier"), f"{where}.identifier")
            system = _req(identifier, "system", f"{where}.identifier")
            if not system.startswith("urn:oid:"):
                raise WireError("invalid-ins-oid",
                                f"{where}.identifier.system: an INS OID is expected")
            patient = cls(_req(identifier, "value", f"{where}.identifier"), system[8:])
            if isinstance(reference, str) and reference.startswith("#") and contained:
                if cls.of_resource(contained.get(reference), where) != patient:
                    raise WireError("patient-mismatch",
                                    f"{where}: reference and identifier disagree")
            elif reference is not None and reference != f"Patient/{patient.ins}":
                raise WireError("patient-mismatch", f"{where}: reference and identifier disagree")
            return patient
        if not isinstance(reference, str) or not reference.startswith("#"):
            raise WireError("unknown-patient", f"{where}: the patient is named by its INS "
                            "(identifier, or a Patient resource of the bundle with its INS)")
        return cls.of_resource((contained or {}).get(reference), where)

    @classmethod
    def of_resource(cls, resource: Any, where: str) -> Patient:
        """The INS of a Patient resource: its one identifier in an INS OID system."""
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
            raise WireError("unknown-patient", f"{where}: no Patient resource to read the INS of")
        found = set()
        for index, item in enumerate(_list(resource.get("identifier", []),
                                           f"{where}.identifier", max_items=8)):
            item = _obj(item, f"{where}.identifier[{index}]")
            system = item.get("system")
            if isinstance(system, str) and system[8:] in codes.INS_OIDS \
                    and system.startswith("urn:oid:"):
                found.add(cls(_req(item, "value", f"{where}.identifier[{index}]"), system[8:]))
        if len(found) != 1:
            raise WireError("unknown-patient", f"{where}: the Patient resource needs exactly one "
                            "INS identifier (urn:oid:1.2.250.1.213.1.4.8|<INS>, or NIA, or test)")
        return found.pop()

    @classmethod
    def from_token(cls, token: str) -> Patient:
        """``system|value`` (patient.identifier) with an INS OID system."""
        system, sep, value = token.partition("|")
        if not sep or not system.startswith("urn:oid:"):
            raise WireError("invalid-ins-oid", "patient.identifier: urn:oid:<INS OID>|<INS>")
        return cls(value, system[8:])


@dataclass(frozen=True)
class Author:
    """The professional who deposits, for the practice situation of the session.

    ``id_system`` is the system of the identifier ``id_nat_ps`` was read from: the idNat_PS
    OID the PDSm examples use (``urn:oid:1.2.250.1.71.4.2.1``), compared with the value."""

    id_nat_ps: str
    profession: str  # G15
    structure_id: str
    specialty: str | None = None  # R38 for doctors
    last_name: str | None = None
    first_name: str | None = None
    id_system: str = codes.ID_NAT_PS_SYSTEM

    def __post_init__(self) -> None:
        _match(_ID_NAT, self.id_nat_ps, "invalid-author", "author idNat_PS")
        _match(_ID_NAT, self.structure_id, "invalid-author", "author structure")
        _match(_CODE, self.profession, "invalid-author", "author profession")
        if self.specialty is not None:
            _match(_CODE, self.specialty, "invalid-author", "author specialty")


def _author_contained(author: Author) -> list[dict[str, Any]]:
    practitioner: dict[str, Any] = {
        "resourceType": "Practitioner", "id": "author",
        "identifier": [{"system": author.id_system, "value": author.id_nat_ps}],
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


def contained_index(resource: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """``#id`` -> the contained resource (a contained resource is found only this way)."""
    out: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(_list(resource.get("contained", []), f"{where}.contained",
                                       max_items=MAX_CONTAINED)):
        item = _obj(item, f"{where}.contained[{index}]")
        if isinstance(item.get("id"), str):
            out[f"#{item['id']}"] = item
    return out


def _codes_in(concepts: Any, system: str, where: str) -> list[str]:
    """Every code of ``system`` in a list of CodeableConcepts (PractitionerRole.code mixes
    G15 with R22/R23/R21 in the guide's example; Practitioner.qualification holds two
    codings per concept)."""
    found = []
    for index, concept in enumerate(_list(concepts, where, max_items=16)):
        concept = _obj(concept, f"{where}[{index}]")
        if "code" in concept and "coding" not in concept:  # qualification: {code: {coding}}
            concept = _obj(concept["code"], f"{where}[{index}].code")
        codings = _list(concept.get("coding", []), f"{where}[{index}].coding", max_items=8)
        for position, coding in enumerate(codings):
            coding = _obj(coding, f"{where}[{index}].coding[{position}]")
            if coding.get("system") == system:
                found.append(_match(_CODE, _req(coding, "code", f"{where}[{index}].coding"),
                                    "invalid-code", f"{where}[{index}].coding[{position}]"))
    return found


def _author_from(resource: Mapping[str, Any], ref_holder: Any, where: str,
                 organization_ref: Any = None) -> Author:
    """The author a DocumentReference (``author[0]``) or List (``source``) points at: a
    contained PractitionerRole (practitioner, organization) or Practitioner. The profession
    is the G15 code of PractitionerRole.code or of Practitioner.qualification; the structure
    the idNat_Struct of the role's organization or of ``organization_ref`` (the List's
    ihe-authorOrg). References to resources of the bundle were made contained by the parser
    of the bundle (`wire.provide`), so only ``#id`` is followed here."""
    contained = contained_index(resource, where)

    def follow(ref: Any, kinds: tuple[str, ...], at: str) -> dict[str, Any]:
        target = contained.get(_req(_obj(ref, at), "reference", at, max_length=200))
        if target is None or target.get("resourceType") not in kinds:
            raise WireError("invalid-author",
                            f"{at}: a {' or '.join(kinds)} contained or in the bundle is expected")
        return target

    who = follow(ref_holder, ("PractitionerRole", "Practitioner"), where)
    role: Mapping[str, Any] = who if who["resourceType"] == "PractitionerRole" else {}
    practitioner = (follow(role.get("practitioner"), ("Practitioner",), f"{where}.practitioner")
                    if role else who)
    professions = _codes_in(role.get("code", []), codes.PROFESSION_SYSTEM, f"{where}.code")
    if not professions:
        professions = _codes_in(practitioner.get("qualification", []), codes.PROFESSION_SYSTEM,
                                f"{where}.practitioner.qualification")
    if len(set(professions)) != 1:
        raise WireError("invalid-author", f"{where}: one profession (TRE_G15) is expected, in "
                        "PractitionerRole.code or Practitioner.qualification")
    specialties = set(_codes_in(role.get("specialty", []), codes.SPECIALTY_SYSTEM,
                                f"{where}.specialty"))
    if len(specialties) > 1:
        raise WireError("invalid-author", f"{where}.specialty: one specialty (TRE_R38)")
    organization_ref = role.get("organization") or organization_ref
    if organization_ref is None:
        raise WireError("invalid-author", f"{where}: the author's structure (organization) is "
                        "required")
    organization = follow(organization_ref, ("Organization",), f"{where}.organization")
    last = first = None
    if "name" in practitioner:
        names = _list(practitioner["name"], f"{where}.name", max_items=4)
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
        professions[0],
        _identifier_value(organization, codes.STRUCTURE_SYSTEM, f"{where}.organization"),
        next(iter(specialties), None), last, first, codes.ID_NAT_PS_SYSTEM,
    )


# -- what the host keeps of a submitted resource ------------------------------------------------

MAX_CONTAINED = 16
MAX_STORED_RESOURCE = 64 * 1024  # bytes of compact JSON: metadata, never a document's body
MAX_DEPTH = 24
# What a DocumentReference or List may contain: the people, structures and patient MHD and
# PDSm reference from author, authenticator, custodian, source and sourcePatientInfo. Nothing
# that carries content (Binary, DocumentReference...) hides in a contained resource.
CONTAINED_KINDS = frozenset({"Patient", "Practitioner", "PractitionerRole", "Organization",
                             "Device", "RelatedPerson"})


def sanitise_resource(resource: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A copy of a submitted resource fit to be stored and echoed: narratives dropped (their
    XHTML is never validated here, so it is never served back), our old SHA-256 extension
    dropped (the host's own digest is authoritative), and refused (WireError) when it holds a
    modifierExtension (FHIR: a server must not ignore one it does not know), an unexpected
    contained resource, nesting deeper than MAX_DEPTH or more than MAX_STORED_RESOURCE bytes.
    Control characters are the host's to refuse (host.documents.validate), after the
    metadata checks that name the field."""

    def clean(value: Any, at: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("too-deep", f"{at}: nested more than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "modifierExtension":
                    raise WireError("unknown-modifier-extension",
                                    f"{at}.modifierExtension: not understood by this server")
                if key == "text" and isinstance(item, dict) and "div" in item:
                    continue  # Narrative: XHTML not validated, not kept
                if key == "extension" and isinstance(item, list):
                    item = [e for e in item if not (isinstance(e, dict) and e.get("url")
                                                    == codes.SHA256_EXTENSION_URL)]
                    if not item:
                        continue
                out[key] = clean(item, f"{at}.{key}", depth + 1)
            return out
        if isinstance(value, list):
            return [clean(item, f"{at}[{index}]", depth + 1) for index, item in enumerate(value)]
        if isinstance(value, float) and value != value:  # NaN is not JSON
            raise WireError("invalid-field", f"{at}: not a number")
        return value

    cleaned = _obj(clean(resource, where, 0), where)
    for index, item in enumerate(_list(cleaned.get("contained", []), f"{where}.contained",
                                       max_items=MAX_CONTAINED)):
        kind = _obj(item, f"{where}.contained[{index}]").get("resourceType")
        if not isinstance(kind, str) or kind not in CONTAINED_KINDS:
            raise WireError("unsupported-contained", f"{where}.contained[{index}]: "
                            f"{str(kind)[:40]!r} may not be contained here")
    if len(json.dumps(cleaned, separators=(",", ":")).encode()) > MAX_STORED_RESOURCE:
        raise WireError("resource-too-large", f"{where}: more than {MAX_STORED_RESOURCE} bytes "
                        "of metadata")
    return cleaned


def _with_visibility(labels: Any, confidentiality: str, visibility: frozenset[str]
                     ) -> list[dict[str, Any]]:
    """The stored securityLabel as sent, unless the host changed a visibility status: then
    the visibility codings are rewritten and the level's coding kept as sent."""
    try:
        if parse_security_labels(labels, "securityLabel") == (confidentiality, visibility):
            return list(labels)
        kept = [label for label in labels
                if _coding(label, "securityLabel")[1] not in codes.VISIBILITY_STATUSES]
        if parse_security_labels(kept, "securityLabel")[0] == confidentiality:
            return kept + [_concept(codes.VISIBILITY_SYSTEM, code) for code in sorted(visibility)]
    except WireError:
        pass
    return security_labels(confidentiality, visibility)


def stored_document_reference(submitted: Mapping[str, Any], entry: DocumentEntry, *,
                              last_updated: datetime) -> dict[str, Any]:
    """What the host stores and serves: the DocumentReference as submitted (sanitised, its
    bundle references made contained) with the elements the server manages set from
    ``entry``: id, meta.versionId and lastUpdated (meta.profile kept), the host's identifier
    beside the depositor's, status, the isArchived extension (PDSm 3.1.1 URL, first), the
    securityLabel's visibility statuses, subject (the dossier's INS), date when absent, and
    the attachment's url, size and hash (the received content's)."""
    resource: dict[str, Any] = {"resourceType": "DocumentReference"}
    resource.update(json_copy(dict(submitted)))
    assert entry.id is not None and entry.version_id is not None
    resource["id"] = entry.id
    meta: dict[str, Any] = {"versionId": str(entry.version_id),
                            "lastUpdated": format_datetime(last_updated)}
    sent_meta = submitted.get("meta")
    if isinstance(sent_meta, dict) and isinstance(sent_meta.get("profile"), list):
        meta["profile"] = sent_meta["profile"]
    resource["meta"] = meta
    identifiers = [i for i in resource.get("identifier", []) if not (
        isinstance(i, dict) and i.get("system") == codes.DOCUMENT_ID_SYSTEM)]
    resource["identifier"] = [*identifiers, {"system": codes.DOCUMENT_ID_SYSTEM,
                                             "value": entry.id}]
    resource["status"] = entry.status
    extensions = [e for e in resource.get("extension", []) if not is_archived_extension(e)]
    resource["extension"] = [{"url": codes.IS_ARCHIVED_URL, "valueBoolean": entry.archived},
                             *extensions]
    resource["securityLabel"] = _with_visibility(resource.get("securityLabel"),
                                                 entry.confidentiality, entry.visibility)
    resource["subject"] = entry.patient.reference()
    if "date" not in resource and entry.date is not None:
        resource["date"] = format_datetime(entry.date)
    attachment = resource["content"][0]["attachment"]
    attachment["size"] = entry.size
    attachment["hash"] = entry.sha1_b64
    if entry.content_url:
        attachment["url"] = entry.content_url
    return _ordered(resource)


_ORDER = ("resourceType", "id", "meta", "text", "contained", "extension", "modifierExtension",
          "masterIdentifier", "identifier", "status", "docStatus", "type", "category",
          "subject", "date", "author", "authenticator", "custodian", "relatesTo",
          "description", "securityLabel", "content", "context")


def _ordered(resource: dict[str, Any]) -> dict[str, Any]:
    """FHIR's element order (JSON does not need it; people reading the echo do)."""
    rank = {key: index for index, key in enumerate(_ORDER)}
    return dict(sorted(resource.items(), key=lambda item: rank.get(item[0], len(_ORDER))))


FhirStatus = Literal["current", "superseded", "entered-in-error"]
FHIR_STATUSES: tuple[str, ...] = ("current", "superseded", "entered-in-error")


@dataclass(frozen=True)
class DocumentEntry:
    """An XDS DocumentEntry (a FHIR DocumentReference).

    ``confidentiality`` is N, R or V; ``visibility`` holds MASQUE_PS, INVISIBLE_PATIENT and
    INVISIBLE_REPRESENTANTS_LEGAUX as they apply. ``size`` and ``sha1_b64`` are FHIR's
    Attachment.size and Attachment.hash (base64 SHA-1; both required by PDSm). ``sha256``
    (hex) is known only where the bytes were seen: the agent fills it for its signature and
    outbox, the host from the bytes it received; it is "" when read from the wire, which no
    longer carries it. ``replaces`` is the uniqueId of the document this one replaces (or
    ``replaces_id`` its host id, when relatesTo.target is a reference). ``id``,
    ``version_id``, ``status``, ``archived`` and ``content_url`` are the host's
    (None/defaults in a deposit).
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
    sha256: str = ""
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
    date: datetime | None = None  # DocumentReference.date
    replaces_id: str | None = None

    def __post_init__(self) -> None:
        _match(_UNIQUE_ID, self.unique_id, "invalid-unique-id",
               "DocumentReference.masterIdentifier")
        if self.replaces is not None:
            _match(_UNIQUE_ID, self.replaces, "invalid-unique-id",
                   "DocumentReference.relatesTo")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise WireError("invalid-size", "size: a non-negative integer is expected")
        if self.sha256:
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

    def content_matches(self, data: bytes) -> bool:
        """``data`` is this document's content: its size, SHA-1 (Attachment.hash) and, when
        known, its SHA-256."""
        return (len(data) == self.size
                and base64.b64encode(hashlib.sha1(data).digest()).decode() == self.sha1_b64
                and (not self.sha256 or hashlib.sha256(data).hexdigest() == self.sha256))


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
        elif system == codes.VISIBILITY_SYSTEM and code in codes.CONFIDENTIALITY_LEVELS:
            # PDSm 3.1.1's DR_comprehensive example codes N in the TRE_A07 system: read as
            # the level, stored as sent.
            if level is not None:
                raise WireError("unknown-confidentiality", f"{where}: two confidentiality levels")
            level = code
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
    if entry.date is not None:  # PDSm date 1..: build_provide_bundle sets it
        resource["date"] = format_datetime(entry.date)
    resource["author"] = [{"reference": "#author-role"}]
    resource["custodian"] = {"reference": "#author-org"}  # PDSm custodian 1..: the structure
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


def is_archived_extension(value: Any) -> bool:
    """``value`` is the PDSm isArchived extension (3.1.1 URL, or the pre-3 one)."""
    url = value.get("url") if isinstance(value, dict) else None
    return isinstance(url, str) and url in codes.IS_ARCHIVED_URLS


def is_archived(resource: Mapping[str, Any], where: str) -> bool:
    archived = False
    for index, extension in enumerate(_list(resource.get("extension", []), f"{where}.extension",
                                            max_items=16)):
        extension = _obj(extension, f"{where}.extension[{index}]")
        if is_archived_extension(extension):
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
    patient = Patient.from_reference(doc.get("subject"), f"{where}.subject",
                                     contained_index(doc, where))
    authors = _list(doc.get("author"), f"{where}.author", max_items=1)
    if len(authors) != 1:
        raise WireError("invalid-author", f"{where}.author: one author is expected")
    author = _author_from(doc, authors[0], f"{where}.author[0]")
    confidentiality, visibility = parse_security_labels(doc.get("securityLabel"),
                                                        f"{where}.securityLabel")
    replaces = replaces_id = None
    if "relatesTo" in doc:
        relations = _list(doc["relatesTo"], f"{where}.relatesTo", max_items=1)
        if relations:
            at = f"{where}.relatesTo[0]"
            relation = _obj(relations[0], at)
            if relation.get("code") != "replaces":
                raise WireError("unsupported-relation", f"{at}.code: replaces")
            target = _obj(relation.get("target"), f"{at}.target")
            # MHD: target is a Reference(DocumentReference): by its identifier (the old
            # uniqueId, as PDSm's relatesTo.target) or literally (DocumentReference/<id>).
            if "identifier" in target:
                identifier = _obj(target["identifier"], f"{at}.target.identifier")
                replaces = _req(identifier, "value", f"{at}.target.identifier", max_length=128)
            else:
                reference = _req(target, "reference", f"{at}.target", max_length=200)
                kind, _, replaces_id = reference.rpartition("/")
                if not kind.endswith("DocumentReference") or not _FHIR_ID.fullmatch(replaces_id):
                    raise WireError("unresolved-reference",
                                    f"{at}.target: DocumentReference/<id> or an identifier")
    contents = _list(doc.get("content"), f"{where}.content", max_items=1)
    if len(contents) != 1:
        raise WireError("invalid-content", f"{where}.content: exactly one content is expected")
    content = _obj(contents[0], f"{where}.content[0]")
    attachment = _obj(content.get("attachment"), f"{where}.content[0].attachment")
    at = f"{where}.content[0].attachment"
    size = attachment.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 2**62:
        raise WireError("invalid-size", f"{at}.size: a non-negative integer is required "
                        "(PDSm: size 1..)")
    sha256 = ""
    for index, extension in enumerate(_list(attachment.get("extension", []), f"{at}.extension",
                                            max_items=8)):
        extension = _obj(extension, f"{at}.extension[{index}]")
        if extension.get("url") == codes.SHA256_EXTENSION_URL:  # agents before PDSm 3.1.1
            raw = _req(extension, "valueBase64Binary", f"{at}.extension[{index}]", max_length=64)
            try:
                digest = base64.b64decode(raw, validate=True)
            except (ValueError, binascii.Error):
                digest = b""
            if len(digest) != 32:
                raise WireError("invalid-hash", f"{at}: the SHA-256 is 32 bytes in base64")
            sha256 = digest.hex()
    sha1_b64 = _text(attachment, "hash", at, required=False, max_length=64)
    if sha1_b64 is None:
        raise WireError("missing-field", f"{at}.hash: PDSm requires the SHA-1 (base64)")
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
    for index, item in enumerate(_list(doc.get("identifier", []), f"{where}.identifier",
                                       max_items=8)):
        _obj(item, f"{where}.identifier[{index}]")  # the host adds its own beside them
    doc_id = doc.get("id")
    if doc_id is not None and (not isinstance(doc_id, str) or not _FHIR_ID.fullmatch(doc_id)):
        raise WireError("invalid-field", f"{where}.id")
    return DocumentEntry(
        unique_id=unique_id, patient=patient, class_code=class_code, type_code=type_code,
        type_system=type_system, format_code=format_code,
        mime_type=_req(attachment, "contentType", at, max_length=128),
        title=_req(attachment, "title", at, max_length=300), author=author,
        creation_time=parse_datetime(attachment.get("creation"), f"{at}.creation"),
        size=size, sha1_b64=sha1_b64, sha256=sha256,
        confidentiality=confidentiality, visibility=visibility, facility_type=facility,
        practice_setting=practice,
        service_start=(parse_datetime(period["start"], f"{where}.context.period.start")
                       if "start" in period else None),
        service_stop=(parse_datetime(period["end"], f"{where}.context.period.end")
                      if "end" in period else None),
        language=_text(attachment, "language", at, required=False, max_length=10) or "fr-FR",
        description=_text(doc, "description", where, required=False),
        replaces=replaces, replaces_id=replaces_id, id=doc_id, version_id=version,
        status=status,
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
    # The patient's identity as the INS service returned it and its RNIV status: written as
    # a contained FR Core Patient the subject points at (wire.ins, docs/ins.md); read back
    # from a contained Patient the subject points at, carrying FR Core's identity-reliability.
    identity: InsIdentity | None = None
    reliability: IdentityReliability | None = None

    def __post_init__(self) -> None:
        _match(_UNIQUE_ID, self.unique_id, "invalid-unique-id", "submission set uniqueId")
        # XDS wants an OID; the PDSm 3.1.1 List example sends "SRC-01" (system urn:oid:...):
        # any printable token is kept as sent, nothing is decided on it.
        _match(_CODE, self.source_id, "invalid-unique-id", "submission set sourceId")


def submission_set_json(submission: SubmissionSet, items: Sequence[str]) -> dict[str, Any]:
    """The SubmissionSet List whose entries reference ``items`` (fullUrls or ids)."""
    resource: dict[str, Any] = {"resourceType": "List"}
    if submission.id:
        resource["id"] = submission.id
    resource["contained"] = _author_contained(submission.author)
    subject = submission.patient.reference()
    if submission.identity is not None and submission.reliability is not None:
        patient = patient_resource(submission.identity)
        del patient["meta"]  # no profile claim: this one also carries the reliability
        patient["id"] = PATIENT_ID
        patient["extension"].append(reliability_extension(submission.reliability))
        resource["contained"].append(patient)
        subject = {"reference": f"#{PATIENT_ID}", "identifier": submission.patient.identifier()}
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
    resource["subject"] = subject
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
    source = _obj(lst.get("source"), f"{where}.source")
    author_org = None  # MHD ihe-authorOrg on List.source (the PDSm List example has it)
    for index, extension in enumerate(_list(source.get("extension", []),
                                            f"{where}.source.extension", max_items=8)):
        extension = _obj(extension, f"{where}.source.extension[{index}]")
        if extension.get("url") == codes.AUTHOR_ORG_URL:
            author_org = extension.get("valueReference")
    contained = contained_index(lst, where)
    reference = _obj(lst.get("subject"), f"{where}.subject").get("reference")
    shown = contained.get(reference) if isinstance(reference, str) else None
    submission = SubmissionSet(
        unique_id=unique_id, source_id=source_id,
        reliability=reliability_of(shown) if shown is not None else None,
        patient=Patient.from_reference(lst.get("subject"), f"{where}.subject", contained),
        submission_time=parse_datetime(lst.get("date"), f"{where}.date"),
        author=_author_from(lst, source, f"{where}.source", author_org),
        content_type_code=content_type,
        title=_text(lst, "title", where, required=False),
        id=lst.get("id") if isinstance(lst.get("id"), str) else None,
    )
    return submission, tuple(items)
