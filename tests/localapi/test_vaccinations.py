"""The vaccination record through the real agent (its local API, real cards in the real pcscd,
the real host over mutual TLS): a pharmacist and a nurse record a vaccination, the agent
writes the CI-SIS vaccination note, deposits it as every deposit, and the dossier's
vaccinations section shows it, linked to its document; an optician is refused before
anything is built; bad or hostile fields are refused with their own code, nothing queued.

With the CI-SIS files the note passes the volet's schematrons on the agent and on the host;
without them (CI) the optional mode of tests/conftest.py applies, as for every CDA test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cda_support import needs_cisis
from tests.live import LiveWorld
from tests.localapi.sessions import qualified_session
from tests.localapi.test_cda_deposits import SKIPPED, _queued, _sent, _session_patient, live
from tests.localapi.test_cli_beside_agent import dmp_agent
from wire import cda

pytestmark = pytest.mark.pcsc
__all__ = ["live"]  # the CDA tests' live world (this machine's CI-SIS files)

FLU = "61402736"


@pytest.fixture
def pharmacist(live: LiveWorld, insert_card: Any) -> Iterator[httpx.Client]:
    with qualified_session(live, insert_card, "pharmacist") as client:
        yield client


def _record(api: httpx.Client, **changes: object) -> httpx.Response:
    body: dict[str, object] = {"vaccine": FLU, "date": dt.date.today().isoformat(),
                               "lot": "K123AB", "dose": 1, "route": "20035000",
                               "site": "16217661000119109"}
    body.update(changes)
    return api.post("/api/vaccinations", json=body, timeout=120)


def test_a_pharmacist_records_a_vaccination_the_dossier_shows_it(
        live: LiveWorld, pharmacist: httpx.Client) -> None:
    choices = pharmacist.get("/api/vaccinations/choices").json()
    assert choices["allowed"] is True
    assert FLU in [v["code"] for v in choices["vaccines"]]
    answer = _record(pharmacist, lot="PH-2026/1")
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["volet"] == "VAC-NOTE" and queued.get("skippedChecks", []) == SKIPPED
    assert queued["vaccination"]["lot"] == "PH-2026/1"
    _sent(live)
    unique_id = queued["uniqueId"]
    document = cda.read(pharmacist.get(f"/api/documents/{unique_id}/content").content)
    metadata = cda.deposit_metadata(document.header)
    patient = _session_patient(pharmacist)
    assert (metadata.type_code, metadata.patient.ins) == ("87273-9", patient["ins"])
    me = pharmacist.get("/api/status").json()["session"]["professional"]
    assert (metadata.author.id_nat_ps, metadata.author.profession) == (me["idNatPs"], "21")
    sections = pharmacist.get("/api/patient/sections").json()["sections"]
    [vaccinations] = [s for s in sections if s["key"] == "vaccinations"]
    [shown] = [i for i in vaccinations["items"] if i["source"]["uniqueId"] == unique_id]
    assert shown["label"].startswith("VAXIGRIPTETRA")
    assert "lot PH-2026/1" in shown["detail"]
    assert shown["date"] == dt.date.today().isoformat()


@needs_cisis
def test_the_recorded_note_passes_the_volets_schematrons(live: LiveWorld,
                                                         pharmacist: httpx.Client) -> None:
    answer = _record(pharmacist, dose=None, route=None, site=None, vaccine="68747507")
    assert answer.status_code == 202, answer.text
    assert "skippedChecks" not in answer.json()
    _sent(live)


def test_a_nurse_records_one_too(live: LiveWorld, insert_card: Any) -> None:
    with qualified_session(live, insert_card, "nurse") as nurse:
        assert nurse.get("/api/vaccinations/choices").json()["allowed"] is True
        answer = _record(nurse, vaccine="61077869", dose=None)
        assert answer.status_code == 202, answer.text
        assert answer.json()["volet"] == "VAC-NOTE"
        # Sent under her session: an item waits for its author's card, and the patient's
        # later deposits wait behind it.
        _sent(live)


def test_an_optician_is_refused_before_anything_is_built(live: LiveWorld,
                                                        insert_card: Any) -> None:
    with qualified_session(live, insert_card, "optician") as optician:
        assert optician.get("/api/vaccinations/choices").json()["allowed"] is False
        before = _queued(optician)
        answer = _record(optician)
        assert answer.status_code == 403
        assert answer.json()["code"] == "vaccination-not-allowed"
        assert "pharmaciens" in answer.json()["message"]  # said in French, the default
        assert _queued(optician) == before


@pytest.mark.parametrize(("changes", "code"), [
    ({"vaccine": None}, "vaccination-unknown-vaccine"),
    ({"vaccine": "<x/>"}, "vaccination-unknown-vaccine"),
    ({"date": "2999-01-01"}, "vaccination-future-date"),
    ({"date": "2026-02-30"}, "vaccination-bad-date"),
    ({"lot": "K1\u0000\u001b[31m"}, "vaccination-bad-lot"),
    ({"lot": "K" * 60_000}, "vaccination-bad-lot"),
    ({"dose": -1}, "vaccination-bad-dose"),
    ({"route": "20035000; DROP"}, "vaccination-unknown-route"),
    ({"site": ["deltoïde"]}, "vaccination-unknown-site"),
])
def test_a_bad_field_is_refused_with_its_code_and_nothing_is_queued(
        pharmacist: httpx.Client, changes: dict[str, object], code: str) -> None:
    before = _queued(pharmacist)
    answer = _record(pharmacist, **changes)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    assert _queued(pharmacist) == before


def test_a_body_that_is_no_json_object_is_refused(pharmacist: httpx.Client) -> None:
    for body, headers, status in ((b"[1]", {"content-type": "application/json"}, 400),
                                  (b"vaccine=x", {"content-type": "text/plain"}, 415)):
        answer = pharmacist.post("/api/vaccinations", content=body, headers=headers)
        assert answer.status_code == status, answer.text


def test_the_command_line_records_one_through_the_running_agent(
        live: LiveWorld, pharmacist: httpx.Client) -> None:
    done = dmp_agent(live, "vaccinate", "--vaccine", "61920725", "--lot", "CLI-77",
                     "--dose", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Note de vaccination signée par la carte" in done.stdout
    assert "Déposé : Note de vaccination" in done.stdout
    bad = dmp_agent(live, "vaccinate", "--vaccine", "61920725", "--lot", "CLI-78",
                    "--date", "2999-01-01")
    assert bad.returncode != 0 and "dans le futur" in bad.stdout + bad.stderr
