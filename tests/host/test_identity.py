"""The identity service: Vitale traits -> INS, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from cardreader.virtual.vitale_profiles import PROFILES
from host.seed import SEED_FILE, SeedError, load_identities, seed_identities
from host.store.schema import access_log, patients
from tests.host.harness import GP, MUTUAL_DOCTOR, OCCUPATIONAL, PHARMACIST, InProcessHost

SEED = json.loads(SEED_FILE.read_text(encoding="utf-8"))["identities"]
LEA_INS = "215206912307862"
MOREL = {"birthName": "MOREL", "firstNames": "PIERRE", "birthDate": "19650704", "sex": "M"}


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def resolve(host: InProcessHost, traits: dict[str, Any], who: Any = GP) -> Any:
    return host.client(who).post("/identity/$resolve", json=traits)


def code_of(response: Any) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def test_every_seeded_identity_resolves_from_its_own_traits(host: InProcessHost) -> None:
    client = host.client(PHARMACIST)
    for entry in SEED:
        traits = {name: entry[name] for name in (
            "birthName", "firstNames", "sex", "birthDate", "birthPlace", "insuredNir",
            "birthRank")}
        response = client.post("/identity/$resolve", json=traits)
        assert response.status_code == 200, (entry["ins"], response.json())
        body = response.json()
        assert body == {name: entry[name] for name in (
            "ins", "insOid", "birthName", "firstNames", "firstName", "sex", "birthDate",
            "birthPlace")}


def test_every_person_of_every_virtual_vitale_card_resolves(host: InProcessHost) -> None:
    client = host.client(PHARMACIST)
    for name, card in PROFILES.items():
        for person in card.beneficiaries:
            traits: dict[str, Any] = {
                "birthName": person.birth_name, "firstNames": person.first_name,
                "birthDate": person.birth_date.raw, "insuredNir": card.nir_with_key,
                "birthRank": person.birth_rank, "quality": person.quality,
            }
            if person.sex is not None:
                traits["sex"] = person.sex.value
            response = client.post("/identity/$resolve", json=traits)
            if name == "homonym":  # two identities answer this card (host/seed_identities)
                assert response.status_code == 409, response.json()
                continue
            assert response.status_code == 200, (name, person.first_name, response.json())
            # The certified NIR when the card has one; the child's own NIR from INSi.
            assert response.json()["ins"] == (person.nir_with_key or LEA_INS)


def test_a_child_on_a_parents_card_gets_her_own_ins_from_a_lunar_birth_date(
    host: InProcessHost,
) -> None:
    response = resolve(host, {"birthName": "durand", "firstNames": "lea",
                              "birthDate": "20150000", "insuredNir": "179116912304566",
                              "birthRank": 1, "quality": 6})
    assert response.status_code == 200
    assert response.json()["ins"] == LEA_INS
    assert response.json()["firstName"] == "LÉA"


def test_the_spouse_resolves_by_birth_name_not_usual_name(host: InProcessHost) -> None:
    family = {"firstNames": "SOPHIE", "birthDate": "19810322", "insuredNir": "179116912304566"}
    assert resolve(host, {"birthName": "LEFEBVRE", **family}).json()["ins"] == "281035935001273"
    assert code_of(resolve(host, {"birthName": "DURAND", **family})) == "identity-unknown"


def test_unknown_and_ambiguous_identities_are_distinct_errors(host: InProcessHost) -> None:
    unknown = resolve(host, {"birthName": "NOBODY", "firstNames": "X", "birthDate": "20000101"})
    assert unknown.status_code == 404 and code_of(unknown) == "identity-unknown"
    ambiguous = resolve(host, MOREL)
    assert ambiguous.status_code == 409 and code_of(ambiguous) == "identity-ambiguous"
    # The card's insured NIR tells the homonyms apart.
    for ins in ("165077511510131", "165077511510230"):
        assert resolve(host, {**MOREL, "insuredNir": ins}).json()["ins"] == ins


def test_birth_rank_tells_twins_apart(host: InProcessHost) -> None:
    twins = {"birthName": "MERCIER", "birthDate": "20200110", "insuredNir": "190059205003243"}
    assert resolve(host, {**twins, "firstNames": "HUGO", "birthRank": 1}).status_code == 200
    assert resolve(host, {**twins, "firstNames": "EMMA", "birthRank": 2}).json()["ins"] == (
        "220019205011971")
    assert code_of(resolve(host, {**twins, "firstNames": "EMMA", "birthRank": 1})) == (
        "identity-unknown")


def test_first_name_may_be_the_used_one_or_the_start_of_the_list(host: InProcessHost) -> None:
    base = {"birthName": "LEGRAND", "birthDate": "19530613"}
    for given in ("JEAN-PIERRE", "Jean Pierre", "JEAN-PIERRE LOUIS"):
        assert resolve(host, {**base, "firstNames": given}).status_code == 200, given
    assert resolve(host, {**base, "firstNames": "LOUIS"}).status_code == 404


def test_sex_and_birth_place_narrow_the_search(host: InProcessHost) -> None:
    rossi = {"birthName": "ROSSI", "firstNames": "MARIE-ANGE", "birthDate": "19860311"}
    assert resolve(host, {**rossi, "birthPlace": "2A004", "sex": "F"}).status_code == 200
    assert resolve(host, {**rossi, "birthPlace": "2B004"}).status_code == 404
    assert resolve(host, {**rossi, "sex": "M"}).status_code == 404


def test_a_production_host_refuses_test_and_demo_identities(
    db_url: str, tmp_path: Path
) -> None:
    production = InProcessHost(db_url, tmp_path, mode="production")
    for card in ("test", "demo"):
        person = PROFILES[card].holder
        response = resolve(production, {
            "birthName": person.birth_name, "firstNames": person.first_name,
            "birthDate": person.birth_date.raw, "insuredNir": PROFILES[card].nir_with_key,
        })
        assert response.status_code == 403 and code_of(response) == "test-identity-refused"
    single = PROFILES["single"].holder
    assert resolve(production, {"birthName": single.birth_name, "firstNames": "CLAIRE",
                                "birthDate": "19840517"}).status_code == 200


def test_a_test_host_resolves_test_identities(host: InProcessHost) -> None:
    response = resolve(host, {"birthName": "DUPONT", "firstNames": "JEAN",
                              "birthDate": "19670115"})
    assert response.json()["insOid"] == "1.2.250.1.213.1.4.10"


def test_resolution_needs_a_session_and_well_formed_traits(host: InProcessHost) -> None:
    no_session = host.client().post("/identity/$resolve", json=MOREL)
    assert no_session.status_code == 401
    for bad in ({**MOREL, "birthDate": "1965-07-04"}, {**MOREL, "sex": "X"},
                {**MOREL, "insuredNir": "165077511510199"}, {**MOREL, "birthRank": "1"},
                {"firstNames": "PIERRE", "birthDate": "19650704"}, ["MOREL"]):
        response = resolve(host, bad)  # type: ignore[arg-type]
        assert response.status_code == 400, bad
        assert code_of(response) in {"bad-trait", "missing-trait", "bad-request"}
    assert host.client(GP).post("/identity/$resolve", content=b"{").status_code == 400


def test_each_resolution_is_traced_in_the_log_of_the_person_found(host: InProcessHost) -> None:
    found = resolve(host, {**MOREL, "insuredNir": "165077511510131"}).json()["ins"]
    resolve(host, {**MOREL, "birthName": "NOBODY"})  # no one found: no one to tell
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(select(access_log.c.ins, access_log.c.actor_id,
                                         access_log.c.action, access_log.c.outcome)).all()
    assert [tuple(r) for r in rows] == [(found, GP.id_nat_ps, "resolve_identity", "allowed")]


@pytest.mark.parametrize("who", [OCCUPATIONAL, MUTUAL_DOCTOR])
def test_excluded_practices_may_not_look_up_an_identity(host: InProcessHost, who: Any) -> None:
    # Attack (issue 16, hole 4): an occupational physician or a mutual's doctor with a card.
    refused = resolve(host, {**MOREL, "insuredNir": "165077511510131"}, who=who)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "excluded-practice"
    assert '"ins"' not in refused.text
    with host.app.state.engine.connect() as connection:
        rows = connection.execute(select(access_log.c.actor_id, access_log.c.outcome,
                                         access_log.c.reason)).all()
    assert [tuple(r) for r in rows] == [(who.id_nat_ps, "refused", "EXCLUDED_PRACTICE")]


def test_seeding_is_idempotent_and_restores_the_files_values(host: InProcessHost) -> None:
    engine = host.app.state.engine
    with engine.begin() as connection:
        connection.execute(update(patients).where(patients.c.ins == LEA_INS)
                           .values(first_name="X"))
    assert seed_identities(engine) == len(SEED)
    assert seed_identities(engine) == len(SEED)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(patients)).scalar() == (
            len(SEED))
        assert connection.execute(select(patients.c.first_name).where(
            patients.c.ins == LEA_INS)).scalar() == "LÉA"


def test_a_malformed_seed_file_is_refused_with_its_place(tmp_path: Path) -> None:
    bad = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    bad["identities"][2]["ins"] = "281035935001299"  # wrong key
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(SeedError, match=r"identities\[2\]: ins"):
        load_identities(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(SeedError, match="unreadable"):
        load_identities(path)
