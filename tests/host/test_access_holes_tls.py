"""The access-control holes of issue 16, each one's attack as the test's input, through the
real TLS host (sessions opened by virtual CPS cards): every refusal is specific, changes
nothing and lands in the patient's access log."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.client.session import SessionError
from cardreader.cps import CpsKey
from cardreader.virtual.vitale_profiles import PROFILES as VITALE
from host import patient
from host.pki import issue_workstation, revoke
from host.store.schema import access_log, dossiers, sessions
from tests.host.documents_support import FHIR, PDF, Card, deposit_bundle, entry_for
from tests.host.harness import card_holder
from tests.host.tls_harness import TlsHost, make_pki, tls_host, workstation
from wire import codes
from wire.mhd import JSON_PATCH, Patient


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, pki: Path, tmp_path: Path):
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def log_of(host: TlsHost, ins: str) -> list[tuple[str, str, str, str, str]]:
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(
            select(access_log.c.actor_id, access_log.c.action, access_log.c.mode,
                   access_log.c.outcome, access_log.c.reason)
            .where(access_log.c.ins == ins).order_by(access_log.c.at)).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def resolve(session: Any) -> dict[str, Any]:
    card = VITALE["single"]
    person = card.beneficiaries[0]
    answer = session.client.post("/identity/$resolve", json={
        "birthName": person.birth_name, "firstNames": person.first_name,
        "birthDate": person.birth_date.raw, "insuredNir": card.nir_with_key,
        "birthRank": person.birth_rank,
    })
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
def dossier(host: TlsHost) -> dict[str, Any]:
    """A DMP created at the counter and a masked eye-test report deposited by the optician."""
    pharmacist = host.session("pharmacist")
    identity = resolve(pharmacist)
    assert pharmacist.client.post(f"/dossiers/{identity['ins']}",
                                  json={"consent": True}).status_code == 201
    card = host.card("optician")
    optician = host.open_session(card)
    who, target = card_holder("optician"), Patient(identity["ins"], identity["insOid"])
    entry = entry_for(PDF, who, patient=target, visibility=frozenset({codes.MASQUE_PS}))
    stored = optician.client.post(
        "/fhir", json=deposit_bundle(Card(card), [(entry, PDF)], who, patient=target).bundle,
        headers=FHIR)
    assert stored.status_code == 200, stored.text
    return {**identity, "uid": entry.unique_id}


def search_url(dossier: dict[str, Any]) -> str:
    system = urllib.parse.quote(f"urn:oid:{dossier['insOid']}|{dossier['ins']}")
    return f"/fhir/DocumentReference?patient.identifier={system}&status=current"


def test_hole1_a_gp_cannot_act_as_a_regulation_centre(host: TlsHost, dossier: dict) -> None:
    gp = host.session("gp")
    assert "centre_15" not in gp.client.get("/session").json()["accessModes"]
    refused = gp.client.get(search_url(dossier), headers={"x-dmp-access-mode": "centre_15"})
    assert refused.status_code == 403 and code_of(refused) == "regulation-centre-only"
    assert (card_holder("gp").id_nat_ps, "search", "centre_15", "refused",
            "REGULATION_CENTRE_ONLY") in log_of(host, dossier["ins"])
    samu = host.session("regulation")
    assert "centre_15" in samu.client.get("/session").json()["accessModes"]
    found = samu.client.get(search_url(dossier), headers={"x-dmp-access-mode": "centre_15"})
    assert found.status_code == 200 and found.json().get("entry")


def test_hole2_a_no_op_patch_says_nothing_to_whom_may_not_read(
    host: TlsHost, dossier: dict
) -> None:
    nurse = host.session("nurse")  # no authorization, and the document is masked
    identifier = urllib.parse.quote(f"urn:ietf:rfc:3986|{dossier['uid']}")
    patient_id = urllib.parse.quote(f"urn:oid:{dossier['insOid']}|{dossier['ins']}")
    url = f"/fhir/DocumentReference?identifier={identifier}&patient.identifier={patient_id}"
    for ops in ([{"op": "test", "path": "/status", "value": "current"}],
                [{"op": "test", "path": "/status", "value": "superseded"}]):
        refused = nurse.client.patch(url, content=json.dumps(ops),
                                     headers={"content-type": JSON_PATCH})
        assert refused.status_code == 403, refused.text  # the same answer: no oracle
        assert "resourceType" in refused.json() and "DocumentReference" not in refused.text
    refusals = [row for row in log_of(host, dossier["ins"])
                if row[0] == card_holder("nurse").id_nat_ps]
    assert [row[3] for row in refusals] == ["refused", "refused"]


def test_hole3_a_session_cannot_claim_a_structure_not_on_the_card(host: TlsHost) -> None:
    gp_structure = card_holder("gp").structure_id
    for profile in ("nurse", "optician"):
        with pytest.raises(SessionError) as refused:
            host.open_session(host.card(profile), structure_id=gp_structure)
        assert refused.value.code == "structure-not-on-card" and refused.value.status == 403
    second = card_holder("gp", situation=1).structure_id  # the GP's other situation works
    assert host.open_session(host.card("gp"), structure_id=second).client.get(
        "/session").json()["structureId"] == second


@pytest.mark.parametrize("profile", ["occupational", "insurer"])
def test_hole4_excluded_practices_get_nothing(host: TlsHost, dossier: dict, profile: str
                                              ) -> None:
    session = host.session(profile)
    for response in (
        session.client.post("/identity/$resolve", json={"birthName": "X", "firstNames": "Y",
                                                         "birthDate": "19800101"}),
        session.client.get(f"/dossiers/{dossier['ins']}"),
        session.client.get(search_url(dossier)),
        session.client.get(search_url(dossier), headers={
            "x-dmp-access-mode": "bris_de_glace", "x-dmp-justification": "urgence"}),
    ):
        assert response.status_code == 403 and code_of(response) == "excluded-practice"
    who = card_holder(profile).id_nat_ps
    mine = [row for row in log_of(host, dossier["ins"]) if row[0] == who]
    assert mine and all(row[3:] == ("refused", "EXCLUDED_PRACTICE") for row in mine)


def test_hole5_a_revoked_card_ends_its_session_at_once(host: TlsHost, pki: Path) -> None:
    card = host.card("orthoptist")
    session = host.open_session(card)
    assert session.client.get("/session").status_code == 200
    revoke(pki / "health-ca", card.certificate(CpsKey.AUTHENTICATION))
    refused = session.client.get("/session")
    assert refused.status_code == 401 and code_of(refused) == "card-revoked"
    with host.app.state.engine.connect() as connection:
        reasons = connection.execute(select(sessions.c.revoked_reason)).scalars().all()
    assert "card-revoked" in reasons


def test_hole5_a_revoked_workstation_opens_nothing_more(host: TlsHost, pki: Path) -> None:
    from cryptography import x509

    from agent.client.session import HostSession

    cert_path, _ = issue_workstation(pki, "to-revoke")
    card = host.card("gp")
    identity = card.read_identity()

    def open_session() -> HostSession:
        return HostSession.open(
            host.base_url, workstation(pki, "to-revoke"),
            card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(
                __import__("cryptography.hazmat.primitives.serialization",
                           fromlist=["Encoding"]).Encoding.DER),
            sign=lambda data: card.sign(CpsKey.AUTHENTICATION, data),
            id_nat_ps=identity.id_nat_ps, structure_id=card_holder("gp").structure_id)

    session = open_session()
    revoke(pki / "establishment-ca", x509.load_pem_x509_certificate(cert_path.read_bytes()))
    refused = session.client.get("/session")
    assert refused.status_code == 401 and code_of(refused) == "workstation-revoked"
    with pytest.raises(SessionError) as again:
        open_session()
    assert again.value.code == "workstation-revoked"


def test_hole6_bodies_are_bounded_and_deep_json_is_a_400(host: TlsHost, dossier: dict) -> None:
    gp = host.session("gp")
    ins = dossier["ins"]
    huge = b'{"birthName": "' + b"A" * (8 * 1024 * 1024) + b'"}'
    for url in ("/identity/$resolve", f"/dossiers/{ins}"):
        answer = gp.client.post(url, content=huge, headers={"content-type": "application/json"})
        assert answer.status_code == 413, url
    deep = b"[" * 5000 + b"]" * 5000
    for method, url in (("POST", "/identity/$resolve"), ("POST", f"/dossiers/{ins}/$close"),
                        ("PUT", f"/dossiers/{ins}/authorizations/{card_holder('gp').id_nat_ps}"),
                        ("POST", "/fhir")):
        answer = gp.client.request(method, url, content=deep,
                                   headers={"content-type": "application/json"})
        # The bundle parser names it a malformed bundle; the small bodies say too-deep.
        assert answer.status_code == 400, (url, answer.text)
        assert code_of(answer) == ("not-json" if url == "/fhir" else "too-deep"), answer.text
    with host.app.state.engine.connect() as connection:
        assert connection.execute(select(dossiers.c.status)).scalars().all() == ["open"]


def test_hole7_refusals_that_are_not_rules_are_traced_too(host: TlsHost, dossier: dict) -> None:
    gp = host.session("gp")
    ins = dossier["ins"]
    bad = gp.client.put(f"/dossiers/{ins}/authorizations/{card_holder('gp').id_nat_ps}",
                        json={"structureId": "12"})
    assert bad.status_code == 400
    optician_card = host.card("optician")
    optician = host.open_session(optician_card)
    gp_who = card_holder("gp")  # the optician signs a report claiming the GP wrote it
    target = Patient(ins, dossier["insOid"])
    entry = entry_for(PDF, gp_who, patient=target)
    forged = optician.client.post("/fhir", json=deposit_bundle(
        Card(optician_card), [(entry, PDF)], gp_who, patient=target).bundle, headers=FHIR)
    assert forged.status_code == 403 and code_of(forged) == "author-mismatch"
    log = log_of(host, ins)
    assert (gp_who.id_nat_ps, "grant", "normal", "refused", "BAD_STRUCTURE") in log
    assert (card_holder("optician").id_nat_ps, "deposit", "normal", "refused",
            "AUTHOR_MISMATCH") in log


def test_hole8_control_characters_are_refused(host: TlsHost, dossier: dict) -> None:
    gp = host.session("gp")
    justification = urllib.parse.quote("coma\x1b]0;pwn\x07\r\nfake line\x00")
    refused = gp.client.get(search_url(dossier), headers={
        "x-dmp-access-mode": "bris_de_glace", "x-dmp-justification": justification})
    assert refused.status_code == 400 and code_of(refused) == "bad-justification"
    card = host.card("optician")
    optician = host.open_session(card)
    who, target = card_holder("optician"), Patient(dossier["ins"], dossier["insOid"])
    for changes, code in (({"title": "Bilan\x1b[2J\x1b]0;pwn\x07"}, "invalid-title"),
                          ({"mime_type": "application/hta"}, "format-mime-mismatch")):
        entry = entry_for(PDF, who, patient=target, **changes)
        answer = optician.client.post("/fhir", json=deposit_bundle(
            Card(card), [(entry, PDF)], who, patient=target).bundle, headers=FHIR)
        assert answer.status_code == 400 and code_of(answer) == code, answer.text
    assert not any("\x1b" in (entry.get("justification") or "")
                   for entry in patient.access_log(host.app.state.guard, dossier["ins"]))
