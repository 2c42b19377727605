"""TD0.2 as the ANS draft PDSM4DMP maps it: ``GET /fhir/Patient?identifier=<INS OID>|<INS>``
(host/routes/pdsm4dmp.py, docs/wire-dmp.md), on SQLite and PostgreSQL and over mutual TLS.

The draft's examples are translated from ansforge/IG-FHIR-PDSM4DMP-EEDS at commit
94d8b1d15a3dd37565cb4e1ae5e3cf0fca47a7ab, input/pagecontent/transaction_td02.md ("Exemple
FHIR": the request, and the answer for a closed DMP). Its example INS (123456789012345) has
no valid key, so the host refuses it (a test below says so); the others use a seeded identity.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from host import patient
from host.routes.pdsm4dmp import CLOSURE_URL, MEDECIN_TRAITANT_URL
from host.store.schema import access_log
from tests.host.documents_support import (
    FHIR,
    OPTICIAN_CARD,
    PATIENT,
    PDF,
    Pki,
    authorize,
    deposit_bundle,
    entry_for,
    install_pki,
    open_dossier,
)
from tests.host.documents_support import make_pki as make_health_pki
from tests.host.harness import GP, OCCUPATIONAL, PHARMACIST, REGULATOR, InProcessHost
from tests.host.tls_harness import TlsHost, make_pki, tls_host
from wire import codes
from wire.mhd import DocumentEntry, parse_transaction_response

CLAIRE = "284057511402396"  # the "single" Vitale card's INS (a NIR), seeded
NIR = "urn:oid:1.2.250.1.213.1.4.8"
DRAFT_INS = "123456789012345"  # the draft's example value
BTG = {"x-dmp-access-mode": "bris_de_glace"}


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def code_of(response: Any) -> str:
    return str(response.json()["issue"][0]["details"]["coding"][0]["code"])


def td02(host: InProcessHost, ins: str = CLAIRE, who: Any = GP, **headers: str) -> Any:
    """The draft's request: GET [base]/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8|<INS>."""
    return host.client(who, **headers).get("/fhir/Patient", params={"identifier": f"{NIR}|{ins}"})


def create(host: InProcessHost, ins: str = CLAIRE) -> None:
    assert host.client(PHARMACIST).post(f"/dossiers/{ins}", json={"consent": True}
                                        ).status_code == 201


def the_patient(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    [entry] = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert entry["fullUrl"].endswith(f"/fhir/Patient/{entry['resource']['id']}")
    return entry["resource"]  # type: ignore[no-any-return]


def extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in resource.get("extension", []) if e["url"] == url), None)


def is_traitant(resource: dict[str, Any]) -> bool:
    """The dmp-medecin-traitant extension's value (always present on an answered Patient)."""
    found = extension(resource, MEDECIN_TRAITANT_URL)
    assert found is not None
    return found["valueBoolean"] is True


def existence_log(host: InProcessHost, ins: str = CLAIRE) -> list[tuple[str, str, str, Any]]:
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(
            select(access_log.c.actor_id, access_log.c.mode, access_log.c.outcome,
                   access_log.c.reason)
            .where(access_log.c.ins == ins, access_log.c.action == "test_existence")
            .order_by(access_log.c.at)).all()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


# -- success -----------------------------------------------------------------------------------

def test_no_dmp_is_an_empty_searchset(host: InProcessHost) -> None:
    response = td02(host)
    assert response.status_code == 200
    bundle = response.json()
    assert (bundle["type"], bundle["total"], bundle["entry"]) == ("searchset", 0, [])
    assert existence_log(host) == [(GP.id_nat_ps, "normal", "allowed", "ALLOWED_EXISTENCE_TEST")]


def test_an_open_dmp_is_an_active_patient(host: InProcessHost) -> None:
    create(host)
    resource = the_patient(td02(host))
    assert resource["resourceType"] == "Patient" and resource["id"] == CLAIRE
    assert resource["active"] is True
    assert resource["identifier"] == [{"use": "official", "system": NIR, "value": CLAIRE}]
    assert extension(resource, CLOSURE_URL) is None
    assert extension(resource, MEDECIN_TRAITANT_URL) == {"url": MEDECIN_TRAITANT_URL,
                                                         "valueBoolean": False}
    # No identity trait: the DMP is not the identity source (RG_0320; /identity/$resolve is).
    assert "name" not in resource and "birthDate" not in resource
    # The caller's médecin traitant status (EF_DMP01_07), as GET /dossiers/{ins} says it.
    gp = host.client(GP)
    assert gp.put(f"/dossiers/{CLAIRE}/medecins-traitants/{GP.id_nat_ps}").status_code == 201
    assert is_traitant(the_patient(td02(host)))


def test_the_drafts_closed_dmp_example(host: InProcessHost) -> None:
    # transaction_td02.md, "Réponse (DMP fermé)": active false, dmp-fermeture with
    # dateFermeture and raisonFermeture "Demande explicite du patient". The host records no
    # closure motive code, so motifFermeture is absent.
    create(host)
    patient.close(host.app.state.guard, CLAIRE, "Demande explicite du patient")
    resource = the_patient(td02(host))
    assert resource["active"] is False
    closure = extension(resource, CLOSURE_URL)
    assert closure is not None
    assert closure["extension"] == [
        {"url": "dateFermeture", "valueDate": host.clock().date().isoformat()},
        {"url": "raisonFermeture", "valueString": "Demande explicite du patient"},
    ]
    # Reactivated: active again, no closure.
    assert host.client(GP).post(f"/dossiers/{CLAIRE}/$reactivate",
                                json={"consent": True}).status_code == 200
    reopened = the_patient(td02(host))
    assert reopened["active"] is True and extension(reopened, CLOSURE_URL) is None


def test_answers_as_the_native_existence_test_and_is_traced_once(host: InProcessHost) -> None:
    create(host)
    native = host.client(GP).get(f"/dossiers/{CLAIRE}").json()
    resource = the_patient(td02(host))
    assert resource["active"] is (native["status"] == "open")
    assert is_traitant(resource) is native["medecinTraitant"]
    allowed = (GP.id_nat_ps, "normal", "allowed", "ALLOWED_EXISTENCE_TEST")
    assert existence_log(host)[-2:] == [allowed, allowed]


def test_unknown_parameters_are_ignored_and_named(host: InProcessHost) -> None:
    create(host)
    response = host.client(GP).get("/fhir/Patient", params={
        "identifier": f"{NIR}|{CLAIRE}", "_revinclude": "DocumentReference:patient"})
    the_patient(response)
    [outcome] = [e["resource"] for e in response.json()["entry"]
                 if e["search"]["mode"] == "outcome"]
    assert "_revinclude" in outcome["issue"][0]["diagnostics"]


def test_the_capability_statement_declares_it(host: InProcessHost) -> None:
    statement = host.client(GP, **{"x-test-workstation": "w"}).get("/fhir/metadata").json()
    [resource] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    assert [i["code"] for i in resource["interaction"]] == ["search-type"]


# -- refusals by the access rules (the guard's reason codes) -----------------------------------

def test_a_gp_cannot_ask_as_a_regulation_centre(host: InProcessHost) -> None:
    create(host)
    refused = td02(host, **{"x-dmp-access-mode": "centre_15"})
    assert refused.status_code == 403 and code_of(refused) == "regulation-centre-only"
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert existence_log(host)[-1] == (GP.id_nat_ps, "centre_15", "refused",
                                       "REGULATION_CENTRE_ONLY")
    assert the_patient(td02(host, who=REGULATOR, **{"x-dmp-access-mode": "centre_15"}))


def test_break_the_glass_needs_a_justification(host: InProcessHost) -> None:
    create(host)
    refused = td02(host, **BTG)
    assert refused.status_code == 403 and code_of(refused) == "justification-required"
    why = urllib.parse.quote("Patient inconscient aux urgences")
    assert the_patient(td02(host, **BTG, **{"x-dmp-justification": why}))["active"] is True


def test_a_blocked_professional_is_answered_and_traced_as_refused(host: InProcessHost) -> None:
    # As GET /dossiers/{ins}: the answer is given (the DMP exists), the trace says refused.
    create(host)
    patient.block(host.app.state.guard, CLAIRE, GP.id_nat_ps)
    assert the_patient(td02(host))["active"] is True
    assert existence_log(host)[-1] == (GP.id_nat_ps, "normal", "refused", "BLOCKED")


def test_occupational_health_gets_nothing(host: InProcessHost) -> None:
    create(host)
    refused = td02(host, who=OCCUPATIONAL)
    assert refused.status_code == 403 and code_of(refused) == "excluded-practice"
    assert existence_log(host)[-1] == (OCCUPATIONAL.id_nat_ps, "normal", "refused",
                                       "EXCLUDED_PRACTICE")


def test_no_session_is_a_401(host: InProcessHost) -> None:
    response = host.client().get("/fhir/Patient", params={"identifier": f"{NIR}|{CLAIRE}"})
    assert response.status_code == 401 and response.json()["resourceType"] == "OperationOutcome"
    malformed = host.client().get("/fhir/Patient")
    assert malformed.status_code == 401  # who asks is checked before what is asked


# -- malformed input ---------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "code"), [
    ({}, "identifier-required"),
    ({"identifier": [f"{NIR}|{CLAIRE}", f"{NIR}|{CLAIRE}"]}, "identifier-required"),
    ({"identifier": CLAIRE}, "invalid-ins-oid"),  # no system
    ({"identifier": f"urn:ietf:rfc:3986|{CLAIRE}"}, "invalid-ins-oid"),
    ({"identifier": f"urn:oid:1.2.3|{CLAIRE}"}, "invalid-ins-oid"),
    ({"identifier": f"{NIR}|not-an-ins"}, "invalid-ins"),
    ({"identifier": f"{NIR}|{CLAIRE[:-2]}00"}, "bad-ins"),  # a wrong key
    ({"identifier": f"{NIR}|{DRAFT_INS}"}, "bad-ins"),  # the draft's example value
])
def test_malformed_queries_are_400s(host: InProcessHost, query: dict[str, Any],
                                    code: str) -> None:
    response = host.client(GP).get("/fhir/Patient", params=query)
    assert response.status_code == 400, response.text
    assert code_of(response) == code
    assert response.json()["issue"][0]["code"] == "invalid"
    assert " / " in response.json()["issue"][0]["diagnostics"]  # French / English


def test_a_bad_access_mode_is_a_400(host: InProcessHost) -> None:
    create(host)
    response = td02(host, **{"x-dmp-access-mode": "whatever"})
    assert response.status_code == 400 and code_of(response) == "bad-access-mode"


# -- over mutual TLS ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls(db_url: str, pki: Path, tmp_path: Path) -> Iterator[TlsHost]:
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def test_td02_over_mutual_tls(tls: TlsHost) -> None:
    pharmacist, gp = tls.session("pharmacist"), tls.session("gp")
    url = "/fhir/Patient?identifier=" + urllib.parse.quote(f"{NIR}|{CLAIRE}")
    assert gp.client.get(url).json()["total"] == 0
    assert pharmacist.client.post(f"/dossiers/{CLAIRE}", json={"consent": True}
                                  ).status_code == 201
    answer = gp.client.get(url, headers={"accept": "application/fhir+json"})
    assert answer.status_code == 200
    [entry] = answer.json()["entry"]
    assert entry["resource"]["active"] is True
    refused = gp.client.get(url, headers={"x-dmp-access-mode": "centre_15"})
    assert refused.status_code == 403 and code_of(refused) == "regulation-centre-only"
    assert tls.anonymous().get(url).status_code == 401  # a workstation, but no session


# -- the draft's TD2.1 / TD3.x on the endpoints the host already serves ------------------------
# Not new routes: what these transactions look like on the wire per the draft
# (transaction_td2.1.md, td3.1a/b, td3.2, td3.3a-d at the commit above), sent as written to
# the existing ITI-65 / ITI-67 / ITI-68 / PATCH routes. Where the host answers otherwise than
# the draft expects, the assertion pins today's answer and docs/wire-dmp.md says why.

PATCH_HEADERS = {"content-type": "application/json-patch+json", "accept": "application/fhir+json"}
VISIBILITY = ("https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
              "TRE-A07-StatutVisibiliteDocument")
NORMAL_LABEL = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                            "code": "N", "display": "normal"}]}


@pytest.fixture(scope="module")
def health(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_health_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture
def documents_host(db_url: str, tmp_path: Path, health: Pki) -> InProcessHost:
    host = InProcessHost(db_url, tmp_path)
    install_pki(health, host)
    open_dossier(host)
    authorize(host, GP)
    return host


def deposit(host: InProcessHost, health: Pki, **changes: Any) -> tuple[DocumentEntry, str]:
    """The optician deposits one PDF (ITI-65, TD2 option B): (its entry, its id)."""
    entry = entry_for(PDF + repr(changes).encode(), **changes)
    bundle = deposit_bundle(health.optician, [(entry, PDF + repr(changes).encode())]).bundle
    answer = host.client(OPTICIAN_CARD).post("/fhir", json=bundle, headers=FHIR)
    assert answer.status_code == 200, answer.text
    locations = [e.location or "" for e in parse_transaction_response(answer.content)]
    [doc_id] = [where.split("/")[1] for where in locations
                if where.startswith("DocumentReference/")][:1]
    return entry, doc_id


def by_unique_id(entry: DocumentEntry) -> str:
    """The draft's PATCH URL: DocumentReference?identifier=urn:ietf:rfc:3986|<uniqueId>."""
    return "/fhir/DocumentReference?identifier=" + urllib.parse.quote(
        f"urn:ietf:rfc:3986|{entry.unique_id}")


def draft_patch(host: InProcessHost, entry: DocumentEntry, ops: list[dict[str, Any]]) -> Any:
    return host.client(OPTICIAN_CARD).patch(by_unique_id(entry), json=ops,
                                            headers=PATCH_HEADERS)


def test_td31a_td31b_td32_as_the_draft_writes_them(documents_host: InProcessHost,
                                                    health: Pki) -> None:
    host = documents_host
    entry, doc_id = deposit(host, health)
    patient_token = urllib.parse.quote(f"urn:oid:{PATIENT.oid}|{PATIENT.ins}")
    # TD3.1a: GET DocumentReference?patient.identifier=...&status=current.
    listed = host.client(GP).get(f"/fhir/DocumentReference?patient.identifier={patient_token}"
                                 "&status=current")
    assert listed.status_code == 200
    assert doc_id in [e["resource"]["id"] for e in listed.json()["entry"]]
    # TD3.1b as written (no status): the host, as MHD ITI-67, requires status.
    uid = urllib.parse.quote(f"urn:ietf:rfc:3986|{entry.unique_id}")
    as_written = host.client(GP).get(
        f"/fhir/DocumentReference?patient.identifier={patient_token}&identifier={uid}")
    assert as_written.status_code == 400 and code_of(as_written) == "status-required"
    found = host.client(GP).get(f"/fhir/DocumentReference?patient.identifier={patient_token}"
                                f"&identifier={uid}&status=current")
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [doc_id]
    # TD3.2: GET [attachment.url] with the document's own type answers the bytes; asking
    # application/fhir+json answers a Binary resource with the same bytes in base64.
    [match] = found.json()["entry"]
    url = match["resource"]["content"][0]["attachment"]["url"]
    assert url == f"Binary/{doc_id}"
    raw = host.client(GP).get(f"/fhir/{url}", headers={"accept": "application/pdf"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/pdf"
    wrapped = host.client(GP).get(f"/fhir/{url}", headers={"accept": "application/fhir+json"})
    assert wrapped.headers["content-type"].startswith("application/fhir+json")
    assert wrapped.json()["resourceType"] == "Binary"
    assert base64.b64decode(wrapped.json()["data"]) == raw.content


def test_td33c_delete_as_the_draft_writes_it(documents_host: InProcessHost,
                                             health: Pki) -> None:
    entry, _ = deposit(documents_host, health)
    deleted = draft_patch(documents_host, entry,
                          [{"op": "replace", "path": "/status", "value": "entered-in-error"}])
    assert deleted.status_code == 200 and deleted.json()["status"] == "entered-in-error"
    # Only the author deletes (the draft's NB2: 403).
    other, _ = deposit(documents_host, health)
    refused = documents_host.client(GP).patch(
        by_unique_id(other), json=[{"op": "replace", "path": "/status",
                                    "value": "entered-in-error"}], headers=PATCH_HEADERS)
    assert refused.status_code == 403 and code_of(refused) == "only-author"


def test_td33a_td33b_td33d_bodies_as_written_are_not_the_hosts(
    documents_host: InProcessHost, health: Pki,
) -> None:
    host = documents_host
    entry, _ = deposit(host, health)
    # TD3.3a / TD3.3b: "replace /securityLabel/0" with MASQUE_PS / INVISIBLE_PATIENT would
    # put a visibility code where the host keeps the confidentiality code (N): refused.
    for code in ("MASQUE_PS", "INVISIBLE_PATIENT"):
        label = {"coding": [{"system": VISIBILITY, "code": code}]}
        refused = draft_patch(host, entry, [{"op": "replace", "path": "/securityLabel/0",
                                             "value": label}])
        assert refused.status_code == 400 and code_of(refused) == "unknown-confidentiality"
    # The draft spells the NOS system TRE_A07-Statut..., the host (as the PDSm examples)
    # TRE_A07-Status...: even added, the draft's code is unknown to the host.
    label = {"coding": [{"system": VISIBILITY, "code": "MASQUE_PS"}]}
    unknown = draft_patch(host, entry, [{"op": "add", "path": "/securityLabel/-",
                                         "value": label}])
    assert unknown.status_code == 400, unknown.text
    # The host's form: add the visibility code, remove it to undo (tests/host/
    # test_documents_access.py). The draft's undo ("replace /securityLabel/0 with N") then
    # leaves the mask in place: slot 0 is already N.
    label = {"coding": [{"system": codes.VISIBILITY_SYSTEM, "code": "MASQUE_PS"}]}
    masked = draft_patch(host, entry, [{"op": "add", "path": "/securityLabel/-", "value": label}])
    assert masked.status_code == 200
    undo = draft_patch(host, entry, [{"op": "replace", "path": "/securityLabel/0",
                                      "value": NORMAL_LABEL}])
    assert undo.status_code == 200
    assert {c["code"] for lab in undo.json()["securityLabel"] for c in lab["coding"]} == {
        "N", "MASQUE_PS"}
    # TD3.3d: the draft's path is not a JSON Pointer (RFC 6901): the patch does not apply.
    archive_url = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/" \
                  "pdsm-ext-is-archived"
    archived = draft_patch(host, entry, [{"op": "replace", "value": True,
                                          "path": f"/extension[url:'{archive_url}']/valueBoolean"}])
    assert archived.status_code == 400 and code_of(archived) == "patch-failed"
    # ITI-105 (TD2 option A) and ITI-66 (FindSubmissionSets) are not routes of the host.
    assert host.client(GP).post("/fhir/DocumentReference", json={}).status_code == 405
    assert host.client(GP).get("/fhir/List").status_code == 404


def test_td21_replacement_with_the_drafts_patch_entry(documents_host: InProcessHost,
                                                      health: Pki) -> None:
    # transaction_td2.1.md: the new version's relatesTo replaces the old one, and the bundle
    # also carries a PATCH entry (Parameters, FHIRPath) setting the old one to superseded.
    host = documents_host
    old, old_id = deposit(host, health)
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "DocumentReference.status"},
        {"name": "value", "valueCode": "superseded"}]}]}
    deposit(host, health, replaces=old.unique_id)
    assert host.client(GP).get(f"/fhir/DocumentReference/{old_id}").json()["status"] == (
        "superseded")  # relatesTo alone supersedes X: no PATCH entry is needed
    other, other_id = deposit(host, health)
    new = entry_for(PDF + b"v2", replaces=other.unique_id)
    with_patch = deposit_bundle(health.optician, [(new, PDF + b"v2")]).bundle
    with_patch["entry"].append({"fullUrl": "urn:uuid:bbbbbbbb-0000-0000-0000-000000000004",
                                "resource": parameters,
                                "request": {"method": "PATCH",
                                            "url": f"DocumentReference/{other_id}"}})
    answer = host.client(OPTICIAN_CARD).post("/fhir", json=with_patch, headers=FHIR)
    # The host's ITI-65 carries no PATCH entry (all or nothing: the whole bundle is refused).
    assert answer.status_code == 400 and code_of(answer) == "unsupported-resource"
