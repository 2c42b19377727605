"""Figures for the CDA slice of issue 15 (docs/cda.md): where a process's first check spends
its time (generating the header schematron's stylesheet with the ISO pipeline, which is kept
on disk, versus SaxonC compiling it, which every process pays), the schematron check of each
CI-SIS example, and the PDF → PDF/A conversion of a 1 MB and a 20 MB PDF (real pages: text
and photographs, made with fpdf2).

    .venv/bin/python -m bench.cda
"""

from __future__ import annotations

import io
import os
import statistics
import time

from fpdf import FPDF
from PIL import Image

from agent.core import pdfa
from tests.cda_support import ALL
from wire import cda
from wire.cda import schematron, volets

RUNS = 20


def pdf_of_size(megabytes: int) -> bytes:
    """A PDF of about ``megabytes`` MB: a page of text and a 1 MB photograph-like image each."""
    document = FPDF()
    document.set_font("helvetica", size=11)
    for page in range(megabytes):
        document.add_page()
        document.multi_cell(0, 6, f"Compte rendu, page {page + 1}. " + "Examen normal. " * 40)
        noise = Image.frombytes("RGB", (600, 560), os.urandom(600 * 560 * 3))
        buffer = io.BytesIO()
        noise.save(buffer, format="PNG")
        document.image(buffer, x=10, y=80, w=180)
    return bytes(document.output())


def stylesheet_costs() -> None:
    """The two parts of a first check, measured apart in this process."""
    sch = schematron.DATA_DIR / volets.HEADER_SCHEMATRON
    began = time.perf_counter()
    text = schematron._generate(sch)
    generated = time.perf_counter() - began
    began = time.perf_counter()
    builder = schematron._saxon().new_document_builder()
    builder.set_base_uri(sch.with_name(sch.name + ".xsl").as_uri())
    schematron._saxon().new_xslt30_processor().compile_stylesheet(
        stylesheet_node=builder.parse_xml(xml_text=text))
    compiled = time.perf_counter() - began
    print(f"header schematron: generate the stylesheet (ISO pipeline, {len(text) / 1e6:.1f} MB)"
          f" {generated:.1f} s — kept on disk, once; compile it (SaxonC-HE) {compiled:.1f} s"
          " — every process")


def main() -> None:
    began = time.perf_counter()
    documents = {name: cda.read(path.read_bytes()) for name, path in ALL.items()}
    cda.validate(documents["CDA-R2-N1"])
    print(f"first check in a process (the stylesheets kept: compiles them only): "
          f"{time.perf_counter() - began:.1f} s")
    stylesheet_costs()
    for name, document in documents.items():
        times = []
        for _ in range(RUNS):
            began = time.perf_counter()
            cda.validate(document)
            times.append(time.perf_counter() - began)
        size = len(ALL[name].read_bytes()) // 1024
        print(f"check {name} ({size} KB, schema + schematrons): median "
              f"{statistics.median(times) * 1e3:.0f} ms over {RUNS}")
    for megabytes in (1, 20):
        source = pdf_of_size(megabytes)
        began = time.perf_counter()
        converted = pdfa.convert(source)
        spent = time.perf_counter() - began
        print(f"PDF → PDF/A-2b, {len(source) / 1e6:.1f} MB → {len(converted) / 1e6:.1f} MB: "
              f"{spent:.2f} s")


if __name__ == "__main__":
    main()
