"""Driving the host in tests: professionals with sessions, a clock the test can move.

`InProcessHost` runs the app in-process with a test-only authenticator that trusts an
`x-test-session` header naming a row of the sessions table; it is for tests of the host's
rules and data handling. The TLS boundary itself (client certificates, session opening with a
card) is tested through a real uvicorn server in the tests of `host/tls.py` and sessions, and
end to end by the agent's tests.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert
from starlette.requests import Request
from starlette.testclient import TestClient

from host.actors import SessionActor, session_for_fingerprint, unauthenticated
from host.app import create_app
from host.settings import HostSettings
from host.store.schema import sessions

START = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Professional:
    id_nat_ps: str
    last_name: str
    first_name: str
    profession: str
    specialty: str | None
    structure_id: str


def card_holder(profile: str, situation: int = 0) -> Professional:
    """The professional of a virtual CPS profile, in one of its practice situations."""
    from cardreader.virtual.cps_profiles import PROFILES

    card = PROFILES[profile]
    who = card.identity
    return Professional(who.id_nat_ps, who.last_name, who.first_name, who.profession_code,
                        who.specialty_code, card.situations[situation].structure_id)


# The virtual cards' professionals (cardreader/virtual/cps_profiles.py), as the host sees them,
# and two doctors without a card of their own (same structure as the GP, and elsewhere).
GP = card_holder("gp")
PHARMACIST = card_holder("pharmacist")
OPTICIAN = card_holder("optician")
ORTHOPTIST = card_holder("orthoptist")
NURSE = card_holder("nurse")
REGULATOR = card_holder("regulation")  # a doctor of a registered regulation centre
OCCUPATIONAL = card_holder("occupational")  # médecin du travail (SM25)
MUTUAL_DOCTOR = card_holder("insurer")  # a doctor working for a mutual
GP2 = Professional("810009876543", "BERNARD", "Paul", "10", "SM54", GP.structure_id)
OTHER_GP = Professional("810005555555", "PETIT", "Luc", "10", "SM54", "589999999900012")


class Clock:
    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class HeaderAuthenticator:
    """TEST ONLY: the session is named by a header instead of a TLS client certificate."""

    def __init__(self, host: InProcessHost) -> None:
        self.host = host

    def workstation(self, request: Request) -> str:
        value = request.headers.get("x-test-workstation")
        if not value:
            raise unauthenticated("no workstation header")
        return value

    def session(self, request: Request) -> SessionActor:
        value = request.headers.get("x-test-session")
        if not value:
            raise unauthenticated("no session header")
        return session_for_fingerprint(self.host.app.state.engine, value, self.host.clock())


class InProcessHost:
    def __init__(self, db_url: str, tmp_path: Path, **settings: object) -> None:
        self.clock = Clock()
        self.settings = HostSettings(
            database_url=db_url, blob_dir=tmp_path / "blobs", pki_dir=tmp_path / "pki",
            **settings,  # type: ignore[arg-type]
        )
        self.app = create_app(self.settings, authenticator=HeaderAuthenticator(self),
                              clock=self.clock)

    def session_for(self, who: Professional, *, lifetime: dt.timedelta | None = None) -> str:
        """Open a session row for ``who`` directly; returns its certificate fingerprint."""
        fingerprint = uuid.uuid4().hex + uuid.uuid4().hex
        now = self.clock()
        with self.app.state.engine.begin() as connection:
            connection.execute(insert(sessions).values(
                id=str(uuid.uuid4()), cert_sha256=fingerprint, cert_serial="1",
                id_nat_ps=who.id_nat_ps, last_name=who.last_name, first_name=who.first_name,
                profession=who.profession, specialty=who.specialty,
                structure_id=who.structure_id, card_serial="0000100001",
                workstation_sha256="0" * 64, created_at=now,
                not_after=now + (lifetime or self.settings.session_lifetime),
            ))
        return fingerprint

    def client(self, who: Professional | None = None, **headers: str) -> TestClient:
        """An HTTP client acting as ``who`` (a new session), or with no session at all."""
        client = TestClient(self.app, raise_server_exceptions=False)
        if who is not None:
            client.headers["x-test-session"] = self.session_for(who)
        client.headers.update(headers)
        return client
