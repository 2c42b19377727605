"""A CDA R2 level 1 document: the CI-SIS header around a PDF/A (or another allowed file) in a
``nonXMLBody``, as the CI-SIS example DOC_NON_STRUCTURE_CDA-R2-N1.xml of
ansforge/TestContenuCDA-3-0 lays it out (templateIds HL7 France, CI-SIS header, IHE XDS-SD).

The agent fills a `Level1Header` from the card (author: idNat_PS, names, profession and
specialty), the session's practice situation (structure, facility type, practice setting)
and the patient's qualified INS with its traits; `build_level_1` writes the document, which
`wire.cda.read` reads back to the same metadata (tests/unit/test_cda_level1.py).
`build_header` is that header alone, for every document the agent writes: the structured
notes it makes (the vaccination note, `agent.core.vaccination`) append their own body.
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


def element(parent: etree._Element, tag: str, text: str | None = None, **attributes: str
            ) -> etree._Element:
    node = etree.SubElement(parent, _N + tag, {k.rstrip("_"): v for k, v in attributes.items()})
    if text is not None:
        node.text = text
    return node


def coded(parent: etree._Element, tag: str, code: Code) -> etree._Element:
    attributes = {"code": code.code, "codeSystem": code.system}
    if code.display:
        attributes["displayName"] = code.display
    return element(parent, tag, **attributes)


def author_code(author: Level1Author) -> Code:
    value = f"G15_{author.profession}" + (f"/{author.specialty}" if author.specialty else "")
    return Code(value, oids.PROFESSION_SPECIALTY, author.profession_label)


def organization(parent: etree._Element, tag: str, author: Level1Author) -> etree._Element:
    organization = element(parent, tag)
    element(organization, "id", root=oids.ID_NAT_STRUCT, extension=author.structure_id)
    element(organization, "name", author.structure_name)
    return organization


def person_name(parent: etree._Element, last: str, first: str) -> None:
    name = element(parent, "name")
    element(name, "given", first)
    element(name, "family", last)


def assigned_professional(parent: etree._Element, tag: str, author: Level1Author
                          ) -> etree._Element:
    """The card's professional as an ``assignedAuthor`` (or ``assignedEntity``): national
    id, profession code with its label, name, organization: the header's author, and the
    author and performer of a structured entry (a vaccination)."""
    assigned = element(parent, tag)
    element(assigned, "id", root=oids.ID_NAT_PS, extension=author.id_nat_ps)
    coded(assigned, "code", author_code(author))
    person_name(element(assigned, "assignedPerson"), author.last_name, author.first_name)
    organization(assigned, "representedOrganization", author)
    return assigned


def build_level_1(header: Level1Header, body: bytes, media_type: str = "application/pdf"
                  ) -> bytes:
    """The CDA R2 level 1 document (UTF-8 XML bytes) wrapping ``body``."""
    if media_type not in volets.LEVEL_1_FORMATS:
        raise CdaError("cda-unknown-media-type", f"Type de média non admis dans un CDA de "
                       f"niveau 1 / media type not allowed: {media_type[:40]}")
    root = build_header(header, ((oids.XDS_SD, None),))
    body_node = element(element(root, "component"), "nonXMLBody")
    text = element(body_node, "text", mediaType=media_type, representation="B64")
    text.text = base64.b64encode(body).decode("ascii")
    return to_bytes(root)


def to_bytes(root: etree._Element) -> bytes:
    """A built document as the UTF-8 XML bytes a deposit carries."""
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def build_header(header: Level1Header, templates: tuple[tuple[str, str | None], ...]
                 ) -> etree._Element:
    """The CI-SIS header every document the agent writes carries (level 1 and the
    structured notes it makes, e.g. the vaccination note), as a ``ClinicalDocument`` without
    its body: the caller appends its ``component``. ``templates``: the volet's templateIds
    (root, extension) after the HL7 France and CI-SIS header ones."""
    if header.confidentiality not in ("N", "R", "V"):
        raise CdaError("cda-confidentiality", "confidentialityCode: N, R ou V / N, R or V")
    patient, author = header.patient, header.author
    root = etree.Element(_N + "ClinicalDocument", nsmap={None: oids.NS, "xsi": oids.NS_XSI})
    element(root, "realmCode", code="FR")
    element(root, "typeId", root=oids.CDA_TYPE_ID, extension=oids.CDA_TYPE_EXTENSION)
    for template, extension in ((oids.HL7_FRANCE, None), (oids.CISIS_HEADER, None),
                                *templates):
        if extension is None:
            element(root, "templateId", root=template)
        else:
            element(root, "templateId", root=template, extension=extension)
    element(root, "id", root=header.document_id)
    coded(root, "code", header.type_code)
    element(root, "title", header.title)
    element(root, "effectiveTime", value=ts(header.created))
    element(root, "confidentialityCode", code=header.confidentiality,
            codeSystem=oids.CONFIDENTIALITY,
            displayName=CONFIDENTIALITY_LABELS[header.confidentiality])
    element(root, "languageCode", code=header.language)
    element(root, "setId", root=header.set_id)
    element(root, "versionNumber", value=str(header.version))

    role = element(element(root, "recordTarget"), "patientRole")
    element(role, "id", root=patient.ins_oid, extension=patient.ins)
    person = element(role, "patient", classCode="PSN")
    name = element(person, "name")
    element(name, "family", patient.birth_name, qualifier="BR")
    element(name, "given", patient.given_names)
    first = patient.first_given_name or patient.given_names.split()[0]
    element(name, "given", first, qualifier="BR")
    if patient.used_name:
        element(name, "family", patient.used_name, qualifier="CL")
    if patient.used_given_name:
        element(name, "given", patient.used_given_name, qualifier="CL")
    element(person, "administrativeGenderCode", code=patient.sex,
            codeSystem=oids.ADMINISTRATIVE_GENDER)
    element(person, "birthTime", value=patient.birth_date)
    # The INS traits include the birth place, as its COG code (CI-SIS header rule).
    birth_address = element(element(element(person, "birthplace"), "place"), "addr")
    element(birth_address, "county", patient.birth_place)

    author_node = element(root, "author")
    element(author_node, "time", value=ts(header.created))
    assigned_professional(author_node, "assignedAuthor", author)

    custodian = element(element(root, "custodian"), "assignedCustodian")
    organization(custodian, "representedCustodianOrganization", author)

    legal = element(root, "legalAuthenticator")
    element(legal, "time", value=ts(header.created))
    element(legal, "signatureCode", code="S")
    entity = element(legal, "assignedEntity")
    element(entity, "id", root=oids.ID_NAT_PS, extension=author.id_nat_ps)
    person_name(element(entity, "assignedPerson"), author.last_name, author.first_name)

    event = element(element(root, "documentationOf"), "serviceEvent")
    coded(event, "code", header.type_code)
    period = element(event, "effectiveTime")
    element(period, "low", value=ts(header.service_start))
    element(period, "high", value=ts(header.service_stop or header.service_start))
    performer = element(event, "performer", typeCode="PRF")
    performing = element(performer, "assignedEntity")
    element(performing, "id", root=oids.ID_NAT_PS, extension=author.id_nat_ps)
    person_name(element(performing, "assignedPerson"), author.last_name, author.first_name)
    represented = organization(performing, "representedOrganization", author)
    coded(represented, "standardIndustryClassCode", header.practice_setting)

    if header.replaces is not None:  # CDA R2: after documentationOf, before componentOf
        parent = element(element(root, "relatedDocument", typeCode="RPLC"), "parentDocument")
        root_part, _, extension = header.replaces.partition("^")
        element(parent, "id", root=root_part, **({"extension": extension} if extension else {}))

    encounter = element(element(root, "componentOf"), "encompassingEncounter")
    encounter_time = element(encounter, "effectiveTime")
    element(encounter_time, "low", value=ts(header.service_start))
    facility = element(element(encounter, "location"), "healthCareFacility")
    coded(facility, "code", header.facility_type)
    return root
