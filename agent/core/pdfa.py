"""A PDF made into a PDF/A-2b before it is wrapped in a CDA level 1 document (the CI-SIS asks
for PDF/A in a ``nonXMLBody``), by Ghostscript's pdfwrite device.

Why Ghostscript and not OCRmyPDF or pikepdf: pikepdf edits PDFs but does not convert them to
PDF/A (fonts, colour spaces, transparency); OCRmyPDF produces PDF/A by running Ghostscript
underneath and wants Tesseract besides. Ghostscript alone does the conversion, is packaged
by Debian (``ghostscript``) and by Artifex for Windows and macOS, and runs here as a separate
process with ``-dSAFER``, a timeout and files in a private temporary folder.

Refused, each with its own code, before anything is queued: what is not a PDF (whatever its
name or declared type says), an encrypted PDF (PDF/A forbids encryption, and a password
protected one cannot be read), an oversized one, one Ghostscript cannot read or cannot make
conform. The output is checked: a PDF that declares PDF/A-2 in its XMP metadata.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from agent.errors import AgentError
from agent.i18n import _

__all__ = ["MAX_PDF_BYTES", "PdfaError", "convert", "ghostscript", "is_pdfa"]

MAX_PDF_BYTES = 64 * 1024 * 1024  # the host's document limit is lower; this bounds the work
TIMEOUT_SECONDS = 180.0
_ENCRYPT = re.compile(rb"/Encrypt\s*(?:\d+\s+\d+\s+R|<<)")
_PDFA_PART = re.compile(rb"pdfaid:part\s*(?:=\s*['\"]|>)\s*([1-4])")
# Ghostscript says so on stderr (and exits 0) when a file needs a password or is not a PDF.
_GS_FAILED = re.compile(rb"requires a password|Couldn't initialise file|Unrecoverable error|"
                        rb"Error: /(?:syntaxerror|undefined|ioerror|typecheck)")


class PdfaError(AgentError):
    """The document cannot become a PDF/A: ``code`` says why."""

    status = 422


def ghostscript() -> str | None:
    """The Ghostscript executable: ``gswin64c`` / ``gswin32c`` on Windows, ``gs`` elsewhere."""
    names = ("gswin64c", "gswin32c", "gs") if sys.platform == "win32" else ("gs",)
    return next((found for name in names if (found := shutil.which(name))), None)


def _srgb_profile(executable: str) -> str:
    """An sRGB ICC profile for the PDF/A OutputIntent: Ghostscript's own, on disk beside it
    (Debian: /usr/share/ghostscript/<version>/iccprofiles) or in its ROM file system
    (the Windows and macOS builds)."""
    candidates = sorted(glob.glob("/usr/share/ghostscript/*/iccprofiles/srgb.icc"), reverse=True)
    base = Path(executable).resolve().parent.parent
    candidates += [str(base / "iccprofiles" / "srgb.icc"),
                   str(base / "share" / "ghostscript" / "iccprofiles" / "srgb.icc")]
    return next((c for c in candidates if os.path.isfile(c)), "%rom%iccprofiles/srgb.icc")


def _definitions(profile: str) -> str:
    """The PostScript that gives the output its PDF/A OutputIntent (an sRGB ICC stream), the
    pdfmark way Ghostscript's documentation describes for PDF/A."""
    escaped = profile.replace("\\", "/").replace("(", "\\(").replace(")", "\\)")
    return "\n".join([
        "%!PS",
        f"/DmpIcc ({escaped}) def",
        "[/_objdef {dmp_icc} /type /stream /OBJ pdfmark",
        "[{dmp_icc} << /N 3 >> /PUT pdfmark",
        "[{dmp_icc} DmpIcc (r) file /PUT pdfmark",
        "[/_objdef {dmp_intent} /type /dict /OBJ pdfmark",
        "[{dmp_intent} << /Type /OutputIntent /S /GTS_PDFA1 /DestOutputProfile {dmp_icc}",
        "  /OutputConditionIdentifier (sRGB) >> /PUT pdfmark",
        "[{Catalog} << /OutputIntents [ {dmp_intent} ] >> /PUT pdfmark",
        "",
    ])


def is_pdfa(data: bytes) -> bool:
    """Whether ``data`` is a PDF declaring PDF/A-1 to -4 in its XMP metadata."""
    return data.startswith(b"%PDF-") and _PDFA_PART.search(data) is not None


def check_input(data: bytes, max_bytes: int = MAX_PDF_BYTES) -> None:
    """Refuse what cannot be converted, before Ghostscript sees it."""
    if len(data) > max_bytes:
        raise PdfaError(_("PDF too large ({size} MB, {limit} MB at most)").format(
            size=len(data) // (1024 * 1024), limit=max_bytes // (1024 * 1024)),
            code="pdf-too-large", status=413)
    # A PDF starts with %PDF- (ISO 32000 allows leading bytes; readers look in the first 1 KiB).
    if b"%PDF-" not in data[:1024]:
        raise PdfaError(_("This file is not a PDF, whatever its name or declared type says"),
                        code="pdf-not-pdf", status=415)
    if _ENCRYPT.search(data):
        raise PdfaError(_("Encrypted or password-protected PDF: save it without protection "
                          "and try again"), code="pdf-encrypted")


def convert(data: bytes, *, max_bytes: int = MAX_PDF_BYTES,
            timeout: float = TIMEOUT_SECONDS) -> bytes:
    """``data`` (a PDF) as a PDF/A-2b; a PDF/A already is returned unchanged. `PdfaError`
    for anything refused, "pdfa-unavailable" when Ghostscript is not installed."""
    check_input(data, max_bytes)
    if is_pdfa(data):
        return data
    executable = ghostscript()
    if executable is None:
        raise PdfaError(_("Ghostscript is not installed: it converts the PDFs to PDF/A "
                          "(package ghostscript)"),
                        code="pdfa-unavailable", status=503)
    profile = _srgb_profile(executable)
    with tempfile.TemporaryDirectory(prefix="dmp-pdfa-") as folder:
        source, target, definitions = (Path(folder, name) for name in
                                       ("in.pdf", "out.pdf", "pdfa.ps"))
        source.write_bytes(data)
        definitions.write_text(_definitions(profile), encoding="ascii")
        command = [executable, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dNOINTERPOLATE",
                   "-sDEVICE=pdfwrite", "-dPDFA=2", "-dPDFACompatibilityPolicy=1",
                   "-sColorConversionStrategy=RGB", f"--permit-file-read={profile}",
                   f"-sOutputFile={target}", str(definitions), str(source)]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PdfaError(_("The PDF/A conversion took too long"),
                            code="pdfa-timeout") from None
        output = target.read_bytes() if target.is_file() else b""
    if _GS_FAILED.search(done.stderr + done.stdout) or done.returncode != 0 or not output:
        raise PdfaError(_("Unreadable or damaged PDF: it cannot be converted to PDF/A"),
                        code="pdf-unreadable")
    if not is_pdfa(output):
        raise PdfaError(_("This PDF cannot be made PDF/A-conformant"),
                        code="pdfa-not-conformant")
    return output
