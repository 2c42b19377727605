"""Text from other people on the terminal and in file names (agent/safe_text.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.safe_text import (
    extension_for,
    saved_name,
    terminal_lines,
    terminal_text,
    write_new_file,
)

HOSTILE = "Bilan\x1b]0;pwn\x07\x1b[2J\r\nFAUX\x00fin"


def test_control_characters_and_escape_sequences_are_shown_not_obeyed() -> None:
    shown = terminal_text(HOSTILE)
    assert shown == "Bilan\\x1b]0;pwn\\x07\\x1b[2J\\x0d\\x0aFAUX\\x00fin"
    assert all(ch.isprintable() for ch in shown)


@pytest.mark.parametrize("character", [
    "\x00", "\x07", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1b", "\x7f",
    "\x85", "\x9b", "\x9d",  # C1: NEL, CSI and OSC in their 8-bit forms
    "\u061c", "\u200e", "\u200f", "\u2028", "\u2029",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
])
def test_every_unsafe_character_becomes_a_visible_escape(character: str) -> None:
    shown = terminal_text(f"a{character}b")
    assert character not in shown
    assert shown.startswith("a\\") and shown.endswith("b")


def test_ordinary_text_is_left_alone() -> None:
    text = "Compte rendu — Élodie N'Guyen, 12,5 mg/l, 日本語, ✓ \\x1b déjà écrit"
    assert terminal_text(text) == text
    assert terminal_text(42) == "42"


def test_a_bidi_override_cannot_disguise_an_extension() -> None:
    # U+202E would display "bilan\u202efdp.exe" as "bilanexe.pdf".
    assert terminal_text("bilan\u202efdp.exe") == "bilan\\u202efdp.exe"


def test_terminal_lines_keeps_our_line_breaks_only() -> None:
    assert terminal_lines("one\ntwo\r\x1b[2J") == "one\ntwo\\x0d\\x1b[2J"


@pytest.mark.parametrize(("mime", "extension"), [
    ("application/pdf", ".pdf"), ("APPLICATION/PDF; charset=binary", ".pdf"),
    ("text/plain", ".txt"), ("text/plain;charset=utf-8", ".txt"), ("image/jpeg", ".jpg"),
    ("image/png", ".png"), ("image/tiff", ".tif"), ("application/xml", ".xml"),
    ("text/xml", ".xml"), ("text/rtf", ".rtf"), ("application/rtf", ".rtf"),
    ("application/hta", ".bin"), ("application/x-msdownload", ".bin"),
    ("application/x-msdos-program", ".bin"), ("application/x-sh", ".bin"),
    ("text/html", ".bin"), ("application/octet-stream", ".bin"), ("", ".bin"),
    ("application/x-ms-shortcut", ".bin"), ("application/x-desktop", ".bin"),
])
def test_the_extension_comes_from_a_fixed_list(mime: str, extension: str) -> None:
    assert extension_for(mime) == extension


@pytest.mark.parametrize("title", [
    "../../../../home/user/.bashrc", "..\\..\\Windows\\System32\\evil", "/etc/passwd",
    "C:\\Users\\Public\\evil", "\x00", "..", ".", "", "  ", HOSTILE, "bilan\u202efdp.exe",
    "report.pdf.hta", "a/b\\c:d*e?f\"g<h>i|j",
])
def test_a_saved_name_is_one_plain_name_with_our_extension(title: str) -> None:
    name = saved_name("07", title, "application/hta")
    assert name.startswith("07-") and name.endswith(".bin")
    assert name.count(".") == 1  # the title brings no extension of its own
    assert "/" not in name and "\\" not in name and ":" not in name
    assert all(ch.isprintable() and ch not in "\u202e\u2066" for ch in name)
    assert Path(name).name == name
    assert len(name) <= len("07-") + 60 + len(".bin")


def test_a_saved_name_keeps_a_readable_title() -> None:
    assert saved_name("01", "Compte rendu opératoire", "application/pdf") == (
        "01-Compte_rendu_opératoire.pdf")
    assert saved_name("02", "???", "text/plain") == "02-document.txt"


def test_write_new_file_never_overwrites_nor_follows_a_link(tmp_path: Path) -> None:
    first = write_new_file(tmp_path, "01-bilan.pdf", b"one")
    second = write_new_file(tmp_path, "01-bilan.pdf", b"two")
    assert (first.name, second.name) == ("01-bilan.pdf", "01-bilan-2.pdf")
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    for path in (first, second):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"keep me")
    (tmp_path / "02-x.bin").symlink_to(outside)  # planted where the next save goes
    third = write_new_file(tmp_path, "02-x.bin", b"document")
    assert third.name == "02-x-2.bin" and third.read_bytes() == b"document"
    assert outside.read_bytes() == b"keep me"
    outside.unlink()


def test_write_new_file_takes_only_a_plain_name(tmp_path: Path) -> None:
    for name in ("../escape.bin", "sub/dir.bin", "", "..", "."):
        with pytest.raises(ValueError):
            write_new_file(tmp_path, name, b"x")
    assert list(tmp_path.iterdir()) == []


def test_write_new_file_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        path = write_new_file(tmp_path, "01-a.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
