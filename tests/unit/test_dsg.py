"""The IHE DSG detached signature of a submission set (wire.dsg): what it contains, that it
verifies, and that every kind of bad document is refused with its own code — never another
exception. The host's use of it is tests/host/test_dsg_deposit.py."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from wire import codes, dsg
from wire.documents import Author, DocumentEntry, Patient, SubmissionSet
from wire.signature import sign_submission

PATIENT = Patient("180017512345688", codes.INS_TEST_OID)
SET_UID = "urn:uuid:11111111-2222-4333-8444-555555555555"
WHEN = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
REPORT, LETTER = b"%PDF-1.4 report", b"%PDF-1.4 letter"
DOCUMENTS = (dsg.SignedDocument("urn:uuid:0b1c5a2e-8f3d-4c6b-9a7e-1d2f3a4b5c6d",
                                hashlib.sha256(REPORT).hexdigest()),
             dsg.SignedDocument("urn:oid:1.2.250.1.999.4", hashlib.sha256(LETTER).hexdigest()))
RECEIVED = [(d.unique_id, d.sha256) for d in DOCUMENTS]
NS = dsg.NSMAP


class Signer:
    """A software key standing for the card: RSA PKCS#1 v1.5 over SHA-256, like CpsKey.SIGNATURE
    (1024 bits: fast, tests only)."""

    def __init__(self, id_nat_ps: str = "810003456786") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, id_nat_ps)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256()))
        self.der = self.certificate.public_bytes(serialization.Encoding.DER)
        self.calls: list[bytes] = []

    def sign(self, data: bytes) -> bytes:
        self.calls.append(data)
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


SIGNER, OTHER = Signer(), Signer()


def signed(documents: tuple[dsg.SignedDocument, ...] = DOCUMENTS, signer: Signer = SIGNER
           ) -> bytes:
    return dsg.sign(SET_UID, PATIENT, documents, signer.sign, signer.der, signing_time=WHEN)


def refused(data: bytes, code: str) -> None:
    with pytest.raises(dsg.DsgError) as caught:
        dsg.verify(data)
    assert caught.value.code == code, caught.value.message


def edit(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_round_trip_with_a_software_key() -> None:
    SIGNER.calls.clear()
    data = signed()
    # The card is asked once, for the canonical SignedInfo: the key never leaves it.
    assert len(SIGNER.calls) == 1 and SIGNER.calls[0].startswith(b"<ds:SignedInfo")
    result = dsg.verify(data)
    assert (result.submission_set, result.patient, result.documents) == (SET_UID, PATIENT,
                                                                         DOCUMENTS)
    assert result.certificate == SIGNER.certificate
    assert (result.signing_time, result.purpose) == (WHEN, dsg.PURPOSE_SOURCE)
    assert dsg.mismatch(result, SET_UID, PATIENT, reversed(RECEIVED)) is None
    assert signed() == data  # same deposit, same document: nothing random in it


def test_the_document_says_what_dsg_asks() -> None:
    root = etree.fromstring(signed())
    assert root.tag == f"{{{dsg.NS_DS}}}Signature"
    assert root.findtext("ds:Object/xades:QualifyingProperties/xades:SignedProperties/"
                         "xades:SignedSignatureProperties/xades:SignaturePolicyIdentifier/"
                         "xades:SignaturePolicyId/xades:SigPolicyId/xades:Identifier",
                         namespaces=NS) == "urn:ihe:iti:dsg:detached:2014"
    commitment = root.find(".//xades:CommitmentTypeId/xades:Identifier", NS)
    assert (commitment.text, commitment.get("Qualifier")) == (
        "urn:oid:1.2.840.10065.1.12.1.14", "OIDAsURN")
    references = root.findall("ds:Object/ds:Manifest/ds:Reference", NS)
    assert [(r.get("URI"), base64.b64decode(r.findtext("ds:DigestValue", namespaces=NS)).hex())
            for r in references] == RECEIVED
    assert root.find(".//dmp:SubmissionSet", NS).get("uniqueId") == SET_UID
    assert {r.get("Type") for r in root.findall("ds:SignedInfo/ds:Reference", NS)} == {
        dsg.TYPE_MANIFEST, dsg.TYPE_SIGNED_PROPERTIES, dsg.TYPE_SIGNATURE_PROPERTIES}


def test_sign_submission_describes_the_signature_document() -> None:
    author = Author("810003456786", "28", "582345678900021", None, "PETIT", "Sophie")
    submission = SubmissionSet(SET_UID, "urn:oid:1.2.250.1.999", PATIENT, WHEN, author, "SA07")
    report = DocumentEntry(
        unique_id=DOCUMENTS[0].unique_id, patient=PATIENT, class_code="10", type_code="34810-2",
        type_system=codes.LOINC_SYSTEM, format_code="urn:ihe:iti:xds-sd:pdf:2008",
        mime_type="application/pdf", title="Examen", author=author, creation_time=WHEN,
        size=len(REPORT), sha1_b64=base64.b64encode(hashlib.sha1(REPORT).digest()).decode(),
        sha256=DOCUMENTS[0].sha256)
    entry, data = sign_submission(submission, [report], SIGNER.sign, SIGNER.der,
                                  unique_id="urn:oid:1.2.3")
    assert entry.is_signature and (entry.type_code, entry.type_system, entry.class_code) == (
        "E1762", "ASTM", "99")
    assert (entry.format_code, entry.mime_type, entry.language) == (
        "urn:ihe:iti:dsg:detached:2014", "text/xml", "art")
    assert (entry.size, entry.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert dsg.verify(data).documents == DOCUMENTS[:1]
    with pytest.raises(ValueError, match="no SHA-256"):  # an entry read back from the wire
        sign_submission(submission, [DocumentEntry(**{**report.__dict__, "sha256": ""})],
                        SIGNER.sign, SIGNER.der, unique_id="urn:oid:1.2.3")


def test_manifest_missing_extra_or_other_digest_is_a_mismatch() -> None:
    result = dsg.verify(signed(DOCUMENTS[:1]))
    assert "missing" in (dsg.mismatch(result, SET_UID, PATIENT, RECEIVED) or "")
    assert "not in this deposit" in (dsg.mismatch(dsg.verify(signed()), SET_UID, PATIENT,
                                                  RECEIVED[:1]) or "")
    other = [RECEIVED[0], (RECEIVED[1][0], hashlib.sha256(b"other").hexdigest())]
    assert "differs" in (dsg.mismatch(dsg.verify(signed()), SET_UID, PATIENT, other) or "")
    assert dsg.mismatch(dsg.verify(signed()), "urn:oid:1.2.9", PATIENT, RECEIVED) is not None
    assert dsg.mismatch(dsg.verify(signed()), SET_UID, Patient("280017512345688",
                                                               codes.INS_TEST_OID),
                        RECEIVED) is not None


def test_a_tampered_manifest_digest_does_not_verify() -> None:
    def change(root: etree._Element) -> None:
        value = root.find("ds:Object/ds:Manifest/ds:Reference/ds:DigestValue", NS)
        value.text = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    refused(edit(signed(), change), "bad-signature")


def test_an_altered_signature_value_does_not_verify() -> None:
    def change(root: etree._Element) -> None:
        value = root.find("ds:SignatureValue", NS)
        raw = bytearray(base64.b64decode(value.text))
        raw[10] ^= 1
        value.text = base64.b64encode(bytes(raw)).decode()
    refused(edit(signed(), change), "bad-signature")


def test_another_certificate_does_not_verify() -> None:
    def change(root: etree._Element) -> None:
        root.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS).text = base64.b64encode(
            OTHER.der).decode()
    refused(edit(signed(), change), "bad-signature")


def test_unsigned_content_is_never_read() -> None:
    """An attacker may add elements; only what the signature covers comes back."""
    def change(root: etree._Element) -> None:
        obj = etree.SubElement(root, f"{{{dsg.NS_DS}}}Object")
        manifest = etree.SubElement(obj, f"{{{dsg.NS_DS}}}Manifest")
        reference = etree.SubElement(manifest, f"{{{dsg.NS_DS}}}Reference", URI="urn:oid:1.2.6")
        etree.SubElement(reference, f"{{{dsg.NS_DS}}}DigestMethod", Algorithm=dsg.SHA256)
        etree.SubElement(reference, f"{{{dsg.NS_DS}}}DigestValue").text = "AAAA"
    assert dsg.verify(edit(signed(), change)).documents == DOCUMENTS

    def twin(root: etree._Element) -> None:  # the same Id twice: which one is signed?
        obj = etree.SubElement(root, f"{{{dsg.NS_DS}}}Object")
        etree.SubElement(obj, f"{{{dsg.NS_DS}}}Manifest", Id=dsg.MANIFEST_ID)
    refused(edit(signed(), twin), "signature-malformed")


@pytest.mark.parametrize("data", [
    # XXE: an external entity naming a local file
    b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">&x;</ds:Signature>',
    # billion laughs
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">'
               % ((ord("a") + i + 1,) + (ord("a") + i,) * 10) for i in range(9))
    + b']><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">&j;</ds:Signature>',
    # an external DTD fetched over the network
    b'<?xml version="1.0"?><!DOCTYPE ds:Signature SYSTEM "http://127.0.0.1:9/x.dtd">'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>',
    # the same in UTF-16, which a byte search for "<!DOCTYPE" does not see
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE s [<!ENTITY x "y">]>'
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">&x;</ds:Signature>'
    .encode("utf-16"),
], ids=["xxe", "billion-laughs", "external-dtd", "utf-16"])
def test_dtd_and_entities_are_refused(data: bytes) -> None:
    refused(data, "signature-dtd")


def test_a_dtd_inside_a_valid_signature_is_refused() -> None:
    data = signed().replace(b"?>\n", b'?>\n<!DOCTYPE ds:Signature [<!ENTITY e "x">]>\n', 1)
    refused(data, "signature-dtd")


def test_oversize_is_refused_before_parsing() -> None:
    refused(b"<" * (dsg.MAX_SIGNATURE_BYTES + 1), "signature-too-large")
    padded = signed().replace(b"</ds:Signature>", b" " * dsg.MAX_SIGNATURE_BYTES
                              + b"</ds:Signature>")
    refused(padded, "signature-too-large")


@pytest.mark.parametrize("data", [
    b"", b"%PDF-1.4 not a signature", b'{"alg":"RS256"}', b"eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
    b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'>", b"\xff\xfe\x00<",
    b"<Signature/>", b"<ds:Signature xmlns:ds='http://www.w3.org/2000/09/xmldsig#'/>",
], ids=["empty", "pdf", "json", "jws", "unclosed", "bad-bytes", "no-namespace", "empty-sig"])
def test_non_xml_or_not_a_signature_is_malformed(data: bytes) -> None:
    refused(data, "signature-malformed")


def _re_sign(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    """Change signed content and sign again properly: a valid XML signature that is not our
    DSG (the checks after the signature value)."""
    root = etree.fromstring(data)
    change(root)
    for reference in root.findall("ds:SignedInfo/ds:Reference", NS):
        target = root.xpath("//*[@Id=$id]", id=reference.get("URI")[1:])[0]
        reference.find("ds:DigestValue", NS).text = base64.b64encode(hashlib.sha256(
            dsg._c14n(target)).digest()).decode()
    root.find("ds:SignatureValue", NS).text = base64.b64encode(
        SIGNER.sign(dsg._c14n(root.find("ds:SignedInfo", NS)))).decode()
    return etree.tostring(root)


@pytest.mark.parametrize(("path", "value"), [
    (".//xades:SigPolicyId/xades:Identifier", "urn:ihe:iti:dsg:enveloping:2014"),
    (".//xades:CommitmentTypeId/xades:Identifier", "urn:oid:1.2.840.10065.1.12.1.1"),
    (".//xades:SigningTime", "yesterday"),
], ids=["policy", "purpose", "signing-time"])
def test_a_valid_signature_that_is_not_our_dsg_is_malformed(path: str, value: str) -> None:
    def change(root: etree._Element) -> None:
        root.find(path, NS).text = value
    data = _re_sign(signed(), change)
    refused(data, "signature-malformed")


def test_signing_certificate_must_name_the_key_info_certificate() -> None:
    def change(root: etree._Element) -> None:
        root.find(".//xades:CertDigest/ds:DigestValue", NS).text = base64.b64encode(
            hashlib.sha256(OTHER.der).digest()).decode()
    refused(_re_sign(signed(), change), "bad-signature")


def test_a_key_info_without_a_certificate_is_malformed() -> None:
    data = dsg.sign(SET_UID, PATIENT, DOCUMENTS, SIGNER.sign, b"not a certificate",
                    signing_time=WHEN)
    refused(data, "signature-malformed")


def test_a_manifest_reference_with_transforms_is_malformed() -> None:
    def change(root: etree._Element) -> None:
        reference = root.find("ds:Object/ds:Manifest/ds:Reference", NS)
        transforms = etree.Element(f"{{{dsg.NS_DS}}}Transforms")
        etree.SubElement(transforms, f"{{{dsg.NS_DS}}}Transform", Algorithm=dsg.EXC_C14N)
        reference.insert(0, transforms)
    refused(_re_sign(signed(), change), "signature-malformed")
