"""The document wire (wire.mhd, wire.signature): round trips, and malformed input refused with
a WireError code, never another exception (short hypothesis runs; the long ones call the same
three entry points: parse_provide_bundle, parse_json_patch, parse_search_query)."""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import hashlib
import json
import os
import random
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import mutate_json, pdsm_bundles
from wire import codes, dsg
from wire.mhd import (
    Author,
    DocumentEntry,
    Patient,
    SubmissionSet,
    WireError,
    apply_json_patch,
    build_provide_bundle,
    document_entry_from_json,
    document_reference_json,
    parse_json_patch,
    parse_provide_bundle,
    parse_search_bundle,
    parse_search_query,
    search_bundle_json,
)
from wire.search import Token
from wire.signature import sign_submission

PATIENT = Patient("180017512345688", codes.INS_TEST_OID)
GUIDE_BUNDLES = pdsm_bundles()
AUTHOR = Author("810003456786", "28", "582345678900021", None, "PETIT", "Sophie")
BODY = b"%PDF-1.4 test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # fast; tests only


def certificate() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, AUTHOR.id_nat_ps)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(KEY.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


CERT = certificate()


def sign(data: bytes) -> bytes:
    return KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())


def entry(content: bytes = BODY, **changes: Any) -> DocumentEntry:
    base = DocumentEntry(
        unique_id="urn:uuid:0b1c5a2e-8f3d-4c6b-9a7e-1d2f3a4b5c6d", patient=PATIENT,
        class_code="10", type_code="34810-2", type_system=codes.LOINC_SYSTEM,
        format_code="urn:ihe:iti:xds-sd:pdf:2008", mime_type="application/pdf",
        title="Examen de la vue", author=AUTHOR,
        creation_time=dt.datetime(2026, 11, 26, 15, 0, tzinfo=dt.UTC), size=len(content),
        sha1_b64=base64.b64encode(hashlib.sha1(content).digest()).decode(),
        sha256=hashlib.sha256(content).hexdigest(), confidentiality="R",
        visibility=frozenset({codes.MASQUE_PS}), facility_type="SA07",
        practice_setting="AMBULATOIRE",
        service_start=dt.datetime(2026, 11, 26, 14, 0, tzinfo=dt.UTC),
        replaces="urn:oid:1.2.250.1.999.1.2",
    )
    return replace(base, **changes)


SUBMISSION = SubmissionSet("urn:uuid:11111111-2222-4333-8444-555555555555",
                           "urn:oid:1.2.250.1.999", PATIENT,
                           dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC), AUTHOR, "SA07")


def bundle() -> dict[str, Any]:
    document, uploaded = entry(), entry(unique_id="urn:oid:1.2.250.1.999.4")
    signature, signature_xml = sign_submission(SUBMISSION, [document, uploaded], sign, CERT,
                                               unique_id="urn:oid:1.2.250.1.999.3")
    return build_provide_bundle(SUBMISSION, [(document, BODY), (signature, signature_xml),
                                             (uploaded, "a" * 32)])


def test_document_reference_round_trip() -> None:
    original = entry(id="x.1", version_id=3, status="superseded", archived=True,
                     content_url="Binary/x.1", date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    # The SHA-256 stays with whoever saw the bytes: the wire carries SHA-1 and size only.
    assert document_entry_from_json(json.loads(json.dumps(
        document_reference_json(original)))) == replace(original, sha256="")


def test_provide_bundle_round_trip() -> None:
    parsed = parse_provide_bundle(json.dumps(bundle()).encode())
    assert parsed.submission_set == SUBMISSION
    assert next(d.entry.unique_id for d in parsed.documents) == entry().unique_id
    assert parsed.documents[0].data == BODY
    assert parsed.documents[0].entry == replace(entry(), sha256="",
                                                date=SUBMISSION.submission_time)
    assert parsed.documents[2].binary_id == "a" * 32
    assert parsed.kinds == ("List", "DocumentReference", "DocumentReference",
                            "DocumentReference", "Binary", "Binary")
    # The signature document travels inline and signs the other two documents (tests/unit/
    # test_dsg.py tests the format itself).
    signature = parsed.documents[1]
    assert signature.entry.is_signature and signature.data is not None
    assert signature.entry.format_code == codes.SIGNATURE_FORMAT_CODE
    signed = dsg.verify(signature.data)
    assert signed.submission_set == SUBMISSION.unique_id and signed.patient == PATIENT
    assert dsg.mismatch(signed, SUBMISSION.unique_id, PATIENT, [
        (entry().unique_id, hashlib.sha256(BODY).hexdigest()),
        ("urn:oid:1.2.250.1.999.4", entry().sha256)]) is None


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(bundle())
    node: Any = data
    for step in path[:-1]:
        node = node[step]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(("path", "value", "code"), [
    (["type"], "batch", "bundle-type"),
    (["resourceType"], "Patient", "not-a-bundle"),
    (["entry", 0, "fullUrl"], "ftp://x/1", "invalid-full-url"),
    (["entry", 0, "fullUrl"], "urn:oid:1.02", "invalid-full-url"),
    (["entry", 0, "request", "method"], "PUT", "invalid-request"),
    (["entry", 1, "resource", "subject", "identifier", "value"], "280017512345688",
     "patient-mismatch"),
    (["entry", 1, "resource", "content", 0, "attachment", "url"], "urn:uuid:"
     "00000000-0000-4000-8000-000000000000", "unresolved-reference"),
    (["entry", 4, "resource", "data"], "***", "invalid-base64"),
    (["entry", 4, "resource", "contentType"], "text/plain", "content-type-mismatch"),
    (["entry", 1, "resource", "masterIdentifier", "value"], "not-an-id", "invalid-unique-id"),
    (["entry", 1, "resource", "content", 0, "attachment", "creation"], "2026-11-26",
     "invalid-date"),
    (["entry", 1, "resource", "securityLabel"], [], "unknown-confidentiality"),
    (["entry", 1, "resource", "author"], ..., "invalid-structure"),
    (["entry", 0, "resource", "entry"], [], "no-document"),
])
def test_malformed_bundles_have_a_code(path: list[Any], value: Any, code: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_provide_bundle(json.dumps(mutate(path, value)))
    assert caught.value.code == code


def test_search_query_round_trip() -> None:
    query = parse_search_query(
        f"patient.identifier=urn:oid:{PATIENT.oid}|{PATIENT.ins}&status=current,superseded"
        "&type=http://loinc.org|34810-2&creation=ge2026-01-01&creation=le2026-12-31T00:00:00Z"
        "&security-label=MASQUE_PS&isArchived=false&_count=10")
    assert query.patient == PATIENT
    assert query.of("type")[0].values == (Token("http://loinc.org", "34810-2"),)
    assert query.of("creation")[0].values[0].low == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_search_query(query.to_query_string()) == query


@pytest.mark.parametrize(("text", "code"), [
    ("status=current", "patient-required"),
    (f"patient={PATIENT.ins}", "status-required"),
    (f"patient={PATIENT.ins}&status=current&foo=1", "unknown-search-parameter"),
    (f"patient={PATIENT.ins}&status=gone", "invalid-search"),
    ("patient=123&status=current", "invalid-ins"),
    (f"patient={PATIENT.ins}&status=current&_count=0", "invalid-search"),
])
def test_bad_search_queries(text: str, code: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_search_query(text)
    assert caught.value.code == code


def test_search_bundle_parses_back() -> None:
    resource = document_reference_json(entry(id="x.1", version_id=1))
    page = parse_search_bundle(json.dumps(search_bundle_json(
        [resource], base="https://h/fhir", self_url="s", next_url="https://h/fhir/n")))
    assert page.entries == (entry(id="x.1", version_id=1, sha256=""),)
    assert page.next_url.endswith("/n")


def test_json_patch_applies_without_touching_the_original() -> None:
    resource = {"status": "current", "securityLabel": [{"a": 1}], "extension": []}
    ops = parse_json_patch(json.dumps([
        {"op": "test", "path": "/status", "value": "current"},
        {"op": "replace", "path": "/status", "value": "entered-in-error"},
        {"op": "add", "path": "/securityLabel/-", "value": {"b": 2}},
        {"op": "copy", "from": "/securityLabel/0", "path": "/extension/0"},
    ]))
    patched = apply_json_patch(resource, ops)
    assert patched == {"status": "entered-in-error", "securityLabel": [{"a": 1}, {"b": 2}],
                       "extension": [{"a": 1}]}
    assert resource["status"] == "current"
    with pytest.raises(WireError) as caught:
        apply_json_patch(resource, parse_json_patch(
            b'[{"op": "test", "path": "/status", "value": "x"}]'))
    assert caught.value.code == "patch-failed"


# bench/fuzz_host.py runs these long by setting DMP_FUZZ_WIRE_EXAMPLES.
FUZZ = settings(max_examples=int(os.environ.get("DMP_FUZZ_WIRE_EXAMPLES", "300")),
                deadline=None, database=None, suppress_health_check=list(HealthCheck))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_bundle_parser(data: bytes) -> None:
    with contextlib.suppress(WireError):
        parse_provide_bundle(data)


@FUZZ
@given(st.data())
def test_fuzz_bundle_parser_mutations(data: st.DataObject) -> None:
    """Replace one node of a valid bundle with arbitrary JSON: the parser still only raises
    WireError (the mutations reach the deep parts)."""
    document = bundle()
    node: Any = document
    path: list[Any] = []
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict)
                                        else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if path:
        parent: Any = document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(json_values)
    with contextlib.suppress(WireError):
        parse_provide_bundle(json.dumps(document))


@FUZZ
@given(st.integers(min_value=0, max_value=2**32), st.lists(json_values, min_size=1, max_size=4))
def test_fuzz_guide_bundle_mutations(seed: int, values: list[Any]) -> None:
    """The PDSm guide's examples as bundles, mutated structurally (nodes deleted, replaced,
    duplicated, references pointed elsewhere): only WireError comes out of the parser."""
    rng = random.Random(seed)
    document = mutate_json(copy.deepcopy(rng.choice(GUIDE_BUNDLES)), rng, values)
    with contextlib.suppress(WireError):
        parse_provide_bundle(json.dumps(document))


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
       | st.lists(st.fixed_dictionaries({"op": st.sampled_from(
           ["add", "remove", "replace", "test", "move", "copy", "x"]),
           "path": st.sampled_from(["", "/status", "/securityLabel/0", "/a/~1b", "/x/-",
                                    "nope", "/securityLabel/99"]),
           "from": st.sampled_from(["/status", "/securityLabel", "/q"]),
           "value": json_values}), max_size=4).map(lambda v: json.dumps(v).encode()))
def test_fuzz_json_patch(data: bytes) -> None:
    resource = {"status": "current", "securityLabel": [{"coding": []}], "a": {"b": 1}}
    with contextlib.suppress(WireError):
        apply_json_patch(resource, parse_json_patch(data))


@FUZZ
@given(st.text(max_size=200) | st.lists(st.tuples(
    st.sampled_from(["patient", "patient.identifier", "status", "type", "creation", "date",
                     "_count", "_cursor", "isArchived", "security-label", "zzz"]),
    st.text(max_size=30)), max_size=6).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)))
def test_fuzz_search_query(text: str) -> None:
    with contextlib.suppress(WireError):
        parse_search_query(text)


# -- PDSm 3.1.1 shapes (tests/conformance has the same over the live host) --------------------


@pytest.mark.parametrize("unique_id", [
    "urn:oid:2.25.329800735698586629295641978511506172918",  # a UUID as an integer (39 digits)
    "urn:oid:1.2.250.1.213.1.4.10.123456789012345678901234567890",
    "urn:oid:0.0", "urn:uuid:12345678-abcd-1234-abcd-1234567890ab",
])
def test_well_formed_unique_ids_are_accepted(unique_id: str) -> None:
    assert entry(unique_id=unique_id).unique_id == unique_id


@pytest.mark.parametrize("unique_id", [
    "urn:oid:1.2.03", "urn:oid:3.1", "urn:oid:1", "urn:oid:1..2", "urn:oid:1.2.",
    "urn:uuid:12345678-ABCD-1234-abcd-1234567890ab", "oid:1.2.3",
])
def test_malformed_unique_ids_are_refused(unique_id: str) -> None:
    with pytest.raises(WireError) as caught:
        entry(unique_id=unique_id)
    assert caught.value.code == "invalid-unique-id"


def test_agent_document_reference_has_no_project_extension() -> None:
    resource = document_reference_json(entry())
    assert codes.SHA256_EXTENSION_URL not in json.dumps(resource)
    assert resource["extension"] == [{"url": codes.IS_ARCHIVED_URL, "valueBoolean": False}]
    assert resource["custodian"] == {"reference": "#author-org"}


def test_old_sha256_extension_and_archive_url_are_still_read() -> None:
    resource = document_reference_json(entry())
    resource["extension"] = [{"url": codes.IS_ARCHIVED_URL_PRE_3, "valueBoolean": True}]
    resource["content"][0]["attachment"]["extension"] = [{
        "url": codes.SHA256_EXTENSION_URL,
        "valueBase64Binary": base64.b64encode(hashlib.sha256(BODY).digest()).decode()}]
    read = document_entry_from_json(resource)
    assert read.archived and read.sha256 == hashlib.sha256(BODY).hexdigest()


def test_guide_bundle_author_profession_from_qualification() -> None:
    """The guide's DocumentReference names its author by PractitionerRole/<id>, a bundle
    entry whose code has no G15: the profession comes from Practitioner.qualification."""
    parsed = parse_provide_bundle(json.dumps(GUIDE_BUNDLES[1]))
    document = parsed.documents[0]
    assert (document.entry.author.id_nat_ps, document.entry.author.profession,
            document.entry.author.structure_id) == ("810001234565", "10", "581234567800015")
    assert document.entry.patient == PATIENT
    assert document.data == b"Hello World"
    contained = {c["id"]: c["resourceType"] for c in document.resource["contained"]}
    assert contained["practitionerrole-example"] == "PractitionerRole"
    assert document.resource["custodian"] == {"reference": "#org-example"}
    assert document.resource["context"]["sourcePatientInfo"] == {"reference": "#fr-patient-123"}
    assert parsed.submission_set.source_id == "SRC-01"


def test_author_identifier_is_read_with_its_system() -> None:
    bundle = copy.deepcopy(GUIDE_BUNDLES[1])
    practitioner = next(e["resource"] for e in bundle["entry"]
                        if e["resource"]["resourceType"] == "Practitioner")
    practitioner["identifier"][0]["system"] = "urn:oid:1.2.250.1.71.4.2.9"
    with pytest.raises(WireError) as caught:
        parse_provide_bundle(json.dumps(bundle))
    assert caught.value.code == "invalid-author"


def test_content_matches() -> None:
    assert entry().content_matches(BODY) and not entry().content_matches(BODY + b"x")
    assert replace(entry(), sha256="").content_matches(BODY)
