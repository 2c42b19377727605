"""Keeping the message catalogue in step with the code (docs/i18n.md).

``python -m agent.i18n_catalogue update`` extracts every message id from the sources with
Babel's extractors (Python's ``_``/``N_``/``ngettext``, the page's ``t()`` in app.js, the
``data-t`` elements of index.html) and merges them into each language's .po file: new ids
come in untranslated, ids no code uses any more go. ``check`` says what a translator must
still do; the tests run it, so a text cannot ship without its French.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Collection, Generator, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import read_po, write_po

from agent.i18n import DOMAIN, LANGUAGES, html_messages

ROOT = Path(__file__).resolve().parent.parent  # the repository (or the installed tree)
LOCALE = Path(__file__).resolve().parent / "locale"
# Files kept out of the extraction while their messages are not converted yet (none now).
LEFT_OUT: tuple[str, ...] = ()

def _extract_html(fileobj: IO[bytes], keywords: Mapping[str, Any],
                  comment_tags: Collection[str], options: Mapping[str, Any],
                  ) -> Generator[tuple[int, str, str, list[str]], None, None]:
    """Babel extraction method for index.html: each ``data-t`` element's text."""
    for line, text in html_messages(fileobj.read().decode("utf-8")):
        yield line, "", text, []  # Babel's tuple: line, function, message, comments


def _sources(root: Path) -> Iterable[tuple[Path, str | Callable[..., Any], dict[str, Any]]]:
    for path in sorted((root / "agent").rglob("*.py")):
        if path.relative_to(root).as_posix() not in LEFT_OUT:
            yield path, "python", {}
    web = root / "agent" / "views" / "web"
    for script in sorted(web.glob("*.js")):  # app.js and its modules (e.g. ecps.js)
        yield script, "javascript", {}
    yield web / "index.html", _extract_html, {}


def extract_messages(root: Path = ROOT) -> Catalog:
    """Every message id the code uses, with where (the catalogue's template)."""
    template = Catalog(domain=DOMAIN, project="dmp-agent", fuzzy=False)
    for path, method, options in _sources(root):
        keywords: Mapping[str, Any] = {"t": None} if method == "javascript" else DEFAULT_KEYWORDS
        where = path.relative_to(root).as_posix()
        with path.open("rb") as file:
            for line, message, comments, context in extract(
                    method, file, keywords=keywords, options=options):
                template.add(message, None, [(where, line)], auto_comments=comments,
                             context=context)
    return template


def po_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(language: str) -> Catalog:
    with po_path(language).open("rb") as file:
        return read_po(file, locale=language, domain=DOMAIN)


def write_catalogue(catalog: Catalog, language: str) -> None:
    """Writes the .po so that an update changes only what changed: files without line
    numbers, no dates, no template boilerplate."""
    catalog.fuzzy = False
    catalog.project, catalog.version = "dmp-agent", ""
    catalog.copyright_holder = "the dmp-agent authors"
    catalog.msgid_bugs_address = catalog.last_translator = ""
    catalog.language_team = ""
    catalog.header_comment = ("# The agent's messages in the language named below "
                              "(docs/i18n.md).\n"
                              "# Updated by `python -m agent.i18n_catalogue update`.")
    out = io.BytesIO()
    write_po(out, catalog, width=100, omit_header=False, ignore_obsolete=True,
             include_previous=False, include_lineno=False)
    lines = [line for line in out.getvalue().split(b"\n")
             if not line.startswith((b'"POT-Creation-Date', b'"PO-Revision-Date',
                                     b'"Last-Translator', b'"Language-Team',
                                     b'"Report-Msgid-Bugs-To'))]
    po_path(language).parent.mkdir(parents=True, exist_ok=True)
    po_path(language).write_bytes(b"\n".join(lines))


def translated_languages() -> tuple[str, ...]:
    """The languages with a catalogue file: all but English, the ids' own language."""
    return tuple(language for language in LANGUAGES if language != "en")


def update(root: Path = ROOT) -> None:
    template = extract_messages(root)
    for language in translated_languages():
        if po_path(language).exists():
            catalog = read_catalogue(language)
        else:
            catalog = Catalog(locale=language, domain=DOMAIN, project="dmp-agent")
        catalog.update(template, no_fuzzy_matching=True)
        write_catalogue(catalog, language)


def problems(root: Path = ROOT) -> list[str]:
    """What stops the catalogue from matching the code: ids without a translation, entries
    no code uses, fuzzy entries (not shipped)."""
    template = extract_messages(root)
    used = {message.id for message in template if message.id}
    found: list[str] = []
    for language in translated_languages():
        catalog = read_catalogue(language)
        known = {message.id for message in catalog if message.id}
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id)
            where = ", ".join(f"{path}:{line}" for path, line in message.locations)
            if entry is None:
                found.append(f"{language}: not in the catalogue: {message.id!r} ({where})")
                continue
            if {path for path, _ in entry.locations} != {path for path, _ in message.locations}:
                # the page gets the entries its files use: the files must be the code's
                found.append(f"{language}: used elsewhere now: {message.id!r} ({where})")
            elif entry.fuzzy:
                found.append(f"{language}: fuzzy: {message.id!r} ({where})")
            elif not entry.string or (isinstance(entry.string, tuple)
                                      and not all(entry.string)):
                found.append(f"{language}: not translated: {message.id!r} ({where})")
        found.extend(f"{language}: unused: {msgid!r}" for msgid in sorted(
            known - used, key=str))
    return found


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:])[:1]
    if command == ["update"]:
        update()
    elif command != ["check"]:
        print("usage: python -m agent.i18n_catalogue update|check", file=sys.stderr)
        return 2
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
