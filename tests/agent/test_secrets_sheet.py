"""The patient's secrets sheet: a valid one-page A4 PDF that carries the identifier, the
one-time code and the consents, readable only by its owner."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from agent.core.secrets_sheet import (
    EmergencyConsents,
    SecretsSheet,
    render_pdf,
    write_secrets_sheet,
)

SHEET = SecretsSheet(
    first_name="Élodie", birth_name="DURAND", birth_date="12/05/1984",
    identifier="284057511402312", access_code="K7PM-Q2XR-9HTW",
    consents=EmergencyConsents(regulation_centre=True, break_the_glass=False,
                               emergency_sees_masked=True),
    created=dt.date(2026, 11, 27), created_by="Paul PHARMACIEN",
)


def page_text(pdf: bytes) -> str:
    """The text the page shows, as a PDF reader extracts it (through the embedded font's
    ToUnicode map: what a screen reader or a copy-paste gets)."""
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_sheet_is_a_one_page_a4_pdf_with_the_secrets_and_the_consents() -> None:
    pdf = render_pdf(SHEET)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1  # one page to print
    assert re.search(rb"/MediaBox\s*\[0 0 595\.28 841\.89\]", pdf)  # A4 in points
    text = page_text(pdf)
    for expected in ("284057511402312", "K7PM-Q2XR-9HTW", "Élodie", "DURAND", "12/05/1984",
                     "27/11/2026", "Code d'accès", "monespacesante.fr"):
        assert expected in text
    consents = re.findall(r"(OUI \(accepté\)|NON \(refusé\))", text)
    assert consents == ["OUI (accepté)", "NON (refusé)", "OUI (accepté)"]


def test_the_font_is_embedded_and_any_name_is_written_as_it_is() -> None:
    # A printer's substitute font of other widths made the text overflow: the sheet carries
    # its own font (a subset), and names beyond Latin-1 are no longer "?".
    sheet = dataclasses.replace(SHEET, first_name="Łukasz Nguyễn", structure="Pharmacie "
                                "de la Croix-Rousse")
    pdf = render_pdf(sheet)
    fonts = [font for page in PdfReader(io.BytesIO(pdf)).pages
             for font in page["/Resources"]["/Font"].values()]
    assert fonts and all("/FontFile2" in font.get_object()["/DescendantFonts"][0]
                         .get_object()["/FontDescriptor"] for font in fonts)
    text = page_text(pdf)
    assert "Łukasz Nguyễn" in text and "?" not in text.replace("?", "", 0)
    assert "Structure : Pharmacie de la Croix-Rousse" in words(text)
    assert "Paul PHARMACIEN" in text


def words(text: str) -> str:
    """The page's text with its line breaks and wrapping undone (a paragraph is one Tj a
    line)."""
    return " ".join(text.split())


def test_without_an_address_the_sheet_says_the_patient_space_waits_for_one() -> None:
    text = words(page_text(render_pdf(SHEET)))
    assert "Aucune adresse électronique n'a été donnée" in text
    assert "pas de notification ni d'espace patient" in text
    assert "Adresse de notification" not in text and "Première connexion" not in text


@pytest.mark.parametrize("email", [
    "elodie.durand@example.fr",
    # The longest address, of the widest letters: wrapped, smaller, still one page.
    "W" * 64 + "@" + "W" * 61 + "." + "W" * 61 + "." + "W" * 62 + ".fr",
])
def test_the_address_and_the_first_sign_in_are_on_the_sheet(email: str) -> None:
    pdf = render_pdf(dataclasses.replace(SHEET, email=email))
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1
    text = page_text(pdf)
    assert "Adresse de notification et de connexion : " in text
    assert email in text.replace("\n", "")
    assert words(
        "Première connexion à votre espace patient : votre identifiant et le code d'accès "
        "ci-dessus, puis un code reçu à cette adresse. Vous choisirez alors un mot de passe ; "
        "ce code ne servira plus.") in words(text)
    assert "Aucune adresse" not in text
    # Under the identifiers it refers to, before how to connect.
    assert text.index("K7PM-Q2XR-9HTW") < text.index(email[:20]) < text.index("Comment accéder")


def test_the_written_sheet_is_owner_only_and_replaces_an_old_one(tmp_path: Path) -> None:
    path = tmp_path / "fiche.pdf"
    path.write_bytes(b"old")
    path.chmod(0o644)
    assert write_secrets_sheet(SHEET, path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"%PDF-")
    assert [p.name for p in tmp_path.iterdir()] == ["fiche.pdf"]  # no temporary left


def test_the_access_code_stays_out_of_reprs() -> None:
    assert "K7PM" not in repr(SHEET)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdftotext_reads_the_identifier_and_the_code(tmp_path: Path) -> None:
    path = write_secrets_sheet(SHEET, tmp_path / "fiche.pdf")
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "284057511402312" in text and "K7PM-Q2XR-9HTW" in text


def test_the_agent_makes_the_sheet_in_a_child_process_with_the_same_text() -> None:
    # The PDF library stays out of the long-running agent (its memory would stay too).
    from agent.core.secrets_sheet import render_pdf_apart

    apart = render_pdf_apart(SHEET)
    assert page_text(apart) == page_text(render_pdf(SHEET))
    with_email = dataclasses.replace(SHEET, email="elodie.durand@example.fr")
    apart = render_pdf_apart(with_email)
    assert "elodie.durand@example.fr" in page_text(apart)
    assert page_text(apart) == page_text(render_pdf(with_email))
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, datetime as dt\n"
         "from agent.core.secrets_sheet import SecretsSheet, EmergencyConsents, "
         "render_pdf_apart\n"
         "render_pdf_apart(SecretsSheet('A', 'B', '01/01/2000', 'X', 'CODE', "
         "EmergencyConsents(), dt.date.today()))\n"
         "print('fpdf' in sys.modules)"], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"
