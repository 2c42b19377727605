"""GET /fhir/metadata: the CapabilityStatement is written from the router and the search
parser's table, so it cannot fall behind either; readable with the workstation certificate
alone (no professional session), refused without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Route

from host.capability import INSTANTIATES, INTERACTIONS, capability_statement
from tests.host.harness import GP, InProcessHost
from tests.host.tls_harness import TlsHost, make_pki, tls_host
from wire.search import PARAMETERS, SearchError, parse_search

PATIENT = "Patient/180017512345688"
SAMPLE = {"token": "x", "date": "2026", "reference": "x", "string": "x", "number": "1",
          "special": "x"}


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def _statement(host: InProcessHost) -> dict:
    response = host.client(**{"x-test-workstation": "ws"}).get("/fhir/metadata")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    return response.json()  # type: ignore[no-any-return]


def test_the_statement_says_what_the_host_is(host: InProcessHost) -> None:
    statement = _statement(host)
    assert statement["resourceType"] == "CapabilityStatement"
    assert (statement["fhirVersion"], statement["format"], statement["kind"]) == (
        "4.0.1", ["json"], "instance")
    assert statement["instantiates"] == list(INSTANTIATES)
    assert ("https://interop.esante.gouv.fr/ig/fhir/pdsm/CapabilityStatement/"
            "PDSm-GestionnaireDePartageDeDocuments") in statement["instantiates"]
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    assert [i["code"] for i in rest["interaction"]] == ["transaction"]
    kinds = {r["type"]: r for r in rest["resource"]}
    assert set(kinds) == {"Binary", "DocumentReference", "Patient"}
    # TD0.2, the existence test as the ANS draft PDSM4DMP maps it: a Patient search by INS.
    assert [p["name"] for p in kinds["Patient"]["searchParam"]] == ["identifier"]
    reference = kinds["DocumentReference"]
    assert reference["profile"] == ("https://interop.esante.gouv.fr/ig/fhir/pdsm/"
                                    "StructureDefinition/pdsm-comprehensive-document-reference")
    assert sorted(i["code"] for i in reference["interaction"]) == [
        "patch", "read", "search-type"]
    assert sorted(i["code"] for i in kinds["Binary"]["interaction"]) == ["create", "read"]


def test_every_route_is_in_the_statement(host: InProcessHost) -> None:
    rest = _statement(host)["rest"][0]
    declared = {(r["type"], i["code"]) for r in rest["resource"] for i in r["interaction"]}
    declared |= {("", i["code"]) for i in rest["interaction"]}
    served = set()
    for route in host.app.routes:
        assert isinstance(route, Route)
        if route.path == "/fhir" or route.path.startswith("/fhir/"):
            for method in (route.methods or set()) - {"HEAD"}:
                assert (route.path, method) in INTERACTIONS, (route.path, method)
                described = INTERACTIONS[(route.path, method)]
                if described is not None:
                    served.add(described[:2])
    assert declared == served


def test_a_route_the_statement_does_not_describe_fails_it(host: InProcessHost) -> None:
    async def endpoint(request: object) -> None: ...

    routes = [*host.app.routes, Route("/fhir/List", endpoint, methods=["GET"])]
    with pytest.raises(KeyError):
        capability_statement(routes, base="https://h/fhir", version="0", date="2026-12-06")


def test_every_search_parameter_is_the_parsers(host: InProcessHost) -> None:
    reference = next(r for r in _statement(host)["rest"][0]["resource"]
                     if r["type"] == "DocumentReference")
    declared = {p["name"]: p["type"] for p in reference["searchParam"]}
    assert declared == {p.name: p.type for p in PARAMETERS}
    for name, kind in declared.items():
        value = "true" if name == "isArchived" else SAMPLE[kind]
        try:
            parse_search(f"patient={PATIENT}&status=current&{name}={value}", strict=True)
        except SearchError as error:  # refused for its value or a duplicate: never unknown
            assert error.code != "unknown-search-parameter", name
    with pytest.raises(SearchError) as caught:
        parse_search(f"patient={PATIENT}&status=current&not-a-parameter=x", strict=True)
    assert caught.value.code == "unknown-search-parameter"
    for parameter in reference["searchParam"]:
        definition = parameter.get("definition", "")
        assert parameter["name"].startswith("_") or definition.startswith("http"), parameter


def test_it_needs_the_workstation_but_no_session(host: InProcessHost) -> None:
    assert host.client().get("/fhir/metadata").status_code == 401  # no workstation
    assert host.client(GP).get("/fhir/metadata").status_code == 401  # a session is not one
    assert host.client(**{"x-test-workstation": "ws"}).get("/fhir/metadata").status_code == 200


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls(db_url: str, pki: Path, tmp_path: Path) -> Iterator[TlsHost]:
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        yield running


def test_over_tls_with_the_workstation_certificate(tls: TlsHost) -> None:
    with tls.anonymous() as client:
        response = client.get("/fhir/metadata")
    assert response.status_code == 200, response.text
    statement = response.json()
    assert statement["implementation"]["url"] == f"{tls.base_url}/fhir"
    assert statement["fhirVersion"] == "4.0.1"
