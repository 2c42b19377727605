"""The sandbox's deposits as CDA R2 documents (docs/cda.md): what the CDA checks will do on
this machine, said before anything starts; a report PDF made here (a real one: it becomes a
PDF/A in a level 1 CDA); the structured CI-SIS examples (VSM, CR-BIO, vaccination note;
the pharmacist's rapid test, the optician's refraction report) deposited as the
professionals' software would, when the CI-SIS files and the example documents are
here; and the dossier's summary read back from them (`show_summary`).

The CI-SIS files are not redistributable (wire/cda/cisis/README.md): a machine without them
runs the sandbox in the explicit optional mode (schema and schematrons skipped, said here,
in the host's start line and in each deposit's result), never silently."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from agent.i18n import _
from wire import cda

from .services import say

if TYPE_CHECKING:
    from agent.client.dmp import DmpClient, PatientContext

# The CI-SIS example documents the tests use (tests/cda_examples/README.md): present in a
# checkout of the project, not in an installed package.
EXAMPLES = Path(__file__).resolve().parents[2] / "tests" / "cda_examples"
VSM_EXAMPLE = EXAMPLES / "VSM_1.4_2022.01.xml"
# The structured examples a practice's software would send, in the order the GP deposits them.
STRUCTURED_EXAMPLES = (VSM_EXAMPLE, EXAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml",
                       EXAMPLES / "VAC-NOTE_2023.01.xml")
# The pharmacist's rapid strep test (BIO-TROD) and the optician's refraction report (OPH-BRE).
TROD_EXAMPLE = EXAMPLES / "BIO-TROD_2024.01_Angine.xml"
OPH_BRE_EXAMPLE = EXAMPLES / "OPH-BRE_2022.02.xml"
# The examples' one INS (TestContenuCDA's test INS, under the test INS OID).
EXAMPLE_INS = b'extension="279035121518989" root="1.2.250.1.213.1.4.10"'


def choose_cda_mode() -> cda.CisisState:
    """Before the host starts (it inherits the environment): the optional mode when the
    CI-SIS files are absent and nobody chose a mode; what the checks will do, said."""
    if cda.CISIS_MODE_VARIABLE not in os.environ and not cda.cisis_state().installed:
        os.environ[cda.CISIS_MODE_VARIABLE] = "optional"
    state = cda.cisis_state()
    say(_("CDA checks: {state}").format(state=state.describe()))
    if state.installed:
        cda.preload()  # compiled in the worker process while the first scenes play
    return state


def report_pdf(title: str, lines: list[str]) -> bytes:
    """A one-page report (fpdf2, as the secrets sheet is made)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=11)
    for line in lines:
        pdf.multi_cell(0, 7, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def structured_examples(ins: str, oid: str, paths: tuple[Path, ...] = STRUCTURED_EXAMPLES
                        ) -> list[tuple[str, bytes]]:
    """The CI-SIS examples ``paths`` (by default the VSM, CR-BIO and vaccination note) about
    the sandbox's patient (the examples' test INS replaced by hers), each with its type
    code; none when the examples or the CI-SIS files are absent (a structured document is
    deposited only when its volet's schematrons can check it)."""
    if not all(path.is_file() for path in paths) or not cda.cisis_state().installed:
        say(_("structured documents ({names}) not deposited: the CI-SIS files are "
              "absent").format(names=", ".join(path.stem for path in paths)))
        return []
    out = []
    for path in paths:
        example = path.read_bytes()
        assert example.count(EXAMPLE_INS) == 1, f"the patient of {path.name}"
        data = example.replace(EXAMPLE_INS, f'extension="{ins}" root="{oid}"'.encode())
        out.append((cda.deposit_metadata(cda.read(data).header).type_code, data))
    return out


def show_summary(dmp: DmpClient, patient: PatientContext) -> None:
    """The dossier's summary as the page shows it (`agent.core.dossier_sections`), from the
    structured documents now in the DMP: one line a section that has a source."""
    from agent.core import dossier_sections as sections

    names = {"allergies": _("Allergies"), "history": _("Medical history"),
             "bloodGroup": _("Blood group"), "pathologies": _("Current pathologies"),
             "treatments": _("Current treatments"), "vaccinations": _("Vaccinations"),
             "labResults": _("Lab results"), "emergencyContacts": _("Emergency contacts")}
    parsed = [sections.Parsed(sections.Source(entry.unique_id, entry.title,
                                              entry.creation_time, entry.format_code),
                              cda.read(dmp.retrieve(entry)).root)
              for entry in dmp.documents(patient)
              if entry.format_code in sections.SOURCE_FORMATS]
    for section in sections.sections(parsed):
        if section.status == "no-source":
            continue
        found = section.analyses or section.items
        first = (section.analyses[0]["label"] if section.analyses
                 else section.items[0].label if section.items else "")
        say(_("summary — {section}: {count} recorded{first}; from {sources}").format(
            section=names[section.key], count=len(found),
            first=f" ({first})" if first else "",
            sources=", ".join(f"« {source.title} »" for source in section.sources)))


def said(skipped: tuple[str, ...]) -> str:
    return (_(" (checks skipped: {checks})").format(checks=", ".join(skipped)) if skipped
            else _(" (CI-SIS schema and schematrons passed)"))
