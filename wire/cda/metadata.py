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
from .header import CdaHeader, Code

LOINC_SYSTEM = "http://loinc.org"
CDA_MIME_TYPE = "text/xml"  # a CDA R2 document, whatever its body (the PDSm examples)

# The access matrix's document types (policies/matrix.json) that JDV_J07-XdsTypeCode-CISIS
# (the DMP's type value set, ansforge/TestContenuCDA-3-0 jeuxDeValeurs/ @ 7cd489b3) does not
# list, and the J07 concept their CDA header carries instead (the header schematron refuses a
# code outside J07). Ours: the nearest J07 concept by its label (docs/cda.md "Document types").
# Each target is itself no matrix type, so the header's code names one matrix type back.
_A05 = oids.DOCUMENT_TYPE_A05
J07_OF_TYPE: dict[str, Code] = {
    "34874-3": Code("34874-8", oids.LOINC, "CR opératoire"),
    "11526-1": Code("60568-3", oids.LOINC, "CR d'anatomie et de cytologie pathologiques"),
    "34807-8": Code("78513-9", oids.LOINC, "CR de consultation en ophtalmologie"),
    "34810-2": Code("34120-6", oids.LOINC, "Bilan par professionnel de santé"),
    "BILAN-ORTHOPTIQUE": Code("47420-5", oids.LOINC, "CR de bilan fonctionnel"),
    "96163-1": Code("11506-3", oids.LOINC,
                    "CR ou fiche de suivi de soins par auxiliaire médical"),
    "85895-1": Code("70004-7", oids.LOINC, "CR d'acte diagnostique (autre)"),
    "DISPENSATION-OPTIQUE": Code("DISP_AUT", _A05, "Dispensation (autre)"),
    "42348-3": Code("EXPPAT_3", _A05, "Directives anticipées"),
    "CERTIFICAT-RESIDENCE": Code("ATTEST-RESID", _A05, "Attestation de résidence"),
}
# The matrix's system of its own codes (policies/matrix.json "urn:dmp-agent:type-local").
LOCAL_TYPE_SYSTEM = "urn:dmp-agent:type-local"
# J07 concepts read back as another matrix type: the above, and the VSM's TRE_A05 "SYNTH"
# (the CI-SIS VSM 1.4 example's type), the matrix's "Synthèse médicale" 60591-5.
_TYPE_OF_J07: dict[tuple[str, str], str] = {
    **{(code.code, code.system): kind for kind, code in J07_OF_TYPE.items()},
    ("SYNTH", _A05): "60591-5",
}


def header_type(type_code: str, system: str, display: str | None) -> Code:
    """The ClinicalDocument/code of a document of matrix type ``type_code`` (``system``: the
    CDA OID of its system): itself when J07 lists it, else its J07 concept above."""
    return J07_OF_TYPE.get(type_code) or Code(type_code, system, display)


def dmp_type(code: Code) -> tuple[str, str]:
    """(matrix type code, its FHIR system) of a header's ClinicalDocument/code: the
    DocumentEntry's type, derived from the header (never typed twice)."""
    kind = _TYPE_OF_J07.get((code.code, code.system))
    if kind is None:
        return code.code, code_system_uri(code.system)
    return kind, (LOINC_SYSTEM if kind[:1].isdigit() else LOCAL_TYPE_SYSTEM)


_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class CdaMetadata:
    """What a DocumentReference says of a CDA document, read from the document."""

    unique_id: str | None  # urn:oid: / urn:uuid: of ClinicalDocument/id, when it has one
    patient: Patient
    type_code: str  # the matrix's type (`dmp_type`): the header's code, or what it maps
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
    type_code, type_system = dmp_type(header.code)
    return CdaMetadata(
        unique_id=unique_id(header.document_id),
        patient=patient,
        type_code=type_code,
        type_system=type_system,
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
