"""One place decides: every route that reaches a patient's data goes through the guard, and
every request that names a patient lands in their access log (host/audit.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from host import audit
from host.store.schema import access_log, documents
from tests.host.documents_support import open_dossier
from tests.host.harness import GP, InProcessHost

INS = "284057511402396"  # a well-formed INS (NIR + key)
ID_NAT = GP.id_nat_ps
# Values for the path parameters of every route (a new route with a new parameter fails here
# until it is given one, which is the point: someone looks at it).
PATH_VALUES = {"ins": INS, "idNatPs": ID_NAT, "id": f"{INS}.{'0' * 32}"}
QUERY = {"/fhir/DocumentReference": f"?patient=Patient/{INS}&status=current",
         "/fhir/Patient": f"?identifier=urn:oid:1.2.250.1.213.1.4.8|{INS}"}
PATCH_QUERY = f"?identifier=urn:ietf:rfc:3986|urn:uuid:0&patient=Patient/{INS}"
# Routes that name no patient: sessions, the OpenAPI document, the raw upload; the identity
# lookup and the INS service name a patient only when they find one (traced then:
# test_identity.py, test_ins.py), a
# deposit only once its bundle parses (traced then: test_access_holes_tls.py, hole 7).
NO_PATIENT = {"/openapi.json", "/session", "/session/challenge", "/session/$revoke",
              "/session/ecps", "/fhir/Binary",
              "/identity/$resolve", "/ins/$search-card", "/ins/$search-traits",
              "/ins/$verify", "/fhir", "/fhir/metadata"}


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def _log_count(host: InProcessHost) -> int:
    with host.app.state.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(access_log).where(access_log.c.ins == INS)
        ).scalar_one()


def _calls(host: InProcessHost) -> list[tuple[str, str, str]]:
    calls = []
    for route in host.app.routes:
        assert isinstance(route, Route)
        path = route.path
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", PATH_VALUES[name])
        for method in sorted((route.methods or set()) - {"HEAD"}):
            suffix = PATCH_QUERY if method == "PATCH" else QUERY.get(route.path, "")
            calls.append((route.path, method, path + suffix))
    return calls


def test_every_route_is_decided_and_traced(host: InProcessHost) -> None:
    open_dossier(host, INS)
    bodies: dict[str, Any] = {"PATCH": json.dumps([{"op": "test", "path": "/status",
                                                     "value": "current"}])}
    calls = _calls(host)
    assert len(calls) >= 15  # every route of the host is listed
    for template, method, url in calls:
        before = _log_count(host)
        headers = {"content-type": "application/json-patch+json" if method == "PATCH"
                   else "application/json"}
        client = host.client(GP)  # a session each: DELETE /session ends one
        answer = client.request(method, url, content=bodies.get(method, "{}"), headers=headers)
        assert answer.status_code < 500, (method, url, answer.text)
        if template not in NO_PATIENT:
            assert _log_count(host) > before, (method, template, answer.status_code, answer.text)


def test_a_route_that_skips_the_guard_fails_closed(host: InProcessHost) -> None:
    async def leaky(request: Request) -> JSONResponse:
        with host.app.state.engine.connect() as connection:
            rows = connection.execute(select(documents)).all()
        return JSONResponse({"documents": len(rows)})

    host.app.router.routes.append(Route("/leaky", leaky))
    answer = host.client(GP).get("/leaky")
    assert answer.status_code == 500 and "documents" not in answer.text
    assert issubclass(audit.UnguardedAccess, RuntimeError)
