"""A CDA R2 level 1 document built from a header (wire.cda.level1): it reads back to the
metadata it was built from, carries the file unchanged, and passes the CDA R2 schema and the
CI-SIS header schematron."""

from __future__ import annotations

import dataclasses

import pytest

from tests.cda_support import EXAMPLE_INS, a_pdf, level1_header, needs_cisis
from wire import cda, codes
from wire.cda.errors import CdaError
from wire.cda.header import non_xml_body


def test_the_document_reads_back_to_its_header_and_body() -> None:
    header = level1_header()
    pdf = b"%PDF-1.7\n% compte rendu\n%%EOF\n"
    document = cda.read(cda.build_level_1(header, pdf))
    assert document.volet.name == "CDA-R2-N1"
    metadata = cda.deposit_metadata(document.header)
    assert metadata.unique_id == f"urn:oid:{header.document_id}"
    assert (metadata.patient.ins, metadata.patient.oid) == (EXAMPLE_INS, codes.INS_TEST_OID)
    assert (metadata.type_code, metadata.format_code) == ("11488-4", "urn:ihe:iti:xds-sd:pdf:2008")
    assert (metadata.facility_type, metadata.practice_setting) == ("SA07", "AMBULATOIRE")
    assert metadata.author.id_nat_ps == "810001234565"
    assert (metadata.author.profession, metadata.author.specialty) == ("10", "SM54")
    assert metadata.author.structure_id == "581234567800015"
    assert metadata.creation_time == header.created
    assert metadata.service_start == header.service_start
    assert non_xml_body(document.root, max_bytes=1_000_000) == ("application/pdf", pdf)


def test_a_pharmacist_without_specialty_is_written_as_a_bare_profession() -> None:
    author = dataclasses.replace(level1_header().author, profession="21", specialty=None,
                                 profession_label="Pharmacien")
    document = cda.read(cda.build_level_1(level1_header(author=author), b"%PDF-1.7"))
    assert document.header.author.code is not None
    assert document.header.author.code.code == "G15_21"
    assert (document.header.author.profession, document.header.author.specialty) == ("21", None)


def test_a_body_type_outside_the_cisis_list_is_refused() -> None:
    with pytest.raises(CdaError) as caught:
        cda.build_level_1(level1_header(), b"<html/>", "text/html")
    assert caught.value.code == "cda-unknown-media-type"


@needs_cisis
def test_the_built_document_passes_the_schema_and_the_header_schematron() -> None:
    cda.validate(cda.read(cda.build_level_1(level1_header(), a_pdf())))


@needs_cisis
def test_a_built_document_without_the_birth_place_fails_where_the_ins_trait_is() -> None:
    patient = dataclasses.replace(level1_header().patient, birth_place="")
    document = cda.read(cda.build_level_1(level1_header(patient=patient), b"%PDF-1.7"))
    with pytest.raises(CdaError) as caught:
        cda.validate(document)
    assert caught.value.code == "cda-schematron"
    assert (caught.value.location or "").endswith("/patient/birthplace/place/addr/county")
