"""The host's side of the RNIV rule (docs/ins.md), through its real boundary (TLS 1.3,
sessions opened by virtual CPS cards), on SQLite and PostgreSQL: a deposit whose submission
set says the patient's identity is not qualifiée is refused with its own OperationOutcome and
nothing is stored; a qualified one is stored, and one that says nothing (the standard's own
examples) is not judged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cardreader.virtual.vitale_profiles import PROFILES as VITALE
from host.store.schema import documents
from tests.host.documents_support import FHIR, PDF, Card, deposit_bundle, entry_for
from tests.host.harness import card_holder
from tests.host.tls_harness import TlsHost, make_pki, tls_host
from wire.ins import IdentityReliability, identities_from_searchset
from wire.mhd import Patient


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, pki: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def code_of(response: object) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]  # type: ignore[attr-defined]


def test_a_deposit_under_an_identity_not_qualified_is_refused(host: TlsHost) -> None:
    pharmacist = host.session("pharmacist")
    card, person = VITALE["single"], VITALE["single"].holder
    found = pharmacist.client.post("/ins/$search-card", json={
        "nir": card.nir_with_key, "birthDate": person.birth_date.raw,
        "birthRank": person.birth_rank})
    identity = identities_from_searchset(found.json())[0]
    patient = Patient(identity.ins, identity.oid)
    assert pharmacist.client.post(f"/dossiers/{identity.ins}", json={
        "consent": True, "emergency": {"regulationCentre": True, "breakTheGlass": True,
                                       "emergencySeesMasked": False}}).status_code == 201
    optician_card = host.card("optician")
    optician = host.open_session(optician_card)
    who = card_holder("optician")

    def deposit(reliability: IdentityReliability | None) -> object:
        entry = entry_for(PDF, who, patient=patient)
        bundle = deposit_bundle(Card(optician_card), [(entry, PDF)], who, patient=patient,
                                identity=(identity, reliability) if reliability else None)
        return optician.client.post("/fhir", json=bundle.bundle, headers=FHIR)

    today = dt.date(2026, 12, 6)
    for refused in (IdentityReliability("provisoire"), IdentityReliability("récupérée"),
                    IdentityReliability("validée", "passeport", today)):
        answer = deposit(refused)
        assert answer.status_code == 422, answer.text  # type: ignore[attr-defined]
        assert code_of(answer) == "identity-not-qualified"
    with host.app.state.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(documents).where(
            documents.c.ins == identity.ins)).scalar_one()
    assert stored == 0
    qualified = deposit(IdentityReliability("qualifiée", "passeport", today))
    assert qualified.status_code == 200, qualified.text  # type: ignore[attr-defined]
    assert deposit(None).status_code == 200  # type: ignore[attr-defined]
