"""Deposits as CDA R2 documents through the real agent (its local API, real cards in the real
pcscd, the real host over mutual TLS): a PDF arrives as a level 1 CDA whose metadata are its
header; the CI-SIS example documents (VSM, CR-BIO, vaccination note, level 1) are checked,
deposited, found, retrieved byte for byte, viewed and read into the summary; a failing or
foreign CDA is refused by the agent with nothing queued; a replacement names the version it
replaces (relatedDocument RPLC, setId, versionNumber), and a structured one that does not is
refused before anything is queued.

With the CI-SIS files (scripts/cisis-data) every check runs; without them (CI: the files are
not redistributable) the tests run in the explicit optional mode tests/conftest.py selects,
and each deposit's answer says which checks were skipped (docs/cda.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.core import pdfa
from tests.cda_support import (
    ALL,
    OPH_BRE,
    TROD,
    VAC_NOTE,
    VSM,
    a_pdf,
    as_version,
    children_with_cisis,
    for_patient,
    needs_cisis,
    report_pdf,
)
from tests.live import LiveWorld, live_world
from tests.localapi.sessions import qualified_session
from wire import cda
from wire.cda.header import non_xml_body
from wire.cda.level1 import new_oid

pytestmark = pytest.mark.pcsc
SKIPPED = [] if cda.cisis_state().installed else ["cda-xsd", "cda-schematron"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[LiveWorld]:
    """The live agent and host with this machine's CI-SIS files (the full checks), when it
    has them; in the optional mode otherwise, as in CI."""
    with children_with_cisis(), live_world(tmp_path_factory.mktemp("live-cda")) as world:
        yield world


def _session_patient(gp_api: httpx.Client) -> dict[str, str]:
    return dict(gp_api.get("/api/status").json()["patient"]["patient"])


def _queued(gp_api: httpx.Client) -> int:
    outbox = gp_api.get("/api/outbox").json()
    return int(outbox["pending"]) + len(outbox["items"])


def _deposit(gp_api: httpx.Client, data: bytes, mime: str, **params: str) -> httpx.Response:
    return gp_api.post("/api/deposits", params=params, content=data,
                       headers={"content-type": mime}, timeout=120)


def _sent(live: LiveWorld) -> None:
    live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0 and not s["outbox"]["items"],
                        timeout=120)


def test_a_pdf_arrives_as_a_level_1_cda_whose_metadata_are_its_header(
        live: LiveWorld, gp_api: httpx.Client) -> None:
    answer = _deposit(gp_api, a_pdf(), "application/pdf", typeCode="11488-4",
                      title="Consultation du 6 décembre")
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["volet"] == "CDA-R2-N1" and queued["formatCode"] == "urn:ihe:iti:xds-sd:pdf:2008"
    assert queued.get("skippedChecks", []) == SKIPPED
    _sent(live)
    unique_id = queued["uniqueId"]
    content = gp_api.get(f"/api/documents/{unique_id}/content")
    assert content.status_code == 200
    document = cda.read(content.content)
    metadata = cda.deposit_metadata(document.header)
    # One source: what the DMP lists is what the header says.
    listed = {d["uniqueId"]: d for d in gp_api.get("/api/documents").json()}[unique_id]
    assert unique_id == metadata.unique_id
    assert (listed["typeCode"], listed["title"], listed["mimeType"]) == (
        metadata.type_code, metadata.title, "text/xml") == (
        "11488-4", "Consultation du 6 décembre", "text/xml")
    patient = _session_patient(gp_api)
    assert (metadata.patient.ins, metadata.patient.oid) == (patient["ins"], patient["insOid"])
    assert document.header.patient.birth_name == patient["birthName"]
    gp = gp_api.get("/api/status").json()["session"]
    assert metadata.author.id_nat_ps == listed["authorId"] == gp["professional"]["idNatPs"]
    media_type, body = non_xml_body(document.root, max_bytes=20_000_000)
    assert media_type == "application/pdf" and pdfa.is_pdfa(body)
    if not SKIPPED:  # the header schematron passes (the files are here)
        assert cda.validate(document) == ()
    assert live.stored(patient["ins"]).count((unique_id, "Consultation du 6 décembre",
                                              "11488-4")) == 1


# The section of the dossier's summary each volet feeds (docs/cda-viewer.md); a level 1
# document feeds none.
SECTION_OF = {"VSM": "treatments", "VAC-NOTE": "vaccinations", "CR-BIO": "labResults",
              "BIO-TROD": "labResults", "OPH-BRE": None, "CDA-R2-N1": None}
VIEW_KIND = {"VSM": "html", "VAC-NOTE": "html", "CR-BIO": "html", "BIO-TROD": "html",
             "OPH-BRE": "html", "CDA-R2-N1": "pdf"}


@pytest.mark.parametrize("volet", sorted(ALL))
def test_a_cisis_example_is_validated_deposited_found_viewed_and_summarised(
        live: LiveWorld, gp_api: httpx.Client, volet: str) -> None:
    """End to end, each CI-SIS example: checked by the agent (schema and schematrons with the
    files) and by the host on arrival, deposited, found by type, retrieved byte for byte,
    shown by the viewer, and read into the dossier's summary."""
    patient = _session_patient(gp_api)
    example = for_patient(ALL[volet].read_bytes(), patient["ins"], patient["insOid"])
    metadata = cda.deposit_metadata(cda.read(example).header)
    answer = _deposit(gp_api, example, "text/xml", typeCode=metadata.type_code)
    assert answer.status_code == 202, answer.text
    assert answer.json()["volet"] == volet
    assert answer.json().get("skippedChecks", []) == SKIPPED  # validated, or said skipped
    assert answer.json()["uniqueId"] == metadata.unique_id
    _sent(live)
    assert (metadata.unique_id, metadata.title, metadata.type_code) in live.stored(
        patient["ins"])  # the host's checks passed too
    found = gp_api.get("/api/documents", params={"typeCode": metadata.type_code}).json()
    assert metadata.unique_id in [d["uniqueId"] for d in found]
    body = gp_api.get(f"/api/documents/{metadata.unique_id}/content")
    assert body.status_code == 200 and body.content == example

    shown = gp_api.get(f"/api/documents/{metadata.unique_id}/view")
    assert shown.status_code == 200, shown.text
    assert shown.headers["x-view-kind"] == VIEW_KIND[volet]
    if VIEW_KIND[volet] == "html":
        assert shown.headers["x-view-volet"] == volet
        assert "<script" not in shown.text.lower()
    else:
        assert shown.content.startswith(b"%PDF-")

    summary = gp_api.get("/api/patient/sections").json()
    assert summary["problems"] == []
    sources = {s["key"]: [source["uniqueId"] for source in s["sources"]]
               for s in summary["sections"]}
    section = SECTION_OF[volet]
    if section is None:
        assert all(metadata.unique_id not in ids for ids in sources.values())
    else:
        assert metadata.unique_id in sources[section]
        fed = next(s for s in summary["sections"] if s["key"] == section)
        assert fed["status"] == "ok"


def test_a_cda_about_another_patient_is_refused_and_nothing_is_queued(
        gp_api: httpx.Client) -> None:
    before = _queued(gp_api)
    answer = _deposit(gp_api, VAC_NOTE.read_bytes(), "text/xml", typeCode="87273-9")
    assert answer.status_code == 422
    assert answer.json()["code"] == "cda-patient-mismatch"
    assert _queued(gp_api) == before


def test_xml_that_is_no_cda_or_a_bomb_is_refused_before_anything_is_queued(
        gp_api: httpx.Client) -> None:
    before = _queued(gp_api)
    bomb = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]>'
            b'<ClinicalDocument xmlns="urn:hl7-org:v3">&x;</ClinicalDocument>')
    for data, code in ((bomb, "xml-"), (b"<report/>", "cda-not-clinical-document"),
                       (b"%PDF-1.4 not a pdf", "pdf-unreadable")):
        mime = "application/pdf" if data.startswith(b"%PDF") else "text/xml"
        answer = _deposit(gp_api, data, mime, typeCode="11488-4")
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"].startswith(code), answer.text
    assert _queued(gp_api) == before


@needs_cisis
def test_a_structured_cda_failing_its_schematron_is_refused_with_the_rule_and_xpath(
        gp_api: httpx.Client) -> None:
    patient = _session_patient(gp_api)
    vsm = for_patient(VSM.read_bytes(), patient["ins"], patient["insOid"])
    broken = vsm.replace(b"<county>51215</county>", b"<county></county>", 1)
    assert broken != vsm
    before = _queued(gp_api)
    answer = _deposit(gp_api, broken, "text/xml", typeCode="60591-5")
    assert answer.status_code == 422, answer.text
    refusal = answer.json()
    assert refusal["code"] == "cda-schematron"
    assert refusal["rule"] and refusal["location"].endswith("/addr/county")
    assert _queued(gp_api) == before


def _replace(gp_api: httpx.Client, unique_id: str, data: bytes, mime: str) -> httpx.Response:
    return gp_api.post(f"/api/documents/{unique_id}/replace", content=data,
                       headers={"content-type": mime}, timeout=120)


def test_a_replaced_report_names_the_version_it_replaces(
        live: LiveWorld, gp_api: httpx.Client) -> None:
    ins = _session_patient(gp_api)["ins"]
    first = _deposit(gp_api, a_pdf(), "application/pdf", typeCode="11488-4",
                     title="Consultation du 7 décembre")
    assert first.status_code == 202, first.text
    _sent(live)
    old_id = first.json()["uniqueId"]
    old = cda.read(gp_api.get(f"/api/documents/{old_id}/content").content).header

    answer = _replace(gp_api, old_id, report_pdf("Compte rendu corrigé", "Tension 13/8."),
                      "application/pdf")
    assert answer.status_code == 202, answer.text
    _sent(live)
    new_id = answer.json()["uniqueId"]
    new = cda.read(gp_api.get(f"/api/documents/{new_id}/content").content).header
    # CDA R2 / CI-SIS: a new id, the replaced one named (RPLC), the same set, the next version.
    assert new.document_id != old.document_id and new_id != old_id
    assert (new.replaces, new.set_id, new.version) == (old.document_id, old.set_id, 2)
    current = [unique_id for unique_id, *_rest in live.stored(ins)]
    assert new_id in current and old_id not in current


def test_a_structured_replacement_must_name_the_version_it_replaces(
        live: LiveWorld, gp_api: httpx.Client) -> None:
    patient = _session_patient(gp_api)
    vsm = for_patient(VSM.read_bytes(), patient["ins"], patient["insOid"])
    first = as_version(vsm, new_oid())
    old = cda.read(first).header
    answer = _deposit(gp_api, first, "text/xml", typeCode="60591-5")
    assert answer.status_code == 202, answer.text
    _sent(live)
    old_id = answer.json()["uniqueId"]

    before = _queued(gp_api)
    unnamed = as_version(vsm, new_oid())  # a new VSM that does not say what it replaces
    refused = _replace(gp_api, old_id, unnamed, "text/xml")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "cda-replacement-parent"
    assert "relatedDocument" in refused.json()["message"]
    assert _queued(gp_api) == before  # nothing sent

    named = as_version(vsm, new_oid(), replaces=old)
    answer = _replace(gp_api, old_id, named, "text/xml")
    assert answer.status_code == 202, answer.text
    assert answer.json().get("skippedChecks", []) == SKIPPED
    _sent(live)
    current = [unique_id for unique_id, *_rest in live.stored(patient["ins"])]
    assert answer.json()["uniqueId"] in current and old_id not in current


def test_a_practice_cda_that_says_it_replaces_a_document_is_deposited_as_its_new_version(
        live: LiveWorld, gp_api: httpx.Client) -> None:
    # The practice's software made a corrected VSM (relatedDocument RPLC): dropped on the
    # ordinary deposit, it becomes the new version (deposited as new, the old one would stay
    # current beside it); one naming a version the DMP does not hold is a new document.
    patient = _session_patient(gp_api)
    vsm = for_patient(VSM.read_bytes(), patient["ins"], patient["insOid"])
    first = as_version(vsm, new_oid())
    answer = _deposit(gp_api, first, "text/xml", typeCode="60591-5")
    assert answer.status_code == 202, answer.text
    _sent(live)
    old_id = answer.json()["uniqueId"]

    elsewhere = dataclasses.replace(cda.read(first).header, document_id=new_oid())
    answer = _deposit(gp_api, as_version(vsm, new_oid(), replaces=elsewhere), "text/xml",
                      typeCode="60591-5")
    assert answer.status_code == 202, answer.text
    assert "replaces" not in answer.json()
    _sent(live)
    assert answer.json()["uniqueId"] in [u for u, *_rest in live.stored(patient["ins"])]

    corrected = as_version(vsm, new_oid(), replaces=cda.read(first).header)
    answer = _deposit(gp_api, corrected, "text/xml", typeCode="60591-5")
    assert answer.status_code == 202, answer.text
    assert answer.json()["replaces"]["uniqueId"] == old_id
    _sent(live)
    current = [unique_id for unique_id, *_rest in live.stored(patient["ins"])]
    assert answer.json()["uniqueId"] in current and old_id not in current


@pytest.mark.parametrize(("profile", "example", "refused"), [
    ("pharmacist", TROD, OPH_BRE),  # the rapid strep test done at the counter
    ("optician", OPH_BRE, TROD),  # the refraction report of the optician's shop
])
def test_the_counter_and_the_shop_deposit_their_own_structured_documents(
        live: LiveWorld, insert_card: Any, profile: str, example: Path, refused: Path) -> None:
    # The CI-SIS examples of the volets a pharmacist (BIO-TROD) and an optician (OPH-BRE)
    # write, each deposited under its own card; the other's is not a type they may deposit.
    with qualified_session(live, insert_card, profile) as api:
        patient = _session_patient(api)
        # Under an id of its own: the GP's test above deposited the example itself.
        own = as_version(for_patient(example.read_bytes(), patient["ins"], patient["insOid"]),
                         new_oid())
        metadata = cda.deposit_metadata(cda.read(own).header)
        # A file the agent wraps needs its type; a CDA names its own (no typeCode).
        wrapped = _deposit(api, a_pdf(), "application/pdf")
        assert (wrapped.status_code, wrapped.json()["code"]) == (400, "bad-request")
        answer = _deposit(api, own, "text/xml")
        assert answer.status_code == 202, answer.text
        assert answer.json()["title"] == metadata.title
        assert answer.json().get("skippedChecks", []) == SKIPPED
        _sent(live)
        assert (metadata.unique_id, metadata.title, metadata.type_code) in live.stored(
            patient["ins"])
        before = _queued(api)
        other = for_patient(refused.read_bytes(), patient["ins"], patient["insOid"])
        answer = _deposit(api, other, "text/xml", typeCode="11488-4")
        assert (answer.status_code, answer.json()["code"]) == (400, "bad-type"), answer.text
        assert _queued(api) == before
