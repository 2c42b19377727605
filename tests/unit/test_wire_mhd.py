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
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wire import codes
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
from wire.signature import (
    Manifest,
    SignatureError,
    sign_submission,
    verify_manifest_signature,
)

PATIENT = Patient("180017512345688", codes.INS_TEST_OID)
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
    signature, jws = sign_submission(SUBMISSION, [document, uploaded], sign, CERT,
                                     unique_id="urn:oid:1.2.250.1.999.3")
    return build_provide_bundle(SUBMISSION, [(document, BODY), (signature, jws),
                                             (uploaded, "a" * 32)])


def test_document_reference_round_trip() -> None:
    original = entry(id="x.1", version_id=3, status="superseded", archived=True,
                     content_url="Binary/x.1", date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert document_entry_from_json(json.loads(json.dumps(
        document_reference_json(original)))) == original


def test_provide_bundle_round_trip() -> None:
    parsed = parse_provide_bundle(json.dumps(bundle()).encode())
    assert parsed.submission_set == SUBMISSION
    assert next(d.entry.unique_id for d in parsed.documents) == entry().unique_id
    assert parsed.documents[0].data == BODY and parsed.documents[0].entry == entry()
    assert parsed.documents[2].binary_id == "a" * 32
    assert parsed.kinds == ("List", "DocumentReference", "DocumentReference",
                            "DocumentReference", "Binary", "Binary")
    jws = parsed.documents[1].data
    assert jws is not None
    signed = verify_manifest_signature(jws)
    assert signed.manifest == Manifest.for_deposit(
        SUBMISSION, [d.entry for d in parsed.documents])


def test_tampered_jws_does_not_verify() -> None:
    _, jws = sign_submission(SUBMISSION, [entry()], sign, CERT, unique_id="urn:oid:1.2.3")
    header, payload, signature = jws.split(b".")
    forged = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    forged["documents"][0]["size"] += 1
    payload = base64.urlsafe_b64encode(json.dumps(forged, sort_keys=True, separators=(
        ",", ":")).encode()).rstrip(b"=")
    with pytest.raises(SignatureError) as caught:
        verify_manifest_signature(b".".join((header, payload, signature)))
    assert caught.value.code == "bad-signature"
    with pytest.raises(SignatureError) as caught:
        verify_manifest_signature(b"a.b")
    assert caught.value.code == "signature-malformed"


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
    (["entry", 0, "fullUrl"], "http://x/1", "invalid-full-url"),
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
    assert query.patient == PATIENT and query.types == ("34810-2",)
    assert query.creation[0] == ("ge", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
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
    assert page.entries == (entry(id="x.1", version_id=1),) and page.next_url.endswith("/n")


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
