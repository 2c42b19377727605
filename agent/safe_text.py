"""Text from other people (the host, a depositor, a card) on our terminal and in our files.

A document's title, an author's name, a host's error message are chosen by someone else:
printed as they are, control characters rewrite the terminal (``ESC ]0;...`` retitles the
window, ``ESC [2J`` clears it, a CR overwrites the line before it, a bidi override makes
``exe.pdf`` of ``fdp.exe``). `terminal_text` makes each such character visible instead
(``\\x1b``, ``\\u202e``); `saved_name` builds a file name that cannot climb out of its
folder nor pick its own extension; `write_new_file` never overwrites.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from pathlib import Path

# C0 controls (LF and TAB included: a line of ours holds one line of theirs), DEL, C1
# controls, and the invisible characters that reorder or break text: bidi embeddings,
# overrides and isolates, the directional marks, the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                     "\u202a-\u202e\u2066-\u2069]")
# The same but LF: for whole messages whose line breaks are ours.
_UNSAFE_BUT_LF = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                            "\u202a-\u202e\u2066-\u2069]")

# The only extensions a saved document gets; anything else is .bin, so a depositor's MIME
# type never makes an .exe, .hta, .com, .lnk or .desktop that a double click would run.
EXTENSIONS = {
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/tiff": ".tif",
    "application/xml": ".xml",
    "text/xml": ".xml",
    "text/rtf": ".rtf",
    "application/rtf": ".rtf",
}
FALLBACK_EXTENSION = ".bin"
_NAME_LENGTH = 60


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: object) -> str:
    """``text`` (anything: it is made a str) with every control, bidi and line-breaking
    character shown as an escape: one line, printed as it reads."""
    return _UNSAFE.sub(_visible, str(text))


def terminal_lines(text: object) -> str:
    """Like `terminal_text` but keeps LF: for a message whose line breaks are ours and
    whose pieces from others went through `terminal_text` (a missed one is still tamed)."""
    return _UNSAFE_BUT_LF.sub(_visible, str(text))


def extension_for(mime_type: str) -> str:
    """The extension of a saved document: from `EXTENSIONS`, else ``.bin``."""
    essence = mime_type.split(";", 1)[0].strip().lower()
    return EXTENSIONS.get(essence, FALLBACK_EXTENSION)


def saved_name(prefix: str, title: str, mime_type: str) -> str:
    """``<prefix>-<title>.<ext>``: the title reduced to letters, digits, ``_`` and ``-``
    (no separator, dot, control or bidi character can pass), at most 60 of them, and the
    extension from `extension_for`."""
    stem = unicodedata.normalize("NFC", title)
    stem = re.sub(r"[^\w-]+", "_", stem, flags=re.UNICODE).strip("_-")[:_NAME_LENGTH]
    return f"{prefix}-{stem or 'document'}{extension_for(mime_type)}"


def write_new_file(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a new 0600 file ``directory/name``; if that name is taken (or is a
    link), to ``name`` with ``-2``, ``-3``... before the extension. Never overwrites, never
    follows a link; returns the path written."""
    if Path(name).name != name or name in ("", ".", ".."):
        raise ValueError(f"not a plain file name: {name!r}")
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if sys.platform == "win32":
        flags |= os.O_BINARY  # else the descriptor's writes turn every \n into \r\n
    else:
        flags |= os.O_NOFOLLOW
    for number in range(1, 1000):
        candidate = name if number == 1 else f"{stem}-{number}{dot}{extension}"
        path = directory / candidate
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as out:
                if sys.platform != "win32":  # no modes there: the profile's ACL protects it
                    os.fchmod(out.fileno(), 0o600)  # exactly: a umask may have taken more
                out.write(data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
    raise FileExistsError(f"{directory}: too many files named like {name}")


__all__ = ["EXTENSIONS", "extension_for", "saved_name", "terminal_lines", "terminal_text",
           "write_new_file"]
