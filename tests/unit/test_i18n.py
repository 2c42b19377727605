"""One language at a time (docs/i18n.md): the catalogue matches the code, the language is
chosen as documented, and the words come out in French by default and in English when set."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import i18n
from agent.client.host_clock import ClockReading
from agent.config import KEYS, AgentConfig, ConfigError, load_config
from agent.i18n_catalogue import extract_messages, problems, read_catalogue
from agent.views.argparse_words import translate_argparse

WEB = Path(i18n.__file__).parent / "views" / "web"


def test_every_message_the_code_uses_has_its_french_and_every_entry_is_used() -> None:
    # Babel's own extractors over the sources (Python _/N_/ngettext, app.js t(), the
    # data-t elements of index.html) against agent/locale/fr: nothing missing, untranslated,
    # fuzzy, unused, or used by other files than the catalogue says (the page's share).
    assert problems() == []


def test_the_extraction_finds_the_three_kinds_of_source() -> None:
    found = {path for message in extract_messages() for path, _line in message.locations}
    assert "agent/views/web/app.js" in found and "agent/views/web/index.html" in found
    assert "agent/install/doctor.py" in found and "agent/views/command_parser.py" in found
    assert "agent/client/provide.py" in found  # no module is left out of the extraction now


# A literal written twice: "français / English" (a word or a bracket, " / ", a word).
DOUBLED = re.compile(r"[A-Za-zàâçéèêëîïôûù)'}] / [A-Za-z]")
STILL_DOUBLED: tuple[str, ...] = ()  # none left (the sandbox converted too)


def _literals(path: Path) -> Iterator[tuple[int, str]]:
    """Each string of ``path`` but the docstrings, as Python joins it (adjacent literals
    are one string), without its quotes."""
    text: list[str] = []
    line = 0
    with path.open("rb") as file:
        for token in tokenize.tokenize(file.readline):
            if token.type == tokenize.STRING:
                body = token.string.lstrip("rbuRBUfF")
                quote = 3 if body.startswith(('"""', "'''")) else 1
                line = line or token.start[0]
                text.append("" if quote == 3 else body[quote:-quote])
            elif token.type not in (tokenize.NL, tokenize.COMMENT) and text:
                yield line, "".join(text)
                text, line = [], 0


def test_no_message_of_the_agent_is_written_twice() -> None:
    # Issue 17: the modules merged after the catalogue still said "français / English".
    root = Path(i18n.__file__).parent
    doubled = [f"{path.relative_to(root.parent)}:{line}: {literal}"
               for path in sorted(root.rglob("*.py"))
               if not path.relative_to(root.parent).as_posix().startswith(STILL_DOUBLED)
               for line, literal in _literals(path) if DOUBLED.search(literal)]
    assert doubled == []


def test_no_text_of_the_card_layer_is_written_twice() -> None:
    # Issue 17: cardreader (which imports nothing of ours) said "aucune carte / no card";
    # it now speaks plain developer English, which the agent words (agent/card_words.py).
    root = Path(i18n.__file__).parent.parent / "cardreader"
    doubled = [f"{path.relative_to(root.parent)}:{line}: {literal}"
               for path in sorted(root.rglob("*.py"))
               for line, literal in _literals(path)
               # an f-string's expression (``{directory / NAME}``) is code, not text
               if DOUBLED.search(re.sub(r"\{[^{}]*\}", "{}", literal))]
    assert doubled == []


def test_a_refusal_says_its_words_once_and_keeps_its_code(english: None) -> None:
    from agent.core.identity import checked_traits
    from agent.core.pdfa import PdfaError, check_input
    from agent.errors import AgentError

    for language, sex, pdf in (("fr", "Sexe : M ou F", "PDF trop volumineux (2 Mo, maximum 1 Mo)"),
                               ("en", "Sex: M or F", "PDF too large (2 MB, 1 MB at most)")):
        i18n.use_language(language)
        with pytest.raises(AgentError) as bad_sex:
            checked_traits("MARTIN", ["CLAIRE"], "X", "19800101", None)
        assert (str(bad_sex.value), bad_sex.value.code) == (sex, "bad-trait")
        with pytest.raises(PdfaError) as too_large:
            check_input(b"%PDF-" + bytes(2 * 1024 * 1024), max_bytes=1024 * 1024)
        assert (str(too_large.value), too_large.value.code) == (pdf, "pdf-too-large")


@pytest.mark.parametrize(("setting", "environ", "expected"), [
    ("auto", {}, "fr"),
    ("auto", {"LANG": "C.UTF-8"}, "fr"),
    ("auto", {"LANG": "en_GB.UTF-8"}, "en"),
    ("auto", {"LANG": "de_DE.UTF-8"}, "fr"),  # a language the agent does not have: French
    ("auto", {"LANGUAGE": "de:en", "LANG": "fr_FR.UTF-8"}, "en"),  # LANGUAGE first, a list
    ("auto", {"LC_ALL": "fr_FR.UTF-8", "LANG": "en_US.UTF-8"}, "fr"),  # gettext's order
    ("auto", {"LC_MESSAGES": "en_US.UTF-8", "LANG": "fr_FR.UTF-8"}, "en"),
    ("fr", {"LANG": "en_US.UTF-8"}, "fr"),  # the setting wins over the locale
    ("en", {"LANG": "fr_FR.UTF-8"}, "en"),
])
def test_the_language_is_the_setting_else_the_locale_else_french(
        setting: str, environ: dict[str, str], expected: str) -> None:
    assert i18n.resolve(setting, environ) == expected


def test_ui_language_is_a_documented_setting_that_refuses_other_values(tmp_path: Path) -> None:
    assert AgentConfig().ui_language == "auto"
    file = tmp_path / "agent.toml"
    file.write_text('[ui]\nlanguage = "en"\n')
    assert load_config(file).ui_language == "en"
    file.write_text('[ui]\nlanguage = "de"\n')
    with pytest.raises(ConfigError, match=r"ui\.language"):
        load_config(file)


def test_one_language_at_a_time(english: None) -> None:
    i18n.use_language("fr")
    assert i18n._("Session locked.") == "Session verrouillée."
    i18n.use_language("en")
    assert i18n._("Session locked.") == "Session locked."
    with pytest.raises(ValueError):
        i18n.use_language("de")


def test_the_settings_descriptions_follow_the_language(english: None) -> None:
    key = next(k for k in KEYS if k.dotted == "host.timeout_seconds")
    i18n.use_language("fr")
    assert key.description() == "Délai maximal d'un appel à l'hôte, en secondes."
    i18n.use_language("en")
    assert key.description() == "Timeout of one call to the host, in seconds."


def test_the_page_gets_only_its_own_messages_in_the_language() -> None:
    french = i18n.page_messages("fr")
    assert french["language"] == "fr"
    assert french["messages"]["Open the session"] == "Ouvrir la session"  # index.html
    assert french["messages"]["Wrong PIN: {tries} tries left."] == (
        "Code porteur erroné : {tries} essai(s) restant(s).")  # app.js
    assert "Outbox unusable" not in french["messages"]  # the core's, said by the agent
    # English: the message ids are the English, nothing to send.
    assert i18n.page_messages("en") == {"language": "en", "messages": {}}
    assert i18n.catalogue("fr").etag != i18n.catalogue("en").etag


def test_index_html_is_served_in_one_language() -> None:
    html = (WEB / "index.html").read_text(encoding="utf-8")
    french = i18n.translate_html(html, "fr")
    english = i18n.translate_html(html, "en")
    assert '<html lang="fr">' in french and '<html lang="en">' in english
    assert ">Ouvrir la session</button>" in french and ">Open the session</button>" in english
    assert "Open the session" not in french
    # No line in two languages: no English aside left in the page.
    assert 'lang="en"' not in html.replace('<html lang="fr">', "")
    assert all(text for _line, text in i18n.html_messages(html))


def test_argparse_says_its_own_words_in_the_language(english: None) -> None:
    translate_argparse()
    i18n.use_language("fr")
    parser = argparse.ArgumentParser(prog="dmp-agent")
    text = parser.format_help()
    assert text.startswith("utilisation : dmp-agent") and "affiche cette aide" in text
    i18n.use_language("en")
    parser = argparse.ArgumentParser(prog="dmp-agent")
    assert parser.format_help().startswith("usage: dmp-agent")


def _reading(seconds: float) -> ClockReading:
    return ClockReading(dt.timedelta(seconds=seconds), dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def test_the_clock_line_is_one_sentence_in_one_language(english: None) -> None:
    # Issue 17: "Horloge du poste en avance / ahead de 0 s / workstation clock en avance /
    # ahead by 0 s". Within the Date header's second, the clock is on time.
    i18n.use_language("fr")
    assert _reading(0).describe() == "Horloge du poste à l'heure de l'hôte"
    assert _reading(-0.6).describe() == "Horloge du poste à l'heure de l'hôte"
    assert _reading(180).describe() == "Horloge du poste en avance de 3 min sur l'hôte"
    assert _reading(-3 * 86400).describe() == "Horloge du poste en retard de 3 jours sur l'hôte"
    i18n.use_language("en")
    assert _reading(0).describe() == "Workstation clock on time with the host's"
    assert _reading(180).describe() == "Workstation clock 3 min ahead of the host's"
    assert _reading(-3 * 86400).describe() == "Workstation clock 3 days behind the host's"


def test_plural_forms_follow_the_language(english: None) -> None:
    from agent.views.tray_state import tray_tooltip

    snapshot = {"session": {"state": "none"}, "outbox": {"pending": 2, "failed": 1}}
    i18n.use_language("fr")
    french = tray_tooltip(snapshot)
    assert "2 dépôts en attente" in french and "1 dépôt refusé : voir la page" in french
    i18n.use_language("en")
    english_text = tray_tooltip(snapshot)
    assert "2 deposits waiting" in english_text
    assert "1 deposit refused: see the page" in english_text


def test_the_catalogue_is_read_as_it_is_from_the_package() -> None:
    # No compile step: the .po ships (package data) and is read at the first text.
    catalog = read_catalogue("fr")
    assert catalog.locale is not None and str(catalog.locale) == "fr"
    assert (Path(i18n.__file__).parent / "locale" / "fr" / "LC_MESSAGES" / "messages.po").is_file()
