"""The PKCS#15 (ISO 7816-15) ASN.1 structures, as asn1crypto classes (PKCS#15 v1.1 module).

Only the fields a CPS3 card uses are typed; the others are `Unparsed`, so that real cards
still parse. `cardreader.pkcs15` parses files with these, `cardreader.pkcs15_encode` builds them.
"""

# asn1crypto declares structures as class-level lists and dicts.
# ruff: noqa: RUF012

from __future__ import annotations

from asn1crypto import core


class Unparsed(core.SequenceOf):
    """A constructed field this code does not use (kept so that real cards still parse)."""

    _child_spec = core.Any


class CommonObjectFlags(core.BitString):
    _map = {0: "private", 1: "modifiable"}


class Path(core.Sequence):
    _fields = [
        ("path", core.OctetString),
        ("index", core.Integer, {"optional": True}),
        ("length", core.Integer, {"implicit": 0, "optional": True}),
    ]


class CommonObjectAttributes(core.Sequence):
    _fields = [
        ("label", core.UTF8String, {"optional": True}),
        ("flags", CommonObjectFlags, {"optional": True}),
        ("auth_id", core.OctetString, {"optional": True}),
        ("user_consent", core.Integer, {"optional": True}),
        ("access_control_rules", Unparsed, {"optional": True}),
    ]


class KeyUsageFlags(core.BitString):
    _map = {
        0: "encrypt", 1: "decrypt", 2: "sign", 3: "signRecover", 4: "wrap", 5: "unwrap",
        6: "verify", 7: "verifyRecover", 8: "derive", 9: "nonRepudiation",
    }


class KeyAccessFlags(core.BitString):
    _map = {0: "sensitive", 1: "extractable", 2: "alwaysSensitive", 3: "neverExtractable",
            4: "local"}


class References(core.SequenceOf):
    _child_spec = core.Integer


class CommonKeyAttributes(core.Sequence):
    _fields = [
        ("id", core.OctetString),
        ("usage", KeyUsageFlags),
        ("native", core.Boolean, {"default": True}),
        ("access_flags", KeyAccessFlags, {"optional": True}),
        ("key_reference", core.Integer, {"optional": True}),
        ("start_date", core.GeneralizedTime, {"optional": True}),
        ("end_date", core.GeneralizedTime, {"implicit": 0, "optional": True}),
        ("alg_reference", References, {"implicit": 1, "optional": True}),
    ]


class PrivateRsaKeyAttributes(core.Sequence):
    _fields = [
        ("value", Path),
        ("modulus_length", core.Integer),
        ("key_info", core.Any, {"optional": True}),
    ]


class PrivateRsaKeyObject(core.Sequence):
    _fields = [
        ("common", CommonObjectAttributes),
        ("key", CommonKeyAttributes),
        ("private_key", Unparsed, {"implicit": 0, "optional": True}),
        ("rsa", PrivateRsaKeyAttributes, {"explicit": 1}),
    ]


class PrivateKeyChoice(core.Choice):
    _alternatives = [("private_rsa_key", PrivateRsaKeyObject)]


class CommonCertificateAttributes(core.Sequence):
    _fields = [
        ("id", core.OctetString),
        ("authority", core.Boolean, {"default": False}),
        ("identifier", Unparsed, {"optional": True}),
        ("cert_hash", Unparsed, {"implicit": 0, "optional": True}),
        ("trusted_usage", Unparsed, {"implicit": 1, "optional": True}),
        ("identifiers", Unparsed, {"implicit": 2, "optional": True}),
        ("implicit_trust", core.Boolean, {"implicit": 3, "optional": True}),
    ]


class X509CertificateAttributes(core.Sequence):
    _fields = [
        ("value", Path),
        ("subject", Unparsed, {"optional": True}),
        ("issuer", core.Any, {"explicit": 0, "optional": True}),
        ("serial_number", core.Integer, {"optional": True}),
    ]


class X509CertificateObject(core.Sequence):
    _fields = [
        ("common", CommonObjectAttributes),
        ("certificate", CommonCertificateAttributes),
        ("sub_class", Unparsed, {"implicit": 0, "optional": True}),
        ("x509", X509CertificateAttributes, {"explicit": 1}),
    ]


class CertificateChoice(core.Choice):
    _alternatives = [("x509_certificate", X509CertificateObject)]


class PinFlags(core.BitString):
    _map = {
        0: "case-sensitive", 1: "local", 2: "change-disabled", 3: "unblock-disabled",
        4: "initialized", 5: "needs-padding", 6: "unblockingPin", 7: "soPin",
        8: "disable-allowed", 9: "integrity-protected", 10: "confidentiality-protected",
        11: "exchangeRefData",
    }


class PinType(core.Enumerated):
    _map = {0: "bcd", 1: "ascii-numeric", 2: "utf8", 3: "half-nibble-bcd", 4: "iso9564-1"}


class PinAttributes(core.Sequence):
    _fields = [
        ("pin_flags", PinFlags),
        ("pin_type", PinType),
        ("min_length", core.Integer),
        ("stored_length", core.Integer),
        ("max_length", core.Integer, {"optional": True}),
        ("pin_reference", core.Integer, {"implicit": 0, "default": 0}),
        ("pad_char", core.OctetString, {"optional": True}),
        ("last_pin_change", core.GeneralizedTime, {"optional": True}),
        ("path", Path, {"optional": True}),
    ]


class CommonAuthenticationObjectAttributes(core.Sequence):
    _fields = [("auth_id", core.OctetString)]


class PinObject(core.Sequence):
    _fields = [
        ("common", CommonObjectAttributes),
        ("auth", CommonAuthenticationObjectAttributes),
        ("sub_class", Unparsed, {"implicit": 0, "optional": True}),
        ("pin", PinAttributes, {"explicit": 1}),
    ]


class AuthenticationChoice(core.Choice):
    _alternatives = [("pin", PinObject)]


class CommonDataObjectAttributes(core.Sequence):
    _fields = [
        ("application_name", core.UTF8String, {"optional": True}),
        ("application_oid", core.ObjectIdentifier, {"optional": True}),
    ]


class OpaqueDataObject(core.Sequence):
    _fields = [
        ("common", CommonObjectAttributes),
        ("data", CommonDataObjectAttributes),
        ("sub_class", Unparsed, {"implicit": 0, "optional": True}),
        ("value", Path, {"explicit": 1}),
    ]


class DataObjectChoice(core.Choice):
    _alternatives = [("opaque_do", OpaqueDataObject)]


ODF_KINDS = (
    "private_keys", "public_keys", "trusted_public_keys", "secret_keys", "certificates",
    "trusted_certificates", "useful_certificates", "data_objects", "auth_objects",
)


class OdfEntry(core.Choice):
    _alternatives = [(name, Path, {"explicit": tag}) for tag, name in enumerate(ODF_KINDS)]


class AlgorithmOperations(core.BitString):
    _map = {
        0: "compute-checksum", 1: "compute-signature", 2: "verify-checksum",
        3: "verify-signature", 4: "encipher", 5: "decipher", 6: "hash", 7: "derive-key",
    }


class AlgorithmInfo(core.Sequence):
    _fields = [
        ("reference", core.Integer),
        ("algorithm", core.Integer),
        ("parameters", core.Any),
        ("supported_operations", AlgorithmOperations),
        ("alg_id", core.ObjectIdentifier, {"optional": True}),
        ("alg_ref", core.Integer, {"optional": True}),
    ]


class AlgorithmInfos(core.SequenceOf):
    _child_spec = AlgorithmInfo


class TokenFlags(core.BitString):
    _map = {0: "readonly", 1: "loginRequired", 2: "prnGeneration", 3: "eidCompliant"}


class TokenInfoAsn1(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("serial_number", core.OctetString),
        ("manufacturer_id", core.UTF8String, {"optional": True}),
        ("label", core.UTF8String, {"implicit": 0, "optional": True}),
        ("token_flags", TokenFlags),
        ("se_info", Unparsed, {"optional": True}),
        ("record_info", Unparsed, {"implicit": 1, "optional": True}),
        ("supported_algorithms", AlgorithmInfos, {"implicit": 2, "optional": True}),
    ]
