"""What is new since my last visit (the ANS's incremental consultation, issue 12): the host
says when this professional last consulted the dossier, the agent marks what was registered
since then ("nouveau") and filters on it (`GET /api/documents?new=true`), the marks staying
through the visit's reloads. The real agent, host, cards and pcscd; a pharmacist deposits
between two visits of the GP."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from agent.client.dmp import DmpClient, PatientContext
from agent.client.session import HostSession
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.direct import DirectConnection
from cardreader.virtual.vitale import VirtualVitale
from tests.cda_support import report_pdf
from tests.host.tls_harness import workstation
from tests.live import LiveWorld, qualify
from tests.localapi.test_workflows import _remove

pytestmark = pytest.mark.pcsc

PIN = "1234"


@contextlib.contextmanager
def visit(live: LiveWorld, insert_card: Any, profile: str) -> Iterator[httpx.Client]:
    """``profile``'s CPS in, the session open, the patient's dossier listed; the CPS out at
    the end (the Vitale card stays)."""
    cps = insert_card(live.cps(profile), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
        yield api
    cps.stop()
    _remove(0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "none")


def deposit(api: httpx.Client, live: LiveWorld, title: str) -> str:
    qualify(api)  # the patient's passport checked (RNIV: no deposit before)
    code = api.get("/api/deposit-types").json()[0]["code"]
    answer = api.post("/api/deposits", params={"typeCode": code, "title": title},
                      content=report_pdf(title),
                      headers={"content-type": "application/pdf"})
    assert answer.status_code == 202, answer.text
    unique_id = str(answer.json()["uniqueId"])
    live.agent.wait_for(lambda s: any(d["uniqueId"] == unique_id
                                      for d in s["patient"]["documents"]), timeout=30)
    return unique_id


def test_what_the_pharmacist_deposited_since_the_gps_last_visit_is_new_to_the_gp(
        live: LiveWorld, insert_card: Any) -> None:
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    with visit(live, insert_card, "pharmacist") as api:
        if api.get("/api/status").json()["patient"]["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        before = deposit(api, live, "Avant la visite")
    with visit(live, insert_card, "gp") as api:
        assert api.post("/api/authorizations", json={"confirmed": True}).status_code == 200
        first = live.agent.wait_for(lambda s: any(
            d["uniqueId"] == before for d in s["patient"]["documents"]))["patient"]
        # Never consulted: the first look (two years) is what is new.
        assert first["lastConsultation"] is None
        assert [d["new"] for d in first["documents"] if d["uniqueId"] == before] == [True]
    between = dt.datetime.now(dt.UTC)
    with visit(live, insert_card, "pharmacist") as api:
        after = deposit(api, live, "Après la visite")
        said = api.get("/api/status").json()["patient"]["patient"]
    with visit(live, insert_card, "gp") as api:
        shown = api.get("/api/status").json()["patient"]
        assert shown["lastConsultation"] is not None
        marks = {d["uniqueId"]: d["new"] for d in shown["documents"]}
        assert marks[after] is True and marks[before] is False
        assert [d["uniqueId"] for d in api.get("/api/documents",
                                                params={"new": "true"}).json()] == [after]
        # A reload during the visit (its own search) keeps the marks.
        assert api.post("/api/patient/reload").status_code == 200
        listed = api.get("/api/status").json()["patient"]["documents"]
        again = {d["uniqueId"]: d["new"] for d in listed}
        assert again[after] is True and again[before] is False

    # The library call practice software uses, on a session of its own: the delta only.
    card = CpsCard(ApduProtocol(DirectConnection(live.cps("pharmacist"))))
    card.verify_pin(PIN)
    session = HostSession.open(
        live.host.url, workstation(live.pki),
        card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(Encoding.DER),
        sign=lambda data: card.sign(CpsKey.AUTHENTICATION, data),
        id_nat_ps=card.read_identity().id_nat_ps,
        structure_id=card.read_situations()[0].structure_id)
    patient = PatientContext(said["ins"], said["insOid"], said["firstName"],
                             said["birthName"], said["birthDate"])
    try:
        dmp = DmpClient(session)
        assert [e.unique_id for e in dmp.new_since(patient, between)] == [after]
        assert {e.unique_id for e in dmp.new_since(patient, None)} >= {before, after}
        assert dmp.new_since(patient, dt.datetime.now(dt.UTC)) == []
    finally:
        session.close()
