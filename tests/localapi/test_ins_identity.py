"""The patient's identity and its RNIV status, end to end (docs/ins.md): `dmp-agent run`, its
local API, real cards in the real pcscd, the reference host and its INS service over mutual
TLS. One identity is récupérée; a deposit is refused until an identity document is checked
(qualifiée), by the agent before anything is queued and by the host; several identities wait
for the user's choice; none is said; a check is kept across a restart and lost when the INS
service later answers other traits."""

from __future__ import annotations

import dataclasses
import subprocess
from typing import Any

import httpx
import pytest

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vitale_profiles import PROFILES
from cardreader.vitale import BirthDate
from tests.cda_support import report_pdf
from tests.live import BIN, LiveWorld, qualify

pytestmark = pytest.mark.pcsc
PIN = "1234"
PDF = report_pdf("Compte rendu orthoptique")


def _open(live: LiveWorld, insert_card: Any, profile: str = "gp") -> httpx.Client:
    insert_card(live.cps(profile), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        answer = api.post("/api/session", json={"pin": PIN})
    assert answer.status_code == 200, answer.text
    return live.agent.client()


def _patient(live: LiveWorld, insert_card: Any, card: VirtualVitale,
             states: tuple[str, ...] = ("ready", "error", "choosing-identity")
             ) -> dict[str, Any]:
    insert_card(card, slot=1)
    status = live.agent.wait_for(lambda s: s["patient"]["state"] in states)
    return dict(status["patient"])


def _remove_vitale(live: LiveWorld, link: Any) -> None:
    link.stop()
    assert wait_for_card(list_readers()[1], present=False)
    live.agent.wait_for(lambda s: s["patient"]["state"] == "none")


def _deposit(api: httpx.Client) -> httpx.Response:
    return api.post("/api/deposits", params={"typeCode": "11488-4", "title": "CR"},
                    content=PDF, headers={"content-type": "application/pdf"})


def _ensure_dmp(api: httpx.Client, patient: dict[str, Any]) -> None:
    if patient["dmp"]["status"] == "absent":
        assert api.post("/api/dmp", json={"consent": True}).status_code == 201


def test_one_identity_is_recuperee_and_no_deposit_leaves_until_a_document_is_checked(
        live: LiveWorld, insert_card: Any) -> None:
    with _open(live, insert_card) as api:
        patient = _patient(live, insert_card, VirtualVitale.from_profile("single"))
        assert patient["state"] == "ready"
        identity = patient["identity"]
        assert identity["status"] == "récupérée" and identity["qualified"] is False
        assert identity["traits"]["ins"] == "284057511402396"
        assert identity["traits"]["birthPlace"] == "75114" and identity["document"] is None
        _ensure_dmp(api, patient)
        refused = _deposit(api)
        assert refused.status_code == 409 and refused.json()["code"] == "identity-not-qualified"
        assert "pièce d'identité" in refused.json()["message"]
        outbox = api.get("/api/outbox").json()
        assert outbox["pending"] == 0 and not outbox["items"]  # nothing queued
        # A document the RNIV does not know, or a minor's without the parent's: refused.
        for body, code in (({"document": "permis-de-conduire"}, "bad-identity-document"),
                           ({"document": "acte-de-naissance"}, "parent-document-required"),
                           ({"document": "acte-de-naissance", "parentDocument": "passeport"},
                            "not-a-minor")):
            answer = api.post("/api/patient/identity/validate", json=body)
            assert answer.status_code == 400 and answer.json()["code"] == code, answer.text
        assert api.get("/api/status").json()["patient"]["identity"]["status"] == "récupérée"
        qualified = qualify(api, "carte-identite")["identity"]
        assert qualified["document"]["type"] == "carte-identite"
        assert qualified["document"]["code"] == "CN" and qualified["validatedAt"]
        queued = _deposit(api)
        assert queued.status_code == 202, queued.text
        live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0 and not s["outbox"]["items"],
                            timeout=30)
        assert queued.json()["uniqueId"] in {u for u, _, _ in live.stored("284057511402396")}
        # What the host received says which identity, and that it was qualified.
        with live.host.db() as db:
            stored = [row[0] for row in db.execute(
                "SELECT resource FROM submission_sets WHERE ins = ?", ("284057511402396",))]
        assert any("fr-core-identity-reliability" in str(r) and '"QUAL"' in str(r)
                   for r in stored), stored


def test_the_check_is_kept_across_an_agent_restart(live: LiveWorld, insert_card: Any) -> None:
    with _open(live, insert_card) as api:
        patient = _patient(live, insert_card, VirtualVitale.from_profile("corsica"))
        assert patient["identity"]["status"] == "récupérée"
        qualify(api, "titre-de-sejour")
    live.agent.stop()
    live.agent.start()  # the cards stay in their readers
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        assert patient["identity"]["status"] == "qualifiée"
        assert patient["identity"]["document"]["type"] == "titre-de-sejour"
        _ensure_dmp(api, patient)
        assert _deposit(api).status_code == 202


def test_several_identities_wait_for_the_users_choice(live: LiveWorld,
                                                       insert_card: Any) -> None:
    with _open(live, insert_card) as api:
        patient = _patient(live, insert_card, VirtualVitale.from_profile("homonym"))
        assert patient["state"] == "choosing-identity"
        assert patient["patient"] is None and patient["identity"]["status"] == "provisoire"
        shown = {c["index"]: c for c in patient["candidates"]}
        assert {c["birthPlace"] for c in shown.values()} == {"33063", "99134"}
        # Nothing is done for a patient whose identity is not chosen, and the refusal says why.
        refused = _deposit(api)
        assert refused.status_code == 409
        assert refused.json()["code"] == "identity-choice-pending"
        assert api.post("/api/patient/identity/choose", json={"index": 3}).status_code == 400
        abroad = next(i for i, c in shown.items() if c["birthPlace"] == "99134")
        chosen = api.post("/api/patient/identity/choose", json={"index": abroad})
        assert chosen.status_code == 200, chosen.text
        ready = live.agent.wait_for(lambda s: s["patient"]["state"] in ("ready", "error"))
        assert ready["patient"]["patient"]["ins"] == shown[abroad]["ins"]
        assert ready["patient"]["identity"]["status"] == "récupérée"
        assert ready["patient"]["candidates"] == []


def test_no_identity_is_said_and_a_document_checked_makes_it_validee_only(live: LiveWorld,
                                                                insert_card: Any) -> None:
    single = PROFILES["single"]
    unknown = dataclasses.replace(single, beneficiaries=(dataclasses.replace(
        single.holder, birth_date=BirthDate.parse("19840518")),))
    with _open(live, insert_card) as api:
        patient = _patient(live, insert_card, VirtualVitale(unknown))
        assert patient["state"] == "error" and "Aucune identité" in patient["error"]
        assert patient["identity"]["status"] == "provisoire"
        assert patient["identity"]["traits"] is None
        # A document checked for this person: validée, and still nothing to deposit under.
        answer = api.post("/api/patient/identity/validate", json={"document": "passeport"})
        assert answer.status_code == 200, answer.text
        identity = answer.json()["identity"]
        assert identity["status"] == "validée" and identity["document"]["type"] == "passeport"
        assert identity["qualified"] is False
        assert _deposit(api).status_code == 409


def _correct(live: LiveWorld, ins: str, *traits: str) -> None:
    """The national registry corrects a person's traits (`dmp-host ins correct`)."""
    done = subprocess.run(
        [str(BIN / "dmp-host"), "ins", "correct", ins, *traits,
         "--database", f"sqlite:///{live.host.data / 'host.db'}"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_identity_the_registry_corrects_loses_its_qualification(
        live: LiveWorld, insert_card: Any) -> None:
    ins = "290064410907772"
    card = VirtualVitale.from_profile("corrected")
    with _open(live, insert_card) as api:
        link = insert_card(card, slot=1)
        live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
        qualify(api)
        _correct(live, ins, "--first-names", "ANNE MARIE")
        # The next visit: the service answers other traits, the check kept is dropped.
        _remove_vitale(live, link)
        patient = _patient(live, insert_card, card)
        identity = patient["identity"]
        assert identity["status"] == "récupérée" and "a changé" in identity["notice"]
        assert identity["traits"]["firstNames"] == "ANNE MARIE"
        _ensure_dmp(api, patient)
        assert _deposit(api).json()["code"] == "identity-not-qualified"
        # Corrected again while the patient is here: the check made now verifies the INS
        # first, finds other traits, records nothing and says so.
        _correct(live, ins, "--birth-place", "44000")
        changed = api.post("/api/patient/identity/validate", json={"document": "passeport"})
        assert changed.status_code == 409 and changed.json()["code"] == "identity-changed"
        identity = api.get("/api/status").json()["patient"]["identity"]
        assert identity["status"] == "récupérée"
        assert identity["traits"]["birthPlace"] == "44000"
        # The document checked against the traits now answered qualifies it again.
        qualify(api)
        assert _deposit(api).status_code == 202


def test_typed_traits_find_the_patient_with_no_card(live: LiveWorld, insert_card: Any) -> None:
    morel = {"birthName": "Morel", "firstNames": ["Pierre"], "sex": "M",
             "birthDate": "19650704"}
    with _open(live, insert_card) as api:
        bad = api.post("/api/patient/identity/search", json={**morel, "birthDate": "4/7/65"})
        assert bad.status_code == 400 and bad.json()["code"] == "bad-trait"
        none = api.post("/api/patient/identity/search", json={**morel, "birthName": "MORELLE"})
        assert none.status_code == 200 and none.json()["state"] == "error"
        assert none.json()["identity"]["status"] == "provisoire"
        several = api.post("/api/patient/identity/search", json=morel).json()
        assert several["state"] == "choosing-identity" and several["source"] == "traits"
        assert len(several["candidates"]) == 2 and several["beneficiaries"] == []
        chosen = api.post("/api/patient/identity/choose", json={"index": 2})
        assert chosen.status_code == 200, chosen.text
        ready = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        assert ready["patient"]["ins"] == several["candidates"][1]["ins"]
        one = api.post("/api/patient/identity/search", json={
            "birthName": "LEGRAND", "firstNames": ["JEAN-PIERRE"], "sex": "M",
            "birthDate": "19530613"}).json()
        assert one["identity"]["status"] == "récupérée"
        patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        _ensure_dmp(api, patient)
        assert _deposit(api).json()["code"] == "identity-not-qualified"
        qualify(api)
        assert _deposit(api).status_code == 202  # no card in any reader


def test_the_command_line_reads_the_patient_through_the_agent_that_holds_the_outbox(
        live: LiveWorld, insert_card: Any) -> None:
    insert_card(live.cps("gp"), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    done = subprocess.run([str(BIN / "dmp-agent"), "patient", "--pin-stdin"], input=f"{PIN}\n",
                          env=live.agent.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "INS 284057511402396" in done.stdout
    # Through the running agent (issue 17): its identity checks (an earlier test's document
    # check included), nothing left out to say.
    assert "tient la file d'envoi" not in done.stderr
    status = live.agent.wait_for(lambda s: s["session"]["state"] == "open")
    assert f"Identité : {status['patient']['identity']['status']}" in done.stdout
