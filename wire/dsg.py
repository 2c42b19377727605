"""The submission set's IHE Document Digital Signature (DSG): a *detached* XAdES signature
document, built on the agent (the CPS card signs through a callback) and verified on the host.

docs/wire-signature.md describes every element and where it comes from. In short:

    ds:Signature Id="dsg-signature"
      ds:SignedInfo            exclusive c14n, RSA-SHA256; three references (SHA-256, exc-c14n):
                               #dsg-manifest, #dsg-signed-properties, #dsg-signature-properties
      ds:SignatureValue        what the card returned for the canonical SignedInfo
      ds:KeyInfo/X509Data      the card's signature certificate (DER, base64)
      ds:Object  xades:QualifyingProperties/SignedProperties: SigningTime,
                 SigningCertificateV2 (SHA-256 of the certificate), SignaturePolicyIdentifier
                 urn:ihe:iti:dsg:detached:2014, CommitmentTypeIndication (ASTM E1762 purpose)
      ds:Object  ds:Manifest: one ds:Reference per document, URI = its uniqueId, SHA-256 of its
                 bytes
      ds:Object  ds:SignatureProperties: the submission set's uniqueId and the patient, and
                 for a deposit made without a card (e-CPS) dmp:Signer kind="establishment"

`sign` builds it with lxml (canonical forms from libxml2); `verify` parses it without DTD,
entities or network, under a size cap, has signxml check the signature value and the three
references, and reads only what signxml returns as signed. The certificate itself (chain,
revocation, holder) and the comparison with a deposit (`mismatch`) are the caller's.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import (
    DigestAlgorithm,
    InvalidInput,
    InvalidSignature,
    SignatureConfiguration,
    SignatureMethod,
    XMLVerifier,
)

from .documents import Patient
from .fhir import WireError

NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XADES = "http://uri.etsi.org/01903/v1.3.2#"  # XAdES 1.3.2 = ETSI TS 101 903, cited by DSG
NS_DMP = "urn:dmp-agent:dsg:1"  # ours: the content of our two SignatureProperty elements
NSMAP = {"ds": NS_DS, "xades": NS_XADES, "dmp": NS_DMP}

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = SignatureMethod.RSA_SHA256.value
SHA256 = DigestAlgorithm.SHA256.value
TYPE_MANIFEST = f"{NS_DS}Manifest"
TYPE_SIGNATURE_PROPERTIES = f"{NS_DS}SignatureProperties"
TYPE_SIGNED_PROPERTIES = "http://uri.etsi.org/01903#SignedProperties"

# The signature policy DSG names for a detached signature; its "hash" is the SHA-256 of the
# identifier itself, as in IHE's published example (there is no policy document to hash).
POLICY = "urn:ihe:iti:dsg:detached:2014"
# ASTM E1762 / ISO 17090-4 purpose of signature "Source Signature": the one the DMP's signature
# document carries (docs/wire-signature.md).
PURPOSE_SOURCE = "1.2.840.10065.1.12.1.14"
PURPOSE_DISPLAY = "Source Signature"

SIGNATURE_ID = "dsg-signature"
MANIFEST_ID = "dsg-manifest"
SIGNED_PROPERTIES_ID = "dsg-signed-properties"
SIGNATURE_PROPERTIES_ID = "dsg-signature-properties"

# A 2048-bit certificate and ~200 bytes a document: room for a few hundred documents.
MAX_SIGNATURE_BYTES = 64 * 1024

_HEX64 = re.compile(r"[0-9a-f]{64}")

# Who signs (ours, docs/psc.md): the author's CPS card (the default: no element), or the
# workstation's establishment certificate for a deposit made under an e-CPS session, where
# no card can sign (the DMP's rule for deposits without a card signature).
SIGNER_CARD, SIGNER_ESTABLISHMENT = "card", "establishment"
SIGNERS = (SIGNER_CARD, SIGNER_ESTABLISHMENT)


class DsgError(WireError):
    """A signature document refused. Codes: ``signature-too-large``, ``signature-dtd`` (DTD or
    entity declarations), ``signature-malformed`` (not XML, or not our DSG), ``bad-signature``
    (the signature value or a signed digest does not verify)."""


@dataclass(frozen=True)
class SignedDocument:
    """One ds:Manifest reference: a document's uniqueId and the SHA-256 (hex) of its bytes."""

    unique_id: str
    sha256: str


@dataclass(frozen=True)
class SubmissionSignature:
    """What a verified signature document signs, and the certificate that signed it."""

    submission_set: str
    patient: Patient
    documents: tuple[SignedDocument, ...]
    certificate: x509.Certificate
    signing_time: dt.datetime
    purpose: str
    signer: str = SIGNER_CARD  # SIGNER_ESTABLISHMENT when the signature says so (signed)


# -- building (the agent) ------------------------------------------------------------------------


def _ds(tag: str) -> str:
    return f"{{{NS_DS}}}{tag}"


def _xades(tag: str) -> str:
    return f"{{{NS_XADES}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None,
         **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _digest(parent: etree._Element, value: bytes) -> None:
    _sub(parent, _ds("DigestMethod"), Algorithm=SHA256)
    _sub(parent, _ds("DigestValue"), _b64(value))


def _signed_properties(obj: etree._Element, certificate_der: bytes,
                       signing_time: dt.datetime) -> etree._Element:
    qualifying = _sub(obj, _xades("QualifyingProperties"), Target=f"#{SIGNATURE_ID}")
    signed = _sub(qualifying, _xades("SignedProperties"), Id=SIGNED_PROPERTIES_ID)
    signature_properties = _sub(signed, _xades("SignedSignatureProperties"))
    _sub(signature_properties, _xades("SigningTime"),
         signing_time.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    # EN 319 132-1's SigningCertificateV2 with the digest alone (as signxml writes it): KeyInfo
    # carries the certificate itself.
    cert = _sub(_sub(signature_properties, _xades("SigningCertificateV2")), _xades("Cert"))
    _digest(_sub(cert, _xades("CertDigest")), hashlib.sha256(certificate_der).digest())
    policy = _sub(_sub(signature_properties, _xades("SignaturePolicyIdentifier")),
                  _xades("SignaturePolicyId"))
    _sub(_sub(policy, _xades("SigPolicyId")), _xades("Identifier"), POLICY)
    _digest(_sub(policy, _xades("SigPolicyHash")), hashlib.sha256(POLICY.encode()).digest())
    commitment = _sub(_sub(signed, _xades("SignedDataObjectProperties")),
                      _xades("CommitmentTypeIndication"))
    commitment_id = _sub(commitment, _xades("CommitmentTypeId"))
    _sub(commitment_id, _xades("Identifier"), f"urn:oid:{PURPOSE_SOURCE}", Qualifier="OIDAsURN")
    _sub(commitment_id, _xades("Description"), PURPOSE_DISPLAY)
    _sub(commitment, _xades("AllSignedDataObjects"))
    return signed


def sign(
    submission_set: str,
    patient: Patient,
    documents: Sequence[SignedDocument],
    sign_data: Callable[[bytes], bytes],
    certificate_der: bytes,
    *,
    signing_time: dt.datetime,
    signer: str = SIGNER_CARD,
) -> bytes:
    """The signature document (UTF-8 XML bytes). ``sign_data(data)`` returns RSA PKCS#1 v1.5 over
    SHA-256 of ``data`` — the CPS card's signature key, which never leaves the card; it is called
    once, with the canonical SignedInfo. ``certificate_der`` is that key's certificate (carried as
    it is: the host judges it). ``signer``: `SIGNER_ESTABLISHMENT` when ``sign_data`` is the
    workstation's establishment key (a deposit under e-CPS), said in a signed property."""
    if signer not in SIGNERS:
        raise ValueError(f"signer {signer!r}: one of {SIGNERS}")
    if not documents:
        raise ValueError("a submission-set signature names at least one document")
    for document in documents:
        if not _HEX64.fullmatch(document.sha256):
            raise ValueError(f"no SHA-256 (hex) for {document.unique_id}: cannot sign it")
    root = etree.Element(_ds("Signature"), nsmap=NSMAP, Id=SIGNATURE_ID)
    signed_info = _sub(root, _ds("SignedInfo"))
    _sub(signed_info, _ds("CanonicalizationMethod"), Algorithm=EXC_C14N)
    _sub(signed_info, _ds("SignatureMethod"), Algorithm=RSA_SHA256)
    signature_value = _sub(root, _ds("SignatureValue"))
    _sub(_sub(_sub(root, _ds("KeyInfo")), _ds("X509Data")), _ds("X509Certificate"),
         _b64(certificate_der))

    signed_properties = _signed_properties(_sub(root, _ds("Object")), certificate_der,
                                           signing_time)
    manifest = _sub(_sub(root, _ds("Object")), _ds("Manifest"), Id=MANIFEST_ID)
    for document in documents:
        # No Transforms: the digest is of the document's bytes exactly as deposited.
        _digest(_sub(manifest, _ds("Reference"), URI=document.unique_id),
                bytes.fromhex(document.sha256))
    properties = _sub(_sub(root, _ds("Object")), _ds("SignatureProperties"),
                      Id=SIGNATURE_PROPERTIES_ID)
    _sub(_sub(properties, _ds("SignatureProperty"), Target=f"#{SIGNATURE_ID}"),
         f"{{{NS_DMP}}}SubmissionSet", uniqueId=submission_set)
    _sub(_sub(properties, _ds("SignatureProperty"), Target=f"#{SIGNATURE_ID}"),
         f"{{{NS_DMP}}}Patient", ins=patient.ins, oid=patient.oid)
    if signer != SIGNER_CARD:  # a card's signature stays as it always was
        _sub(_sub(properties, _ds("SignatureProperty"), Target=f"#{SIGNATURE_ID}"),
             f"{{{NS_DMP}}}Signer", kind=signer)

    for target, kind in ((manifest, TYPE_MANIFEST), (signed_properties, TYPE_SIGNED_PROPERTIES),
                         (properties, TYPE_SIGNATURE_PROPERTIES)):
        reference = _sub(signed_info, _ds("Reference"), Type=kind, URI=f"#{target.get('Id')}")
        _sub(_sub(reference, _ds("Transforms")), _ds("Transform"), Algorithm=EXC_C14N)
        _digest(reference, hashlib.sha256(_c14n(target)).digest())
    signature_value.text = _b64(sign_data(_c14n(signed_info)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- verifying (the host) ------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    """No DTD loaded, no entity expanded, nothing fetched, libxml2's size limits kept. A new one
    each time: an lxml parser is not to be shared between threads."""
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True,
                           dtd_validation=False, huge_tree=False)


_CONFIG = SignatureConfiguration(
    location="./", expect_references=3,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


def _malformed(message: str) -> DsgError:
    return DsgError("signature-malformed", message)


def _parse(data: bytes, parser: etree.XMLParser) -> etree._Element:
    if len(data) > MAX_SIGNATURE_BYTES:
        raise DsgError("signature-too-large",
                       f"the signature document exceeds {MAX_SIGNATURE_BYTES} bytes")
    # Refused before parsing, whatever libxml2 would make of them: a signature needs neither.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise DsgError("signature-dtd", "DTD and entity declarations are refused")
    try:
        root = etree.fromstring(data, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        raise _malformed("the signature document is not well-formed XML") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise DsgError("signature-dtd", "DTD and entity declarations are refused")  # UTF-16 &c.
    if any(True for _ in root.iter(etree.Entity)):
        raise DsgError("signature-dtd", "entity references are refused")
    if root.tag != _ds("Signature"):
        raise _malformed("the root element is not ds:Signature")
    return root


def _certificate(root: etree._Element) -> x509.Certificate:
    found = root.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NSMAP)
    if len(found) != 1:
        raise _malformed("KeyInfo must carry exactly one X509Certificate")
    try:
        certificate = x509.load_der_x509_certificate(
            base64.b64decode("".join((found[0].text or "").split()), validate=True))
    except (ValueError, binascii.Error):
        raise _malformed("the X509Certificate is unreadable") from None
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise _malformed("the signing certificate is not RSA")
    return certificate


def _one(parent: etree._Element, path: str, what: str) -> etree._Element:
    found = parent.findall(path, NSMAP)
    if len(found) != 1:
        raise _malformed(f"{what}: expected exactly one, found {len(found)}")
    return found[0]


def _text(parent: etree._Element, path: str, what: str) -> str:
    text = (_one(parent, path, what).text or "").strip()
    if not text:
        raise _malformed(f"{what} is empty")
    return text


def _sha256_value(reference: etree._Element, what: str) -> bytes:
    if _one(reference, "ds:DigestMethod", f"{what} DigestMethod").get("Algorithm") != SHA256:
        raise _malformed(f"{what}: SHA-256 expected")
    try:
        value = base64.b64decode(_text(reference, "ds:DigestValue", f"{what} DigestValue"),
                                 validate=True)
    except (ValueError, binascii.Error):
        raise _malformed(f"{what}: the DigestValue is not base64") from None
    if len(value) != 32:
        raise _malformed(f"{what}: a SHA-256 digest is 32 bytes")
    return value


def _read_signed_properties(signed: etree._Element, certificate: x509.Certificate
                            ) -> tuple[dt.datetime, str]:
    base = "xades:SignedSignatureProperties/"
    try:
        signing_time = dt.datetime.fromisoformat(_text(signed, base + "xades:SigningTime",
                                                       "SigningTime"))
    except ValueError:
        raise _malformed("SigningTime is not a date-time") from None
    if signing_time.tzinfo is None:
        raise _malformed("SigningTime has no time zone")
    cert = _one(signed, base + "xades:SigningCertificateV2/xades:Cert",
                "SigningCertificateV2 Cert")
    if _sha256_value(_one(cert, "xades:CertDigest", "CertDigest"), "CertDigest") != \
            hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest():
        # The signed properties name another certificate than the one KeyInfo carries.
        raise DsgError("bad-signature", "SigningCertificateV2 does not match the KeyInfo "
                                        "certificate")
    policy = _text(signed, base + "xades:SignaturePolicyIdentifier/xades:SignaturePolicyId/"
                   "xades:SigPolicyId/xades:Identifier", "SignaturePolicyIdentifier")
    if policy != POLICY:
        raise _malformed(f"signature policy {policy!r}: {POLICY} expected")
    purpose = _text(signed, "xades:SignedDataObjectProperties/xades:CommitmentTypeIndication/"
                    "xades:CommitmentTypeId/xades:Identifier", "CommitmentTypeIndication")
    if purpose != f"urn:oid:{PURPOSE_SOURCE}":
        raise _malformed(f"purpose of signature {purpose!r}: urn:oid:{PURPOSE_SOURCE} "
                         f"({PURPOSE_DISPLAY}) expected")
    return signing_time, PURPOSE_SOURCE


def _read_manifest(manifest: etree._Element) -> tuple[SignedDocument, ...]:
    documents = []
    for index, reference in enumerate(manifest.findall("ds:Reference", NSMAP)):
        uri = reference.get("URI") or ""
        if not uri or uri.startswith("#"):
            raise _malformed(f"manifest reference {index}: a document uniqueId is expected")
        if reference.find("ds:Transforms", NSMAP) is not None:
            raise _malformed(f"manifest reference {uri}: the bytes are digested as they are, "
                             "without Transforms")
        documents.append(SignedDocument(uri, _sha256_value(reference, uri).hex()))
    if not documents or len(manifest) != len(documents):
        raise _malformed("the manifest must hold one ds:Reference per document, nothing else")
    if len({d.unique_id for d in documents}) != len(documents):
        raise _malformed("the manifest names a document twice")
    return tuple(documents)


def _read_signer(properties: etree._Element) -> str:
    found = properties.findall("ds:SignatureProperty/dmp:Signer", NSMAP)
    if not found:
        return SIGNER_CARD
    kind = found[0].get("kind")
    if len(found) != 1 or kind not in SIGNERS:
        raise _malformed(f"Signer: one of kind {SIGNERS} expected")
    return str(kind)


def _read_properties(properties: etree._Element) -> tuple[str, Patient]:
    submission_set = _one(properties, "ds:SignatureProperty/dmp:SubmissionSet",
                          "SignatureProperty SubmissionSet").get("uniqueId")
    patient = _one(properties, "ds:SignatureProperty/dmp:Patient", "SignatureProperty Patient")
    ins, oid = patient.get("ins"), patient.get("oid")
    if not submission_set or not ins or not oid:
        raise _malformed("the submission set's uniqueId and the patient are required")
    try:
        return submission_set, Patient(ins, oid)
    except WireError as error:
        raise _malformed(f"the signed patient is invalid: {error.message}") from None


def verify(data: bytes) -> SubmissionSignature:
    """Check the signature document and return what it signs. Raises DsgError.

    The signature value must verify with the certificate of ds:KeyInfo; that certificate is
    NOT judged here (chain, validity, revocation, holder: the caller's)."""
    parser = _parser()
    root = _parse(data, parser)
    certificate = _certificate(root)
    # Validity dates are the caller's to judge, with its own clock: signxml checks them against
    # verification_time, so give it a moment the certificate was valid at.
    config = dataclasses.replace(_CONFIG, verification_time=certificate.not_valid_before_utc)
    try:
        # The bytes, not ``root``: signxml parses them once with our parser rather than copying.
        results = XMLVerifier().verify(data, x509_cert=certificate, parser=parser,
                                       expect_config=config)
    except InvalidSignature:  # the value or a SignedInfo digest (InvalidDigest is one)
        raise DsgError("bad-signature", "the signature value or a signed digest does not "
                                        "verify") from None
    except (InvalidInput, etree.DocumentInvalid, etree.XMLSyntaxError, ValueError) as error:
        raise _malformed(f"not a valid XML signature: {str(error)[:200]}") from None
    # Only what signxml returns as signed is read: never the rest of the tree.
    signed: dict[str, etree._Element] = {}
    for result in results if isinstance(results, list) else [results]:
        if result.signed_xml is None or result.signed_xml.tag in signed:
            raise _malformed("SignedInfo must reference the manifest, the signed properties and "
                             "the signature properties, once each")
        signed[result.signed_xml.tag] = result.signed_xml
    try:
        manifest = signed[_ds("Manifest")]
        signed_properties = signed[_xades("SignedProperties")]
        properties = signed[_ds("SignatureProperties")]
    except KeyError:
        raise _malformed("SignedInfo must reference the manifest, the signed properties and the "
                         "signature properties") from None
    signing_time, purpose = _read_signed_properties(signed_properties, certificate)
    submission_set, patient = _read_properties(properties)
    return SubmissionSignature(submission_set, patient, _read_manifest(manifest), certificate,
                               signing_time, purpose, _read_signer(properties))


def mismatch(signature: SubmissionSignature, submission_set: str, patient: Patient,
             documents: Iterable[tuple[str, str]]) -> str | None:
    """How ``signature`` differs from a deposit (None when it signs exactly it). ``documents``
    are (uniqueId, SHA-256 hex of the bytes received) of every document but the signature."""
    if signature.submission_set != submission_set:
        return f"it signs submission set {signature.submission_set}, not {submission_set}"
    if signature.patient != patient:
        return "it signs another patient"
    expected = dict(documents)
    signed = {d.unique_id: d.sha256 for d in signature.documents}
    if missing := sorted(expected.keys() - signed.keys()):
        return f"document {missing[0]} is missing from the manifest"
    if extra := sorted(signed.keys() - expected.keys()):
        return f"the manifest names {extra[0]}, which is not in this deposit"
    if differs := sorted(u for u, sha256 in expected.items() if signed[u] != sha256):
        return f"the manifest's digest of {differs[0]} differs from the bytes received"
    return None
