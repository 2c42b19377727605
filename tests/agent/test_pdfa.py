"""A PDF becomes a PDF/A-2b through the real Ghostscript (agent.core.pdfa); what cannot be
converted is refused with its own code."""

from __future__ import annotations

import io
import os

import pytest
from pypdf import PdfReader, PdfWriter

from agent.core import pdfa
from tests.cda_support import a_pdf


def refused(data: bytes, **options: object) -> str:
    with pytest.raises(pdfa.PdfaError) as caught:
        pdfa.convert(data, **options)  # type: ignore[arg-type]
    return caught.value.code


def encrypted(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(a_pdf())))
    writer.encrypt(user_password=user_password, owner_password="proprietaire")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_pdf_becomes_a_pdfa_with_its_text_kept() -> None:
    source = a_pdf()
    assert not pdfa.is_pdfa(source)
    converted = pdfa.convert(source)
    assert pdfa.is_pdfa(converted)
    assert b"pdfaid:part='2'" in converted or b'pdfaid:part="2"' in converted
    assert b"/OutputIntents" in converted
    text = PdfReader(io.BytesIO(converted)).pages[0].extract_text()
    assert "DURAND" in text and "284057511402312" in text


def test_a_pdfa_is_kept_as_it_is() -> None:
    converted = pdfa.convert(a_pdf())
    assert pdfa.convert(converted) is converted


def test_a_file_that_is_not_a_pdf_is_refused_whatever_it_claims() -> None:
    assert refused(b"<html><body>compte rendu</body></html>") == "pdf-not-pdf"
    assert refused(b"PK\x03\x04" + os.urandom(200)) == "pdf-not-pdf"


def test_a_damaged_pdf_is_refused() -> None:
    assert refused(b"%PDF-1.7\n" + os.urandom(4000)) == "pdf-unreadable"


@pytest.mark.parametrize("user_password", ["secret", ""])
def test_an_encrypted_pdf_is_refused(user_password: str) -> None:
    assert refused(encrypted(user_password)) == "pdf-encrypted"


def test_an_oversized_pdf_is_refused_before_conversion() -> None:
    source = a_pdf()
    assert refused(source, max_bytes=len(source) - 1) == "pdf-too-large"


def test_without_ghostscript_the_refusal_says_what_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert refused(a_pdf()) == "pdfa-unavailable"
