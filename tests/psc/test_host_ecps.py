"""The host opens a professional session from a Pro Santé Connect ID token (e-CPS), all over
real TLS: the reference PSC and the host in threads, the virtual e-CPS app approving, the test
playing the agent. The session is the card's (same certificate, same rules) and every
access-log line the patient reads says "e-cps"; each forged or misused token is refused with
its own code and opens no session."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import func, select

from agent.client.session import tls_context
from cardreader.virtual.vitale_profiles import PROFILES as VITALE
from host import patient
from host.pki import init_pki
from host.psc.directory import load_directory
from host.psc.keys import KeyRing
from host.psc_token import PscTrust
from host.store import upgrade
from host.store.schema import access_log, sessions
from tests.host.tls_harness import TlsHost, tls_host
from wire.session import ecps_nonce

from .harness import CLIENT_ID, CODE, GP, RunningPsc, running_psc

PHARMACIST = "810002345675"
PHARMACY = "3690001234"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_pki(tmp_path_factory.mktemp("pki")).root


@dataclass
class World:
    psc: RunningPsc
    host: TlsHost
    phone_dir: Path

    def anonymous(self) -> httpx.Client:
        return self.host.anonymous()

    def challenge(self) -> bytes:
        with self.anonymous() as client:
            answer = client.post("/session/challenge")
        assert answer.status_code == 200, answer.text
        return base64.b64decode(answer.json()["challenge"])

    def open(self, id_token: str, challenge: bytes, key: ec.EllipticCurvePrivateKey,
             structure_id: str) -> httpx.Response:
        with self.anonymous() as client:
            return client.post("/session/ecps", json={
                "idToken": id_token, "challenge": base64.b64encode(challenge).decode(),
                "sessionPublicKey": base64.b64encode(_spki(key)).decode(),
                "structureId": structure_id})

    def session_count(self) -> int:
        with self.host.app.state.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(sessions))
                       .scalar_one())

    def session_client(self, opened: dict[str, Any], key: ec.EllipticCurvePrivateKey
                       ) -> httpx.Client:
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        context = tls_context(self.host.pki / "server" / "ca.pem",
                              opened["certificate"].encode(), key_pem, None)
        return httpx.Client(base_url=self.host.base_url, verify=context)


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _world(pki: Path, root: Path, db_url: str, **trust: Any) -> Iterator[World]:
    with running_psc(pki, root / "psc") as psc:
        settings = PscTrust(issuer=psc.issuer, ca_file=psc.ca, client_id=CLIENT_ID, **trust)
        with tls_host(db_url, pki, root / "blobs", psc=settings) as host:
            yield World(psc, host, root / "phone")


@pytest.fixture
def world(pki: Path, tmp_path: Path, db_url: str) -> Iterator[World]:
    yield from _world(pki, tmp_path, db_url)


@pytest.fixture(scope="module")
def forged_world(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One SQLite host and provider for the refusals (none of them changes anything)."""
    root = tmp_path_factory.mktemp("forged")
    upgrade(f"sqlite:///{root / 'host.db'}")
    yield from _world(pki, root, f"sqlite:///{root / 'host.db'}",
                      refetch_after=dt.timedelta(0))


def _ciba_token(world: World, id_nat_ps: str, nonce: str) -> str:
    phone = world.psc.phone(world.phone_dir / id_nat_ps, id_nat_ps)
    auth_req_id = world.psc.ciba(login_hint=id_nat_ps, nonce=nonce).json()["auth_req_id"]
    shown, status = phone.decide(auth_req_id, True, CODE)
    assert status == "approved" and shown.binding_message
    answer = world.psc.poll(auth_req_id)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id_token"])


def test_ecps_session_is_a_session_and_the_patient_reads_e_cps(world: World) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    challenge = world.challenge()
    token = _ciba_token(world, PHARMACIST, ecps_nonce(challenge, _spki(key)))
    answer = world.open(token, challenge, key, PHARMACY)
    assert answer.status_code == 201, answer.text
    opened = answer.json()
    assert opened["authMeans"] == "e-cps"
    with world.session_client(opened, key) as client:
        who = client.get("/session").json()
        assert (who["idNatPs"], who["structureId"], who["profession"]) == (
            PHARMACIST, PHARMACY, "21")
        person = VITALE["single"].beneficiaries[0]
        identity = client.post("/identity/$resolve", json={
            "birthName": person.birth_name, "firstNames": person.first_name,
            "birthDate": person.birth_date.raw, "insuredNir": VITALE["single"].nir_with_key,
            "birthRank": person.birth_rank}).json()
        created = client.post(f"/dossiers/{identity['ins']}", json={
            "consent": True, "emergency": {"regulationCentre": True, "breakTheGlass": True,
                                           "emergencySeesMasked": False}})
        assert created.status_code == 201, created.text
    # A card session beside it says "card".
    gp = world.host.session("gp")
    gp.client.get(f"/dossiers/{identity['ins']}")
    page = patient.access_log_page(world.host.app.state.guard, identity["ins"])
    means = {(entry["actorId"], entry["authMeans"]) for entry in page["entries"]
             if entry["actorKind"] == "professional"}
    assert (PHARMACIST, "e-cps") in means and ("810001234565", "card") in means
    with world.host.app.state.engine.connect() as connection:
        assert set(connection.execute(select(sessions.c.auth_means)).scalars()) == {
            "e-cps", "card"}
        assert "e-cps" in set(connection.execute(select(access_log.c.auth_means)).scalars())


def test_replayed_token_and_unknown_structure_are_refused(forged_world: World) -> None:
    world = forged_world
    key = ec.generate_private_key(ec.SECP256R1())
    challenge = world.challenge()
    token = _ciba_token(world, GP, ecps_nonce(challenge, _spki(key)))
    before = world.session_count()
    elsewhere = world.open(token, challenge, key, PHARMACY)
    assert _code(elsewhere) == "structure-not-in-psc"
    # The refusal spent the challenge: the same token again is a replay.
    assert _code(world.open(token, challenge, key, "581234567800015")) == "psc-nonce-replayed"
    assert world.session_count() == before


# -- forged tokens: each refused with its own code, no session opened ---------------------------


def _claims(world: World, nonce: str, **changes: Any) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": world.psc.issuer, "sub": GP, "aud": CLIENT_ID, "iat": now,
              "exp": now + 300, "acr": "eidas1", "nonce": nonce,
              **load_directory()[GP].claims()}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _signed(world: World, claims: dict[str, Any], key: RSAKey | None = None) -> str:
    key = key or world.psc.provider.keys.active().key
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _code(answer: httpx.Response) -> str:
    return str(answer.json()["issue"][0]["details"]["coding"][0]["code"])


def _unsigned(claims: dict[str, Any]) -> str:
    import json

    return (_b64(json.dumps({"alg": "none", "kid": "x"}).encode()) + "."
            + _b64(json.dumps(claims).encode()) + ".")


def _hs256(claims: dict[str, Any]) -> str:
    # What an attacker who knows a client secret could sign (the "alg confusion" attack).
    secret = OctKey.import_key(b"secret-of-the-test-client-padded-to-32")
    return jwt.encode({"alg": "HS256", "kid": "x"}, claims, secret)


FORGERIES = {
    "psc-wrong-issuer": lambda w, n: _signed(w, _claims(w, n, iss="https://evil.example")),
    "psc-wrong-audience": lambda w, n: _signed(w, _claims(w, n, aud="another-service")),
    "psc-token-expired": lambda w, n: _signed(w, _claims(
        w, n, exp=int(dt.datetime.now(dt.UTC).timestamp()) - 600)),
    "psc-acr-insufficient": lambda w, n: _signed(w, _claims(w, n, acr="eidas0")),
    "psc-nonce-mismatch": lambda w, n: _signed(w, _claims(w, "some-other-nonce")),
    "psc-alg-refused": lambda w, n: _unsigned(_claims(w, n)),
    "psc-alg-refused/hs256": lambda w, n: _hs256(_claims(w, n)),
    "psc-unknown-key": lambda w, n: _signed(w, _claims(w, n), RSAKey.generate_key(
        2048, parameters={"alg": "RS256"}, auto_kid=True)),
    "psc-bad-signature": lambda w, n: _signed(w, _claims(w, n))[:-8] + "AAAAAAAA",
    "psc-claims-missing": lambda w, n: _signed(w, _claims(w, n, SubjectNameID=None)),
    "psc-token-malformed": lambda w, n: "not.a-token",
}


@pytest.mark.parametrize("expected", list(FORGERIES))
def test_forged_token_is_refused_with_its_own_code(forged_world: World, expected: str) -> None:
    world = forged_world
    key = ec.generate_private_key(ec.SECP256R1())
    challenge = world.challenge()
    token = FORGERIES[expected](world, ecps_nonce(challenge, _spki(key)))
    before = world.session_count()
    answer = world.open(token, challenge, key, "581234567800015")
    assert answer.status_code == 403, answer.text
    assert _code(answer) == expected.split("/")[0]
    assert world.session_count() == before
    # The challenge was not spent by the refusal: a good token for it still opens a session.
    good = _signed(world, _claims(world, ecps_nonce(challenge, _spki(key))))
    assert world.open(good, challenge, key, "581234567800015").status_code == 201


def test_a_rotated_key_is_fetched_and_accepted(forged_world: World) -> None:
    world = forged_world
    KeyRing(world.psc.data).rotate(world.psc.clock())
    key = ec.generate_private_key(ec.SECP256R1())
    challenge = world.challenge()
    token = _signed(world, _claims(world, ecps_nonce(challenge, _spki(key))))
    assert world.open(token, challenge, key, "581234567800015").status_code == 201


def test_a_host_without_psc_refuses_ecps(pki: Path, tmp_path: Path) -> None:
    upgrade(f"sqlite:///{tmp_path / 'host.db'}")
    with tls_host(f"sqlite:///{tmp_path / 'host.db'}", pki,
                  tmp_path / "blobs") as host, host.anonymous() as client:
        answer = client.post("/session/ecps", json={})
    assert answer.status_code == 404 and _code(answer) == "psc-not-configured"
