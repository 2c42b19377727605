"""A CDA R2 level 1 document: the CI-SIS header around a PDF/A (or another allowed file) in a
``nonXMLBody``, as the CI-SIS example DOC_NON_STRUCTURE_CDA-R2-N1.xml of
ansforge/TestContenuCDA-3-0 lays it out (templateIds HL7 France, CI-SIS header, IHE XDS-SD).

The agent fills a `Level1Header` from the card (author: idNat_PS, names, profession and
specialty), the session's practice situation (structure, facility type, practice setting)
and the patient's qualified INS with its traits; `build_level_1` writes the document, which
`wire.cda.read` reads back to the same metadata (tests/unit/test_cda_level1.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass, field

from lxml import etree

from . import oids, volets
from .errors import CdaError
from .header import Code

_N = f"{{{oids.NS}}}"


CONFIDENTIALITY_LABELS = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}


def new_oid() -> str:
    """A fresh OID from a random UUID (ITU-T X.667: the 2.25 arc), for a document or set id."""
    return f"2.25.{uuid.uuid4().int}"


@dataclass(frozen=True)
class Level1Patient:
    ins: str
    ins_oid: str
    birth_name: str
    given_names: str  # the first names of the birth certificate, space-separated
    sex: str  # M, F, U
    birth_date: str  # YYYYMMDD
    birth_place: str  # the birth place's COG code (INS trait), e.g. "51215", "99100" abroad
    first_given_name: str | None = None  # the first of them (INS traits); None: the first word
    used_name: str | None = None
    used_given_name: str | None = None


@dataclass(frozen=True)
class Level1Author:
    id_nat_ps: str
    last_name: str
    first_name: str
    profession: str  # TRE_G15 ("10", "21", "60"...)
    specialty: str | None  # TRE_R38 for doctors ("SM26"...)
    profession_label: str  # displayName of the TRE_A02 code, e.g. "Médecin - ..."
    structure_id: str  # idNat_Struct
    structure_name: str


@dataclass(frozen=True)
class Level1Header:
    """What the agent knows when it wraps a file: the document's type and title, who wrote
    it, for whom, where, and when the act took place."""

    patient: Level1Patient
    author: Level1Author
    type_code: Code  # a LOINC (or TRE_A05) document type, with its displayName
    title: str
    facility_type: Code  # TRE_R02 (healthCareFacility/code), e.g. SA07 Cabinet individuel
    practice_setting: Code  # TRE_A01 (standardIndustryClassCode), e.g. AMBULATOIRE
    service_start: dt.datetime
    service_stop: dt.datetime | None = None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    confidentiality: str = "N"
    language: str = "fr-FR"
    document_id: str = field(default_factory=new_oid)
    set_id: str = field(default_factory=new_oid)
    version: int = 1
    replaces: str | None = None  # a new version: the replaced CDA's id (relatedDocument RPLC)


def ts(value: dt.datetime) -> str:
    """An HL7 TS with seconds and offset (the CI-SIS asks for the offset)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.strftime("%Y%m%d%H%M%S%z")


def _el(parent: etree._Element, tag: str, text: str | None = None, **attributes: str
        ) -> etree._Element:
    node = etree.SubElement(parent, _N + tag, {k.rstrip("_"): v for k, v in attributes.items()})
    if text is not None:
        node.text = text
    return node


def _code(parent: etree._Element, tag: str, code: Code) -> etree._Element:
    attributes = {"code": code.code, "codeSystem": code.system}
    if code.display:
        attributes["displayName"] = code.display
    return _el(parent, tag, **attributes)


def _author_code(author: Level1Author) -> Code:
    value = f"G15_{author.profession}" + (f"/{author.specialty}" if author.specialty else "")
    return Code(value, oids.PROFESSION_SPECIALTY, author.profession_label)


def _organization(parent: etree._Element, tag: str, author: Level1Author) -> etree._Element:
    organization = _el(parent, tag)
    _el(organization, "id", root=oids.ID_NAT_STRUCT, extension=author.structure_id)
    _el(organization, "name", author.structure_name)
    return organization


def _person_name(parent: etree._Element, last: str, first: str) -> None:
    name = _el(parent, "name")
    _el(name, "given", first)
    _el(name, "family", last)


def build_level_1(header: Level1Header, body: bytes, media_type: str = "application/pdf"
                  ) -> bytes:
    """The CDA R2 level 1 document (UTF-8 XML bytes) wrapping ``body``."""
    if media_type not in volets.LEVEL_1_FORMATS:
        raise CdaError("cda-unknown-media-type", f"Type de média non admis dans un CDA de "
                       f"niveau 1 / media type not allowed: {media_type[:40]}")
    if header.confidentiality not in ("N", "R", "V"):
        raise CdaError("cda-confidentiality", "confidentialityCode: N, R ou V / N, R or V")
    patient, author = header.patient, header.author
    root = etree.Element(_N + "ClinicalDocument", nsmap={None: oids.NS, "xsi": oids.NS_XSI})
    _el(root, "realmCode", code="FR")
    _el(root, "typeId", root=oids.CDA_TYPE_ID, extension=oids.CDA_TYPE_EXTENSION)
    for template in (oids.HL7_FRANCE, oids.CISIS_HEADER, oids.XDS_SD):
        _el(root, "templateId", root=template)
    _el(root, "id", root=header.document_id)
    _code(root, "code", header.type_code)
    _el(root, "title", header.title)
    _el(root, "effectiveTime", value=ts(header.created))
    _el(root, "confidentialityCode", code=header.confidentiality,
        codeSystem=oids.CONFIDENTIALITY, displayName=CONFIDENTIALITY_LABELS[header.confidentiality])
    _el(root, "languageCode", code=header.language)
    _el(root, "setId", root=header.set_id)
    _el(root, "versionNumber", value=str(header.version))

    role = _el(_el(root, "recordTarget"), "patientRole")
    _el(role, "id", root=patient.ins_oid, extension=patient.ins)
    person = _el(role, "patient", classCode="PSN")
    name = _el(person, "name")
    _el(name, "family", patient.birth_name, qualifier="BR")
    _el(name, "given", patient.given_names)
    first = patient.first_given_name or patient.given_names.split()[0]
    _el(name, "given", first, qualifier="BR")
    if patient.used_name:
        _el(name, "family", patient.used_name, qualifier="CL")
    if patient.used_given_name:
        _el(name, "given", patient.used_given_name, qualifier="CL")
    _el(person, "administrativeGenderCode", code=patient.sex,
        codeSystem=oids.ADMINISTRATIVE_GENDER)
    _el(person, "birthTime", value=patient.birth_date)
    # The INS traits include the birth place, as its COG code (CI-SIS header rule).
    birth_address = _el(_el(_el(person, "birthplace"), "place"), "addr")
    _el(birth_address, "county", patient.birth_place)

    author_node = _el(root, "author")
    _el(author_node, "time", value=ts(header.created))
    assigned = _el(author_node, "assignedAuthor")
    _el(assigned, "id", root=oids.ID_NAT_PS, extension=author.id_nat_ps)
    _code(assigned, "code", _author_code(author))
    _person_name(_el(assigned, "assignedPerson"), author.last_name, author.first_name)
    _organization(assigned, "representedOrganization", author)

    custodian = _el(_el(root, "custodian"), "assignedCustodian")
    _organization(custodian, "representedCustodianOrganization", author)

    legal = _el(root, "legalAuthenticator")
    _el(legal, "time", value=ts(header.created))
    _el(legal, "signatureCode", code="S")
    entity = _el(legal, "assignedEntity")
    _el(entity, "id", root=oids.ID_NAT_PS, extension=author.id_nat_ps)
    _person_name(_el(entity, "assignedPerson"), author.last_name, author.first_name)

    event = _el(_el(root, "documentationOf"), "serviceEvent")
    _code(event, "code", header.type_code)
    period = _el(event, "effectiveTime")
    _el(period, "low", value=ts(header.service_start))
    _el(period, "high", value=ts(header.service_stop or header.service_start))
    performer = _el(event, "performer", typeCode="PRF")
    performing = _el(performer, "assignedEntity")
    _el(performing, "id", root=oids.ID_NAT_PS, extension=author.id_nat_ps)
    _person_name(_el(performing, "assignedPerson"), author.last_name, author.first_name)
    organization = _organization(performing, "representedOrganization", author)
    _code(organization, "standardIndustryClassCode", header.practice_setting)

    if header.replaces is not None:  # CDA R2: after documentationOf, before componentOf
        parent = _el(_el(root, "relatedDocument", typeCode="RPLC"), "parentDocument")
        root_part, _, extension = header.replaces.partition("^")
        _el(parent, "id", root=root_part, **({"extension": extension} if extension else {}))

    encounter = _el(_el(root, "componentOf"), "encompassingEncounter")
    encounter_time = _el(encounter, "effectiveTime")
    _el(encounter_time, "low", value=ts(header.service_start))
    facility = _el(_el(encounter, "location"), "healthCareFacility")
    _code(facility, "code", header.facility_type)

    text = _el(_el(_el(root, "component"), "nonXMLBody"), "text", mediaType=media_type,
               representation="B64")
    text.text = base64.b64encode(body).decode("ascii")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
