"""The viewer and the dossier's sections through the real agent's local API (real cards in
the real pcscd, the real host over mutual TLS): a deposited text and PDF are shown as what
they are, under a CSP without scripts; each is fetched from the host once in the visit
(viewing again and reading the sections download nothing more, as the host's access log
shows); a dossier without structured documents says so for every section."""

from __future__ import annotations

import httpx
import pytest

from tests.cda_support import a_pdf
from tests.live import LiveWorld
from tests.web.support import access_log

pytestmark = pytest.mark.pcsc
GP = "810001234565"
LETTER = "Lettre au confrère — Mme Durand\nTension 12/8, à revoir dans un mois.\n"


def deposit(live: LiveWorld, gp_api: httpx.Client, data: bytes, mime: str, title: str) -> str:
    answer = gp_api.post("/api/deposits", params={"typeCode": "11488-4", "title": title},
                      content=data, headers={"content-type": mime}, timeout=120)
    assert answer.status_code == 202, answer.text
    live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=120)
    return str(answer.json()["uniqueId"])


def reads(live: LiveWorld, ins: str) -> int:
    return sum(1 for action, *_rest in access_log(live, ins, GP) if action == "read")


def test_documents_are_shown_safely_and_fetched_once_per_visit(
        live: LiveWorld, gp_api: httpx.Client) -> None:
    ins = gp_api.get("/api/status").json()["patient"]["patient"]["ins"]
    letter = deposit(live, gp_api, LETTER.encode(), "text/plain", "Lettre au confrère")
    report = deposit(live, gp_api, a_pdf(), "application/pdf", "Compte rendu")
    before = reads(live, ins)

    shown = gp_api.get(f"/api/documents/{letter}/view")
    assert shown.status_code == 200, shown.text
    assert shown.headers["x-view-kind"] == "text"
    assert shown.headers["content-type"] == "text/plain; charset=utf-8"
    assert shown.text == LETTER
    csp = shown.headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp and "script" not in csp
    assert shown.headers["x-content-type-options"] == "nosniff"
    assert shown.headers["cache-control"] == "no-store"

    pdf = gp_api.get(f"/api/documents/{report}/view")
    assert pdf.status_code == 200, pdf.text
    assert (pdf.headers["x-view-kind"], pdf.headers["content-type"]) == ("pdf",
                                                                         "application/pdf")
    assert pdf.content.startswith(b"%PDF-")
    assert "Compte%20rendu" in pdf.headers["content-disposition"]
    assert reads(live, ins) == before + 2  # one retrieval per document

    # Again, and the sections: nothing more is downloaded in this visit.
    assert gp_api.get(f"/api/documents/{letter}/view").text == LETTER
    sections = gp_api.get("/api/patient/sections")
    assert sections.status_code == 200
    answer = sections.json()
    assert [s["key"] for s in answer["sections"]] == [
        "allergies", "history", "bloodGroup", "pathologies", "treatments", "vaccinations",
        "labResults", "emergencyContacts"]
    assert {s["status"] for s in answer["sections"]} == {"no-source"}
    assert answer["problems"] == []
    assert reads(live, ins) == before + 2


def test_an_unknown_or_malformed_document_id_is_refused(gp_api: httpx.Client) -> None:
    missing = gp_api.get("/api/documents/urn:uuid:00000000-0000-4000-8000-000000000000/view")
    assert missing.status_code == 404, missing.text
    # The page shows the API's message: one language (French here), the code kept.
    assert " / " not in missing.json()["message"] and missing.json()["code"], missing.text
    bad = gp_api.get("/api/documents/%20spaces%20/view")
    assert bad.status_code == 400
    assert bad.json()["code"] == "bad-request"
