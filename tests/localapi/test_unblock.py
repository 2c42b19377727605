"""Unblocking a blocked CPS with its PUK through the real `dmp-agent run` and its local API
(POST /api/session/unblock), and through `dmp-agent unblock --stdin` beside it: the card
blocked by three wrong PINs, the formats refused before the card, a wrong PUK with its tries
left, the right one, then the session opened with the new PIN; a blocked PUK; no card."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.cps_profiles import PIN, PUK
from cardreader.virtual.cps_state import MAX_PUK_TRIES
from cardreader.virtual.pki import TestHealthCA
from tests.live import BIN, LiveWorld

pytestmark = pytest.mark.pcsc

NEW_PIN = "4321"
WRONG_PUK = "87654321"


def _card(live: LiveWorld, name: str, *, pin_tries: int | None = None,
          puk_tries: int | None = None) -> VirtualCps:
    """The orthoptist's card with its own state (``name``), its counters as given."""
    ca = TestHealthCA.load(live.pki / "health-ca")
    card = VirtualCps.from_profile("orthoptist", ca=ca, state_dir=live.root / name)
    if pin_tries is not None:
        card._counters.pin_tries = pin_tries
    if puk_tries is not None:
        card._counters.puk_tries = puk_tries
    card._save_counters()
    return card


def _unblock(api: Any, puk: str, new_pin: str) -> Any:
    return api.post("/api/session/unblock", json={"puk": puk, "newPin": new_pin})


def test_three_wrong_pins_block_the_card_and_its_puk_unblocks_it(
        live: LiveWorld, insert_card: Any) -> None:
    card = _card(live, "card-unblock")
    insert_card(card, slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        # Not blocked: nothing is sent, no PUK try used.
        early = _unblock(api, PUK, NEW_PIN)
        assert early.status_code == 409 and early.json()["code"] == "not-blocked"
        assert card.puk_tries_left == MAX_PUK_TRIES
        for expected in ("wrong-pin", "wrong-pin", "card-blocked"):
            assert api.post("/api/session", json={"pin": "0000"}).json()["code"] == expected
        assert card.pin_tries_left == 0
        status = api.get("/api/status").json()
        assert status["session"]["pinTriesLeft"] == 0
        assert "PUK" in status["session"]["error"]  # said where it is read: unblockable
        # The formats are checked before the card: no PUK try used.
        for puk, new_pin in (("1234", NEW_PIN), ("1234567a", NEW_PIN), (PUK, "12"),
                             (PUK, "123456789"), (PUK, "12a4")):
            refused = _unblock(api, puk, new_pin)
            assert refused.status_code == 400 and refused.json()["code"] == "bad-pin-format"
        assert api.post("/api/session/unblock", json={"puk": PUK}).status_code == 400
        assert card.puk_tries_left == MAX_PUK_TRIES
        # A wrong PUK: its tries left; the card stays blocked.
        wrong = _unblock(api, WRONG_PUK, NEW_PIN)
        assert wrong.status_code == 401, wrong.text
        assert wrong.json()["code"] == "wrong-puk"
        assert wrong.json()["pukTriesLeft"] == MAX_PUK_TRIES - 1 == card.puk_tries_left
        assert card.pin_tries_left == 0
        # The right one: the session is "locked" again, the PIN's tries full.
        right = _unblock(api, PUK, NEW_PIN)
        assert right.status_code == 200, right.text
        assert right.json()["state"] == "locked" and right.json()["pinTriesLeft"] == 3
        assert not right.json()["error"]
        slot = api.get("/api/status").json()["cards"]["slots"][0]
        assert slot["status"] == "valid" and slot["pinTriesLeft"] == 3
        assert card.puk_tries_left == MAX_PUK_TRIES
        # The old PIN is refused, the new one opens the session.
        old = api.post("/api/session", json={"pin": PIN})
        assert old.status_code == 401 and old.json()["triesLeft"] == 2
        opened = api.post("/api/session", json={"pin": NEW_PIN})
        assert opened.status_code == 200, opened.text
        assert opened.json()["state"] == "open"
        again = _unblock(api, PUK, NEW_PIN)
        assert again.status_code == 409 and again.json()["code"] == "not-blocked"
        assert api.delete("/api/session").status_code == 204
    said = live.agent.log_file.read_text(errors="replace")
    assert PUK not in said and WRONG_PUK not in said


def test_a_blocked_puk_leaves_only_the_issuer(live: LiveWorld, insert_card: Any) -> None:
    card = _card(live, "card-puk-blocked", pin_tries=0, puk_tries=1)
    insert_card(card, slot=0)
    status = live.agent.wait_for(lambda s: s["cards"]["slots"]
                                 and s["cards"]["slots"][0]["status"] == "blocked")
    assert "PUK" in status["cards"]["slots"][0]["message"]
    with live.agent.client() as api:
        last = _unblock(api, WRONG_PUK, NEW_PIN)
        assert last.status_code == 423 and last.json()["code"] == "puk-blocked"
        assert "émetteur" in last.json()["message"]
        # Said where the blocked card is said, until the card is read again.
        slot = api.get("/api/status").json()["cards"]["slots"][0]
        assert slot["status"] == "blocked" and "PUK" in slot["message"]
        assert "émetteur" in slot["message"] and "bloqué" in slot["message"]
        final = _unblock(api, PUK, NEW_PIN)  # even the right PUK: the card answers 6983
        assert final.status_code == 423 and final.json()["code"] == "puk-blocked"
    assert card.puk_tries_left == 0 and card.pin_tries_left == 0


def test_the_command_line_unblocks_beside_the_running_agent(
        live: LiveWorld, insert_card: Any) -> None:
    card = _card(live, "card-cli", pin_tries=0)
    insert_card(card, slot=0)
    live.agent.wait_for(lambda s: s["cards"]["slots"]
                        and s["cards"]["slots"][0]["status"] == "blocked")

    def unblock(lines: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "dmp-agent"), "unblock", "--stdin"], input=lines,
                              env=live.agent.env, capture_output=True, text=True, timeout=60)

    wrong = unblock(f"{WRONG_PUK}\n{NEW_PIN}\n")
    assert wrong.returncode == 1, wrong.stderr
    assert f"{MAX_PUK_TRIES - 1} essai(s) restant(s)" in wrong.stderr
    assert card.puk_tries_left == MAX_PUK_TRIES - 1
    bad = unblock(f"{PUK}\n12\n")
    assert bad.returncode == 1 and "4 à 8 chiffres" in bad.stderr
    done = unblock(f"{PUK}\n{NEW_PIN}\n")
    assert done.returncode == 0, done.stderr
    assert "débloquée" in done.stdout
    for shown in (wrong, bad, done):
        assert PUK not in shown.stdout + shown.stderr
        assert WRONG_PUK not in shown.stdout + shown.stderr
    assert card.pin_tries_left == 3
    # The running agent read the card when it went in: asked to unblock it, it finds the
    # card unblocked and reads it again; its session is "locked", the new PIN opens it.
    with live.agent.client() as api:
        stale = _unblock(api, PUK, NEW_PIN)
        assert stale.status_code == 409 and stale.json()["code"] == "not-blocked"
        live.agent.wait_for(lambda s: s["session"]["state"] == "locked"
                            and s["session"]["pinTriesLeft"] == 3)
        opened = api.post("/api/session", json={"pin": NEW_PIN})
        assert opened.status_code == 200, opened.text
        assert api.delete("/api/session").status_code == 204
    not_blocked = unblock(f"{PUK}\n{NEW_PIN}\n")
    assert not_blocked.returncode == 1 and "pas bloquée" in not_blocked.stderr
    assert card.puk_tries_left == MAX_PUK_TRIES


def test_without_a_card_there_is_nothing_to_unblock(live: LiveWorld, insert_card: Any) -> None:
    link = insert_card(_card(live, "card-gone", pin_tries=0), slot=0)
    link.stop()
    assert wait_for_card(list_readers()[0], present=False)
    live.agent.wait_for(lambda s: s["session"]["state"] == "none"
                        and s["session"]["reader"] is None)
    with live.agent.client() as api:
        gone = _unblock(api, PUK, NEW_PIN)
        assert gone.status_code == 409 and gone.json()["code"] == "no-card"
