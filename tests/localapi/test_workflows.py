"""The agent as practice software sees it: `dmp-agent run` in its own process, its local
API over loopback, real cards in the real pcscd, the real host over mutual TLS. Each test
asserts what the user relies on, and what the host stored."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.vitale import VirtualVitale
from tests.agent.test_secrets_sheet import page_text
from tests.cda_support import report_pdf
from tests.live import LiveWorld, qualify
from wire import cda

pytestmark = pytest.mark.pcsc
PIN = "1234"


def _open(live: LiveWorld, insert_card: Any, profile: str) -> httpx.Client:
    insert_card(live.cps(profile), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        answer = api.post("/api/session", json={"pin": PIN})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "open"
    return live.agent.client()


def _patient(live: LiveWorld, insert_card: Any, profile: str = "single") -> dict[str, Any]:
    insert_card(VirtualVitale.from_profile(profile), slot=1)
    status = live.agent.wait_for(lambda s: s["patient"]["state"] in ("ready", "error",
                                                                      "choosing"))
    return status["patient"]


def _remove(slot: int) -> None:
    # insert_card's links are stopped at the end of each test; a test removing a card
    # earlier waits for pcscd to see it gone.
    reader = list_readers()[slot]
    assert wait_for_card(reader, present=False)


def test_a_wrong_pin_says_the_tries_left_and_the_right_one_opens_the_session(
        live: LiveWorld, insert_card: Any) -> None:
    insert_card(live.cps("orthoptist"), slot=0)
    status = live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    assert status["session"]["professional"]["profession"]
    with live.agent.client() as api:
        wrong = api.post("/api/session", json={"pin": "0000"})
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "wrong-pin" and wrong.json()["triesLeft"] == 2
        assert api.get("/api/status").json()["session"]["pinTriesLeft"] == 2
        bad = api.post("/api/session", json={"pin": "12a4"})
        assert bad.status_code == 400  # never sent to the card: no try used
        right = api.post("/api/session", json={"pin": PIN})
        assert right.status_code == 200, right.text
        assert api.post("/api/session", json={"pin": PIN}).status_code == 409
        assert api.delete("/api/session").status_code == 204
        locked = api.get("/api/status").json()["session"]
        assert locked["state"] == "locked" and locked["situation"] is None


def test_the_pharmacist_creates_the_dmp_and_gets_the_sheet_once(
        live: LiveWorld, insert_card: Any) -> None:
    with _open(live, insert_card, "pharmacist") as api:
        patient = _patient(live, insert_card, "single")
        assert patient["state"] == "ready"
        if patient["dmp"]["status"] == "absent":
            refused = api.post("/api/dmp", json={"consent": False})
            assert refused.status_code == 400 and refused.json()["code"] == "consent-required"
            # An address the host could not use is refused before anything is sent.
            for bad in ("claire.martin", "claire@localhost", "a@example.fr, b@example.fr",
                        "claire@example.fr\r\nBcc: x@example.org", "a" * 250 + "@x.fr"):
                refused = api.post("/api/dmp", json={"consent": True, "email": bad})
                assert refused.status_code == 400, refused.text
                assert refused.json()["code"] == "bad-email"
                assert refused.json()["message"].startswith("Adresse électronique du patient")
            not_text = api.post("/api/dmp", json={"consent": True, "email": 42})
            assert not_text.status_code == 400 and not_text.json()["code"] == "bad-request"
            with live.host.db() as db:
                assert db.execute("SELECT count(*) FROM dossiers WHERE ins = ?",
                                  (patient["patient"]["ins"],)).fetchone() == (0,)
                assert db.execute("SELECT count(*) FROM patient_contacts WHERE ins = ?",
                                  (patient["patient"]["ins"],)).fetchone() == (0,)
            created = api.post("/api/dmp", json={"consent": True, "breakTheGlass": True,
                                                  "regulationCentre": False,
                                                  "email": " claire.martin@example.fr "})
            assert created.status_code == 201, created.text
            sheet = api.get("/api/dmp/sheet")
            assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF")
            assert sheet.headers["content-type"] == "application/pdf"
            assert "claire.martin@example.fr" in page_text(sheet.content)
            # Where it was made: the pharmacy of the session's practice situation.
            structure = api.get("/api/status").json()["session"]["situation"]["name"]
            assert structure and f"Structure : {structure}" in page_text(sheet.content)
            with live.host.db() as db:
                contact = db.execute("SELECT email, channel FROM patient_contacts WHERE "
                                     "ins = ?", (patient["patient"]["ins"],)).fetchall()
            assert contact == [("claire.martin@example.fr", "email")]
        status = api.get("/api/status").json()
        assert status["patient"]["dmp"]["status"] == "open"
        again = api.post("/api/dmp", json={"consent": True})
        assert again.status_code == 409 and again.json()["code"] == "dmp-exists"
        with live.host.db() as db:
            row = db.execute("SELECT status FROM dossiers WHERE ins = ?",
                             (patient["patient"]["ins"],)).fetchone()
        assert row == ("open",)


def test_the_optician_deposits_a_report_that_the_host_stores_with_its_flags(
        live: LiveWorld, insert_card: Any, tmp_path: Any) -> None:
    with _open(live, insert_card, "optician") as api:
        patient = _patient(live, insert_card, "single")
        if patient["dmp"]["status"] == "absent":
            pytest.skip("needs the DMP created by the pharmacist test")  # order of the module
        types = {t["code"]: t["label"] for t in api.get("/api/deposit-types").json()}
        assert "34810-2" not in types or types["34810-2"]
        code = next(iter(types))
        pdf = report_pdf("Bilan visuel", "OD -1,25 ; OG -1,00")
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)
        queued = api.post("/api/deposits", params={
            "typeCode": code, "title": "Bilan visuel API", "masked": "true",
            "invisibleToPatient": "false"}, content=pdf,
            headers={"content-type": "application/pdf"})
        assert queued.status_code == 202, queued.text
        unique_id = queued.json()["uniqueId"]
        live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0
                            and not s["outbox"]["items"], timeout=30)
        stored = {u: (t, c) for u, t, c in live.stored(patient["patient"]["ins"])}
        assert stored[unique_id] == ("Bilan visuel API", code)
        listed = api.get("/api/documents", params={"q": "bilan visuel api"}).json()
        assert [d["uniqueId"] for d in listed] == [unique_id]
        assert listed[0]["masked"] is True and listed[0]["ownDocument"] is True
        body = api.get(f"/api/documents/{unique_id}/content")
        # Deposited as a CDA R2 level 1 document around the PDF made PDF/A (docs/cda.md).
        assert body.status_code == 200 and body.headers["content-type"].startswith("text/xml")
        document = cda.read(body.content)
        assert (document.volet.name, document.header.title) == ("CDA-R2-N1", "Bilan visuel API")
        wrong_type = api.post("/api/deposits", params={"typeCode": "11488-4"},
                              content=b"%PDF-1.4 x", headers={"content-type": "application/pdf"})
        assert wrong_type.status_code in (400, 409)
        not_pdf = api.post("/api/deposits", params={"typeCode": code}, content=b"MZ\x90",
                           headers={"content-type": "application/x-msdownload"})
        assert not_pdf.status_code == 415


def test_the_gp_is_designated_and_closes_then_reopens_the_dmp_at_the_patients_request(
        live: LiveWorld, insert_card: Any) -> None:
    with _open(live, insert_card, "gp") as api:
        patient = _patient(live, insert_card, "single")
        if patient["dmp"]["status"] == "absent":
            pytest.skip("needs the DMP created by the pharmacist test")  # order of the module
        assert api.post("/api/dmp/medecin-traitant", json={"confirmed": False}
                        ).json()["code"] == "confirmation-required"
        designated = api.post("/api/dmp/medecin-traitant", json={"confirmed": True})
        assert designated.status_code == 200, designated.text
        status = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
        assert status["patient"]["dmp"]["medecinTraitant"] is True

        unasked = api.post("/api/dmp/close", json={"reason": "départ", "patientRequest": False})
        assert unasked.status_code == 400
        assert unasked.json()["code"] == "patient-request-required"
        closed = api.post("/api/dmp/close", json={"reason": "départ", "patientRequest": True})
        assert closed.status_code == 200, closed.text
        status = live.agent.wait_for(lambda s: s["patient"]["dmp"]["status"] == "closed")
        assert status["patient"]["documents"] == []  # a closed DMP serves nothing
        with live.host.db() as db:
            row = db.execute("SELECT status FROM dossiers WHERE ins = ?",
                             (patient["patient"]["ins"],)).fetchone()
        assert row == ("closed",)
        reopened = api.post("/api/dmp/reactivate", json={"consent": True})
        assert reopened.status_code == 200, reopened.text
        live.agent.wait_for(lambda s: s["patient"]["dmp"]["status"] == "open")


def test_removing_the_vitale_card_clears_the_patient_at_once(
        live: LiveWorld, insert_card: Any) -> None:
    with _open(live, insert_card, "gp") as api:
        insert_card(VirtualVitale.from_profile("single"), slot=1).stop()
        _remove(1)
        status = live.agent.wait_for(lambda s: s["patient"]["state"] == "none")
        assert status["patient"]["patient"] is None and status["patient"]["documents"] == []
        refused = api.get("/api/documents")
        assert refused.status_code == 409 and refused.json()["code"] == "no-patient"


def test_break_the_glass_needs_a_justification_and_is_shown_until_the_card_leaves(
        live: LiveWorld, insert_card: Any) -> None:
    with _open(live, insert_card, "gp") as api:
        card = insert_card(VirtualVitale.from_profile("single"), slot=1)
        patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        short = api.put("/api/patient/access-mode", json={"mode": "break-the-glass",
                                                            "justification": "urgent"})
        assert short.status_code == 400
        why = "patient inconscient, pronostic vital engagé"
        answer = api.put("/api/patient/access-mode", json={"mode": "break-the-glass",
                                                             "justification": why})
        assert answer.status_code == 200, answer.text
        mode = api.get("/api/status").json()["patient"]["accessMode"]
        assert mode == {"code": "bris_de_glace", "justification": why}
        with live.host.db() as db:
            logged = db.execute("SELECT COUNT(*) FROM access_log WHERE ins = ? AND upper(mode) = ?",
                                (patient["patient"]["ins"], "BRIS_DE_GLACE")).fetchone()[0]
        assert logged >= 1
        card.stop()  # the patient leaves: the emergency access ends with the context
        _remove(1)
        after = live.agent.wait_for(lambda s: s["patient"]["state"] == "none")["patient"]
        assert after["accessMode"] is None


def test_the_event_stream_reports_a_card_inserted(live: LiveWorld, insert_card: Any) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    got_card = threading.Event()

    def listen() -> None:
        with live.agent.client(timeout=None) as api, api.stream("GET", "/api/events") as stream:
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    seen.append((kind, json.loads(line[6:])))
                    if kind == "cards" and any(s["kind"] == "vitale"
                                               for s in seen[-1][1]["slots"]):
                        got_card.set()
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    live.agent.wait_for(lambda s: True)
    insert_card(VirtualVitale.from_profile("demo"), slot=1)
    assert got_card.wait(10), seen
    assert seen[0][0] == "status"


@pytest.fixture(autouse=True)
def _no_session_left(live: LiveWorld) -> Iterator[None]:
    yield
    with live.agent.client() as api:
        api.delete("/api/session")


def test_no_pin_nir_ins_or_patient_name_reaches_the_agents_logs(
        live: LiveWorld, insert_card: Any) -> None:
    """Runs last in this module: every workflow above has logged what it logs."""
    from cardreader.virtual.vitale_profiles import PROFILES

    with _open(live, insert_card, "gp") as api:
        patient = _patient(live, insert_card, "family")
        if patient["state"] == "choosing":
            api.post("/api/patient/select", json={"index": 2})
    logs = [p for p in (live.agent.root / "state").rglob("*.log*") if p.is_file()]
    assert logs, "the agent writes a log file"
    text = "\n".join(p.read_text(errors="replace") for p in [*logs, live.agent.log_file])
    assert "session opened" in text  # the log is there and in use
    for card in PROFILES.values():
        assert card.nir_with_key not in text and card.nir not in text
        for person in card.beneficiaries:
            for name in (person.first_name, person.birth_name, person.last_name):
                assert f" {name}" not in text and f"{name} " not in text, name
    with live.host.db() as db:
        for (ins,) in db.execute("SELECT ins FROM dossiers"):
            assert ins not in text
    assert '"pin"' not in text and not re.search(r"(?<![0-9])1234(?![0-9])", text)
