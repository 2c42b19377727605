"""The CDA documents a deposit carries, made and checked on the agent before anything is
queued (docs/cda.md).

- `wrap_pdf`: a PDF becomes a PDF/A (`agent.core.pdfa`) wrapped in a CDA R2 level 1 document
  whose header comes from the card (author), the session's practice situation (structure,
  facility type, practice setting) and the patient's qualified INS with its traits; the
  document is checked against the CDA schema and the CI-SIS header schematron, and the
  deposit's metadata are read back from it (`wire.cda.deposit_metadata`): one source.
- `check_structured`: a structured CDA a practice's software produced (a VSM, a CR-BIO, a
  vaccination note) is deposited as it is, once it passes its volet's schematrons and names
  the session's patient.

- `wrap_text`: a text file becomes a level 1 document whose body is the text (text/plain,
  one of the media types of the CI-SIS ASS_A12 table).
- `header_for`: the level 1 header from what a session holds (the card's `Author` with
  names, the practice situation's structure name and `CareSetting`, the INS traits).
- `replaced_version`: what a new version must name of the version it replaces (a level 1
  header then carries relatedDocument RPLC, the old setId and the next versionNumber; a
  structured CDA must already say so: `wire.cda.replacement.check`).

All return a `CdaDeposit`: the bytes to send (MIME type text/xml), the metadata its
DocumentReference must carry, and the checks skipped (``DMP_CDA_CISIS=optional`` without the
CI-SIS files: `wire.cda.cisis_state`). Refusals are `AgentError`s whose code is the CDA
check's, with the failing rule and XPath in ``extra``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.core import pdfa
from agent.errors import AgentError
from agent.i18n import _
from policies import default_matrix
from wire import cda, codes
from wire.cda import oids, replacement
from wire.cda.errors import CdaError
from wire.cda.level1 import Level1Author, Level1Header, Level1Patient
from wire.cda.metadata import header_type
from wire.cda.metadata import unique_id as wire_unique_id
from wire.cda.replacement import Replaced
from wire.mhd import Patient

if TYPE_CHECKING:
    from agent.client.provide import CareSetting
    from wire.ins import InsIdentity
    from wire.mhd import Author

__all__ = ["PROFESSION_LABELS", "CdaDeposit", "check_structured", "header_for",
           "level1_header", "new_version", "replaced_version", "wrap_pdf", "wrap_text"]

# TRE_G15 labels of the professions the access matrix knows (DOMAIN.md), for the author's
# code displayName (TRE_A02 "G15_xx").
PROFESSION_LABELS = {
    "10": "Médecin", "21": "Pharmacien", "26": "Audioprothésiste", "28": "Opticien-Lunetier",
    "40": "Chirurgien-Dentiste", "50": "Sage-Femme", "60": "Infirmier",
    "70": "Masseur-Kinésithérapeute", "91": "Orthophoniste", "92": "Orthoptiste",
    "96": "Psychomotricien",
}


@dataclass(frozen=True)
class CdaDeposit:
    """A CDA document ready to deposit: its bytes and the metadata read from it."""

    data: bytes
    metadata: cda.CdaMetadata
    skipped: tuple[str, ...] = ()  # checks not run (optional mode without the CI-SIS files)


def _refusal(error: CdaError) -> AgentError:
    from agent.client.refusals import host_text  # the wire's "français / English": one part

    refusal = AgentError(_("The document was refused before sending: {detail}").format(
        detail=host_text(error.message)), code=error.code, status=422)
    refusal.extra.update({key: value for key, value in (("rule", error.rule),
                                                        ("location", error.location)) if value})
    return refusal


def _type_code(type_code: str) -> cda.Code:
    """The header's ClinicalDocument/code of a matrix type: a JDV_J07 concept (docs/cda.md
    "Document types": the matrix types J07 lacks carry their J07 equivalent)."""
    kind = default_matrix().document_types.get(type_code)
    if kind is None:
        raise AgentError(_("unknown document type: {type}").format(type=type_code),
                         code="unknown-type", status=400)
    system = oids.LOINC if kind.system == "http://loinc.org" else kind.system.removeprefix(
        "urn:oid:")
    return header_type(type_code, system, kind.label_fr)


def level1_header(*, patient: Level1Patient, id_nat_ps: str, last_name: str, first_name: str,
                  profession: str, specialty: str | None, structure_id: str,
                  structure_name: str, type_code: str, title: str,
                  facility_type: str = "SA07", practice_setting: str = "AMBULATOIRE",
                  service_start: dt.datetime | None = None,
                  service_stop: dt.datetime | None = None, confidentiality: str = "N"
                  ) -> Level1Header:
    """The header of a level 1 document from what the agent holds: the card's identity
    (`CpsIdentity`: id_nat_ps, names, profession_code, specialty_code), the session's
    `PracticeSituation` (structure_id, structure_name) with its facility type (TRE_R02) and
    practice setting (TRE_A01), and the patient's INS traits (`Level1Patient`)."""
    facility = codes.FACILITY_TYPES.get(facility_type)
    practice = codes.PRACTICE_SETTINGS.get(practice_setting)
    if facility is None or practice is None:
        raise AgentError(_("Unknown facility type or practice setting: {facility}, "
                           "{setting}").format(facility=facility_type, setting=practice_setting),
                         code="unknown-practice", status=400)
    now = dt.datetime.now(dt.UTC)
    label = PROFESSION_LABELS.get(profession, profession)
    return Level1Header(
        patient=patient,
        author=Level1Author(id_nat_ps, last_name, first_name, profession, specialty, label,
                            structure_id, structure_name),
        type_code=_type_code(type_code), title=title,
        facility_type=cda.Code(facility_type, oids.FACILITY_R02, facility.label),
        practice_setting=cda.Code(practice_setting, oids.PRACTICE_A01, practice.label),
        service_start=service_start or now, service_stop=service_stop, created=now,
        confidentiality=confidentiality,
    )


def header_for(*, author: Author, structure_name: str, setting: CareSetting,
               identity: InsIdentity, type_code: str, title: str,
               service_start: dt.datetime | None = None) -> Level1Header:
    """The header of a document made in a session (a level 1 deposit, the vaccination
    note): ``author`` (the card's professional in the chosen practice situation,
    `ProfessionalSession.author`), the situation's structure name and care setting, the
    patient's INS traits as the INS service returned them (the identity is qualifiée:
    `_require_qualified`); ``service_start``: when the act took place (default: now)."""
    patient = Level1Patient(identity.ins, identity.oid, identity.birth_name,
                            identity.first_names, identity.sex, identity.birth_date,
                            identity.birth_place, first_given_name=identity.first_name or None)
    return level1_header(
        patient=patient, id_nat_ps=author.id_nat_ps, last_name=author.last_name or "",
        first_name=author.first_name or "", profession=author.profession,
        specialty=author.specialty, structure_id=author.structure_id,
        structure_name=structure_name, type_code=type_code, title=title,
        facility_type=setting.facility_type, practice_setting=setting.practice_setting,
        service_start=service_start)


def _level_1(body: bytes, media_type: str, header: Level1Header) -> CdaDeposit:
    try:
        data = cda.build_level_1(header, body, media_type)
        document = cda.read(data)
        skipped = cda.validate(document)
        return CdaDeposit(data, cda.deposit_metadata(document.header), skipped)
    except CdaError as error:
        raise _refusal(error) from None


def wrap_pdf(pdf: bytes, header: Level1Header) -> CdaDeposit:
    """``pdf`` as a PDF/A in a CDA R2 level 1 document with ``header``, checked."""
    return _level_1(pdfa.convert(pdf), "application/pdf", header)


def wrap_text(text: bytes, header: Level1Header) -> CdaDeposit:
    """A text file (UTF-8) as the text/plain body of a level 1 document, checked."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        raise AgentError(_("The text file is not UTF-8 text"), code="text-not-utf8",
                         status=415) from None
    return _level_1(text, "text/plain", header)


def replaced_version(unique_id: str, mime_type: str, content: bytes | None) -> Replaced:
    """The version a deposit replaces: its uniqueId and, when it is a CDA (``content``: its
    bytes as retrieved), its header. A document whose XML is not a readable CDA (or that is
    no XML: a bare PDF from before) is named by its uniqueId only."""
    header = None
    if content is not None and mime_type.split(";")[0].strip() in ("text/xml",
                                                                    "application/xml"):
        try:
            header = cda.read(content).header
        except CdaError:
            header = None
    return Replaced(unique_id, header)


def declared_replacement(data: bytes) -> str | None:
    """The uniqueId of the document a practice's CDA says it replaces (relatedDocument RPLC),
    None when it replaces none, names it by an id the wire cannot carry (an id with an
    extension: no DMP document has it) or is no readable CDA (its checks say why, later)."""
    try:
        parent = cda.read(data).header.replaces
    except CdaError:
        return None
    return wire_unique_id(parent) if parent is not None else None


def new_version(header: Level1Header, replaced: Replaced) -> Level1Header:
    """``header`` as the next version of ``replaced``: a new id (the header's own), the
    replaced one's setId, the next versionNumber, relatedDocument RPLC naming it."""
    return dataclasses.replace(header, replaces=replaced.document_id, set_id=replaced.set_id,
                               version=replaced.next_version)


def check_structured(data: bytes, patient: Patient, replaced: Replaced | None = None
                     ) -> CdaDeposit:
    """A CDA the practice's software made, checked before it is queued: parsed safely, about
    ``patient`` (the session's), of a known volet, passing its schematrons; a new version of
    ``replaced`` names it (relatedDocument RPLC, its setId, a higher versionNumber)."""
    try:
        document = cda.read(data)
        metadata = cda.deposit_metadata(document.header)
        if metadata.patient != patient:
            raise AgentError(_("The CDA document names another patient than the session's"),
                             code="cda-patient-mismatch", status=422)
        if replaced is not None:
            replacement.check(document.header, replaced)
        skipped = cda.validate(document)
    except CdaError as error:
        raise _refusal(error) from None
    return CdaDeposit(data, metadata, skipped)
