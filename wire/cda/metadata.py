"""The XDS / MHD metadata of a deposit, derived from its CDA header: one function, so the
agent never types twice what the document already says, and the host can compare the two.

The mapping is the CI-SIS's ("Partage de documents de santé", the PDSm guide and the CDA
header rules of ansforge/IG-document-core): type = ClinicalDocument/code, format = the
volet's formatCode (`wire.cda.volets`), confidentiality = confidentialityCode, creation time
= effectiveTime, service period = documentationOf/serviceEvent/effectiveTime, facility type =
componentOf/.../healthCareFacility/code (TRE_R02), practice setting = the performer's
standardIndustryClassCode (TRE_A01), author = the first author (idNat_PS, G15 profession,
R38 specialty, structure), patient = the recordTarget's INS. The class follows from the type
through the access matrix (`policies`), which the caller holds: `wire` imports nothing of
ours.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ..documents import Author, Patient
from ..fhir import WireError
from . import oids, volets
from .errors import CdaError
from .header import CdaHeader

LOINC_SYSTEM = "http://loinc.org"
CDA_MIME_TYPE = "text/xml"  # a CDA R2 document, whatever its body (the PDSm examples)

_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class CdaMetadata:
    """What a DocumentReference says of a CDA document, read from the document."""

    unique_id: str | None  # urn:oid: / urn:uuid: of ClinicalDocument/id, when it has one
    patient: Patient
    type_code: str
    type_system: str  # FHIR URI: http://loinc.org, or urn:oid:<TRE OID>
    format_code: str
    format_system: str
    mime_type: str
    title: str
    creation_time: dt.datetime
    confidentiality: str
    language: str
    author: Author
    service_start: dt.datetime | None
    service_stop: dt.datetime | None
    facility_type: str | None
    practice_setting: str | None
    volet: str
    level: int


def code_system_uri(oid: str) -> str:
    """A CDA code system OID as the FHIR metadata names it."""
    return LOINC_SYSTEM if oid == oids.LOINC else f"urn:oid:{oid}"


def unique_id(document_id: str) -> str | None:
    """The XDS uniqueId the wire accepts for a CDA id: urn:oid:<root> or urn:uuid:<root>
    (an id with an extension has none: the wire's uniqueIds are OIDs and UUIDs)."""
    if "^" in document_id:
        return None
    if _OID.fullmatch(document_id):
        return f"urn:oid:{document_id}"
    if _UUID.fullmatch(document_id):
        return f"urn:uuid:{document_id.lower()}"
    return None


def deposit_metadata(header: CdaHeader) -> CdaMetadata:
    """The deposit metadata of ``header``; `CdaError` when the header lacks what a
    DocumentReference needs (checked by the schematron too, refused here by name)."""
    volet = volets.volet_of(header)
    format_code, format_system = volets.format_code(header)
    author = header.author
    structure = author.organization.id if author.organization is not None else None
    if author.id_root != oids.ID_NAT_PS or not author.id:
        raise CdaError("cda-author-id", "author/assignedAuthor/id: un idNat_PS (OID "
                       f"{oids.ID_NAT_PS}) est attendu / the author needs an idNat_PS")
    if author.profession is None:
        raise CdaError("cda-author-profession", "author/assignedAuthor/code: profession "
                       "(TRE_G15, « G15_xx ») absente / the author's profession is missing")
    if structure is None:
        raise CdaError("cda-author-structure", "author/assignedAuthor/representedOrganization/id"
                       " absent / the author's structure is missing")
    if header.confidentiality not in ("N", "R", "V"):
        raise CdaError("cda-confidentiality", f"confidentialityCode "
                       f"{header.confidentiality[:10]!r}: N, R ou V / N, R or V")
    try:
        wire_author = Author(author.id, author.profession, structure, author.specialty,
                             author.last_name, author.first_name)
        patient = Patient(header.patient.ins, header.patient.ins_oid)
    except WireError as error:
        raise CdaError("cda-header-invalid", error.message) from None
    return CdaMetadata(
        unique_id=unique_id(header.document_id),
        patient=patient,
        type_code=header.code.code,
        type_system=code_system_uri(header.code.system),
        format_code=format_code,
        format_system=format_system,
        mime_type=CDA_MIME_TYPE,
        title=header.title,
        creation_time=header.effective_time,
        confidentiality=header.confidentiality,
        language=header.language or "fr-FR",
        author=wire_author,
        service_start=header.service_start,
        service_stop=header.service_stop,
        facility_type=header.facility_type.code if header.facility_type else None,
        practice_setting=header.practice_setting.code if header.practice_setting else None,
        volet=volet.name,
        level=volet.level,
    )
