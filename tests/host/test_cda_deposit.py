"""CDA documents checked by the host on arrival (host/documents/cda_check.py), through the
real deposit route: a CI-SIS CDA that passes its volet is stored; one that fails its
schematron, names another patient, declares another format, or is an XML bomb is refused with
its own code, and nothing is stored (no row, no body). A new version (relatesTo replaces) must
name the replaced one in its header (relatedDocument RPLC parentDocument/id = the replaced
DocumentReference's uniqueId), keep its setId and number itself above it; otherwise a specific
OperationOutcome and nothing stored, the old version still current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from host.store.schema import documents
from policies import default_matrix
from tests.cda_support import ALL, EXAMPLE_INS, VAC_NOTE, a_pdf, level1_header, needs_cisis
from tests.host.documents_support import (
    GP_CARD,
    PATIENT,
    Pki,
    deposit_bundle,
    entry_for,
    install_pki,
    make_pki,
    open_dossier,
)
from tests.host.harness import InProcessHost, Professional
from tests.host.test_documents_deposit import blob_files, counts, error_code, post, refused
from tests.unit.test_cda_xml_safety import BILLION_LAUGHS
from wire import cda, codes
from wire.cda.level1 import Level1Author, Level1Patient, new_oid
from wire.cda.replacement import Replaced
from wire.mhd import Patient

# Without the CI-SIS files (CI) these run in the optional mode (tests/conftest.py): every
# check but the schema and schematrons, which the tests marked `needs_cisis` need.
EXAMPLE_PATIENT = Patient(EXAMPLE_INS, codes.INS_TEST_OID)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture
def host(db_url: str, tmp_path: Path, pki: Pki) -> InProcessHost:
    host = InProcessHost(db_url, tmp_path)
    install_pki(pki, host)
    open_dossier(host)
    open_dossier(host, EXAMPLE_INS)
    return host


def gp_report(patient: Patient = PATIENT, **changes: object) -> bytes:
    """The GP's consultation report as a CDA level 1 document, for ``patient``. (The eye-test
    report type 34810-2 of the optician is not in JDV_J07, the DMP's document types: the
    header schematron refuses it; docs/cda.md.)"""
    who = GP_CARD
    header = level1_header(
        patient=Level1Patient(patient.ins, patient.oid, "DURAND", "Élodie", "F", "19840512",
                              "75056"),
        author=Level1Author(who.id_nat_ps, who.last_name, who.first_name, who.profession,
                            who.specialty, "Médecin", who.structure_id, "Cabinet médical du Parc"),
        **changes)
    return cda.build_level_1(header, a_pdf())


def cda_entry(data: bytes, who: Professional = GP_CARD, **changes: object) -> object:
    metadata = cda.deposit_metadata(cda.read(data).header)
    values: dict[str, object] = dict(format_code=metadata.format_code, type_code=metadata.type_code,
                                     mime_type=metadata.mime_type, title=metadata.title,
                                     unique_id=metadata.unique_id)
    values.update(changes)
    return entry_for(data, who, **values)


def deposit_of(pki: Pki, data: bytes, entry: object | None = None) -> dict[str, object]:
    entry = entry if entry is not None else cda_entry(data)
    return deposit_bundle(pki.gp, [(entry, data)], GP_CARD).bundle  # type: ignore[list-item]


def test_a_level_1_cda_that_passes_its_volet_is_stored(host: InProcessHost, pki: Pki) -> None:
    response = post(host, deposit_of(pki, gp_report()), GP_CARD)
    assert response.status_code == 200, response.text
    assert counts(host) == (2, 1)


def test_the_cisis_vaccination_note_is_stored_as_it_is(host: InProcessHost, pki: Pki) -> None:
    note = VAC_NOTE.read_bytes()
    entry = cda_entry(note, GP_CARD, patient=EXAMPLE_PATIENT, class_code="45",
                      type_code="87273-9")
    deposit = deposit_bundle(pki.gp, [(entry, note)], GP_CARD,  # type: ignore[list-item]
                             patient=EXAMPLE_PATIENT)
    response = post(host, deposit.bundle, GP_CARD)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("volet", sorted(ALL))
def test_each_cisis_example_is_stored_under_its_own_id(host: InProcessHost, pki: Pki,
                                                       volet: str) -> None:
    example = ALL[volet].read_bytes()
    metadata = cda.deposit_metadata(cda.read(example).header)
    kind = default_matrix().document_types[metadata.type_code]
    entry = cda_entry(example, GP_CARD, patient=EXAMPLE_PATIENT, class_code=kind.class_code)
    deposit = deposit_bundle(pki.gp, [(entry, example)], GP_CARD,  # type: ignore[list-item]
                             patient=EXAMPLE_PATIENT)
    response = post(host, deposit.bundle, GP_CARD)
    assert response.status_code == 200, response.text
    assert metadata.unique_id is not None
    with host.app.state.engine.connect() as connection:
        stored = connection.execute(select(documents.c.unique_id, documents.c.type_code)
                                    .where(documents.c.ins == EXAMPLE_INS)
                                    .where(documents.c.type_code != "E1762")).all()
    assert [tuple(row) for row in stored] == [(metadata.unique_id, metadata.type_code)]


def test_a_cda_under_another_unique_id_is_refused(host: InProcessHost, pki: Pki) -> None:
    report = gp_report()
    entry = cda_entry(report, unique_id="urn:oid:2.25.42")
    refused(host, deposit_of(pki, report, entry), 400, "cda-unique-id-mismatch", GP_CARD)


def test_a_pdf_declaring_a_cda_format_is_refused(host: InProcessHost, pki: Pki) -> None:
    # Format and MIME type agree both ways: a bare PDF is no VSM, no lab report.
    pdf = a_pdf()
    for format_code in ("urn:asip:ci-sis:vsm:2012", "urn:ihe:lab:xd-lab:2008"):
        deposit = deposit_bundle(pki.optician, [(entry_for(pdf, format_code=format_code), pdf)])
        refused(host, deposit.bundle, 400, "format-mime-mismatch")


def test_a_cda_about_another_patient_is_refused(host: InProcessHost, pki: Pki) -> None:
    refused(host, deposit_of(pki, gp_report(EXAMPLE_PATIENT)), 400, "cda-patient-mismatch",
            GP_CARD)


def test_a_format_code_the_cda_does_not_have_is_refused(host: InProcessHost, pki: Pki) -> None:
    report = gp_report()
    entry = cda_entry(report, format_code="urn:ihe:lab:xd-lab:2008")
    refused(host, deposit_of(pki, report, entry), 400, "cda-format-mismatch", GP_CARD)


@needs_cisis
def test_a_cda_failing_its_schematron_is_refused_with_the_assertion(host: InProcessHost,
                                                                   pki: Pki) -> None:
    broken = gp_report().replace(b"<county>75056</county>", b"<county></county>", 1)
    response = post(host, deposit_of(pki, broken), GP_CARD)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "cda-schematron"
    assert "/patient/birthplace/place/addr/county" in issue["diagnostics"]
    # The failing assertion's XPath, where FHIR puts a location in the document.
    assert len(issue["location"]) == 1
    assert issue["location"][0].endswith("/patient/birthplace/place/addr/county")
    assert counts(host) == (0, 0)


@needs_cisis
def test_a_structured_cda_failing_its_schematron_sent_raw_is_refused(host: InProcessHost,
                                                                   pki: Pki) -> None:
    # What the agent refuses before queueing, sent to the host by other software.
    vsm = ALL["VSM"].read_bytes().replace(b"<county>51215</county>", b"<county></county>", 1)
    entry = cda_entry(vsm, GP_CARD, patient=EXAMPLE_PATIENT, class_code="11")
    deposit = deposit_bundle(pki.gp, [(entry, vsm)], GP_CARD,  # type: ignore[list-item]
                             patient=EXAMPLE_PATIENT)
    response = post(host, deposit.bundle, GP_CARD)
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == "cda-schematron"
    assert issue["location"][0].endswith("/addr/county")
    assert counts(host) == (0, 0)


def test_an_xml_bomb_is_refused_unexpanded(host: InProcessHost, pki: Pki) -> None:
    entry = entry_for(BILLION_LAUGHS, format_code="urn:ihe:iti:xds-sd:pdf:2008",
                      mime_type="text/xml")
    deposit = deposit_bundle(pki.optician, [(entry, BILLION_LAUGHS)])
    refused(host, deposit.bundle, 400, "xml-entity-expansion")


def test_xml_that_is_not_a_cda_is_refused(host: InProcessHost, pki: Pki) -> None:
    data = b'<?xml version="1.0"?><report><line>vue 10/10</line></report>'
    entry = entry_for(data, format_code="urn:ihe:iti:xds-sd:pdf:2008", mime_type="text/xml")
    deposit = deposit_bundle(pki.optician, [(entry, data)])
    refused(host, deposit.bundle, 400, "cda-not-clinical-document")


def test_a_bare_pdf_deposit_is_not_checked_as_a_cda(host: InProcessHost, pki: Pki) -> None:
    # A bare PDF (application/pdf): no CDA check, as before this slice (docs/cda.md).
    pdf = a_pdf()
    deposit = deposit_bundle(pki.optician, [(entry_for(pdf), pdf)])
    assert post(host, deposit.bundle).status_code == 200



def first_version(host: InProcessHost, pki: Pki) -> cda.CdaHeader:
    report = gp_report()
    assert post(host, deposit_of(pki, report), GP_CARD).status_code == 200
    return cda.read(report).header


def replacement(pki: Pki, data: bytes, replaces: str) -> dict[str, Any]:
    entry = cda_entry(data, replaces=replaces)
    return deposit_bundle(pki.gp, [(entry, data)], GP_CARD).bundle  # type: ignore[list-item]


def statuses(host: InProcessHost) -> dict[str, str]:
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(select(documents.c.unique_id, documents.c.status)
                                  .where(documents.c.type_code != "E1762")).all()
    return {row.unique_id: row.status for row in rows}


def test_a_new_version_naming_the_replaced_one_is_stored_and_supersedes_it(
        host: InProcessHost, pki: Pki) -> None:
    old = first_version(host, pki)
    replaced = Replaced(f"urn:oid:{old.document_id}", old)
    new = gp_report(replaces=replaced.document_id, set_id=replaced.set_id,
                    version=replaced.next_version, title="Compte rendu, corrigé")
    header = cda.read(new).header
    assert (header.replaces, header.set_id, header.version) == (old.document_id, old.set_id, 2)
    assert header.document_id != old.document_id
    response = post(host, replacement(pki, new, f"urn:oid:{old.document_id}"), GP_CARD)
    assert response.status_code == 200, response.text
    assert statuses(host) == {f"urn:oid:{old.document_id}": "superseded",
                              f"urn:oid:{header.document_id}": "current"}


@pytest.mark.parametrize(("changes", "code"), [
    ({}, "cda-replacement-parent"),  # no relatedDocument at all
    ({"replaces": "2.25.42"}, "cda-replacement-parent"),  # names another document
    ({"set_id": "2.25.43"}, "cda-replacement-set-id"),
    ({"version": 1}, "cda-replacement-version"),
])
def test_a_new_version_that_does_not_name_the_replaced_one_is_refused(
        host: InProcessHost, pki: Pki, changes: dict[str, object], code: str) -> None:
    old = first_version(host, pki)
    values: dict[str, object] = {"replaces": old.document_id, "set_id": old.set_id,
                                 "version": 2, **changes}
    if not changes:
        del values["replaces"]
    new = gp_report(document_id=new_oid(), **values)
    before, blobs = counts(host), set(blob_files(host))
    response = post(host, replacement(pki, new, f"urn:oid:{old.document_id}"), GP_CARD)
    assert (response.status_code, error_code(response)) == (400, code), response.text
    assert counts(host) == before and set(blob_files(host)) == blobs  # nothing stored
    assert statuses(host)[f"urn:oid:{old.document_id}"] == "current"


def test_a_cda_that_says_it_replaces_a_current_document_is_refused_as_a_new_one(
        host: InProcessHost, pki: Pki) -> None:
    # Stored as new, the version it names would stay current beside it: two versions of one
    # report listed as two documents. One naming a version the DMP does not hold is new.
    elsewhere = gp_report(document_id=new_oid(), replaces=new_oid(), version=2)
    assert post(host, deposit_of(pki, elsewhere), GP_CARD).status_code == 200
    old = first_version(host, pki)
    new = gp_report(document_id=new_oid(), replaces=old.document_id, set_id=old.set_id,
                    version=2)
    before, blobs = counts(host), set(blob_files(host))
    response = post(host, deposit_of(pki, new), GP_CARD)
    assert (response.status_code, error_code(response)) == (
        400, "cda-replacement-undeclared"), response.text
    assert old.document_id in response.json()["issue"][0]["diagnostics"]
    assert counts(host) == before and set(blob_files(host)) == blobs  # nothing stored
    assert statuses(host)[f"urn:oid:{old.document_id}"] == "current"
