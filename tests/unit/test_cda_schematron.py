"""The CI-SIS schematrons (SaxonC) and the CDA R2 schema accept the CI-SIS's own examples of
each volet, and refuse a mutated copy with the failing assertion and its XPath.

The first check in a process compiles the header schematron (10 MB of XSLT, about 12 s on 2
cores); the others take milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cda_support import ALL, CR_BIO, LEVEL_1, VAC_NOTE, VSM, needs_cisis
from wire import cda
from wire.cda.errors import CdaError

pytestmark = needs_cisis


@pytest.mark.parametrize("volet", sorted(ALL))
def test_the_cisis_example_of_each_volet_passes(volet: str) -> None:
    document = cda.read(ALL[volet].read_bytes())
    assert document.volet.name == volet
    cda.validate(document)


def refusal(path: Path, old: bytes, new: bytes) -> CdaError:
    data = path.read_bytes()
    assert old in data
    document = cda.read(data.replace(old, new, 1))
    with pytest.raises(CdaError) as caught:
        cda.validate(document)
    return caught.value


def test_a_vaccination_note_with_another_document_code_fails_its_volet() -> None:
    error = refusal(VAC_NOTE, b'<code code="87273-9"', b'<code code="11488-4"')
    assert error.code == "cda-schematron"
    assert error.location == "/ClinicalDocument"
    assert "87273-9" in error.message and "Entete_VAC-NOTE" in (error.rule or error.message)


def test_a_level_1_document_without_the_patients_birth_date_fails_the_header_rules() -> None:
    error = refusal(LEVEL_1, b'<birthTime value="19790328"/>', b"")
    assert error.code == "cda-schematron"
    assert "INS" in error.message and error.location == "/ClinicalDocument"


def test_a_vsm_without_its_volet_template_fails() -> None:
    # The VSM schematron asks for the IHE medical summary template beside the CI-SIS one.
    data = VSM.read_bytes()
    templates = data.count(b"<templateId")
    assert templates > 3
    error = refusal(VSM, b'<confidentialityCode code="N"', b'<confidentialityCode code="X"')
    assert error.code == "cda-schematron" and "confidentialityCode" in (error.location or "")


def test_a_lab_report_with_an_unknown_document_type_fails_the_header_value_set() -> None:
    error = refusal(CR_BIO, b'code="11502-2"', b'code="99999-9"')
    assert error.code == "cda-schematron"
    assert "1.2.250.1.213.1.1.5.471" in error.message  # JDV_J07, the DMP's document types
    assert error.location == "/ClinicalDocument/code"


def test_a_document_the_cda_schema_refuses_names_the_line() -> None:
    error = refusal(VAC_NOTE, b"<title>", b"<titre>x</titre><title>")
    assert error.code == "cda-xsd" and "ligne" in error.message
