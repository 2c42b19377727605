"""Hostile requests at the document endpoints: never a 5xx, and a refused request stores
nothing (no row, no access beyond the trace). Short here; `bench/fuzz_host.py` runs it long
by setting DMP_FUZZ_EXAMPLES."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from host.store.schema import documents, submission_sets
from tests.host.documents_support import (
    FHIR,
    PATIENT,
    PDF,
    Pki,
    deposit_bundle,
    entry_for,
    install_pki,
    make_pki,
    open_dossier,
)
from tests.host.harness import OPTICIAN, InProcessHost

EXAMPLES = int(os.environ.get("DMP_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
COUNTS: dict[str, int] = {}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, tmp_path: Path, pki: Pki) -> InProcessHost:
    running = InProcessHost(db_url, tmp_path)
    install_pki(pki, running)
    open_dossier(running)
    return running


def _stored(host: InProcessHost) -> tuple[int, int]:
    with host.app.state.engine.connect() as connection:
        return (connection.execute(select(func.count()).select_from(documents)).scalar_one(),
                connection.execute(select(func.count()).select_from(submission_sets))
                .scalar_one())


def _mutate(document: Any, data: st.DataObject) -> Any:
    node: Any = document
    path: list[Any] = []
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict)
                                        else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return data.draw(json_values)
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = data.draw(json_values)
    return document


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def test_hostile_deposits(host: InProcessHost, pki: Pki) -> None:
    client = host.client(OPTICIAN)
    valid = deposit_bundle(pki.optician, [(entry_for(PDF), PDF)]).bundle

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        _count("deposit")
        body = data.draw(st.one_of(
            st.binary(max_size=400),
            st.just(None).map(lambda _: json.dumps(_mutate(json.loads(json.dumps(valid)),
                                                           data)).encode()),
        ))
        before = _stored(host)
        response = client.post("/fhir", content=body, headers=FHIR)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert _stored(host) == before
            assert response.json()["resourceType"] == "OperationOutcome"

    check()


def test_hostile_patches(host: InProcessHost, pki: Pki) -> None:
    client = host.client(OPTICIAN)
    entry = entry_for(PDF)
    deposited = client.post("/fhir", json=deposit_bundle(pki.optician, [(entry, PDF)]).bundle,
                            headers=FHIR)
    assert deposited.status_code == 200
    target = (f"/fhir/DocumentReference?identifier={entry.unique_id}"
              f"&patient.identifier=urn:oid:{PATIENT.oid}|{PATIENT.ins}")

    @FUZZ
    @given(st.binary(max_size=200) | st.lists(st.fixed_dictionaries({
        "op": st.sampled_from(["add", "remove", "replace", "test", "move", "copy", "x"]),
        "path": st.sampled_from(["", "/status", "/securityLabel/0", "/securityLabel/-",
                                 "/extension/0/valueBoolean", "/title", "/a/~1b", "nope"]),
        "value": json_values}), max_size=3).map(lambda v: json.dumps(v).encode()))
    def check(body: bytes) -> None:
        _count("patch")
        response = client.patch(target, content=body,
                                headers={"content-type": "application/json-patch+json"})
        assert response.status_code < 500, response.text

    check()


def test_hostile_search_queries(host: InProcessHost) -> None:
    client = host.client(OPTICIAN)

    @FUZZ
    @given(st.text(max_size=120) | st.lists(st.tuples(
        st.sampled_from(["patient", "patient.identifier", "status", "type", "category",
                         "creation", "date", "author", "_count", "_cursor", "isArchived",
                         "security-label", "format", "zzz"]),
        st.text(max_size=30)), max_size=6).map(
            lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)))
    def check(query: str) -> None:
        _count("search")
        # Raw control characters cannot travel in a URL: send them percent-encoded, keeping
        # the separators so the structure is still hostile.
        response = client.get("/fhir/DocumentReference?"
                              + urllib.parse.quote(query, safe="=&|:,.-_~"))
        assert response.status_code < 500, response.text

    check()


# The small JSON routes (issue 16): hostile JSON, deep nesting and control characters.
JSON_ROUTES = (("POST", "/identity/$resolve"), ("POST", "/dossiers/{ins}"),
               ("POST", "/dossiers/{ins}/$close"), ("POST", "/dossiers/{ins}/$reactivate"),
               ("PUT", "/dossiers/{ins}/authorizations/" + OPTICIAN.id_nat_ps),
               ("PUT", "/dossiers/{ins}/medecins-traitants/" + OPTICIAN.id_nat_ps))
nasty_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                     max_size=20) | st.sampled_from(["\x1b[2J", "a\r\nb", "\x00", "\u202e"])
VALID_INS = "284057511402396"  # a well-formed INS (PATIENT.ins is a test one)
nested = st.integers(1, 3000).map(lambda n: ("[" * n + "]" * n).encode())


def test_hostile_json_bodies(host: InProcessHost) -> None:
    client = host.client(OPTICIAN)
    bodies = st.one_of(
        st.binary(max_size=200), nested,
        st.recursive(st.none() | st.booleans() | st.integers() | nasty_text,
                     lambda children: st.lists(children, max_size=3)
                     | st.dictionaries(nasty_text, children, max_size=3),
                     max_leaves=15).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({"consent": st.booleans(), "reason": nasty_text,
                               "birthName": nasty_text, "firstNames": nasty_text,
                               "birthDate": st.sampled_from(["19800101", "x"]),
                               "structureId": nasty_text}).map(lambda v: json.dumps(v).encode()),
    )

    @FUZZ
    @given(st.sampled_from(JSON_ROUTES), bodies)
    def check(route: tuple[str, str], body: bytes) -> None:
        _count("json routes")
        method, path = route
        before = _stored(host)
        response = client.request(method, path.format(ins=VALID_INS), content=body,
                                  headers={"content-type": "application/json"})
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert _stored(host) == before
            assert response.json()["resourceType"] == "OperationOutcome"

    check()
