"""Figures for the viewer of issue 15 (docs/cda-viewer.md): rendering each CI-SIS level 3
example to sanitised HTML (the first render compiles our stylesheet), showing the level 1
example's PDF, and reading the dossier's sections from the three structured examples.

    .venv/bin/python -m bench.cda_view
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable

from agent.core import cda_view, dossier_sections
from tests.cda_support import ALL, CR_BIO, VAC_NOTE, VSM
from wire.cda import safe_xml

RUNS = 20


def median_ms(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    began = time.perf_counter()
    cda_view.view(VSM.read_bytes(), "text/xml", "VSM")
    print(f"first render in a process (stylesheet compiled), VSM: "
          f"{(time.perf_counter() - began) * 1000:.0f} ms")
    for volet, path in ALL.items():
        data = path.read_bytes()
        took = median_ms(lambda data=data, volet=volet: cda_view.view(data, "text/xml", volet))
        print(f"view {volet} example, {len(data) // 1024} KB, median of {RUNS}: {took:.1f} ms")
    formats = {VSM: dossier_sections.VSM_FORMAT, VAC_NOTE: dossier_sections.VAC_NOTE_FORMAT,
               CR_BIO: dossier_sections.CR_BIO_FORMAT}
    when = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

    def sections() -> None:
        parsed = [dossier_sections.Parsed(dossier_sections.Source(p.name, p.name, when, f),
                                          safe_xml.parse(p.read_bytes()))
                  for p, f in formats.items()]
        dossier_sections.sections(parsed)

    print(f"sections from VSM + VAC-NOTE + CR-BIO (parse included), median of {RUNS}: "
          f"{median_ms(sections):.1f} ms")


if __name__ == "__main__":
    main()
