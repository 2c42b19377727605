"""The agent's words in one language at a time (docs/i18n.md).

Every text a user reads is written once, in English, as a gettext message id; the French
catalogue ``agent/locale/fr/LC_MESSAGES/messages.po`` gives its French. French is the default;
English comes from the ``ui.language`` setting, or from ``LANGUAGE``/``LC_ALL``/
``LC_MESSAGES``/``LANG`` when the setting is ``auto``.

The .po file is read as it is when the first text is asked for (Babel's reader, then
Python's gettext over the compiled bytes): no compile step, so a fresh clone, the .deb and the
Windows installer run the same file. The compiled form is kept in the user's cache directory,
named by the .po's digest, so that later starts skip Babel's reading.

Call `_` when the text is needed, never at import: the language is chosen at start
(`use_language`), after the modules are imported. A constant is marked with `N_` and
translated where it is shown.
"""

from __future__ import annotations

import contextlib
import gettext
import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

APP_NAME = "dmp-agent"  # its cache directory (agent.config imports this module)
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
SETTINGS = ("auto", *LANGUAGES)  # the values of ui.language
DOMAIN = "messages"
# Where the page's own words come from: its catalogue entries are the ones served to it.
WEB_SOURCES = ("agent/views/web/",)
_ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")  # gettext's order

# An element of index.html whose text is a message id: <tag ... data-t ...>English</tag>.
# Its content is text only, so the server can put the translation in its place.
HTML_MESSAGE = re.compile(r"(<(?P<tag>[a-z0-9]+)(?:\s[^>]*)?\sdata-t(?:\s[^>]*)?>)"
                          r"(?P<text>[^<]*)(</(?P=tag)>)", re.IGNORECASE)


def resolve(setting: str = "auto", environ: Mapping[str, str] | None = None) -> str:
    """The language for ``ui.language`` = ``setting``: itself, or with ``auto`` the first
    set locale variable's language when the agent has it (``en_GB.UTF-8`` → ``en``), else
    French."""
    if setting in LANGUAGES:
        return setting
    env = os.environ if environ is None else environ
    for name in _ENVIRONMENT:
        value = env.get(name, "")
        if not value:
            continue
        # LANGUAGE may list several (en_GB:fr); the others name one locale.
        for part in value.split(":"):
            language = part.split(".")[0].split("@")[0].split("_")[0].lower()
            if language in LANGUAGES:
                return language
        return DEFAULT_LANGUAGE  # the first variable set decides, as in gettext
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Catalogue:
    """One language's messages: its gettext object and the page's share."""

    language: str
    translations: gettext.NullTranslations
    page: dict[str, str]  # msgid → the translation, for the page's own ids
    etag: str


_lock = threading.Lock()
_loaded: dict[str, Catalogue] = {}
_current = DEFAULT_LANGUAGE


def _read(language: str) -> Catalogue:
    if language == "en":  # the message ids are the English
        return Catalogue("en", gettext.NullTranslations(), {}, '"en"')
    data = (resources.files("agent") / "locale" / language / "LC_MESSAGES"
            / f"{DOMAIN}.po").read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:32]
    mo, page = _cached(language, digest) or _compile(language, data, digest)
    return Catalogue(language, gettext.GNUTranslations(io.BytesIO(mo)), page, f'"{digest}"')


def _cache_base(language: str, digest: str) -> Path:
    import platformdirs  # the agent's own dependency; light

    return platformdirs.user_cache_path(APP_NAME) / "locale" / f"{language}-{digest[:16]}"


def _cached(language: str, digest: str) -> tuple[bytes, dict[str, str]] | None:
    """The catalogue compiled by an earlier start (Babel's reading of the .po costs ~60 ms:
    paid once per catalogue version, not at every start); None when absent or unreadable."""
    base = _cache_base(language, digest)
    try:
        mo = base.with_suffix(".mo").read_bytes()
        page = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
        gettext.GNUTranslations(io.BytesIO(mo))  # a damaged file: compiled again
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(page, dict):
        return None
    return mo, {str(k): str(v) for k, v in page.items()}


def _compile(language: str, data: bytes, digest: str) -> tuple[bytes, dict[str, str]]:
    """The .po read by Babel: its compiled form, and the page's share (kept for the next
    start when the cache directory can be written)."""
    from babel.messages.mofile import write_mo  # only when the catalogue is not cached
    from babel.messages.pofile import read_po

    catalog = read_po(io.BytesIO(data), locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # leaves out fuzzy entries, as msgfmt does
    page: dict[str, str] = {}
    for message in catalog:
        if (message.id and isinstance(message.id, str) and isinstance(message.string, str)
                and message.string and not message.fuzzy
                and any(path.startswith(WEB_SOURCES) for path, _line in message.locations)):
            page[message.id] = message.string
    mo = compiled.getvalue()
    base = _cache_base(language, digest)
    with contextlib.suppress(OSError):
        base.parent.mkdir(parents=True, exist_ok=True)
        for suffix, content in ((".json", json.dumps(page).encode("utf-8")), (".mo", mo)):
            temporary = base.with_suffix(f"{suffix}.{os.getpid()}.tmp")
            temporary.write_bytes(content)
            os.replace(temporary, base.with_suffix(suffix))  # never half a file
    return mo, page


def catalogue(language: str | None = None) -> Catalogue:
    """The catalogue of ``language`` (default: the one in use), read once."""
    language = language or _current
    with _lock:
        found = _loaded.get(language)
        if found is None:
            found = _loaded[language] = _read(language)
        return found


def use_language(language: str) -> None:
    """Speak ``language`` (one of `LANGUAGES`) from now on, everywhere in this process."""
    global _current
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    _current = language


def use_setting(setting: str, environ: Mapping[str, str] | None = None) -> str:
    """`use_language` for the ``ui.language`` setting; returns the language chosen."""
    language = resolve(setting, environ)
    use_language(language)
    return language


def current_language() -> str:
    return _current


def _(message: str) -> str:
    """``message`` (an English message id) in the language in use."""
    if _current == "en":
        return message
    return catalogue().translations.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form of ``singular``/``plural`` for ``count``, in the language in use."""
    return catalogue().translations.ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue without translating it (constants): translate it
    with `_` where it is shown."""
    return message


def translate_html(html: str, language: str | None = None) -> str:
    """index.html with each ``data-t`` element's text in ``language``, and its ``lang``."""
    translations = catalogue(language).translations
    lang = (language or _current)

    def one(match: re.Match[str]) -> str:
        text = " ".join(match["text"].split())
        return f"{match[1]}{translations.gettext(text)}{match[4]}"

    page = HTML_MESSAGE.sub(one, html)
    return page.replace('<html lang="fr">', f'<html lang="{lang}">', 1)


def html_messages(html: str) -> list[tuple[int, str]]:
    """The message ids of index.html's ``data-t`` elements, with their line numbers."""
    return [(html.count("\n", 0, match.start()) + 1, " ".join(match["text"].split()))
            for match in HTML_MESSAGE.finditer(html)]


def page_messages(language: str | None = None) -> dict[str, Any]:
    """What GET /api/messages serves: the language and the page's messages in it."""
    found = catalogue(language)
    return {"language": found.language, "messages": found.page}
