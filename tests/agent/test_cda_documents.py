"""What the agent deposits as CDA (agent.core.cda_documents): a PDF wrapped as a checked
CDA level 1 document whose metadata come from its header; a practice's structured CDA checked
before it is queued. Real Ghostscript, real SaxonC schematrons."""

from __future__ import annotations

import pytest

from agent.core import pdfa
from agent.core.cda_documents import check_structured, level1_header, wrap_pdf
from agent.errors import AgentError
from cardreader.virtual.cps_profiles import PROFILES
from tests.cda_support import EXAMPLE_INS, VAC_NOTE, a_pdf, needs_cisis
from tests.cda_support import level1_header as example_header
from wire import cda, codes
from wire.cda.header import non_xml_body
from wire.mhd import Patient

# Without the CI-SIS files (CI) these run in the optional mode (tests/conftest.py): every
# check but the schema and schematrons, which the tests marked `needs_cisis` need.
GP = PROFILES["gp"]
EXAMPLE_PATIENT = Patient(EXAMPLE_INS, codes.INS_TEST_OID)


def gp_header(**changes: object) -> cda.Level1Header:
    who, situation = GP.identity, GP.situations[0]
    values: dict[str, object] = dict(
        patient=example_header().patient, id_nat_ps=who.id_nat_ps, last_name=who.last_name,
        first_name=who.first_name, profession=who.profession_code,
        specialty=who.specialty_code, structure_id=situation.structure_id,
        structure_name=situation.structure_name, type_code="11488-4",
        title="Consultation du 1er décembre")
    values.update(changes)
    return level1_header(**values)  # type: ignore[arg-type]


def test_a_pdf_is_deposited_as_a_checked_level_1_cda_with_metadata_from_its_header() -> None:
    deposit = wrap_pdf(a_pdf(), gp_header())
    metadata = deposit.metadata
    assert (metadata.volet, metadata.mime_type) == ("CDA-R2-N1", "text/xml")
    assert (metadata.type_code, metadata.format_code) == ("11488-4",
                                                          "urn:ihe:iti:xds-sd:pdf:2008")
    assert metadata.title == "Consultation du 1er décembre"
    assert metadata.author.id_nat_ps == GP.identity.id_nat_ps
    assert metadata.author.structure_id == GP.situations[0].structure_id
    assert (metadata.facility_type, metadata.practice_setting) == ("SA07", "AMBULATOIRE")
    assert metadata.patient == EXAMPLE_PATIENT
    media_type, body = non_xml_body(cda.read(deposit.data).root, max_bytes=10_000_000)
    assert media_type == "application/pdf" and pdfa.is_pdfa(body)


def test_a_file_that_is_not_a_pdf_is_refused_before_any_cda_is_made() -> None:
    with pytest.raises(AgentError) as caught:
        wrap_pdf(b"<html>compte rendu</html>", gp_header())
    assert caught.value.code == "pdf-not-pdf"


def test_an_unknown_document_type_is_refused() -> None:
    with pytest.raises(AgentError) as caught:
        gp_header(type_code="00000-0")
    assert caught.value.code == "unknown-type"


def test_the_cisis_vaccination_note_passes_for_its_patient() -> None:
    deposit = check_structured(VAC_NOTE.read_bytes(), EXAMPLE_PATIENT)
    assert deposit.metadata.format_code == "urn:asip:ci-sis:vac-note:2021"
    assert deposit.data == VAC_NOTE.read_bytes()  # deposited as it is


def test_a_structured_cda_about_another_patient_is_refused() -> None:
    with pytest.raises(AgentError) as caught:
        check_structured(VAC_NOTE.read_bytes(), Patient("180017512345688", codes.INS_TEST_OID))
    assert caught.value.code == "cda-patient-mismatch"


@needs_cisis
def test_a_failing_structured_cda_is_refused_with_the_rule_and_the_xpath() -> None:
    data = VAC_NOTE.read_bytes().replace(b'<code code="87273-9"', b'<code code="11488-4"', 1)
    with pytest.raises(AgentError) as caught:
        check_structured(data, EXAMPLE_PATIENT)
    assert caught.value.code == "cda-schematron"
    assert caught.value.as_json()["location"] == "/ClinicalDocument"
    assert "rule" in caught.value.as_json()


def _offered_types() -> dict[str, str]:
    """Every type the agent offers to deposit, with a profession that may deposit it."""
    from agent.client.dmp import deposit_types
    from cardreader.virtual.cps_profiles import PROFILES

    offered: dict[str, str] = {}
    for profile in PROFILES.values():
        for code, _class, _label in deposit_types(profile.identity.profession_code):
            offered.setdefault(code, profile.identity.profession_code)
    return offered


@needs_cisis
def test_a_level_1_cda_of_every_offered_type_passes_the_header_schematron() -> None:
    # The matrix's types J07 lacks (the optician's 34810-2...) carry their J07 concept in the
    # header and read back as the matrix's type (docs/cda.md "Document types").
    body = pdfa.convert(a_pdf())
    offered = _offered_types()
    assert "34810-2" in offered and "DISPENSATION-OPTIQUE" in offered
    for type_code, profession in sorted(offered.items()):
        header = gp_header(type_code=type_code, title=f"Document {type_code}",
                           profession=profession, specialty=None)
        document = cda.read(cda.build_level_1(header, body))
        assert cda.validate(document) == (), type_code
        metadata = cda.deposit_metadata(document.header)
        assert metadata.type_code == type_code
