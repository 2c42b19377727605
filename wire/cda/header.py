"""The header of a CDA R2 document as the CI-SIS defines it, read into typed values.

`read_header` takes a parsed ``ClinicalDocument`` (`wire.cda.safe_xml.parse`) and returns a
`CdaHeader`: what a deposit's metadata is derived from (`wire.cda.metadata`) and what the host
compares with the DocumentReference (`host.documents.cda_check`). It reads, it does not
judge: a document that lacks what the CI-SIS requires is the schematron's to refuse
(`wire.cda.schematron`), but a header without what a deposit cannot do without (an id, a
type, a patient INS, an author) is refused here, with the element named.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import re
from dataclasses import dataclass

from lxml import etree

from . import oids
from .errors import CdaError

_N = f"{{{oids.NS}}}"


class BodyKind(enum.Enum):
    """Level 1: a ``nonXMLBody`` carrying a base64 file (a PDF/A, text...); level 3: a
    ``structuredBody`` of sections and entries."""

    NON_XML = "nonXMLBody"
    STRUCTURED = "structuredBody"

    @property
    def level(self) -> int:
        return 1 if self is BodyKind.NON_XML else 3


@dataclass(frozen=True)
class Code:
    code: str
    system: str  # an OID, as CDA names code systems
    display: str | None = None


@dataclass(frozen=True)
class Organization:
    """A structure: its national id (idNat_Struct: "3" + FINESS, "5" + SIRET...) and name."""

    id: str | None
    id_root: str | None
    name: str | None = None


@dataclass(frozen=True)
class Person:
    """An author, a legal authenticator: idNat_PS, names, profession / specialty codes
    (TRE_G15 / TRE_R38, read from the CI-SIS "G15_10/SM26" form), their structure."""

    id: str | None
    id_root: str | None
    last_name: str | None = None
    first_name: str | None = None
    profession: str | None = None
    specialty: str | None = None
    code: Code | None = None
    organization: Organization | None = None
    time: dt.datetime | None = None


@dataclass(frozen=True)
class PatientIdentity:
    """recordTarget/patientRole: the INS (its OID says NIR, NIA or test NIR) and the traits
    the INS is qualified with (birth name, first names, sex, birth date)."""

    ins: str
    ins_oid: str
    birth_name: str | None
    given_names: str | None
    used_name: str | None
    sex: str | None  # M, F, U
    birth_date: str | None  # YYYYMMDD as written (a "lunar" date keeps its 00)


@dataclass(frozen=True)
class CdaHeader:
    document_id: str  # the XDS uniqueId: id/@root, then "^" + id/@extension when present
    set_id: str | None
    version: int | None
    template_ids: tuple[str, ...]
    code: Code  # the document type (LOINC, or TRE_A05 for a few CI-SIS types)
    title: str
    effective_time: dt.datetime
    confidentiality: str  # N, R or V
    language: str
    patient: PatientIdentity
    author: Person  # the first author (the one the XDS metadata names)
    custodian: Organization | None
    legal_authenticator: Person | None
    service_start: dt.datetime | None
    service_stop: dt.datetime | None
    facility_type: Code | None  # componentOf/.../healthCareFacility/code (TRE_R02)
    practice_setting: Code | None  # documentationOf/.../standardIndustryClassCode (TRE_A01)
    body: BodyKind
    media_type: str | None  # nonXMLBody/text/@mediaType (level 1 only)
    # relatedDocument[@typeCode='RPLC']/parentDocument/id: the version this one replaces
    replaces: str | None = None

    @property
    def level(self) -> int:
        return self.body.level


# The CDA schema's TS (datatypes-base.xsd): an offset of 1 to 4 digits, any fraction.
_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?"
                 r"([+-]\d{1,4})?")


def parse_ts(value: str, where: str) -> dt.datetime:
    """An HL7 v3 TS ("20210401134745+0100", "20210104"): an aware datetime. A time without
    an offset is taken as UTC (the CI-SIS asks for the offset; the examples sometimes omit
    it); missing parts are the start of the period they name. An offset of fewer than four
    digits (the schema allows 1 to 4; the CI-SIS TROD examples write "+100") is hhmm with
    its leading zeros left out."""
    match = _TS.fullmatch(value.strip())
    if match is None:
        raise CdaError("cda-invalid-time", f"{where}: date HL7 invalide / invalid HL7 time "
                       f"{value[:30]!r}")
    year, month, day, hour, minute, second, offset = match.groups()
    tz = dt.UTC
    if offset:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = divmod(int(offset[1:]), 100)
        if minutes > 59 or hours > 14:
            raise CdaError("cda-invalid-time", f"{where}: décalage horaire invalide / invalid "
                           f"time zone offset {value[:30]!r}")
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        return dt.datetime(int(year), int(month or 1) or 1, int(day or 1) or 1, int(hour or 0),
                           int(minute or 0), int(second or 0), tzinfo=tz)
    except ValueError:
        raise CdaError("cda-invalid-time", f"{where}: date HL7 invalide / invalid HL7 time "
                       f"{value[:30]!r}") from None


def _find(node: etree._Element | None, path: str) -> etree._Element | None:
    if node is None:
        return None
    return node.find(path, oids.NSMAP)


def _text(node: etree._Element | None) -> str | None:
    if node is None:
        return None
    text = "".join(node.itertext()).strip()
    return " ".join(text.split()) or None


def _code(node: etree._Element | None) -> Code | None:
    if node is None or not node.get("code"):
        return None
    return Code(node.get("code", ""), node.get("codeSystem", ""), node.get("displayName"))


def _time(node: etree._Element | None, where: str) -> dt.datetime | None:
    if node is None or not node.get("value"):
        return None
    return parse_ts(node.get("value", ""), where)


def _names(name: etree._Element | None) -> tuple[str | None, str | None]:
    """(family, given) of a PN, preferring the unqualified or used ones."""
    if name is None:
        return None, None
    families = name.findall("cda:family", oids.NSMAP)
    givens = name.findall("cda:given", oids.NSMAP)
    family = next((f for f in families if f.get("qualifier") in (None, "SP", "CL")),
                  families[0] if families else None)
    given = next((g for g in givens if g.get("qualifier") in (None, "CL")),
                 givens[0] if givens else None)
    return _text(family), _text(given)


def _organization(node: etree._Element | None) -> Organization | None:
    if node is None:
        return None
    ident = _find(node, "cda:id")
    return Organization(ident.get("extension") if ident is not None else None,
                        ident.get("root") if ident is not None else None,
                        _text(_find(node, "cda:name")))


def profession_and_specialty(code: Code | None) -> tuple[str | None, str | None]:
    """("10", "SM26") from the CI-SIS TRE_A02 code "G15_10/SM26"; ("60", None) from
    "G15_60"; a bare TRE_G15 code is the profession itself."""
    if code is None:
        return None, None
    if code.system == oids.PROFESSION_G15:
        return code.code, None
    if code.system == oids.PROFESSION_SPECIALTY and code.code.startswith("G15_"):
        profession, _, specialty = code.code[4:].partition("/")
        return profession or None, specialty or None
    return None, None


def _person(entity: etree._Element | None, person_tag: str, organization_tag: str,
            time: dt.datetime | None) -> Person | None:
    if entity is None:
        return None
    ident = _find(entity, "cda:id")
    code = _code(_find(entity, "cda:code"))
    profession, specialty = profession_and_specialty(code)
    last, first = _names(_find(entity, f"{person_tag}/cda:name"))
    return Person(ident.get("extension") if ident is not None else None,
                  ident.get("root") if ident is not None else None, last, first,
                  profession, specialty, code, _organization(_find(entity, organization_tag)),
                  time)


def _patient(root: etree._Element) -> PatientIdentity:
    role = _find(root, "cda:recordTarget/cda:patientRole")
    if role is None:
        raise CdaError("cda-no-patient", "recordTarget/patientRole absent: le document ne "
                       "nomme pas de patient / the document names no patient")
    ins = [i for i in role.findall("cda:id", oids.NSMAP)
           if i.get("root") in _INS_OIDS and i.get("extension")]
    if len(ins) != 1:
        raise CdaError("cda-no-ins", "recordTarget/patientRole/id: exactement un INS attendu "
                       "(NIR, NIA ou NIR de test) / exactly one INS is expected")
    patient = _find(role, "cda:patient")
    birth = used = given = None
    name = _find(patient, "cda:name")
    if name is not None:
        for family in name.findall("cda:family", oids.NSMAP):
            if family.get("qualifier") == "BR" and birth is None:
                birth = _text(family)
            elif family.get("qualifier") in ("CL", "SP") and used is None:
                used = _text(family)
        first_names = [g for g in name.findall("cda:given", oids.NSMAP) if g.get("qualifier")
                       not in ("BR", "CL")]
        given = _text(first_names[0]) if first_names else _names(name)[1]
        if birth is None:
            birth = _names(name)[0]
    sex = _find(patient, "cda:administrativeGenderCode")
    born = _find(patient, "cda:birthTime")
    return PatientIdentity(ins[0].get("extension", ""), ins[0].get("root", ""), birth, given,
                           used, sex.get("code") if sex is not None else None,
                           born.get("value") if born is not None else None)


_INS_OIDS = frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10"})


def document_id(node: etree._Element | None) -> str | None:
    """The XDS uniqueId of a CDA ``id`` (II): root, or root^extension."""
    if node is None or not node.get("root"):
        return None
    extension = node.get("extension")
    return f"{node.get('root')}^{extension}" if extension else node.get("root")


def _body(root: etree._Element) -> tuple[BodyKind, str | None]:
    component = _find(root, "cda:component")
    if component is not None:
        text = _find(component, "cda:nonXMLBody/cda:text")
        if text is not None:
            return BodyKind.NON_XML, text.get("mediaType")
        if _find(component, "cda:structuredBody") is not None:
            return BodyKind.STRUCTURED, None
    raise CdaError("cda-no-body", "component/nonXMLBody ou structuredBody absent / the document "
                   "has no body")


def is_clinical_document(root: etree._Element) -> bool:
    return bool(root.tag == f"{_N}ClinicalDocument")


def read_header(root: etree._Element) -> CdaHeader:
    """The header of a parsed CDA R2 ``ClinicalDocument``."""
    if not is_clinical_document(root):
        raise CdaError("cda-not-clinical-document",
                       f"Élément racine {etree.QName(root).localname[:40]!r}: ClinicalDocument "
                       "(urn:hl7-org:v3) attendu / not a CDA R2 document")
    uid = document_id(_find(root, "cda:id"))
    if uid is None:
        raise CdaError("cda-no-id", "ClinicalDocument/id absent / the document has no id")
    code = _code(_find(root, "cda:code"))
    if code is None:
        raise CdaError("cda-no-type", "ClinicalDocument/code absent / no document type")
    effective = _time(_find(root, "cda:effectiveTime"), "effectiveTime")
    if effective is None:
        raise CdaError("cda-no-time", "ClinicalDocument/effectiveTime absent / no creation time")
    author_node = _find(root, "cda:author")
    author = _person(_find(author_node, "cda:assignedAuthor"), "cda:assignedPerson",
                     "cda:representedOrganization",
                     _time(_find(author_node, "cda:time"), "author/time"))
    if author is None or author.id is None:
        raise CdaError("cda-no-author", "author/assignedAuthor/id absent / the document names "
                       "no author")
    legal_node = _find(root, "cda:legalAuthenticator")
    event = _find(root, "cda:documentationOf/cda:serviceEvent")
    period = _find(event, "cda:effectiveTime")
    confidentiality = _find(root, "cda:confidentialityCode")
    language = _find(root, "cda:languageCode")
    set_id = _find(root, "cda:setId")
    version = _find(root, "cda:versionNumber")
    body, media_type = _body(root)
    replaced = document_id(_find(root, "cda:relatedDocument[@typeCode='RPLC']/"
                                       "cda:parentDocument/cda:id"))
    practice = None
    for performer in root.iterfind("cda:documentationOf/cda:serviceEvent/cda:performer",
                                   oids.NSMAP):
        practice = _code(_find(performer, "cda:assignedEntity/cda:representedOrganization/"
                                          "cda:standardIndustryClassCode"))
        if practice is not None:
            break
    try:
        version_number = int(version.get("value", "")) if version is not None else None
    except ValueError:
        version_number = None
    return CdaHeader(
        document_id=uid,
        set_id=document_id(set_id),
        version=version_number,
        template_ids=tuple(t.get("root", "") for t in root.findall("cda:templateId", oids.NSMAP)),
        code=code,
        title=_text(_find(root, "cda:title")) or "",
        effective_time=effective,
        confidentiality=confidentiality.get("code", "") if confidentiality is not None else "",
        language=language.get("code", "") if language is not None else "",
        patient=_patient(root),
        author=author,
        custodian=_organization(_find(root, "cda:custodian/cda:assignedCustodian/"
                                            "cda:representedCustodianOrganization")),
        legal_authenticator=_person(_find(legal_node, "cda:assignedEntity"), "cda:assignedPerson",
                                    "cda:representedOrganization",
                                    _time(_find(legal_node, "cda:time"),
                                          "legalAuthenticator/time")),
        service_start=_time(_find(period, "cda:low"), "serviceEvent/effectiveTime/low"),
        service_stop=_time(_find(period, "cda:high"), "serviceEvent/effectiveTime/high"),
        facility_type=_code(_find(root, "cda:componentOf/cda:encompassingEncounter/cda:location/"
                                        "cda:healthCareFacility/cda:code")),
        practice_setting=practice,
        body=body,
        media_type=media_type,
        replaces=replaced,
    )


def non_xml_body(root: etree._Element, *, max_bytes: int) -> tuple[str, bytes]:
    """(media type, decoded bytes) of a level 1 document's ``nonXMLBody/text`` (base64)."""
    text = _find(root, "cda:component/cda:nonXMLBody/cda:text")
    if text is None:
        raise CdaError("cda-not-level-1", "nonXMLBody absent: pas un CDA de niveau 1 / not a "
                       "level 1 CDA")
    if text.get("representation") != "B64":
        raise CdaError("cda-body-encoding", "nonXMLBody/text: representation=\"B64\" attendu / "
                       "a base64 body is expected")
    encoded = "".join(text.itertext())
    if len(encoded) > max_bytes * 4 // 3 + 4096:
        raise CdaError("cda-body-too-large", "Corps du document trop volumineux / body too large")
    try:
        data = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CdaError("cda-body-encoding", "nonXMLBody/text: base64 invalide / invalid base64"
                       ) from None
    return text.get("mediaType", ""), data
