"""PDSm 3.1.1 conformance with the guide's own examples, over real TLS against the live host
(mutual TLS, a session opened by the GP's virtual CPS), on SQLite and PostgreSQL.

- st_ajout.md (flux 01/02): the comprehensive bundle is accepted, answered with a
  transaction-response shaped like the guide's (one entry per request entry, same order,
  201 + location for what was created), and a read returns every element sent plus what
  the server sets; the replace bundle supersedes the original.
- st_maj.md (flux 03/04): the guide's JSON patch, translated to RFC 6902, gives a new
  version; a patch of any other element is a 405 that changes nothing.
- Bad input: every refusal is a specific OperationOutcome, never a 5xx, nothing stored.
"""

from __future__ import annotations

import base64
import copy
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, insert, select

from agent.client.session import HostSession
from cardreader.cps import CpsCard, CpsKey
from host.store.schema import authorizations, documents, dossiers, submission_sets
from tests.conformance.support import (
    AUXILIARY,
    PATIENT_INS,
    PATIENT_OID,
    comprehensive_bundle,
    example,
    now,
    replace_bundle,
    signed,
)
from tests.host.tls_harness import TlsHost, make_pki, tls_host
from wire import codes

FHIR = {"content-type": "application/fhir+json"}
JSON_PATCH = {"content-type": "application/json-patch+json"}
SERVER_SET = {"id", "meta", "identifier", "status", "subject", "extension"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def host(db_url: str, pki: Path, tmp_path: Path) -> Iterator[TlsHost]:
    with tls_host(db_url, pki, tmp_path / "blobs") as running:
        moment = now()
        with running.app.state.engine.begin() as connection:
            connection.execute(insert(dossiers).values(
                ins=PATIENT_INS, status="open", created_at=moment, created_by="810001234565",
                consent_at=moment, consent_break_the_glass=True,
                consent_regulation_centre=True, consent_emergency_sees_masked=False,
                secret_sha256="0" * 64, closed_at=None))
            connection.execute(insert(authorizations).values(
                ins=PATIENT_INS, id_nat_ps="810001234565", structure_id=None, status="valid",
                granted_at=moment, granted_by="810001234565", blocked=False))
        yield running


@pytest.fixture
def card(host: TlsHost) -> CpsCard:
    return host.card("gp")


@pytest.fixture
def gp(host: TlsHost, card: CpsCard) -> Iterator[HostSession]:
    session = host.open_session(card)
    yield session
    session.client.close()


def sign(card: CpsCard, bundle: dict[str, Any]) -> dict[str, Any]:
    return signed(bundle, lambda data: card.sign(CpsKey.SIGNATURE, data),
                  card.certificate(CpsKey.SIGNATURE).public_bytes(Encoding.DER))


def deposit(gp: HostSession, bundle: dict[str, Any]) -> dict[str, Any]:
    answer = gp.client.post("/fhir", content=json.dumps(bundle).encode(), headers=FHIR)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def read(gp: HostSession, doc_id: str) -> dict[str, Any]:
    answer = gp.client.get(f"/fhir/DocumentReference/{doc_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def code_of(answer: Any) -> str:
    return answer.json()["issue"][0]["details"]["coding"][0]["code"]  # type: ignore[no-any-return]


def stored_counts(host: TlsHost) -> tuple[int, int]:
    with host.app.state.engine.connect() as connection:
        return (connection.execute(select(func.count()).select_from(documents)).scalar_one(),
                connection.execute(select(func.count()).select_from(submission_sets))
                .scalar_one())


def document_id(response: dict[str, Any]) -> str:
    location = response["entry"][1]["response"]["location"]
    assert location.startswith("DocumentReference/") and location.endswith("/_history/1")
    return location.split("/")[1]  # type: ignore[no-any-return]


# -- "every element sent": references to the bundle's resources come back contained ----------

def _targets(sent_bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
            for e in sent_bundle["entry"] if e["resource"]["resourceType"] in (
                "Patient", "Practitioner", "PractitionerRole", "Organization")}


def _expand(value: Any, resolve: Any, depth: int = 0) -> Any:
    """``value`` with each reference replaced by what it points at (without ids), so a
    reference sent as Type/id and read back as #id compare equal when they name the same
    content."""
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and depth < 4:
            target = resolve(reference)
            if target is not None:
                return _expand({k: v for k, v in target.items() if k != "id"}, resolve,
                               depth + 1)
        return {k: _expand(v, resolve, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(item, resolve, depth) for item in value]
    return value


def assert_every_element_kept(sent: dict[str, Any], got: dict[str, Any],
                              sent_bundle: dict[str, Any]) -> None:
    targets = _targets(sent_bundle)
    got_contained = {f"#{c['id']}": c for c in got.get("contained", [])}
    sent_contained = {f"#{c['id']}": c for c in sent.get("contained", [])}

    def from_got(reference: str) -> dict[str, Any] | None:
        return got_contained.get(reference)

    def from_sent(reference: str) -> dict[str, Any] | None:
        return sent_contained.get(reference) or targets.get(reference)

    for key, value in sent.items():
        if key in SERVER_SET or key == "contained":
            continue
        assert key in got, key
        if key == "content":
            sent_attachment = dict(value[0]["attachment"])
            got_attachment = dict(got[key][0]["attachment"])
            assert got_attachment.pop("url").startswith("Binary/")
            sent_attachment.pop("url")
            assert got_attachment == sent_attachment
            assert got[key][0]["format"] == value[0]["format"]
            continue
        assert _expand(got[key], from_got) == _expand(value, from_sent), key
    # The contained resources sent are all there, as sent.
    for name, resource in sent_contained.items():
        assert _expand(got_contained[name], from_got) == _expand(resource, from_sent)
    assert got["meta"]["profile"] == sent["meta"]["profile"]
    assert "text" not in got


# -- flux 01/02: the comprehensive bundle ---------------------------------------------------------

def test_comprehensive_bundle_is_accepted_and_read_back(host: TlsHost, card: CpsCard,
                                                        gp: HostSession) -> None:
    bundle = sign(card, comprehensive_bundle())
    response = deposit(gp, bundle)
    # Shaped like the guide's transaction-response example: one entry per request entry, in
    # order, 201 and a location for the List, the DocumentReference and the Binary.
    guide = example("Bundle-a9c10f8a-882d-4000-a280-7150e0aeb478")
    assert response["type"] == guide["type"] == "transaction-response"
    assert len(response["entry"]) == len(bundle["entry"])
    for sent, answer in zip(bundle["entry"], response["entry"], strict=True):
        kind = sent["resource"]["resourceType"]
        if kind in ("List", "DocumentReference", "Binary"):
            assert answer["response"]["status"].startswith("201")
            assert answer["response"]["location"].startswith(f"{kind}/")
        else:  # Patient, Practitioner...: kept as contained resources, not created
            assert answer["response"]["status"].startswith("200")
            assert "location" not in answer["response"]
    for ours, theirs in zip(response["entry"][:3], guide["entry"], strict=True):
        assert ours["response"]["location"].split("/")[0] == \
            theirs["response"]["location"].split("/")[0]

    sent = bundle["entry"][1]["resource"]
    got = read(gp, document_id(response))
    assert_every_element_kept(sent, got, bundle)
    # What the server sets.
    assert got["meta"]["versionId"] == "1" and "lastUpdated" in got["meta"]
    assert got["id"] == document_id(response) != sent["id"]
    assert got["status"] == "current"
    assert got["subject"]["identifier"] == {"system": f"urn:oid:{PATIENT_OID}",
                                            "value": PATIENT_INS}
    assert {"url": codes.IS_ARCHIVED_URL, "valueBoolean": False} in got["extension"]
    assert got["content"][0]["attachment"]["url"] == f"Binary/{got['id']}"
    assert {"system": codes.DOCUMENT_ID_SYSTEM, "value": got["id"]} in got["identifier"]
    assert not any(codes.SHA256_EXTENSION_URL in json.dumps(e) for e in got["content"])
    # The bytes are the Binary's.
    body = gp.client.get(f"/fhir/{got['content'][0]['attachment']['url']}")
    assert body.status_code == 200
    assert body.content == base64.b64decode(example("Binary-6789")["data"])
    # The same bundle again is answered from what is stored ("already stored").
    again = deposit(gp, bundle)
    assert all(e["response"]["status"].startswith("200") for e in again["entry"])
    assert stored_counts(host) == (2, 1)  # the document and the signature document


def test_replace_bundle_supersedes_the_original(host: TlsHost, card: CpsCard,
                                                gp: HostSession) -> None:
    first = sign(card, comprehensive_bundle())
    original_id = document_id(deposit(gp, first))
    original_uid = first["entry"][1]["resource"]["masterIdentifier"]["value"]
    bundle = sign(card, replace_bundle(original_uid, b"%PDF-1.4 corrected"))
    new_id = document_id(deposit(gp, bundle))

    old = read(gp, original_id)
    assert old["status"] == "superseded" and old["meta"]["versionId"] == "2"
    assert_every_element_kept(first["entry"][1]["resource"], old, first)
    new = read(gp, new_id)
    assert new["status"] == "current"
    assert new["masterIdentifier"]["value"].startswith("urn:oid:2.25.")
    assert new["relatesTo"] == bundle["entry"][1]["resource"]["relatesTo"]
    assert_every_element_kept(bundle["entry"][1]["resource"], new, bundle)

    # MHD's other form: relatesTo.target by reference (DocumentReference/<id>).
    third = sign(card, replace_bundle("", b"%PDF-1.4 third",
                                      by_reference=f"DocumentReference/{new_id}"))
    deposit(gp, third)
    assert read(gp, new_id)["status"] == "superseded"


# -- flux 03/04: the guide's JSON patch -----------------------------------------------------------

def patch(gp: HostSession, unique_id: str, operations: Any, version: str | None = None
          ) -> Any:
    query = urllib.parse.urlencode({
        "identifier": f"{codes.RFC3986}|{unique_id}",
        "patient.identifier": f"urn:oid:{PATIENT_OID}|{PATIENT_INS}"})
    headers = {**JSON_PATCH, **({"if-match": f'W/"{version}"'} if version else {})}
    return gp.client.request("PATCH", f"/fhir/DocumentReference?{query}",
                             content=json.dumps(operations).encode(), headers=headers)


def translated_st_maj() -> list[dict[str, Any]]:
    """st_maj.md's patch as RFC 6902 says: the status without its trailing space, the
    securityLabel "restricted" as the CodeableConcept R, the isArchived extension by its
    JSON pointer (the host writes it first) with a boolean."""
    literal = example("st_maj-json-patch")
    return [
        {**literal[0], "value": literal[0]["value"].strip()},
        {**literal[1], "value": [{"coding": [{"system": codes.CONFIDENTIALITY_SYSTEM,
                                              "code": "R"}]}]},
        {"op": "test", "path": "/extension/0/url", "value": codes.IS_ARCHIVED_URL},
        {"op": "replace", "path": "/extension/0/valueBoolean", "value": True},
    ]


def test_guide_patch_gives_a_new_version(host: TlsHost, card: CpsCard,
                                         gp: HostSession) -> None:
    bundle = sign(card, comprehensive_bundle())
    doc_id = document_id(deposit(gp, bundle))
    uid = bundle["entry"][1]["resource"]["masterIdentifier"]["value"]
    before = read(gp, doc_id)

    literal = patch(gp, uid, example("st_maj-json-patch"))
    assert literal.status_code == 400, literal.text  # not RFC 6901 pointers: nothing applies
    whole = patch(gp, uid, translated_st_maj())
    # Changing the N/R/V level is no rule's action yet (ours): 405, nothing written.
    assert whole.status_code == 405 and code_of(whole) == "not-modifiable"
    assert read(gp, doc_id) == before

    status_and_archive = [op for op in translated_st_maj() if op["path"] != "/securityLabel"]
    answer = patch(gp, uid, status_and_archive, version="1")
    assert answer.status_code == 200, answer.text
    after = read(gp, doc_id)
    assert after["meta"]["versionId"] == "2"
    assert after["extension"][0] == {"url": codes.IS_ARCHIVED_URL, "valueBoolean": True}
    assert_every_element_kept(bundle["entry"][1]["resource"], after, bundle)

    masked = [*after["securityLabel"],
              {"coding": [{"system": codes.VISIBILITY_SYSTEM, "code": codes.MASQUE_PS}]}]
    answer = patch(gp, uid, [{"op": "replace", "path": "/securityLabel", "value": masked}],
                   version="2")
    assert answer.status_code == 200, answer.text
    third = read(gp, doc_id)
    assert third["meta"]["versionId"] == "3" and third["securityLabel"] == masked
    assert third["custodian"] == before["custodian"]
    assert third["contained"] == before["contained"]


@pytest.mark.parametrize("operation", [
    {"op": "replace", "path": "/description", "value": "autre"},
    {"op": "remove", "path": "/custodian"},
    {"op": "remove", "path": "/authenticator"},
    {"op": "replace", "path": "/context/sourcePatientInfo", "value": {"reference": "#x"}},
    {"op": "replace", "path": "/content/0/attachment/title", "value": "autre"},
    {"op": "add", "path": "/contained/0/active", "value": False},
    {"op": "replace", "path": "/masterIdentifier/value", "value": "urn:oid:1.2.3"},
])
def test_patching_another_element_is_405_and_changes_nothing(
    host: TlsHost, card: CpsCard, gp: HostSession, operation: dict[str, Any]
) -> None:
    bundle = sign(card, comprehensive_bundle())
    doc_id = document_id(deposit(gp, bundle))
    before = read(gp, doc_id)
    answer = patch(gp, bundle["entry"][1]["resource"]["masterIdentifier"]["value"],
                   [operation])
    assert answer.status_code == 405, answer.text
    assert code_of(answer) == "not-modifiable"
    assert read(gp, doc_id) == before


# -- the guide's example as published, and bad input --------------------------------------------

def _set(path: list[Any], value: Any) -> Any:
    def change(bundle: dict[str, Any]) -> None:
        node: Any = bundle
        for step in path[:-1]:
            node = node[step]
        if value is ...:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return change


def _literal(key: str) -> Any:
    """The guide's own attachment.size or .hash (another content's) instead of the
    corrected one."""
    def change(bundle: dict[str, Any]) -> None:
        literal = comprehensive_bundle(literal=True)["entry"][1]["resource"]
        bundle["entry"][1]["resource"]["content"][0]["attachment"][key] = \
            literal["content"][0]["attachment"][key]
    return change


def _literal_format(bundle: dict[str, Any]) -> None:
    bundle["entry"][1]["resource"]["content"][0]["format"]["code"] = "urn:ihe:lab:xd-lab:2008"


def _another_author(bundle: dict[str, Any]) -> None:
    practitioner = next(e["resource"] for e in bundle["entry"]
                        if e["resource"]["resourceType"] == "Practitioner")
    practitioner["identifier"][0]["value"] = "810009999999"


def _rpps_only(bundle: dict[str, Any]) -> None:
    for entry in bundle["entry"]:
        resource = entry["resource"]
        for item in [resource, *resource.get("contained", [])]:
            if item.get("resourceType") == "Practitioner":
                item["identifier"] = item["identifier"][1:]


def _folder(bundle: dict[str, Any]) -> None:
    folder = copy.deepcopy(bundle["entry"][0])
    folder["fullUrl"] = "urn:uuid:5a5a5a5a-0000-4000-8000-000000000001"
    folder["resource"]["code"]["coding"][0]["code"] = "folder"
    bundle["entry"].append(folder)


BAD = [
    ("literal-size", _literal("size"), 400, "size-mismatch",
     "DocumentReference.content[0].attachment.size"),
    ("literal-hash", _literal("hash"), 400, "hash-mismatch",
     "DocumentReference.content[0].attachment.hash"),
    ("literal-format", _literal_format, 400, "format-mime-mismatch",
     "DocumentReference.content[0].format"),
    ("another-author", _another_author, 403, "author-mismatch", "DocumentReference.author"),
    ("author-without-idnat", _rpps_only, 400, "invalid-author",
     "Bundle.entry[0].source.practitioner"),
    ("folder", _folder, 400, "unsupported-folder", "Bundle.entry[9]"),
    ("modifier-extension", _set(["entry", 1, "resource", "modifierExtension"],
                                [{"url": "urn:x", "valueBoolean": True}]),
     400, "unknown-modifier-extension", "Bundle.entry[1].modifierExtension"),
    ("contained-binary", _set(["entry", 1, "resource", "contained"],
                              [{"resourceType": "Binary", "id": "b", "contentType": "text/html",
                                "data": "PGgxPg=="}]), 400, "unsupported-contained",
     "Bundle.entry[1].contained[0]"),
    ("patient-without-ins", _set(["entry", 3, "resource", "identifier"], []),
     400, "unknown-patient", "Bundle.entry[0].subject"),
    ("leading-zero-oid", _set(["entry", 1, "resource", "masterIdentifier", "value"],
                              "urn:oid:1.2.250.01.3"), 400, "invalid-unique-id",
     "DocumentReference.masterIdentifier"),
    ("control-character", _set(["entry", 1, "resource", "description"], "a\u0007b"),
     400, "invalid-characters", "DocumentReference.description"),
    ("oversized-metadata", _set(["entry", 1, "resource", "extension"],
                                [{"url": "urn:x", "valueString": "x" * 70000}]),
     400, "resource-too-large", "Bundle.entry[1]"),
    ("unknown-relation", _set(["entry", 1, "resource", "relatesTo"],
                              [{"code": "transforms", "target": {"reference": "#x"}}]),
     400, "unsupported-relation", "Bundle.entry[1].relatesTo[0].code"),
    # PDSm cardinalities 1.. of a deposited DocumentReference
    ("no-date", _set(["entry", 1, "resource", "date"], ...), 400, "missing-field",
     "DocumentReference.date"),
    ("no-custodian", _set(["entry", 1, "resource", "custodian"], ...), 400, "missing-field",
     "DocumentReference.custodian"),
    ("no-period-start", _set(["entry", 1, "resource", "context", "period", "start"], ...),
     400, "missing-field", "DocumentReference.context.period.start"),
    ("put-document", _set(["entry", 1, "request", "method"], "PUT"), 400, "invalid-request",
     "Bundle.entry[1].request"),
    ("binary-elsewhere", _set(["entry", 1, "resource", "content", 0, "attachment", "url"],
                              "http://elsewhere.example/Binary/1"), 400, "unresolved-reference",
     "Bundle.entry[1]"),
]


@pytest.mark.parametrize(("name", "change", "status", "code", "expression"), BAD,
                         ids=[item[0] for item in BAD])
def test_bad_input_is_a_specific_outcome_and_stores_nothing(
    host: TlsHost, card: CpsCard, gp: HostSession, name: str, change: Any, status: int,
    code: str, expression: str,
) -> None:
    bundle = sign(card, comprehensive_bundle())
    change(bundle)
    answer = gp.client.post("/fhir", content=json.dumps(bundle).encode(), headers=FHIR)
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["details"]["coding"][0]["code"] == code
    assert issue["code"] in ("invalid", "forbidden", "security", "processing", "too-long")
    assert " / " in issue["details"]["text"]  # French / English
    assert issue["expression"] == [expression]  # the element at fault, as a FHIRPath
    assert stored_counts(host) == (0, 0)


def test_narrative_is_not_echoed(host: TlsHost, card: CpsCard, gp: HostSession) -> None:
    bundle = comprehensive_bundle()
    bundle["entry"][1]["resource"]["text"] = {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>'}
    got = read(gp, document_id(deposit(gp, sign(card, bundle))))
    assert "text" not in got and "alert(1)" not in json.dumps(got)


def test_auxiliary_resources_are_the_guides(host: TlsHost) -> None:
    """The bundle carries the guide's support instances unchanged but for the identifiers
    README.md lists."""
    bundle = comprehensive_bundle()
    names = {f"{e['resource']['resourceType']}-{e['resource']['id']}" for e in bundle["entry"]}
    assert set(AUXILIARY) <= names


def test_migration_0007_rewrites_stored_resources(host: TlsHost, card: CpsCard,
                                                  gp: HostSession) -> None:
    """Rows stored before PDSm 3.1.1 conformance (old isArchived URL, our SHA-256 extension)
    are served in 3.1.1 terms once migrated; the downgrade writes the old URL back."""
    from alembic import command
    from sqlalchemy import select, update

    from host.store.engine import alembic_config

    doc_id = document_id(deposit(gp, sign(card, comprehensive_bundle())))
    old_url = codes.IS_ARCHIVED_URL_PRE_3
    config = alembic_config(str(host.settings.database_url))
    command.downgrade(config, "0006")  # before 0007 (and the index 0008 adds after it)
    # Read as stored: the app itself expects the newest schema (sessions.auth_means, 0010).
    with host.app.state.engine.connect() as connection:
        resource = connection.execute(select(documents.c.resource)
                                      .where(documents.c.id == doc_id)).scalar_one()
    assert resource["extension"][0]["url"] == old_url
    resource["content"][0]["attachment"]["extension"] = [
        {"url": codes.SHA256_EXTENSION_URL, "valueBase64Binary": base64.b64encode(
            b"\0" * 32).decode()}]
    with host.app.state.engine.begin() as connection:
        connection.execute(update(documents).where(documents.c.id == doc_id)
                           .values(resource=resource))
    command.upgrade(config, "head")
    migrated = read(gp, doc_id)
    assert migrated["extension"][0] == {"url": codes.IS_ARCHIVED_URL, "valueBoolean": False}
    assert "extension" not in migrated["content"][0]["attachment"]
