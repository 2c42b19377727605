"""`dmp-vcard` and `dmp-agent cards` as a user runs them, against the real pcscd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.vitale_profiles import PROFILES

pytestmark = pytest.mark.pcsc

BIN = Path(sys.executable).parent


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=60, check=check
    )


@pytest.fixture
def vcard(pcscd, tmp_path: Path):
    state = tmp_path / "cards"

    def vcard(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("dmp-vcard", "--state-dir", str(state), *args, check=check)

    for reader in list_readers():
        assert wait_for_card(reader, present=False)
    yield vcard
    for slot in ("0", "1"):
        vcard("remove", "--slot", slot)


def cards_json() -> dict[int, dict]:
    out = run("dmp-agent", "cards", "--json").stdout
    return dict(enumerate(json.loads(line) for line in out.splitlines()))


def test_insert_list_swap_remove(vcard) -> None:
    vcard("insert", "cps:pharmacist", "--slot", "0")
    vcard("insert", "vitale:family", "--slot", "1")
    assert "cps:pharmacist" in vcard("status").stdout
    slots = cards_json()
    assert slots[0]["status"] == "valid" and slots[0]["cps"]["profession"] == "21"
    assert slots[0]["cps"]["pinTriesLeft"] == 3
    family = PROFILES["family"]
    assert [p["firstName"] for p in slots[1]["vitale"]["beneficiaries"]] == [
        b.first_name for b in family.beneficiaries
    ]

    vcard("swap", "vitale:single", "--slot", "1")
    assert wait_for_card(list_readers()[1])
    single = cards_json()[1]
    assert single["vitale"]["beneficiaries"][0]["lastName"] == PROFILES["single"].holder.last_name

    vcard("remove", "--slot", "1")
    assert wait_for_card(list_readers()[1], present=False)
    assert cards_json()[1]["status"] == "none"


def test_second_insert_in_a_full_slot_is_refused(vcard) -> None:
    vcard("insert", "vitale:single", "--slot", "0")
    second = vcard("insert", "vitale:family", "--slot", "0", check=False)
    assert second.returncode == 1 and "already holds vitale:single" in second.stderr


def test_unknown_profile_is_a_clear_error(vcard) -> None:
    result = vcard("insert", "cps:surgeon", check=False)
    assert result.returncode != 0 and "unknown profile" in result.stderr


def test_human_listing_names_the_card_and_status(vcard) -> None:
    vcard("insert", "cps:optician", "--slot", "0")
    out = run("dmp-agent", "cards").stdout
    assert "CPS3" in out and "— valide" in out and "(valid)" not in out and "profession 28" in out


ENGLISH = {"LANGUAGE": "", "LANG": "en_US.UTF-8"}  # conftest pins LANGUAGE=fr: unset it


def test_cards_are_said_in_french_by_default_and_in_english_by_the_locale(vcard) -> None:
    # Issue 17: "valide (valid)", "aucune carte / no card": one language at a time.
    vcard("insert", "cps:optician", "--slot", "0")
    french = run("dmp-agent", "cards").stdout
    assert "— valide" in french and "— vide" in french and "aucune carte" in french
    assert not any(word in french for word in ("(valid)", "(none)", "no card", " / "))
    english = subprocess.run([str(BIN / "dmp-agent"), "cards"], capture_output=True,
                             text=True, timeout=60, check=True,
                             env={**os.environ, **ENGLISH}).stdout
    assert "— valid" in english and "— empty" in english and "no card" in english
    assert "valide" not in english and "aucune" not in english and " / " not in english


def test_the_virtual_card_tool_speaks_english_once(vcard) -> None:
    # dmp-vcard is a developer's tool: English only (docs/i18n.md), never doubled.
    said = [vcard("--help").stdout, vcard("insert", "vitale:single", "--slot", "1").stdout,
            vcard("status").stdout, vcard("remove", "--slot", "1").stdout,
            vcard("remove", "--slot", "1").stdout]
    assert "Virtual cards for tests and the sandbox" in said[0]
    assert said[1:] == ["vitale:single inserted in slot 1\n",
                        "slot 0: (empty)\nslot 1: vitale:single\n",
                        "vitale:single removed from slot 1\n", "slot 1: already empty\n"]
    assert not any(" / " in text or "vide" in text for text in said)


def test_watch_prints_events_as_they_happen(vcard) -> None:
    watch = subprocess.Popen(
        [str(BIN / "dmp-agent"), "cards", "--watch", "--json"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert watch.stdout is not None
        for _ in list_readers():  # the initial listing, one line per slot
            assert json.loads(watch.stdout.readline())["status"] == "none"
        vcard("insert", "vitale:demo", "--slot", "1")
        line = json.loads(watch.stdout.readline())
        while line.get("status") != "valid":  # reader events may come first
            line = json.loads(watch.stdout.readline())
        assert line["vitale"]["category"] == "demo"
        vcard("remove", "--slot", "1")
        line = json.loads(watch.stdout.readline())
        assert line["status"] == "none"
    finally:
        os.kill(watch.pid, signal.SIGTERM)
        assert watch.wait(timeout=10) == 0


def test_cards_without_pcscd_says_how_to_fix(pcscd) -> None:
    pcscd.stop()
    try:
        result = run("dmp-agent", "cards", check=False)
        assert result.returncode == 1 and "pcscd" in result.stderr
    finally:
        pcscd.start()
