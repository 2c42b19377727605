"""The CDA header read into typed values, and the deposit metadata derived from it
(wire.cda.header, wire.cda.metadata), on the CI-SIS's own example documents."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.cda_support import CR_BIO, EXAMPLE_INS, LEVEL_1, OPH_BRE, TROD, VAC_NOTE, VSM
from wire import cda, codes
from wire.cda.errors import CdaError

PARIS_WINTER = dt.timezone(dt.timedelta(hours=1))


def test_the_level_1_example_header() -> None:
    document = cda.read(LEVEL_1.read_bytes())
    header = document.header
    assert document.volet.name == "CDA-R2-N1" and header.level == 1
    assert header.body is cda.BodyKind.NON_XML and header.media_type == "application/pdf"
    assert header.document_id == "1.3.6.1.4.1.19376.1.2.20.12345.1.1"
    assert header.code == cda.Code("11502-2", "2.16.840.1.113883.6.1", "CR d'examens biologiques")
    assert header.effective_time == dt.datetime(2021, 4, 1, 13, 47, 45, tzinfo=PARIS_WINTER)
    assert (header.confidentiality, header.language) == ("N", "fr-FR")
    patient = header.patient
    assert (patient.ins, patient.ins_oid) == (EXAMPLE_INS, codes.INS_TEST_OID)
    assert (patient.birth_name, patient.given_names, patient.sex, patient.birth_date) == (
        "PAT-TROIS", "DOMINIQUE MARIE-LOUISE", "F", "19790328")
    author = header.author
    assert (author.id, author.profession, author.specialty) == ("801234534765", "10", "SM03")
    assert author.organization == cda.Organization("1120459876", "1.2.250.1.71.4.2.2",
                                                   "Laboratoire des charmes")
    assert header.legal_authenticator is not None
    assert header.legal_authenticator.id == "807505123456"
    assert header.custodian is not None and header.custodian.id == "1120459876"
    assert header.service_start == dt.datetime(2021, 1, 4, 13, 47, tzinfo=PARIS_WINTER)
    assert header.service_stop == dt.datetime(2021, 1, 4, 13, 55, tzinfo=PARIS_WINTER)
    assert header.facility_type is not None and header.facility_type.code == "SA07"
    assert header.practice_setting is not None and header.practice_setting.code == "AMBULATOIRE"


def test_the_metadata_a_deposit_needs_come_from_the_header() -> None:
    metadata = cda.deposit_metadata(cda.read(LEVEL_1.read_bytes()).header)
    assert metadata.unique_id == "urn:oid:1.3.6.1.4.1.19376.1.2.20.12345.1.1"
    assert metadata.patient.ins == EXAMPLE_INS and metadata.patient.oid == codes.INS_TEST_OID
    assert (metadata.type_code, metadata.type_system) == ("11502-2", "http://loinc.org")
    assert metadata.format_code == "urn:ihe:iti:xds-sd:pdf:2008"
    assert metadata.mime_type == "text/xml"
    assert (metadata.facility_type, metadata.practice_setting) == ("SA07", "AMBULATOIRE")
    assert metadata.author.id_nat_ps == "801234534765"
    assert metadata.author.structure_id == "1120459876"
    assert (metadata.author.profession, metadata.author.specialty) == ("10", "SM03")
    assert metadata.title == "Compte rendu d'examens biologiques"
    assert metadata.service_start is not None and metadata.service_stop is not None


@pytest.mark.parametrize(("path", "volet", "format_code", "type_code"), [
    # The VSM's TRE_A05 "SYNTH" reads as the access matrix's "Synthèse médicale" 60591-5.
    (VSM, "VSM", "urn:asip:ci-sis:vsm:2012", "60591-5"),
    (VAC_NOTE, "VAC-NOTE", "urn:asip:ci-sis:vac-note:2021", "87273-9"),
    (CR_BIO, "CR-BIO", "urn:ihe:lab:xd-lab:2008", "11502-2"),
    (TROD, "BIO-TROD", "urn:ans:ci-sis:trod:2024", "96173-0"),
    # J07's 78513-9 "CR de consultation en ophtalmologie" reads as the matrix's 34807-8.
    (OPH_BRE, "OPH-BRE", "urn:ihe:eyecare:geneyeevalcn:2014", "34807-8"),
])
def test_structured_volets_and_their_format_codes(path: object, volet: str, format_code: str,
                                                  type_code: str) -> None:
    document = cda.read(path.read_bytes())  # type: ignore[attr-defined]
    assert document.volet.name == volet and document.header.level == 3
    metadata = cda.deposit_metadata(document.header)
    assert (metadata.format_code, metadata.type_code, metadata.level) == (format_code, type_code, 3)
    assert metadata.format_code in codes.FORMATS
    assert metadata.mime_type in codes.MIME_TYPES_BY_FORMAT[metadata.format_code]


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def test_an_unknown_volet_is_refused() -> None:
    data = _replace(VAC_NOTE.read_bytes(), b'root="1.2.250.1.213.1.1.1.46"',
                    b'root="1.2.250.1.213.1.1.1.999"')
    with pytest.raises(CdaError) as caught:
        cda.read(data)
    assert caught.value.code == "cda-unknown-volet"


def test_a_header_without_an_ins_is_refused() -> None:
    data = _replace(VAC_NOTE.read_bytes(), b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4"')
    with pytest.raises(CdaError) as caught:
        cda.read(data)
    assert caught.value.code == "cda-no-ins"


def test_a_level_1_body_of_an_unlisted_media_type_has_no_format_code() -> None:
    data = _replace(LEVEL_1.read_bytes(), b'mediaType="application/pdf"',
                    b'mediaType="text/html"')
    with pytest.raises(CdaError) as caught:
        cda.deposit_metadata(cda.read(data).header)
    assert caught.value.code == "cda-unknown-media-type"


def test_the_level_1_body_decodes_to_the_pdf() -> None:
    media_type, body = cda.header.non_xml_body(cda.read(LEVEL_1.read_bytes()).root,
                                               max_bytes=10_000_000)
    assert media_type == "application/pdf" and body.startswith(b"%PDF-")


@pytest.mark.parametrize(("value", "offset"), [
    ("20240106113623+0100", dt.timedelta(hours=1)),
    # The schema's TS allows 1 to 4 offset digits; the CI-SIS TROD examples write "+100".
    ("20240106113623+100", dt.timedelta(hours=1)),
    ("20240106113623-0530", -dt.timedelta(hours=5, minutes=30)),
    ("20240106113623.1234567+0000", dt.timedelta(0)),
])
def test_hl7_times_read_as_the_cda_schema_writes_them(value: str, offset: dt.timedelta) -> None:
    moment = cda.header.parse_ts(value, "time")
    assert moment.utcoffset() == offset
    assert (moment.year, moment.month, moment.day, moment.hour) == (2024, 1, 6, 11)


@pytest.mark.parametrize("value", ["20240106113623+0160", "20240106113623+1500",
                                   "20240106113623+01000", "2024-01-06"])
def test_a_time_the_schema_or_a_clock_refuses_is_refused(value: str) -> None:
    with pytest.raises(CdaError) as caught:
        cda.header.parse_ts(value, "time")
    assert caught.value.code == "cda-invalid-time"
