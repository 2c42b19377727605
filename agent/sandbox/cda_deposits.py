"""The sandbox's deposits as CDA R2 documents (docs/cda.md): what the CDA checks will do on
this machine, said before anything starts; a report PDF made here (a real one: it becomes a
PDF/A in a level 1 CDA); a structured CI-SIS example (the VSM) deposited as practice
software would, when the CI-SIS files and the example documents are here.

The CI-SIS files are not redistributable (wire/cda/cisis/README.md): a machine without them
runs the sandbox in the explicit optional mode (schema and schematrons skipped, said here,
in the host's start line and in each deposit's result), never silently."""

from __future__ import annotations

import os
from pathlib import Path

from agent.i18n import _
from wire import cda

from .services import say

# The CI-SIS example documents the tests use (tests/cda_examples/README.md): present in a
# checkout of the project, not in an installed package.
EXAMPLES = Path(__file__).resolve().parents[2] / "tests" / "cda_examples"
VSM_EXAMPLE = EXAMPLES / "VSM_1.4_2022.01.xml"


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


def structured_example(ins: str, oid: str) -> bytes | None:
    """The CI-SIS VSM example about the sandbox's patient (its test INS replaced), or None
    when the example or the CI-SIS files are absent (a structured document is deposited
    only when its volet's schematrons can check it)."""
    if not VSM_EXAMPLE.is_file() or not cda.cisis_state().installed:
        say(_("structured VSM not deposited: the CI-SIS files are absent"))
        return None
    # The example's one INS (TestContenuCDA's test INS, OID of test INS) becomes hers.
    example = VSM_EXAMPLE.read_bytes()
    test_ins = b'extension="279035121518989" root="1.2.250.1.213.1.4.10"'
    assert example.count(test_ins) == 1, "the VSM example's patient"
    return example.replace(test_ins, f'extension="{ins}" root="{oid}"'.encode())


def said(skipped: tuple[str, ...]) -> str:
    return (_(" (checks skipped: {checks})").format(checks=", ".join(skipped)) if skipped
            else _(" (CI-SIS schema and schematrons passed)"))
