"""The reference INS service (host.routes.ins): search from the Vitale card, search from
typed traits, verification of a known INS; answers none, one or several identities, as
FR Core Patients, to a professional's session only, each lookup traced. SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cardreader.virtual.vitale_profiles import PROFILES
from host.ins.population import generate
from host.store.schema import access_log, patients
from tests.host.harness import GP, OCCUPATIONAL, InProcessHost
from wire.ins import (
    PATIENT_INS_PROFILE,
    identities_from_searchset,
    verification_from_json,
)

MOREL = {"birthName": "MOREL", "firstNames": ["PIERRE"], "sex": "M", "birthDate": "19650704"}
GARNIER = {"ins": "290064410907772", "birthName": "GARNIER", "firstNames": ["ANNE"],
           "sex": "F", "birthDate": "19900621", "birthPlace": "44109"}


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def ask(host: InProcessHost, operation: str, body: Any, who: Any = GP) -> Any:
    return host.client(who).post(f"/ins/${operation}", json=body)


def found(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [identity.ins for identity in identities_from_searchset(response.json())]


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def card_query(profile: str, index: int = 0) -> dict[str, Any]:
    card = PROFILES[profile]
    person = card.beneficiaries[index]
    return {"nir": card.nir_with_key, "birthDate": person.birth_date.raw,
            "birthRank": person.birth_rank}


def test_the_card_finds_one_identity_as_a_fr_core_patient(host: InProcessHost) -> None:
    response = ask(host, "search-card", card_query("single"))
    assert found(response) == ["284057511402396"]
    patient = response.json()["entry"][0]["resource"]
    assert patient["meta"]["profile"] == [PATIENT_INS_PROFILE]
    assert patient["identifier"][0]["system"] == "urn:oid:1.2.250.1.213.1.4.8"
    assert patient["name"][0]["family"] == "MARTIN" and patient["gender"] == "female"
    # A child on her father's card, with a lunar birth date: her own INS.
    lea = ask(host, "search-card", card_query("family", 2))
    assert found(lea) == ["215206912307862"]
    assert identities_from_searchset(lea.json())[0].birth_date == "20150000"


def test_the_card_of_a_registry_duplicate_answers_both_identities(host: InProcessHost) -> None:
    response = ask(host, "search-card", card_query("homonym"))
    assert sorted(found(response)) == ["172083306312348", "172089913404594"]
    assert response.json()["total"] == 2
    places = {i.birth_place for i in identities_from_searchset(response.json())}
    assert places == {"33063", "99134"}  # the traits that let the user choose


def test_twins_are_told_apart_by_their_birth_rank(host: InProcessHost) -> None:
    twins = {"nir": "190059205003243", "birthDate": "20200110"}
    assert sorted(found(ask(host, "search-card", twins))) == ["120019205011825",
                                                              "220019205011971"]
    assert found(ask(host, "search-card", {**twins, "birthRank": 2})) == ["220019205011971"]
    assert found(ask(host, "search-card", {**twins, "birthDate": "20200111"})) == []


def test_typed_traits_find_one_none_or_the_homonyms(host: InProcessHost) -> None:
    assert sorted(found(ask(host, "search-traits", MOREL))) == ["165077511510131",
                                                                "165077511510230"]
    rossi = {"birthName": "rossi", "firstNames": ["Marie Ange"], "sex": "F",
             "birthDate": "19860311"}
    assert found(ask(host, "search-traits", rossi)) == ["286032A00401137"]
    assert found(ask(host, "search-traits", {**rossi, "birthPlace": "2A004"})) == [
        "286032A00401137"]
    assert found(ask(host, "search-traits", {**rossi, "birthPlace": "2B004"})) == []
    assert found(ask(host, "search-traits", {**rossi, "sex": "M"})) == []
    # The first names typed are the list or its beginning, never a later one.
    girard = {"birthName": "GIRARD", "sex": "M", "birthDate": "19720800"}
    assert found(ask(host, "search-traits", {**girard, "firstNames": ["PAUL", "HENRI"]})) == [
        "172089913404594"]
    assert found(ask(host, "search-traits", {**girard, "firstNames": ["HENRI"]})) == []


def test_verification_says_match_mismatch_or_unknown(host: InProcessHost) -> None:
    match = verification_from_json(ask(host, "verify", GARNIER).json())
    assert match.result == "match" and match.identity is not None
    changed = verification_from_json(ask(host, "verify", {
        **GARNIER, "firstNames": ["ANNE", "MARIE"], "birthPlace": "44000"}).json())
    assert changed.result == "mismatch"
    assert set(changed.differences) == {"firstNames", "birthPlace"}
    assert changed.identity is not None and changed.identity.first_names == "ANNE"
    unknown = verification_from_json(ask(host, "verify", {
        **GARNIER, "ins": "290064410907871"}).json())
    assert unknown.result == "unknown" and unknown.identity is None


def test_only_a_professional_session_may_ask_and_each_answer_is_traced(
        host: InProcessHost) -> None:
    assert host.client().post("/ins/$search-card", json=card_query("single")).status_code == 401
    refused = ask(host, "search-card", card_query("single"), OCCUPATIONAL)
    assert refused.status_code == 403 and code_of(refused) == "excluded-practice"
    ask(host, "search-traits", MOREL)
    ask(host, "search-traits", {**MOREL, "birthName": "PERSONNE"})  # nobody: nobody to tell
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(select(access_log.c.ins, access_log.c.actor_id,
                                         access_log.c.outcome)).all()
    assert sorted(tuple(r) for r in rows) == [
        ("165077511510131", GP.id_nat_ps, "allowed"),
        ("165077511510230", GP.id_nat_ps, "allowed"),
        ("284057511402396", OCCUPATIONAL.id_nat_ps, "refused")]


@pytest.mark.parametrize("operation, body", [
    ("search-card", {"nir": "284057511402399", "birthDate": "19840517"}),
    ("search-card", {"nir": "284057511402396", "birthDate": "1984-05-17"}),
    ("search-card", {"nir": "284057511402396", "birthDate": "19840517", "birthRank": 0}),
    ("search-traits", {**MOREL, "firstNames": []}),
    ("search-traits", {**MOREL, "sex": "X"}),
    ("search-traits", {**MOREL, "birthPlace": "7511"}),
    ("search-traits", ["MOREL"]),
    ("verify", {**MOREL}),
    ("verify", {**MOREL, "ins": "12"}),
])
def test_bad_questions_get_a_specific_400(host: InProcessHost, operation: str,
                                          body: Any) -> None:
    response = ask(host, operation, body)
    assert response.status_code == 400, body
    assert code_of(response) in {"bad-trait", "missing-trait", "bad-request", "bad-ins"}


def test_the_generated_population_is_searchable_with_its_hard_cases(
        host: InProcessHost) -> None:
    engine = host.app.state.engine
    assert generate(engine, 3000, seed=7) >= 3000
    with engine.connect() as connection:
        rows = connection.execute(select(patients)).all()
        count = connection.execute(select(func.count()).select_from(patients)).scalar_one()
    assert count == len({r.ins for r in rows})  # every NIR once
    assert any(r.birth_rank == 2 for r in rows) and any(r.birth_place.startswith("99")
                                                         for r in rows)
    assert any(r.birth_date.endswith("00") for r in rows)
    assert any("-" in r.birth_name or " " in r.birth_name for r in rows)
    someone = next(r for r in rows if r.birth_rank == 2)
    twins = found(ask(host, "search-card", {"nir": someone.insured_nir,
                                            "birthDate": someone.birth_date, "birthRank": 2}))
    assert someone.ins in twins
    person = next(r for r in rows if r.insured_nir == r.ins and not r.birth_date.endswith("0"))
    traits = {"birthName": person.birth_name, "firstNames": person.first_names.split(),
              "sex": person.sex, "birthDate": person.birth_date,
              "birthPlace": person.birth_place}
    assert person.ins in found(ask(host, "search-traits", traits))


def test_the_three_questions_are_in_the_hosts_openapi_document(host: InProcessHost) -> None:
    paths = host.client().get("/openapi.json").json()["paths"]
    for operation in ("search-card", "search-traits", "verify"):
        post = paths[f"/ins/${operation}"]["post"]
        assert post["summary"] and "200" in {str(code) for code in post["responses"]}
        assert "requestBody" in post
