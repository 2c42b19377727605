"""The PDSm 3.1.1 examples (examples/*.json, README.md there) assembled into the ITI-65
bundles the guide describes (st_ajout.md) but does not publish, signed the DMP's way.

The guide has no Bundle example at the recorded commit: `comprehensive_bundle` puts its
List, DocumentReference, Binary, Patient, Practitioner, PractitionerRole and Organization
instances in one transaction, as the PDSm Comprehensive Provide Document Bundle profile and
st_ajout.md say. `CORRECTIONS` are the changes the host needs beyond the identifiers (the
guide's example declares the size and SHA-1 of another content, and a format its MIME type
contradicts); ``literal=True`` leaves them out, to show what they are refused with.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from wire import codes
from wire.mhd import document_reference_json, parse_provide_bundle
from wire.signature import sign_submission

EXAMPLES = Path(__file__).parent / "examples"
BASE = "http://exemple.com/fhir"  # the guide's transaction-response self link
PATIENT_INS = "180017512345688"
PATIENT_OID = codes.INS_TEST_OID
PDF_FORMAT = "urn:ihe:iti:xds-sd:pdf:2008"
# The resources a bundle carries beside the deposit's own, PUT with the ids the guide's
# references use (Patient/fr-patient-123, PractitionerRole/practitionerrole-example...).
AUXILIARY = ("Patient-fr-patient-123", "Practitioner-practitioner-example",
             "PractitionerRole-practitionerrole-example", "Organization-org-example")


def example(name: str) -> Any:
    """One file of examples/ (a resource, or the st_maj.md patch: a list)."""
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def _sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def correct(document: dict[str, Any], content: bytes) -> None:
    """CORRECTIONS: the attachment describes ``content`` (the guide's declares 345678 bytes
    and the SHA-1 of nothing, for an 11-byte Binary), and the format is the PDF one (the
    guide's says XD-LAB, an XML format, for application/pdf)."""
    attachment = document["content"][0]["attachment"]
    attachment["size"] = len(content)
    attachment["hash"] = _sha1_b64(content)
    document["content"][0]["format"]["code"] = PDF_FORMAT
    document["content"][0]["format"]["display"] = "Document à corps non structuré en PDF"


def _entry(full_url: str, resource: dict[str, Any], method: str, url: str) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource, "request": {"method": method, "url": url}}


def comprehensive_bundle(*, literal: bool = False) -> dict[str, Any]:
    """The guide's instances as one ITI-65 transaction (unsigned)."""
    document = example("DocumentReference-exemple-pdsm-documentreference")
    binary = example("Binary-6789")
    if not literal:
        correct(document, base64.b64decode(binary["data"]))
    entries = [
        _entry(f"urn:uuid:{uuid.uuid4()}", example("List-ExampleSubmissionSet"), "POST", "List"),
        _entry(f"urn:uuid:{uuid.uuid4()}", document, "POST", "DocumentReference"),
        _entry(f"urn:uuid:{uuid.uuid4()}", binary, "POST", "Binary"),
    ]
    for name in AUXILIARY:
        resource = example(name)
        path = f"{resource['resourceType']}/{resource['id']}"
        entries.append(_entry(f"{BASE}/{path}", resource, "PUT", path))
    return {"resourceType": "Bundle",
            "meta": {"profile": [codes.PROFILE_PROVIDE_BUNDLE]},
            "type": "transaction", "entry": entries}


def oid_of_uuid() -> str:
    """A uniqueId as ISO/IEC 9834-8 makes one from a UUID: 2.25.<the UUID as an integer>
    (up to 39 digits in one arc)."""
    return f"urn:oid:2.25.{uuid.uuid4().int}"


def replace_bundle(replaced_unique_id: str, content: bytes, *,
                   by_reference: str | None = None) -> dict[str, Any]:
    """A new version of the guide's document replacing ``replaced_unique_id`` (relatesTo
    replaces, target by identifier as PDSm's relatesTo.target, or by reference
    DocumentReference/<id> as MHD allows), in a new submission set."""
    bundle = comprehensive_bundle()
    submission, document, binary = (bundle["entry"][i]["resource"] for i in range(3))
    submission["identifier"][0]["value"] = f"urn:uuid:{uuid.uuid4()}"
    submission["identifier"][1]["value"] = f"urn:uuid:{uuid.uuid4()}"
    document["masterIdentifier"]["value"] = oid_of_uuid()
    document["description"] = "Compte rendu d’hospitalisation corrigé."
    target: dict[str, Any] = (
        {"reference": by_reference} if by_reference else
        {"identifier": {"system": codes.RFC3986, "value": replaced_unique_id}})
    document["relatesTo"] = [{"code": "replaces", "target": target}]
    binary["data"] = base64.b64encode(content).decode("ascii")
    correct(document, content)
    return bundle


Sign = Callable[[bytes], bytes]


def signed(bundle: dict[str, Any], sign: Sign, certificate_der: bytes) -> dict[str, Any]:
    """``bundle`` with the DMP's signature document added: the one call of
    `wire.signature.sign_submission` in these tests (its format is another module's concern;
    the call shape is stable). The signed entries carry the SHA-256 of the bytes sent, as the
    agent's do; the signature document is described by `document_reference_json`."""
    out = copy.deepcopy(bundle)
    parsed = parse_provide_bundle(json.dumps(out))
    entries = [replace(d.entry, sha256=hashlib.sha256(d.data or b"").hexdigest())
               for d in parsed.documents]
    signature, data = sign_submission(parsed.submission_set, entries, sign, certificate_der,
                                      unique_id=f"urn:uuid:{uuid.uuid4()}")
    reference_url, binary_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    out["entry"][parsed.submission_set_index]["resource"]["entry"].append(
        {"item": {"reference": reference_url}})
    out["entry"] += [
        _entry(reference_url, document_reference_json(signature, content_url=binary_url),
               "POST", "DocumentReference"),
        _entry(binary_url, {"resourceType": "Binary", "contentType": signature.mime_type,
                            "data": base64.b64encode(data).decode("ascii")}, "POST", "Binary"),
    ]
    return out


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
