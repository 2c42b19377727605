"""The reference PSC through its real boundary (uvicorn, TLS 1.3) in a thread, with a clock
the test moves, and a virtual e-CPS app enrolled against it over HTTPS."""

from __future__ import annotations

import contextlib
import datetime as dt
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from host.psc.app import OIDC, REALM, Client, Provider, PscSettings, create_psc_app
from host.psc.tls import psc_paths, psc_ssl_context
from host.psc.vecps import VirtualEcps
from host.tls import running_server

CLIENT_ID, CLIENT_SECRET = "dmp-agent", "secret-of-the-test-client"
REDIRECT = "http://127.0.0.1:7878/psc/callback"
CODE = "2468"
GP = "810001234565"  # the "gp" profile's idNat_PS
NURSE = "810005678908"


class Clock:
    """The provider's clock: real time plus what the test added."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


@dataclass
class RunningPsc:
    base_url: str
    issuer: str
    ca: Path
    app: Starlette
    clock: Clock
    data: Path

    @property
    def provider(self) -> Provider:
        return self.app.state.provider  # type: ignore[no-any-return]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url,
                            verify=ssl.create_default_context(cafile=self.ca), timeout=10)

    def ciba(self, login_hint: str = GP, **form: str) -> httpx.Response:
        with self.client() as client:
            return client.post(f"{OIDC}/ext/ciba/auth", auth=(CLIENT_ID, CLIENT_SECRET), data={
                "scope": "openid scope_all", "login_hint": login_hint,
                "binding_message": "Poste ACCUEIL-2 code 4821", "acr_values": "eidas1",
                **form})

    def poll(self, auth_req_id: str) -> httpx.Response:
        with self.client() as client:
            return client.post(f"{OIDC}/token", auth=(CLIENT_ID, CLIENT_SECRET), data={
                "grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id})

    def phone(self, state: Path, id_nat_ps: str = GP) -> VirtualEcps:
        app = VirtualEcps(state)
        app.enrol(self.base_url, self.ca, id_nat_ps, CODE)
        return app


@contextlib.contextmanager
def running_psc(pki: Path, data: Path, **settings: Any) -> Iterator[RunningPsc]:
    clock = Clock()
    options: dict[str, Any] = {"ciba_interval": 1, **settings}
    psc_settings = PscSettings(
        data_dir=data, clients={CLIENT_ID: Client(CLIENT_ID, CLIENT_SECRET, (REDIRECT,)),
                                "page": Client("page", None, (REDIRECT,))}, **options)
    app = create_psc_app(psc_settings, clock=clock)
    with running_server(app, psc_ssl_context(pki)) as base_url:  # type: ignore[arg-type]
        psc_settings.issuer = base_url + REALM
        yield RunningPsc(base_url, psc_settings.issuer, psc_paths(pki)[2], app, clock, data)
