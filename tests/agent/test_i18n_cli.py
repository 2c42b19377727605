"""The command line and `doctor` in one language at a time, as a user runs them: French by
default, English by the ``ui.language`` setting or by the locale when it is ``auto``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(tmp_path: Path, *args: str, setting: str | None = None,
         lang: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agent.toml"
    config.write_text('[host]\nurl = "https://127.0.0.1:9"\ntimeout_seconds = 2\n'
                      + (f'\n[ui]\nlanguage = "{setting}"\n' if setting else ""))
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL",
                                                             "LC_MESSAGES")}
    env.update({"LANG": lang, "DMP_AGENT_CONFIG": str(config), "HOME": str(tmp_path),
                "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "XDG_DATA_HOME": str(tmp_path / "data"),
                "XDG_STATE_HOME": str(tmp_path / "state")})
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_help_is_in_french_by_default(tmp_path: Path) -> None:
    done = _run(tmp_path, "--help")
    assert done.returncode == 0
    out = done.stdout
    assert out.startswith("utilisation : dmp-agent")
    assert "Agent DMP du poste de travail." in out
    assert "crée le DMP du patient, imprime la fiche" in out
    assert "create the patient's DMP" not in out  # no line written twice
    deposit = _run(tmp_path, "deposit", "--help").stdout
    assert "type de document (LOINC), voir --list-types" in deposit
    assert "Codes de sortie : 0 fait, 1 refusé ou échoué" in deposit
    assert "Exemple :" in deposit and "Example" not in deposit


@pytest.mark.parametrize(("setting", "lang"), [("en", "fr_FR.UTF-8"), ("auto", "en_GB.UTF-8"),
                                               (None, "en_US.UTF-8")])
def test_the_help_is_in_english_by_setting_or_locale(tmp_path: Path, setting: str | None,
                                                     lang: str) -> None:
    done = _run(tmp_path, "--help", setting=setting, lang=lang)
    assert done.returncode == 0
    out = done.stdout
    assert out.startswith("usage: dmp-agent")
    assert "DMP workstation agent." in out
    assert "create the patient's DMP, print the sheet" in out
    assert "crée le DMP" not in out
    deposit = _run(tmp_path, "deposit", "--help", setting=setting, lang=lang).stdout
    assert "document type (LOINC), see --list-types" in deposit
    assert "Exit codes: 0 done, 1 refused or failed" in deposit


def test_a_misuse_is_said_in_the_language(tmp_path: Path) -> None:
    french = _run(tmp_path, "deposit", "--bogus")
    assert french.returncode == 2 and "arguments non reconnus : --bogus" in french.stderr
    english = _run(tmp_path, "deposit", "--bogus", setting="en")
    assert english.returncode == 2 and "unrecognized arguments: --bogus" in english.stderr


def test_doctor_in_french_then_in_english(tmp_path: Path) -> None:
    # Not enrolled, nothing at the host's address: problems, said in one language.
    french = _run(tmp_path, "doctor")
    assert french.returncode == 1
    out = french.stdout
    assert ("[problème ] Enrôlement du poste : Enrôlement inutilisable : Ce poste n'est pas "
            "enrôlé") in out
    assert "problème(s)" in out and "avertissement(s)" in out
    assert "Workstation" not in out and " / " not in out  # no line written twice
    english = _run(tmp_path, "doctor", setting="en")
    assert english.returncode == 1
    out = english.stdout
    assert ("[problem  ] Workstation enrolment: Enrolment unusable: This workstation is not "
            "enrolled") in out
    assert "problem(s)" in out and "warning(s)" in out
    assert "Enrôlement" not in out and " / " not in out


def test_doctor_json_keeps_its_ids_and_adds_the_title(tmp_path: Path) -> None:
    import json

    report = json.loads(_run(tmp_path, "doctor", "--json", setting="en").stdout)
    enrolment = next(c for c in report["checks"] if c["name"] == "enrolment")
    assert enrolment["status"] == "problem" and enrolment["title"] == "Workstation enrolment"
    french = json.loads(_run(tmp_path, "doctor", "--json").stdout)
    assert next(c for c in french["checks"] if c["name"] == "enrolment")["title"] == (
        "Enrôlement du poste")
