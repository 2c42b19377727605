"""Issue 17 through the local API of a real `dmp-agent run`: a CPS with two practice
situations lets the professional choose one (after the PIN the first time, before it once
the card's situations are known; by the structure remembered for the card), and the outbox
the views get lists only the open session's professional's deposits."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import httpx
import pytest

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.cps_profiles import PROFILES
from cardreader.virtual.vitale import VirtualVitale
from tests.live import LiveWorld, qualify

pytestmark = pytest.mark.pcsc
PIN = "1234"
GP_STRUCTURES = [s.structure_id for s in PROFILES["gp"].situations]


def _open_in_background(live: LiveWorld, body: dict[str, Any]) -> tuple[threading.Thread,
                                                                         list[httpx.Response]]:
    answers: list[httpx.Response] = []

    def run() -> None:
        with live.agent.client(timeout=60) as api:
            answers.append(api.post("/api/session", json=body))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answers


def test_a_card_with_two_situations_lets_the_professional_choose(
        live: LiveWorld, insert_card: Any) -> None:
    assert len(GP_STRUCTURES) == 2
    insert_card(live.cps("gp"), slot=0)
    locked = live.agent.wait_for(lambda s: s["session"]["state"] == "locked")["session"]
    assert "situations" not in locked  # behind the PIN: not known yet
    with live.agent.client() as api:
        nothing = api.post("/api/session/situation", json={"index": 0})
        assert nothing.status_code == 409 and nothing.json()["code"] == "no-choice"

        # The first time: the PIN, then the choice (the opening waits for it).
        thread, answers = _open_in_background(live, {"pin": PIN, "situation": None})
        choosing = live.agent.wait_for(lambda s: s["session"]["state"] == "choosing")
        offered = choosing["session"]["situations"]
        assert [s["structureId"] for s in offered] == GP_STRUCTURES
        assert [s["index"] for s in offered] == [0, 1]
        bad = api.post("/api/session/situation", json={"index": 2})
        assert bad.status_code == 400 and bad.json()["code"] == "bad-situation"
        assert api.post("/api/session/situation", json={"index": 1}).status_code == 200
        thread.join(30)
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["situation"]["structureId"] == GP_STRUCTURES[1]

        # Locked again, the card's situations are offered before the PIN.
        assert api.delete("/api/session").status_code == 204
        locked = api.get("/api/status").json()["session"]
        assert [s["structureId"] for s in locked["situations"]] == GP_STRUCTURES

        # The structure remembered for the card (the page keeps it per idNat_PS).
        opened = api.post("/api/session", json={"pin": PIN, "structureId": GP_STRUCTURES[0]})
        assert opened.status_code == 200, opened.text
        assert opened.json()["situation"]["structureId"] == GP_STRUCTURES[0]
        assert api.delete("/api/session").status_code == 204

        # An opening waiting for the choice is cancelled by a lock.
        thread, answers = _open_in_background(live, {"pin": PIN, "situation": None})
        live.agent.wait_for(lambda s: s["session"]["state"] == "choosing")
        assert api.delete("/api/session").status_code == 204
        thread.join(30)
        assert answers[0].status_code == 409 and answers[0].json()["code"] == "cancelled"
        after = api.get("/api/status").json()["session"]
        assert after["state"] == "locked" and after["error"] == ""

        # Without a situation at all, as before: the first.
        first = api.post("/api/session", json={"pin": PIN})
        assert first.status_code == 200 and first.json()["situation"]["structureId"] == \
            GP_STRUCTURES[0]
        assert api.delete("/api/session").status_code == 204


def _gone(link: Any, slot: int) -> None:
    link.stop()
    assert wait_for_card(list_readers()[slot], present=False)


def test_the_outbox_lists_only_the_open_session_s_deposits(
        live: LiveWorld, insert_card: Any) -> None:
    title = "Dépôt de l'opticienne"
    pharmacist = insert_card(live.cps("pharmacist"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        if patient["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        assert api.delete("/api/session").status_code == 204
    _gone(pharmacist, 0)

    optician = insert_card(live.cps("optician"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)
        types = [t["code"] for t in api.get("/api/deposit-types").json()]
        assert "E1762" not in types  # the submission set's signature: never offered
        live.host.stop()
        try:
            queued = api.post("/api/deposits", params={"typeCode": types[0], "title": title},
                              content=b"compte rendu\n", headers={"content-type": "text/plain"})
            assert queued.status_code == 202, queued.text
            mine = api.get("/api/outbox").json()
            assert [i["title"] for i in mine["items"]] == [title]
            assert mine["pending"] == 1
            # Locked: nobody's deposits are listed, the waiting one is only counted.
            assert api.delete("/api/session").status_code == 204
            nobody = api.get("/api/outbox").json()
            assert nobody["items"] == [] and nobody["pending"] == 0
            assert nobody["others"]["pending"] == 1
            assert api.get("/api/status").json()["outbox"]["items"] == []
        finally:
            live.host.start()
    _gone(optician, 0)

    # The next professional never sees it, and their session does not send it: signed by
    # the optician, it would be refused for good under another's session though it is valid.
    pharmacist = insert_card(live.cps("pharmacist"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        seen = api.get("/api/outbox").json()
        assert all(i["title"] != title for i in seen["items"])
        assert seen["others"]["pending"] == 1 and seen["others"]["failed"] == 0
        assert api.delete("/api/session").status_code == 204
    _gone(pharmacist, 0)

    # Its author comes back: it leaves at once and the host stores it.
    insert_card(live.cps("optician"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0
                            and s["outbox"]["failed"] == 0, timeout=60)
    stored = [t for _u, t, _c in live.stored(patient["patient"]["ins"])]
    assert title in stored


def _deposit_stored(live: LiveWorld, api: httpx.Client, ins: str, title: str) -> tuple[str, str]:
    """Deposit a text as the open session, wait until the host holds it: its facility type
    and practice setting as stored."""
    code = api.get("/api/deposit-types").json()[0]["code"]
    queued = api.post("/api/deposits", params={"typeCode": code, "title": title},
                      content=b"compte rendu\n", headers={"content-type": "text/plain"})
    assert queued.status_code == 202, queued.text
    live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=60)
    with contextlib.closing(live.host.db()) as db:
        row = db.execute("SELECT facility_type, practice_setting FROM documents WHERE ins = ? "
                         "AND title = ?", (ins, title)).fetchone()
    assert row is not None, f"{title} not stored"
    return row


def test_a_deposit_says_where_it_was_made_from_the_chosen_situation(
        live: LiveWorld, insert_card: Any) -> None:
    """Issue 12: the facility type (TRE_R02) and practice setting (TRE_A01) come from the
    practice situation the session uses, never a constant: the same GP deposits as a
    "cabinet individuel" from their practice, as a "centre de santé" from the centre."""
    assert [s.sector for s in PROFILES["gp"].situations] == ["SA07", "SA05"]
    gp = insert_card(live.cps("gp"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    with live.agent.client() as api:
        where = {}
        for structure in GP_STRUCTURES:
            opened = api.post("/api/session", json={"pin": PIN, "structureId": structure})
            assert opened.status_code == 200, opened.text
            patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
            if patient["dmp"]["status"] == "absent":
                assert api.post("/api/dmp", json={"consent": True}).status_code == 201
            where[structure] = _deposit_stored(live, api, patient["patient"]["ins"],
                                               f"CR depuis {structure}")
            assert api.delete("/api/session").status_code == 204
    assert where == {GP_STRUCTURES[0]: ("SA07", "AMBULATOIRE"),
                     GP_STRUCTURES[1]: ("SA05", "AMBULATOIRE")}
    _gone(gp, 0)
