"""ITI-67 as PDSm 3.1.1 lists it (docs/wire-search.md): every parameter with documents that
match and documents that do not, tokens with and without their system, paging through the
next links to the end, unknown parameters (lenient and strict), bad values with their
OperationOutcome, and the conditional PATCH by identifier alone; in-process for the many
combinations, then every parameter once more through the real TLS host; SQLite and
PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from host.store.schema import documents
from tests.host.documents_support import (
    FHIR,
    OPTICIAN_CARD,
    PATIENT,
    PDF,
    Card,
    Pki,
    authorize,
    deposit_bundle,
    entry_for,
    install_pki,
    make_pki,
    open_dossier,
)
from tests.host.harness import GP, InProcessHost, Professional, card_holder
from tests.host.tls_harness import TlsHost, tls_host
from tests.host.tls_harness import make_pki as make_tls_pki
from wire import codes
from wire.mhd import DocumentEntry, Patient, parse_transaction_response
from wire.search import PARAMETERS

CLAIRE = Patient("284057511402396", codes.INS_TEST_OID)
PATCH = {"content-type": "application/json-patch+json"}
ARCHIVE = json.dumps([{"op": "replace", "path": "/extension/0/valueBoolean", "value": True}])
T0 = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)  # the in-process clock's start


def _docs(author: Professional) -> dict[str, DocumentEntry]:
    """A: LOINC, normal, cabinet, no act date (its period starts when it was made, 26 November,
    as `build_provide_bundle` says for PDSm's period.start 1..); B: a local type, restricted,
    hospital, a one-hour act; D: replaced by C (an act with an open end)."""
    a = entry_for(PDF + b"A", author)
    return {
        "A": a,
        "B": entry_for(PDF + b"B", author, type_code="DISPENSATION-OPTIQUE", class_code="43",
                       type_system="urn:dmp-agent:type-local", confidentiality="R",
                       facility_type="SA01", practice_setting="ETABLISSEMENT",
                       creation_time=dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC),
                       service_start=dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC),
                       service_stop=dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)),
        "D": entry_for(PDF + b"D", author,
                       creation_time=dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)),
    }


def _replacement(old: DocumentEntry, author: Professional) -> DocumentEntry:
    return entry_for(PDF + b"C", author, replaces=old.unique_id,
                     creation_time=dt.datetime(2026, 5, 11, 0, 0, tzinfo=dt.UTC),
                     service_start=dt.datetime(2026, 5, 10, 0, 0, tzinfo=dt.UTC))


@dataclasses.dataclass
class Dossier:
    """The deposited documents: name -> (entry, DocumentReference id)."""

    entries: dict[str, DocumentEntry]
    ids: dict[str, str]
    author: Professional

    def names(self, resources: list[dict[str, Any]]) -> set[str]:
        by_id = {doc_id: name for name, doc_id in self.ids.items()}
        return {by_id.get(r["id"], "?") for r in resources
                if r["type"]["coding"][0]["code"] != codes.SIGNATURE_TYPE_CODE}


def _cases(d: Dossier) -> list[tuple[str, set[str]]]:
    """(query after patient and status=current, the documents it finds)."""
    a, c, old = d.entries["A"], d.entries["C"], d.entries["D"]
    who = d.author
    q = urllib.parse.quote
    return [
        ("", {"A", "B", "C"}),
        # type: the system is the matrix's for the code
        (f"type={q(codes.LOINC_SYSTEM)}|34810-2", {"A", "C"}),
        ("type=34810-2", {"A", "C"}),
        ("type=|34810-2", set()),
        ("type=urn:dmp-agent:type-local|34810-2", set()),
        ("type=urn:dmp-agent:type-local|DISPENSATION-OPTIQUE", {"B"}),
        ("type=34810-2,DISPENSATION-OPTIQUE", {"A", "B", "C"}),
        ("type=34810-2&type=DISPENSATION-OPTIQUE", set()),  # repeated: AND
        (f"category={q(codes.CLASS_SYSTEM)}|43", {"B"}),
        ("category=10", {"A", "C"}),
        ("category=http://example.org|10", set()),
        (f"format={q(codes.FORMAT_SYSTEM)}|urn:ihe:iti:xds-sd:pdf:2008", {"A", "B", "C"}),
        ("format=urn:ihe:iti:xds-sd:text:2008", set()),
        ("facility=SA01", {"B"}),
        (f"facility={q(codes.FACILITY_SYSTEM)}|SA07", {"A", "C"}),
        ("facility=http://example.org|SA07", set()),
        ("setting=ETABLISSEMENT", {"B"}),
        (f"setting={q(codes.PRACTICE_SYSTEM)}|AMBULATOIRE", {"A", "C"}),
        (f"setting={q(codes.FACILITY_SYSTEM)}|AMBULATOIRE", set()),
        (f"identifier={codes.RFC3986}|{a.unique_id}", {"A"}),
        (f"identifier={a.unique_id}", {"A"}),
        (f"identifier={codes.DOCUMENT_ID_SYSTEM}|{d.ids['B']}", {"B"}),
        (f"identifier={d.ids['B']}", {"B"}),
        (f"identifier={a.unique_id},{d.ids['B']}", {"A", "B"}),
        (f"identifier=http://example.org|{a.unique_id}", set()),
        ("security-label=R", {"B"}),
        (f"security-label={q(codes.CONFIDENTIALITY_SYSTEM)}|R", {"B"}),
        (f"security-label={q(codes.VISIBILITY_SYSTEM)}|R", set()),
        ("security-label=N", {"A", "C"}),
        ("security-label=MASQUE_PS", set()),
        (f"author={who.id_nat_ps}", {"A", "B", "C"}),
        (f"author=Practitioner/{who.id_nat_ps}", {"A", "B", "C"}),
        (f"author={codes.ID_NAT_PS_SYSTEM}|{who.id_nat_ps}", {"A", "B", "C"}),
        (f"author.identifier={codes.ID_NAT_PS_SYSTEM}|{who.id_nat_ps}", {"A", "B", "C"}),
        (f"author.identifier=http://example.org|{who.id_nat_ps}", set()),
        (f"author={GP.id_nat_ps}", set()),
        (f"author.family={q(who.last_name[:3].lower())}", {"A", "B", "C"}),
        (f"author.family:exact={q(who.last_name.lower())}", set()),
        (f"author.family:exact={q(who.last_name)}", {"A", "B", "C"}),
        (f"author.given:contains={q(who.first_name[1:4].upper())}", {"A", "B", "C"}),
        ("author.given=Zoé", set()),
        # creation: the value is the interval its precision covers
        ("creation=2026-11-26", {"A"}),
        ("creation=2026-11", {"A"}),
        ("creation=ge2026-11", {"A"}),
        ("creation=lt2026-05", {"B"}),
        ("creation=2026-05-11T00:00:00Z", {"C"}),
        ("creation=2026-05-11T00:00Z", {"C"}),
        ("creation=sa2026-06&creation=eb2026-12-01", {"A"}),
        ("creation=ne2026-11-26", {"B", "C"}),
        ("creation=2026-11-25,2026-11-26", {"A"}),
        # date: when the host registered the document (A then B then D then C, a day apart)
        (f"date={(T0 + dt.timedelta(days=1)).date()}", {"B"}),
        (f"date=ge{(T0 + dt.timedelta(days=2)).date()}", {"C"}),
        # period: the act's interval; an open end is infinite
        ("period=2026-03-01", {"B"}),
        ("period=ge2026-04", {"A", "C"}),
        ("period=lt2026-04", {"B"}),
        ("period=2026", {"B"}),
        ("period-start=2026-05-10", {"C"}),
        ("period-start=le2026-05-10", {"B", "C"}),
        ("period-end=ge2026-03-01", {"B"}),
        ("period-end=2026-05-10", set()),
        (f"relatesto=DocumentReference/{d.ids['D']}", {"C"}),
        (f"relatesto={d.ids['D']}", {"C"}),
        (f"relatesto:identifier={codes.RFC3986}|{old.unique_id}", {"C"}),
        (f"relatesto:identifier={codes.RFC3986}|{a.unique_id}", set()),
        (f"relatesto={d.ids['A']}", set()),
        ("event=http://example.org|E1", set()),
        ("related=DocumentReference/x", set()),
        ("related:identifier=urn:ietf:rfc:3986|urn:oid:1.2.3", set()),
        ("isArchived=false", {"A", "B", "C"}),
        ("isArchived=true", set()),
        (f"patient.identifier={c.patient.system}|{c.patient.ins}", {"A", "B", "C"}),
    ]


# -- the hosts ----------------------------------------------------------------------------------


class Searcher:
    """GET over either host; the bodies as JSON."""

    def __init__(self, get: Callable[..., httpx.Response]) -> None:
        self.get = get

    def search(self, query: str, status: str = "current", **headers: str) -> httpx.Response:
        base = f"/fhir/DocumentReference?status={status}"
        if "patient.identifier=" not in query:
            base += f"&patient=Patient/{PATIENT.ins}"
        return self.get(f"{base}&{query}" if query else base, headers=headers)

    def found(self, query: str, status: str = "current") -> list[dict[str, Any]]:
        response = self.search(query, status)
        assert response.status_code == 200, (query, response.text)
        return [e["resource"] for e in response.json()["entry"]
                if e["search"]["mode"] == "match"]


def _deposit(post: Callable[..., httpx.Response], card: Card, who: Professional,
             *entries: DocumentEntry, patient: Patient = PATIENT) -> list[str]:
    bundle = deposit_bundle(card, [(e, PDF + e.unique_id.encode()) for e in entries], who,
                            patient=patient).bundle
    response = post("/fhir", content=json.dumps(bundle), headers=FHIR)
    assert response.status_code == 200, response.text
    return [e.location.split("/")[1] for e in parse_transaction_response(response.content)
            if e.location.startswith("DocumentReference/")][: len(entries)]


def _content(entry: DocumentEntry) -> DocumentEntry:
    """``entry`` declaring the content `_deposit` sends (PDF + its uniqueId)."""
    body = PDF + entry.unique_id.encode()
    fresh = entry_for(body, entry.author)  # the size and hashes of this body
    return dataclasses.replace(entry, size=fresh.size, sha1_b64=fresh.sha1_b64,
                               sha256=fresh.sha256)


def _fill(post: Callable[..., httpx.Response], card: Card, who: Professional,
          advance: Callable[[], None]) -> Dossier:
    entries = {name: _content(e) for name, e in _docs(who).items()}
    ids: dict[str, str] = {}
    for name in ("A", "B", "D"):
        (ids[name],) = _deposit(post, card, who, entries[name])
        advance()
    entries["C"] = _content(_replacement(entries["D"], who))
    (ids["C"],) = _deposit(post, card, who, entries["C"])
    return Dossier(entries, ids, who)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("health"))


@pytest.fixture
def host(db_url: str, tmp_path: Path, pki: Pki) -> InProcessHost:
    running = InProcessHost(db_url, tmp_path, page_size=50)
    install_pki(pki, running)
    open_dossier(running)
    authorize(running, GP)
    return running


@pytest.fixture
def dossier(host: InProcessHost, pki: Pki) -> Dossier:
    # A session each: the clock moves a day between deposits.
    return _fill(lambda *args, **kw: host.client(OPTICIAN_CARD).post(*args, **kw),
                 pki.optician, OPTICIAN_CARD, lambda: host.clock.advance(days=1))


# -- in-process: the combinations --------------------------------------------------------------


def test_every_parameter_matches_and_misses(host: InProcessHost, dossier: Dossier) -> None:
    gp = Searcher(host.client(GP).get)
    for query, expected in _cases(dossier):
        assert dossier.names(gp.found(query)) == expected, query
    assert dossier.names(gp.found("", status="superseded")) == {"D"}
    assert dossier.names(gp.found("", status="current,superseded")) == {"A", "B", "C", "D"}
    assert dossier.names(gp.found("", status="superseded&status=current")) == set()


def test_the_cases_cover_every_parameter(host: InProcessHost, dossier: Dossier) -> None:
    used = {urllib.parse.parse_qsl(query)[0][0].partition(":")[0]
            for query, _ in _cases(dossier) if query}
    tested_elsewhere = {"patient", "status", "_count", "_cursor"}
    assert {p.name for p in PARAMETERS} - tested_elsewhere == used


def test_event_and_related_match_on_the_stored_resource(host: InProcessHost,
                                                        dossier: Dossier) -> None:
    # No deposit carries context.event or context.related today; a stored resource that
    # does (an older deposit, a later wire) is matched on what it holds.
    with host.app.state.engine.begin() as connection:
        row = connection.execute(select(documents.c.resource).where(
            documents.c.id == dossier.ids["B"])).scalar_one()
        row = dict(row)
        row["context"] = {**row.get("context", {}), "event": [
            {"coding": [{"system": "http://example.org", "code": "E1"}]}],
            "related": [{"reference": "DocumentReference/x",
                         "identifier": {"system": codes.RFC3986, "value": "urn:oid:1.2.3"}}]}
        connection.execute(update(documents).where(documents.c.id == dossier.ids["B"])
                            .values(resource=row))
    gp = Searcher(host.client(GP).get)
    for query, expected in [
        ("event=http://example.org|E1", {"B"}), ("event=E1", {"B"}), ("event=|E1", set()),
        ("event=http://example.org|E2", set()), ("related=DocumentReference/x", {"B"}),
        ("related=DocumentReference/y", set()),
        ("related:identifier=urn:ietf:rfc:3986|urn:oid:1.2.3", {"B"}),
        ("related:identifier=urn:oid:1.2.3", {"B"}),
        ("related:identifier=http://example.org|urn:oid:1.2.3", set()),
        ("event=E1&type=34810-2", set()),
    ]:
        assert dossier.names(gp.found(query)) == expected, query


def _follow(get: Callable[..., httpx.Response], url: str, strip: str) -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    while url:
        response = get(url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "_cursor" not in links["self"] or pages
        url = links["next"].split(strip, 1)[1] if "next" in links else ""
        if url:
            assert "type=" in url and "_count=2" in url  # the filters travel in the link
        pages += 1
    return seen, pages


def test_count_pages_through_next_links_to_the_end(host: InProcessHost, pki: Pki) -> None:
    entries = [_content(entry_for(PDF + bytes([i]), OPTICIAN_CARD)) for i in range(5)]
    ids = _deposit(host.client(OPTICIAN_CARD).post, pki.optician, OPTICIAN_CARD, *entries)
    url = (f"/fhir/DocumentReference?patient=Patient/{PATIENT.ins}&status=current"
           f"&type={codes.LOINC_SYSTEM}|34810-2&_count=2")
    seen, pages = _follow(host.client(GP).get, url, "testserver")
    assert sorted(seen) == sorted(ids) and pages == 3


# -- unknown parameters and bad values -------------------------------------------------------------


def _issue(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    return issue  # type: ignore[no-any-return]


def test_unknown_parameters_are_ignored_and_said_or_refused_when_strict(
        host: InProcessHost, dossier: Dossier) -> None:
    gp = Searcher(host.client(GP).get)
    lenient = gp.search("colour=blue&type=34810-2")
    assert lenient.status_code == 200
    bundle = lenient.json()
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    (warning,) = outcomes[0]["resource"]["issue"]
    assert (warning["severity"], warning["code"], warning["expression"]) == (
        "warning", "not-supported", ["colour"])
    assert "colour" not in bundle["link"][0]["url"]  # self: what the search used
    assert dossier.names([e["resource"] for e in bundle["entry"]
                          if e["search"]["mode"] == "match"]) == {"A", "C"}
    for prefer in ("handling=strict", "return=minimal, handling=strict"):
        strict = gp.search("colour=blue", prefer=prefer)
        assert strict.status_code == 400
        issue = _issue(strict)
        assert issue["details"]["coding"][0]["code"] == "unknown-search-parameter"
        assert (issue["code"], issue["expression"]) == ("not-supported", ["colour"])
    assert gp.search("colour=blue", prefer="handling=lenient").status_code == 200


BAD = [
    ("creation=yesterday", "creation", "invalid-search", "value"),
    ("creation=ap2026-01-01", "creation", "invalid-search", "value"),
    ("creation=2026-13-01", "creation", "invalid-search", "value"),
    ("creation=2026-02-30", "creation", "invalid-search", "value"),
    ("creation=2026-11-26T10:00", "creation", "invalid-search", "value"),
    ("period-start=", "period-start", "invalid-search", "value"),
    ("period=2026-1", "period", "invalid-search", "value"),
    ("_count=0", "_count", "invalid-search", "value"),
    ("_count=many", "_count", "invalid-search", "value"),
    ("_cursor=!!", "_cursor", "invalid-search", "value"),
    ("_cursor=AAAA", "_cursor", "invalid-search", "value"),
    ("isArchived=maybe", "isArchived", "invalid-search", "value"),
    ("type=", "type", "invalid-search", "value"),
    ("type=a b", "type", "invalid-search", "value"),
    ("type:not=34810-2", "type", "unsupported-modifier", "not-supported"),
    ("author.family:phonetic=x", "author.family", "unsupported-modifier", "not-supported"),
    ("author.given=%01", "author.given", "invalid-search", "value"),
    ("type=" + ",".join(["a"] * 51), "type", "invalid-search", "too-costly"),
    ("relatesto=a b", "relatesto", "invalid-search", "value"),
    ("_count=2&_count=3", "_count", "invalid-search", "invalid"),
]


@pytest.mark.parametrize(("query", "parameter", "code", "issue_type"), BAD)
def test_bad_values_are_a_specific_400(host: InProcessHost, query: str, parameter: str,
                                       code: str, issue_type: str) -> None:
    response = Searcher(host.client(GP).get).search(query)
    assert response.status_code == 400, response.text
    issue = _issue(response)
    assert issue["details"]["coding"][0]["code"] == code
    assert (issue["code"], issue["expression"]) == (issue_type, [parameter])
    assert " / " in issue["details"]["text"]  # French / English


@pytest.mark.parametrize(("url", "parameter", "code"), [
    ("status=current", "patient", "patient-required"),
    (f"patient=Patient/{PATIENT.ins}", "status", "status-required"),
    (f"patient=Patient/{PATIENT.ins}&status=current&patient=Patient/{PATIENT.ins}", "patient",
     "invalid-search"),
    ("patient=Patient/123&status=current", "patient", "invalid-ins"),
    ("patient.identifier=urn:oid:1.2.3|180017512345688&status=current", "patient.identifier",
     "invalid-ins-oid"),
    (f"patient=Patient/{PATIENT.ins}&status=gone", "status", "invalid-search"),
    (f"patient=Patient/{PATIENT.ins}&status=http://x|current", "status", "invalid-search"),
])
def test_the_patient_and_status_are_required_and_checked(host: InProcessHost, url: str,
                                                         parameter: str, code: str) -> None:
    response = host.client(GP).get(f"/fhir/DocumentReference?{url}")
    assert response.status_code == 400, response.text
    issue = _issue(response)
    assert issue["details"]["coding"][0]["code"] == code
    assert issue["expression"] == [parameter]


# -- conditional PATCH by identifier alone --------------------------------------------------------


def test_patch_by_unique_id_alone_finds_its_patient(host: InProcessHost, pki: Pki) -> None:
    entry = _content(entry_for(PDF, OPTICIAN_CARD))
    (doc_id,) = _deposit(host.client(OPTICIAN_CARD).post, pki.optician, OPTICIAN_CARD, entry)
    optician = host.client(OPTICIAN_CARD)
    for identifier in (f"{codes.RFC3986}|{entry.unique_id}", entry.unique_id):
        response = optician.patch(f"/fhir/DocumentReference?identifier={identifier}",
                                  content=json.dumps([{"op": "test", "path": "/status",
                                                       "value": "current"}]), headers=PATCH)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == doc_id
    archived = optician.patch(f"/fhir/DocumentReference?identifier={entry.unique_id}",
                              content=ARCHIVE, headers=PATCH)
    assert archived.status_code == 200 and archived.json()["meta"]["versionId"] == "2"
    unknown = optician.patch("/fhir/DocumentReference?identifier=urn:oid:1.2.3.4",
                             content=ARCHIVE, headers=PATCH)
    assert unknown.status_code == 404
    assert _issue(unknown)["details"]["coding"][0]["code"] == "document-not-found"


def test_a_unique_id_two_patients_hold_needs_the_patient(host: InProcessHost,
                                                         pki: Pki) -> None:
    open_dossier(host, CLAIRE.ins)
    entry = _content(entry_for(PDF, OPTICIAN_CARD))
    post = host.client(OPTICIAN_CARD).post
    (martin_id,) = _deposit(post, pki.optician, OPTICIAN_CARD, entry)
    (claire_id,) = _deposit(post, pki.optician, OPTICIAN_CARD,
                            dataclasses.replace(entry, patient=CLAIRE), patient=CLAIRE)
    optician = host.client(OPTICIAN_CARD)
    url = f"/fhir/DocumentReference?identifier={codes.RFC3986}|{entry.unique_id}"
    ambiguous = optician.patch(url, content=ARCHIVE, headers=PATCH)
    assert ambiguous.status_code == 412, ambiguous.text
    issue = _issue(ambiguous)
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == (
        "multiple-matches", "identifier-not-selective")
    named = optician.patch(f"{url}&patient=Patient/{CLAIRE.ins}", content=ARCHIVE,
                           headers=PATCH)
    assert named.status_code == 200 and named.json()["id"] == claire_id
    with host.app.state.engine.connect() as connection:
        archived = dict(connection.execute(select(documents.c.id, documents.c.archived)).all())
    assert archived[claire_id] and not archived[martin_id]


# -- the real TLS host: every parameter once more ----------------------------------------------


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tls_pki(tmp_path_factory.mktemp("tls-pki"))


@pytest.fixture
def tls(db_url: str, tls_pki: Path, tmp_path: Path) -> Iterator[TlsHost]:
    with tls_host(db_url, tls_pki, tmp_path / "blobs") as running:
        yield running


def _open_tls_dossier(running: TlsHost, gp_id: str) -> None:
    from sqlalchemy import insert

    from host.store.schema import authorizations, dossiers

    now = dt.datetime.now(dt.UTC)
    with running.app.state.engine.begin() as connection:
        connection.execute(insert(dossiers).values(
            ins=PATIENT.ins, status="open", created_at=now, created_by="810001234565",
            consent_at=now, consent_break_the_glass=True, consent_regulation_centre=True,
            consent_emergency_sees_masked=False, secret_sha256="0" * 64))
        connection.execute(insert(authorizations).values(
            ins=PATIENT.ins, id_nat_ps=gp_id, structure_id=None, status="valid",
            granted_at=now, granted_by=gp_id, blocked=False))


def test_every_parameter_over_tls(tls: TlsHost) -> None:
    optician_card = tls.card("optician")
    optician_who = card_holder("optician")
    gp = tls.session("gp")
    _open_tls_dossier(tls, card_holder("gp").id_nat_ps)
    optician = tls.open_session(optician_card)
    # The real clock: no deposits a day apart, so "date" is checked against yesterday.
    dossier = _fill(optician.client.post, Card(optician_card), optician_who, lambda: None)
    searcher = Searcher(gp.client.get)
    for query, expected in _cases(dossier):
        if query.startswith("date="):
            continue
        assert dossier.names(searcher.found(query)) == expected, query
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert dossier.names(searcher.found(f"date=ge{yesterday}")) == {"A", "B", "C"}
    assert dossier.names(searcher.found(f"date=lt{yesterday}")) == set()
    # unknown parameter, lenient and strict; a bad value
    assert searcher.search("colour=blue").status_code == 200
    strict = searcher.search("colour=blue", prefer="handling=strict")
    assert strict.status_code == 400 and _issue(strict)["expression"] == ["colour"]
    bad = searcher.search("period-end=tomorrow")
    assert bad.status_code == 400 and _issue(bad)["expression"] == ["period-end"]
    # paging to the end
    url = (f"/fhir/DocumentReference?patient=Patient/{PATIENT.ins}&status=current,superseded"
           f"&type=34810-2&_count=2")
    seen, pages = _follow(gp.client.get, url, tls.base_url)
    assert set(seen) == {dossier.ids[n] for n in ("A", "C", "D")} and pages == 2
    # the conditional PATCH by uniqueId alone
    patched = optician.client.patch(
        f"/fhir/DocumentReference?identifier={dossier.entries['A'].unique_id}",
        content=ARCHIVE, headers=PATCH)
    assert patched.status_code == 200, patched.text
    assert dossier.names(searcher.found("isArchived=true")) == {"A"}
