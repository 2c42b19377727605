"""The OIDs a CI-SIS CDA header uses, each with where it comes from (the CDA examples and
schematrons of ansforge/TestContenuCDA-3-0 and the terminologies of
ansforge/IG-terminologie-de-sante; docs/cda.md gives the commits)."""

from __future__ import annotations

NS = "urn:hl7-org:v3"  # CDA R2
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"cda": NS}

LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"  # HL7 v3 Confidentiality (N, R, V)
ADMINISTRATIVE_GENDER = "2.16.840.1.113883.5.1"  # HL7 v3 (M, F, U)
ID_NAT_PS = "1.2.250.1.71.4.2.1"  # professional's national id (idNat_PS)
ID_NAT_STRUCT = "1.2.250.1.71.4.2.2"  # structure's national id (idNat_Struct)
# TRE_A02-ProfessionSavFaire-CISIS: "G15_<profession>" or "G15_<profession>/<specialty>"
PROFESSION_SPECIALTY = "1.2.250.1.213.1.1.4.5"
PROFESSION_G15 = "1.2.250.1.71.1.2.7"  # TRE_G15-ProfessionSante (a bare profession code)
FACILITY_R02 = "1.2.250.1.71.4.2.4"  # TRE_R02-SecteurActivite (healthCareFacility/code)
PRACTICE_A01 = "1.2.250.1.213.1.1.4.9"  # TRE_A01-CadreExercice (standardIndustryClassCode)
DOCUMENT_TYPE_A05 = "1.2.250.1.213.1.1.4.12"  # TRE_A05-TypeDocComplementaire (e.g. SYNTH)

# templateId of every CI-SIS CDA (HL7 France, then the CI-SIS "structuration minimale")
HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
CISIS_HEADER = "1.2.250.1.213.1.1.1.1"
# IHE XDS-SD: a scanned / unstructured document, i.e. a CDA level 1 with a nonXMLBody
XDS_SD = "1.3.6.1.4.1.19376.1.2.20"
CDA_TYPE_ID = "2.16.840.1.113883.1.3"  # typeId root, extension POCD_HD000040
CDA_TYPE_EXTENSION = "POCD_HD000040"
