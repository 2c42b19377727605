"""The daily scenarios against the host through its real boundary (TLS 1.3, sessions opened
by virtual CPS cards), on SQLite and PostgreSQL, asserted on what the host stored and logged:
a pharmacist creates the DMP, an optician deposits a signed eye-test report, a GP finds it
once authorised, and a break-the-glass access is traced and notified."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from cardreader.cps import CpsCard
from cardreader.virtual.vitale_profiles import PROFILES as VITALE
from host import patient
from tests.host.documents_support import FHIR, PDF, Card, deposit_bundle, entry_for
from tests.host.harness import card_holder
from tests.host.tls_harness import TlsHost, make_pki, tls_host
from wire.mhd import Patient


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, pki: Path, tmp_path: Path):
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def _signer(card: CpsCard) -> Card:
    return Card(card)


def _search(identity: dict) -> str:
    system = urllib.parse.quote(f"urn:oid:{identity['insOid']}|{identity['ins']}")
    return f"/fhir/DocumentReference?patient.identifier={system}&status=current"


def _documents(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", [])
            if e["resource"]["resourceType"] == "DocumentReference"]


def _resolve(session, person_index: int = 0) -> dict:
    card = VITALE["single"]
    person = card.beneficiaries[person_index]
    answer = session.client.post("/identity/$resolve", json={
        "birthName": person.birth_name, "firstNames": person.first_name,
        "birthDate": person.birth_date.raw, "insuredNir": card.nir_with_key,
        "birthRank": person.birth_rank,
    })
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_counter_creation_deposit_and_consultation(host: TlsHost) -> None:
    pharmacist = host.session("pharmacist")
    identity = _resolve(pharmacist)
    ins = identity["ins"]
    created = pharmacist.client.post(f"/dossiers/{ins}", json={
        "consent": True,
        "emergency": {"regulationCentre": True, "breakTheGlass": True,
                      "emergencySeesMasked": False},
    })
    assert created.status_code == 201, created.text
    assert created.json()["accessCode"]

    optician_card = host.card("optician")
    optician = host.open_session(optician_card)
    who = card_holder("optician")
    entry = entry_for(PDF, who, patient=Patient(ins, identity["insOid"]))
    deposit = deposit_bundle(_signer(optician_card), [(entry, PDF)], who,
                             patient=Patient(ins, identity["insOid"]))
    stored = optician.client.post("/fhir", json=deposit.bundle, headers=FHIR)
    assert stored.status_code == 200, stored.text

    gp = host.session("gp")
    search = _search(identity)
    before = gp.client.get(search)
    assert before.status_code == 200 and _documents(before.json()) == []  # not authorised
    assert gp.client.put(f"/dossiers/{ins}/authorizations/{card_holder('gp').id_nat_ps}",
                         json={}).status_code in (200, 201)
    found = gp.client.get(search)
    assert found.status_code == 200, found.text
    report = next(r for r in _documents(found.json())
                  if r["type"]["coding"][0]["code"] == "34810-2")
    # attachment.url is relative to the FHIR base, as FHIR references are.
    body = gp.client.get(urllib.parse.urljoin("/fhir/", report["content"][0]["attachment"]["url"]))
    assert body.status_code == 200 and body.content == PDF

    log = patient.access_log(host.app.state.guard, ins)
    seen = {(e["actorId"], e["action"], e["outcome"]) for e in log}
    assert (card_holder("pharmacist").id_nat_ps, "create", "allowed") in seen
    assert (who.id_nat_ps, "deposit", "allowed") in seen
    assert (card_holder("gp").id_nat_ps, "read", "allowed") in seen


def test_break_the_glass_is_traced_and_notified(host: TlsHost) -> None:
    pharmacist = host.session("pharmacist")
    identity = _resolve(pharmacist)
    ins = identity["ins"]
    assert pharmacist.client.post(f"/dossiers/{ins}", json={"consent": True}).status_code == 201
    nurse = host.session("nurse")
    search = _search(identity)
    refused = nurse.client.get(search, headers={"X-DMP-Access-Mode": "bris_de_glace"})
    assert refused.status_code == 403  # no justification
    justification = urllib.parse.quote("Patient inconscient, détresse respiratoire")
    emergency = nurse.client.get(search, headers={"X-DMP-Access-Mode": "bris_de_glace",
                                                  "X-DMP-Justification": justification})
    assert emergency.status_code == 200, emergency.text
    log = patient.access_log(host.app.state.guard, ins)
    traced = [e for e in log if e["mode"] == "bris_de_glace" and e["outcome"] == "allowed"]
    assert traced and traced[0]["justification"].startswith("Patient inconscient")
    kinds = [n["kind"] for n in patient.notifications(host.app.state.guard, ins)]
    assert "emergency-access" in kinds

