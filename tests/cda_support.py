"""The CI-SIS example documents (tests/cda_examples/README.md) and a level 1 header the tests
build from, shared by the CDA tests of the wire, the agent and the host."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wire.cda import schematron
from wire.cda.header import Code
from wire.cda.level1 import Level1Author, Level1Header, Level1Patient

EXAMPLES = Path(__file__).with_name("cda_examples")
LEVEL_1 = EXAMPLES / "DOC_NON_STRUCTURE_CDA-R2-N1.xml"
VSM = EXAMPLES / "VSM_1.4_2022.01.xml"
VAC_NOTE = EXAMPLES / "VAC-NOTE_2023.01.xml"
CR_BIO = EXAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
TROD = EXAMPLES / "BIO-TROD_2024.01_Angine.xml"  # a pharmacist's rapid strep test
OPH_BRE = EXAMPLES / "OPH-BRE_2022.02.xml"  # an optician's refraction report
ALL = {"CDA-R2-N1": LEVEL_1, "VSM": VSM, "VAC-NOTE": VAC_NOTE, "CR-BIO": CR_BIO,
       "BIO-TROD": TROD, "OPH-BRE": OPH_BRE}
EXAMPLE_INS = "279035121518989"  # the examples' test INS

needs_cisis = pytest.mark.skipif(
    not schematron.available("schematrons/moteur/iso_svrl_for_xslt2.xsl"),
    reason="the CI-SIS schematrons are not installed: run dmp-cisis-data (see "
           "wire/cda/cisis/README.md)")


@contextlib.contextmanager
def children_with_cisis() -> Iterator[None]:
    """The processes started inside (a live agent and host) get this process's CI-SIS files
    and the default, strict mode (tests/conftest.py gives the others none)."""
    saved = {name: os.environ.get(name) for name in ("DMP_CISIS_DIR", "DMP_CDA_CISIS")}
    os.environ["DMP_CISIS_DIR"] = str(schematron.data_dir())
    if schematron.available("schematrons/moteur/iso_svrl_for_xslt2.xsl"):
        os.environ["DMP_CDA_CISIS"] = "required"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def a_pdf() -> bytes:
    """A real PDF (fpdf2, through the agent's secrets sheet: the tests' PDF maker)."""
    from agent.core.secrets_sheet import EmergencyConsents, SecretsSheet, render_pdf

    return render_pdf(SecretsSheet("Élodie", "DURAND", "12/05/1984", "284057511402312",
                                   "K7PM-Q2XR-9HTW", EmergencyConsents(), dt.date(2026, 12, 1),
                                   "Claire MARTIN", "Cabinet médical du Parc"))


@functools.cache
def report_pdf(title: str = "Compte rendu", *lines: str) -> bytes:
    """A real one-page report PDF (the sandbox's maker): what a deposit carries now becomes
    a PDF/A, so the tests' documents must be PDFs Ghostscript can read."""
    from agent.sandbox.cda_deposits import report_pdf as make

    return make(title, list(lines))


def level1_header(**changes: object) -> Level1Header:
    """A GP's consultation report for the examples' test patient."""
    values: dict[str, object] = dict(
        patient=Level1Patient(EXAMPLE_INS, "1.2.250.1.213.1.4.10", "PAT-TROIS",
                              "DOMINIQUE MARIE-LOUISE", "F", "19790328", "51215"),
        author=Level1Author("810001234565", "MARTIN", "Claire", "10", "SM54",
                            "Médecin - Spécialiste en Médecine Générale (SM)",
                            "581234567800015", "Cabinet médical du Parc"),
        type_code=Code("11488-4", "2.16.840.1.113883.6.1", "Compte rendu de consultation"),
        title="Compte rendu de consultation",
        facility_type=Code("SA07", "1.2.250.1.71.4.2.4", "Cabinet individuel"),
        practice_setting=Code("AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire"),
        service_start=dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC),
        created=dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC),
    )
    values.update(changes)
    return Level1Header(**values)  # type: ignore[arg-type]


def for_patient(data: bytes, ins: str, oid: str) -> bytes:
    """A CI-SIS example about another patient: its recordTarget's INS (the examples' test
    INS) replaced by ``ins`` under ``oid``, nothing else changed (the session's patient of a
    live test is a virtual Vitale card's)."""
    from lxml import etree

    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    ids = root.findall("{urn:hl7-org:v3}recordTarget/{urn:hl7-org:v3}patientRole/"
                       "{urn:hl7-org:v3}id")
    found = [node for node in ids if node.get("extension") == EXAMPLE_INS]
    assert len(found) == 1, "the example's INS"
    found[0].set("extension", ins)
    found[0].set("root", oid)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def as_version(data: bytes, document_id: str, replaces: object | None = None) -> bytes:
    """The CDA ``data`` under ClinicalDocument/id ``document_id``; with ``replaces`` (the
    replaced version's `CdaHeader`), as its next version the way practice software writes
    one: relatedDocument RPLC naming it, its setId, the next versionNumber."""
    from lxml import etree

    from wire.cda.header import CdaHeader

    n = "{urn:hl7-org:v3}"
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    ident = root.find(f"{n}id")
    assert ident is not None
    ident.attrib.clear()
    ident.set("root", document_id)
    if isinstance(replaces, CdaHeader):
        set_root, _, set_extension = (replaces.set_id or "").partition("^")
        set_id = root.find(f"{n}setId")
        version = root.find(f"{n}versionNumber")
        assert set_id is not None and version is not None
        set_id.attrib.clear()
        set_id.set("root", set_root)
        if set_extension:
            set_id.set("extension", set_extension)
        version.set("value", str((replaces.version or 1) + 1))
        related = etree.Element(f"{n}relatedDocument", typeCode="RPLC")
        parent_root, _, parent_extension = replaces.document_id.partition("^")
        parent_id = etree.SubElement(etree.SubElement(related, f"{n}parentDocument"), f"{n}id",
                                     root=parent_root)
        if parent_extension:
            parent_id.set("extension", parent_extension)
        # CDA R2's order: ... documentationOf, relatedDocument, authorization, componentOf
        root.findall(f"{n}documentationOf")[-1].addnext(related)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
