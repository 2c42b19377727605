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

Both return a `CdaDeposit`: the bytes to send (MIME type text/xml) and the metadata its
DocumentReference must carry. Refusals are `AgentError`s whose code is the CDA check's, with
the failing rule and XPath in ``extra``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from agent.core import pdfa
from agent.errors import AgentError
from agent.i18n import _
from policies import default_matrix
from wire import cda, codes
from wire.cda import oids
from wire.cda.errors import CdaError
from wire.cda.level1 import Level1Author, Level1Header, Level1Patient
from wire.mhd import Patient

__all__ = ["PROFESSION_LABELS", "CdaDeposit", "check_structured", "level1_header", "wrap_pdf"]

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


def _refusal(error: CdaError) -> AgentError:
    refusal = AgentError(error.message, code=error.code, status=422)
    refusal.extra.update({key: value for key, value in (("rule", error.rule),
                                                        ("location", error.location)) if value})
    return refusal


def _type_code(type_code: str) -> cda.Code:
    kind = default_matrix().document_types.get(type_code)
    if kind is None:
        raise AgentError(_("unknown document type: {type}").format(type=type_code),
                         code="unknown-type", status=400)
    system = oids.LOINC if kind.system == "http://loinc.org" else kind.system.removeprefix(
        "urn:oid:")
    return cda.Code(type_code, system, kind.label_fr)


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


def wrap_pdf(pdf: bytes, header: Level1Header, *, validate: bool = True) -> CdaDeposit:
    """``pdf`` as a PDF/A in a CDA R2 level 1 document with ``header``, checked."""
    body = pdfa.convert(pdf)
    try:
        data = cda.build_level_1(header, body, "application/pdf")
        document = cda.read(data)
        if validate:
            cda.validate(document)
        return CdaDeposit(data, cda.deposit_metadata(document.header))
    except CdaError as error:
        raise _refusal(error) from None


def check_structured(data: bytes, patient: Patient) -> CdaDeposit:
    """A CDA the practice's software made, checked before it is queued: parsed safely, about
    ``patient`` (the session's), of a known volet, passing its schematrons."""
    try:
        document = cda.read(data)
        metadata = cda.deposit_metadata(document.header)
        if metadata.patient != patient:
            raise AgentError(_("The CDA document names another patient than the session's"),
                             code="cda-patient-mismatch", status=422)
        cda.validate(document)
    except CdaError as error:
        raise _refusal(error) from None
    return CdaDeposit(data, metadata)
