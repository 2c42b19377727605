"""Code systems and the small value sets the document wire uses (FHIR R4, IHE MHD, PDSm 3.1.1).

Sources, marked on every value: **pdsm** = the PDSm guide (ansforge/IG-fhir-partage-de-
documents-de-sante, input/fsh/: profiles, aliases.fsh and Examples/); **domain** =
/work/shared/DOMAIN.md; **ihe** = IHE MHD 4.x / XDS; **believed** = a code we believe is in
the national table but could not check against it; **tre** = the ANS's published table itself;
**ours** = a local code of this project.
Document classes and types are not here: they come from the access matrix (`policies`), which
both sides read, so the lists can never disagree with the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

NOS = "https://mos.esante.gouv.fr/NOS"

# -- code systems (pdsm: Examples/DR_comprehensive.fsh and aliases.fsh) ------------------------
CLASS_SYSTEM = f"{NOS}/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
LOINC_SYSTEM = "http://loinc.org"
FORMAT_SYSTEM = f"{NOS}/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode"
# The CI-SIS's own format codes (urn:asip:..., urn:ans:...; JDV_J10 gathers both systems).
CISIS_FORMAT_SYSTEM = (f"{NOS}/TRE_A06-FormatCodeComplementaire/FHIR/"
                       "TRE-A06-FormatCodeComplementaire")
FACILITY_SYSTEM = f"{NOS}/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
PRACTICE_SYSTEM = f"{NOS}/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice"
# securityLabel: PDSm slices it into a confidentiality level (HL7 v3 N/R/V, required binding)
# and visibility statuses (JDV_J110, codes of TRE_A07); DOMAIN.md calls the whole set JDV_J08.
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
VISIBILITY_SYSTEM = f"{NOS}/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
PROFESSION_SYSTEM = f"{NOS}/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SPECIALTY_SYSTEM = f"{NOS}/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"  # believed

# PDSm 3.1.1 canonical URLs (pdsm: sushi-config.yaml canonical + the `Id:` of each extension and
# profile). Before 3.x the isArchived extension was `..._isArchived` under esante.gouv.fr/cisis:
# still read (rows stored before migration 0007, older clients), never written.
PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm"
IS_ARCHIVED_URL = f"{PDSM}/StructureDefinition/pdsm-ext-is-archived"
IS_ARCHIVED_URL_PRE_3 = "http://esante.gouv.fr/cisis/fhir/StructureDefinition/PDSm_isArchived"
IS_ARCHIVED_URLS = frozenset({IS_ARCHIVED_URL, IS_ARCHIVED_URL_PRE_3})
INTENDED_RECIPIENT_URL = f"{PDSM}/StructureDefinition/pdsm-ext-intended-recipient"
PROFILE_DOCUMENT_REFERENCE = f"{PDSM}/StructureDefinition/pdsm-comprehensive-document-reference"
PROFILE_SUBMISSION_SET = f"{PDSM}/StructureDefinition/pdsm-submissionset-comprehensive"
PROFILE_PROVIDE_BUNDLE = f"{PDSM}/StructureDefinition/pdsm-comprehensive-provide-document-bundle"

# IHE MHD (ihe; the PDSm examples use the same URLs)
MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
SOURCE_ID_URL = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
DESIGNATION_TYPE_URL = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"
AUTHOR_ORG_URL = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-authorOrg"
RFC3986 = "urn:ietf:rfc:3986"  # masterIdentifier / identifier system for urn:oid / urn:uuid

# FHIR R4 Attachment.hash is SHA-1. Agents before PDSm 3.1.1 conformance sent the SHA-256 in
# this extension (ours): it is still read and then ignored (the host computes its SHA-256 from
# the bytes), never written, and dropped from what the host stores.
SHA256_EXTENSION_URL = "urn:dmp-agent:fhir:StructureDefinition/attachment-sha256"
# The host's own document ids, usable as a conditional PATCH identifier (ours).
DOCUMENT_ID_SYSTEM = "urn:dmp:host:document-id"

# -- identifiers (domain) -----------------------------------------------------------------------
INS_NIR_OID = "1.2.250.1.213.1.4.8"
INS_NIA_OID = "1.2.250.1.213.1.4.9"
INS_TEST_OID = "1.2.250.1.213.1.4.10"
INS_OIDS = frozenset({INS_NIR_OID, INS_NIA_OID, INS_TEST_OID})
ID_NAT_PS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
STRUCTURE_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"  # pdsm example (idNat_Struct)

# -- the submission-set signature (domain: typeCode E1762, TRE_A12 whose "OID" is ASTM) --------
SIGNATURE_TYPE_CODE = "E1762"
SIGNATURE_TYPE_SYSTEM = "ASTM"  # as in policies/matrix.json and the PDSm constr-bind-type text
SIGNATURE_CLASS_CODE = "99"  # TRE_A03 "Document technique" (matrix)
# IHE DSG detached signature (ihe: ITI TF-3 5.5.6 / DSGj 5.10.6.1.1, in TRE_A11 "Signature
# détachée"); an XML document (ihe, believed: text/xml), in the "artificial" language (ihe: 'art').
# docs/wire-signature.md.
SIGNATURE_FORMAT_SYSTEM = FORMAT_SYSTEM
SIGNATURE_FORMAT_CODE = "urn:ihe:iti:dsg:detached:2014"
SIGNATURE_MIME_TYPE = "text/xml"
SIGNATURE_LANGUAGE = "art"


@dataclass(frozen=True)
class Code:
    code: str
    system: str
    label: str
    source: str


def _index(*codes: Code) -> dict[str, Code]:
    return {code.code: code for code in codes}


FORMATS = _index(
    Code("urn:ihe:iti:xds-sd:pdf:2008", FORMAT_SYSTEM, "Document à corps non structuré en PDF",
         "domain"),
    Code("urn:ihe:iti:xds-sd:text:2008", FORMAT_SYSTEM,
         "Document à corps non structuré en texte brut", "believed"),
    Code("urn:ihe:lab:xd-lab:2008", FORMAT_SYSTEM,
         "Compte rendu structuré d'examens de biologie médicale", "pdsm"),
    Code("urn:ihe:pcc:xds-ms:2007", FORMAT_SYSTEM, "Synthèse médicale (XDS-MS)", "believed"),
    Code(SIGNATURE_FORMAT_CODE, SIGNATURE_FORMAT_SYSTEM, "Signature détachée", "ihe"),
    # cisis: ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS (wire/cda/volets.py, docs/cda.md)
    Code("urn:asip:ci-sis:vsm:2012", CISIS_FORMAT_SYSTEM, "Volet de synthèse médicale", "cisis"),
    Code("urn:asip:ci-sis:vac-note:2021", CISIS_FORMAT_SYSTEM, "Note de vaccination", "cisis"),
    Code("urn:ans:ci-sis:trod:2024", CISIS_FORMAT_SYSTEM,
         "Test rapide d'orientation diagnostique", "cisis"),
    Code("urn:ihe:eyecare:geneyeevalcn:2014", FORMAT_SYSTEM,
         "Compte-rendu de consultation en ophtalmologie", "cisis"),
)

# The MIME types each format may carry: a PDF format with an HTML body is a lie that would
# decide how the reader's software opens it. The XDS-SD formats name a CDA level 1 document
# (text/xml, its body a PDF or a text); the bare file is still taken from deposits made before
# the agent wrapped documents in CDA (docs/cda.md).
CDA_MIME_TYPES = frozenset({"text/xml", "application/xml"})
MIME_TYPES_BY_FORMAT: dict[str, frozenset[str]] = {
    "urn:ihe:iti:xds-sd:pdf:2008": frozenset({"application/pdf"}) | CDA_MIME_TYPES,
    "urn:ihe:iti:xds-sd:text:2008": frozenset({"text/plain"}) | CDA_MIME_TYPES,
    "urn:ihe:lab:xd-lab:2008": CDA_MIME_TYPES,
    "urn:ihe:pcc:xds-ms:2007": CDA_MIME_TYPES,
    "urn:asip:ci-sis:vsm:2012": CDA_MIME_TYPES,
    "urn:asip:ci-sis:vac-note:2021": CDA_MIME_TYPES,
    "urn:ans:ci-sis:trod:2024": CDA_MIME_TYPES,
    "urn:ihe:eyecare:geneyeevalcn:2014": CDA_MIME_TYPES,
    SIGNATURE_FORMAT_CODE: frozenset({SIGNATURE_MIME_TYPE}),
}

CONFIDENTIALITY_LEVELS = _index(
    Code("N", CONFIDENTIALITY_SYSTEM, "Normal", "pdsm"),
    Code("R", CONFIDENTIALITY_SYSTEM, "Restreint", "pdsm"),
    Code("V", CONFIDENTIALITY_SYSTEM, "Très restreint", "pdsm"),
)
MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX = (
    "MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX",
)
VISIBILITY_STATUSES = _index(
    Code(MASQUE_PS, VISIBILITY_SYSTEM, "Masqué aux professionnels de santé", "domain"),
    Code(INVISIBLE_PATIENT, VISIBILITY_SYSTEM, "Non visible par le patient", "domain"),
    Code(INVISIBLE_REPRESENTANTS_LEGAUX, VISIBILITY_SYSTEM,
         "Non visible par les représentants légaux du patient", "domain"),
)

# The whole tables (tre: the SVS files TRE_R02-SecteurActivite.xml and TRE_A01-CadreExercice.xml
# of ansforge/TestContenuCDA-3-0 b882a1e9 and TestContenuCDA-2-41 3a85e148, jeuxDeValeurs/). SA11
# "Entreprise d'intérim" ended in 2020 (dateFin): not offered, not accepted.
_SECTORS = (
    ("SA01", "Etablissement public de santé"),
    ("SA02", "Hôpital militaire du Service de santé des armées"),
    ("SA03", "Etablissement privé PSPH"),
    ("SA04", "Etablissement privé non PSPH"),
    ("SA05", "Centre de santé"),
    ("SA06", "Autre structure du Service de santé des armées"),
    ("SA07", "Cabinet individuel"),
    ("SA08", "Cabinet de groupe"),
    ("SA09", "Exercice en société"),
    ("SA10", "Transporteur sanitaire"),
    ("SA12", "Etablissement de soins et prévention"),
    ("SA13", "Prévention et soins en entreprise"),
    ("SA14", "Etablissements scolaires, universitaires et de formation hors champ FINESS"),
    ("SA15", "PMI et Planification familiale"),
    ("SA16", "Etablissement pour personnes handicapées"),
    ("SA17", "Etablissement pour personnes âgées"),
    ("SA18", "Etablissement aide à la famille"),
    ("SA19", "Etablissements FINESS de formation aux professions sanitaires et sociales"),
    ('SA20', "Etablissement pour la protection de l'enfance"),
    ('SA21', "Etablissement d'hébergement et de réadaptation"),
    ("SA22", "Recherche"),
    ("SA23", "Assurance privée"),
    ("SA24", "Organisme de sécurité sociale"),
    ("SA25", "Laboratoire de biologie médicale"),
    ("SA26", "Ministère ou Service déconcentré"),
    ("SA27", "Collectivité territoriale"),
    ("SA28", "Association ou organisme humanitaire"),
    ('SA29', "Laboratoire d'analyses et de biologie médicale"),
    ("SA30", "Autre établissement sanitaire"),
    ("SA31", "Répartition et Distribution de médicaments et dispositifs médicaux"),
    ("SA32", "Fabrication, Exploitation et Importation de médicaments et dispositifs médicaux"),
    ('SA33', "Pharmacie d'officine"),
    ("SA34", "Centre de dialyse"),
    ("SA35", "Para-pharmacie"),
    ("SA36", "Centre anti-cancer"),
    ("SA37", "Centre de transfusion sanguine"),
    ("SA38", "Pharmacie minière"),
    ("SA39", "Pharmacie mutualiste"),
    ("SA40", "Secteur privé, praticien hospitalier temps plein"),
    ("SA41", "Autre établissement du domaine social ou médico-social"),
    ("SA42", "Appareillage médical"),
    ("SA43", "Secteur non défini"),
    ("SA44", "Recrutement ou Gestion RH"),
    ("SA45", "Communication, Marketing, Consulting, Média"),
    ("SA46", "Fab, Exploit, Import, Répart, Distrib médicaments et dispo médicaux"),
    ("SA47", "Incendie et secours"),
    ("SA48", "Entreprise industrielle et tertiaire hors industrie pharmaceutique"),
    ("SA49", "Entité Outre-Mer"),
    ('SA50', "Structure d'urgence hors établissement hospitalier"),
    ("SA51", "Structure de coopération avec autorisation de soins"),
    ("SA52", "Maison de santé ou Pôle de santé"),
    ('SA53', "Siège administratif d'un établissement de santé"),
    ("SA54", "Centre de dépistage et de prévention"),
    ("SA55", "Laboratoire pharmaceutique préparant et délivrant des allergènes"),
    ("SA56", "Propharmacie"),
    ("SA57", "Structure de coopération avec mission de coordination de soins"),
    ("SA58", "Entreprise de taxis"),
    ("SA59", "Laboratoire de biologie médicale hors catégorie standard"),
    ("SA60", "Centres médicaux SNCF"),
    ('SA61', "Structure Dispensatrice à domicile d'Oxygène à usage médical"),
    ("SA62", "Ordre professionnel de santé"),
    ("SA63", "Communauté Professionnelle Territoriale de Santé"),
)
FACILITY_TYPES = _index(*(Code(code, FACILITY_SYSTEM, label, "tre") for code, label in _SECTORS))
NO_SECTOR = "SA43"  # "Secteur non défini"

_SETTINGS = (
    ("AMBULATOIRE", "Ambulatoire"),
    ('AMO', "Organisme d'assurance maladie obligatoire"),
    ("DEPISTAGE", "Dépistage"),
    ("ETABLISSEMENT", "Etablissement de santé"),
    ("HAD", "Hospitalisation à domicile"),
    ("MAD", "Maintien à domicile"),
    ("PALLIATIF", "Soins palliatifs"),
    ("SAD", "Soins à domicile"),
    ("SAMU_SMUR", "SAMU/SMUR"),
)
PRACTICE_SETTINGS = _index(*(Code(code, PRACTICE_SYSTEM, label, "tre")
                             for code, label in _SETTINGS))
