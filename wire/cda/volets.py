"""The CI-SIS volets this project knows: which templateId names each, its XDS formatCode, and
the schematrons that check it.

Format codes: ansforge/IG-terminologie-de-sante, ConceptMaps ASS_A11-CorresModeleCDA-
XdsFormatCode-CISIS (structured: templateId → formatCode) and ASS_A12-CorresMediaType-
CDANonStructure-XdsFormatCode-CISIS (level 1: the body's mediaType → formatCode). Schematrons:
ansforge/TestContenuCDA-3-0 (`schematrons/`), fetched at setup (`wire/cda/cisis/README.md`).
A volet not listed here is refused ("cda-unknown-volet"): adding one is a row below and its
schematron in the fetch list.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import codes
from . import oids
from .errors import CdaError
from .header import BodyKind, CdaHeader

# TRE_A11-IheFormatCode (IHE codes) and TRE_A06-FormatCodeComplementaire (the CI-SIS's own
# urn:asip / urn:ans codes): JDV_J10-XdsFormatCode-CISIS gathers both.
IHE_FORMAT_SYSTEM = codes.FORMAT_SYSTEM
CISIS_FORMAT_SYSTEM = codes.CISIS_FORMAT_SYSTEM

# The header rules every CI-SIS CDA meets ("structuration minimale des documents de santé").
HEADER_SCHEMATRON = "schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch"

# ASS_A12: a level 1 body's media type → formatCode (each in TRE_A11).
LEVEL_1_FORMATS = {
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
}


@dataclass(frozen=True)
class Volet:
    name: str
    label: str
    template_id: str
    format_code: str | None  # None: level 1, from the body's media type
    format_system: str
    schematrons: tuple[str, ...]  # relative to the CI-SIS data folder, run in this order

    @property
    def level(self) -> int:
        return 1 if self.format_code is None else 3


LEVEL_1 = Volet("CDA-R2-N1", "Document CDA R2 non structuré (niveau 1)", oids.XDS_SD, None,
                IHE_FORMAT_SYSTEM, (HEADER_SCHEMATRON,))

# Most specific first: a CR-BIO carries both the IHE XD-LAB and the CI-SIS templateId.
STRUCTURED = (
    Volet("VSM", "Volet de synthèse médicale (VSM 1.4)", "1.2.250.1.213.1.1.1.13",
          "urn:asip:ci-sis:vsm:2012", CISIS_FORMAT_SYSTEM,
          (HEADER_SCHEMATRON, "schematrons/CI-SIS_VSM_1.4_2022.01.sch")),
    Volet("VAC-NOTE", "Note de vaccination", "1.2.250.1.213.1.1.1.46",
          "urn:asip:ci-sis:vac-note:2021", CISIS_FORMAT_SYSTEM,
          (HEADER_SCHEMATRON, "schematrons/CI-SIS_VAC-NOTE_2023.01.sch")),
    Volet("CR-BIO", "Compte rendu d'examens de biologie médicale", "1.2.250.1.213.1.1.1.55",
          "urn:ihe:lab:xd-lab:2008", IHE_FORMAT_SYSTEM,
          (HEADER_SCHEMATRON, "schematrons/CI-SIS_BIO-CR-BIO_2024.01.sch")),
    # The pharmacist's rapid test (angine, cystite, COVID-19, grippe) and the optician's
    # refraction report: the structured documents of the counter and the optician's shop.
    Volet("BIO-TROD", "Test rapide d'orientation diagnostique", "1.2.250.1.213.1.1.1.59",
          "urn:ans:ci-sis:trod:2024", CISIS_FORMAT_SYSTEM,
          (HEADER_SCHEMATRON, "schematrons/CI-SIS_BIO-TROD_2024.01.sch")),
    Volet("OPH-BRE", "Ophtalmologie : bilan de réfraction", "1.2.250.1.213.1.1.1.42",
          "urn:ihe:eyecare:geneyeevalcn:2014", IHE_FORMAT_SYSTEM,
          (HEADER_SCHEMATRON, "schematrons/CI-SIS_OPH-BRE_2022.02.sch")),
)
BY_TEMPLATE = {volet.template_id: volet for volet in (*STRUCTURED, LEVEL_1)}
VOLETS = {volet.name: volet for volet in (*STRUCTURED, LEVEL_1)}


def volet_of(header: CdaHeader) -> Volet:
    """The volet a header declares by its templateIds; `CdaError` when none is known."""
    if header.body is BodyKind.NON_XML:
        if oids.XDS_SD not in header.template_ids:
            raise CdaError("cda-unknown-volet", f"Document de niveau 1 sans le templateId "
                           f"XDS-SD {oids.XDS_SD} / a level 1 CDA must declare IHE XDS-SD")
        return LEVEL_1
    for volet in STRUCTURED:
        if volet.template_id in header.template_ids:
            return volet
    raise CdaError("cda-unknown-volet", "Volet CI-SIS inconnu ou non pris en charge / unknown "
                   f"CI-SIS volet (templateId {', '.join(header.template_ids)[:200]})")


def format_code(header: CdaHeader) -> tuple[str, str]:
    """(formatCode, its code system) per the CI-SIS correspondence tables."""
    volet = volet_of(header)
    if volet.format_code is not None:
        return volet.format_code, volet.format_system
    code = LEVEL_1_FORMATS.get((header.media_type or "").lower())
    if code is None:
        raise CdaError("cda-unknown-media-type", f"Type de média du corps non admis "
                       f"{(header.media_type or '')[:40]!r} (PDF, texte, RTF, JPEG, TIFF) / "
                       "media type not allowed in a level 1 CDA")
    return code, IHE_FORMAT_SYSTEM
