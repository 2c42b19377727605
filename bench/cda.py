"""Figures for the CDA slice of issue 15 (docs/cda.md): the schematron check of each CI-SIS
example (the first one in a process compiles the header schematron), and the PDF → PDF/A
conversion of a 1 MB and a 20 MB PDF (real pages: text and photographs, made with fpdf2).

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


def main() -> None:
    began = time.perf_counter()
    documents = {name: cda.read(path.read_bytes()) for name, path in ALL.items()}
    cda.validate(documents["CDA-R2-N1"])
    print(f"first check in a process (compiles the header schematron): "
          f"{time.perf_counter() - began:.1f} s")
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
