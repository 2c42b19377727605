"""ISO 7816-15 / PKCS#15 structures: the directory files a CPS3 card describes itself with.

The ODF lists the other directory files; TokenInfo names the token and its algorithms; the
PrKDF, CDF, AODF and DODF describe private keys, certificates, PINs and data objects. The
structures are asn1crypto classes (PKCS#15 v1.1 module); `parse_*` turn file bytes into
small frozen dataclasses, `encode_*` build the files (the emulator and the tests use them).

Every parse failure raises `MalformedResponseError`: asn1crypto parses lazily, so each parse
forces the full decoding inside the ``try``.
"""

# asn1crypto declares structures as class-level lists and dicts.
# ruff: noqa: RUF012

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from asn1crypto import core

from .errors import MalformedResponseError
from .tlv import parse_one

# -- ASN.1 ----------------------------------------------------------------------------------


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


# -- typed results ----------------------------------------------------------------------------

# PKCS#11 mechanisms named in TokenInfo.supportedAlgorithms (values from the PKCS#11 spec).
CKM_RSA_PKCS = 0x0001
CKM_SHA1_RSA_PKCS = 0x0006
CKM_SHA256_RSA_PKCS = 0x0040
CKM_SHA_1 = 0x0220
CKM_SHA256 = 0x0250


@dataclass(frozen=True)
class OdfRecord:
    kind: str  # one of ODF_KINDS
    path: bytes


@dataclass(frozen=True)
class Algorithm:
    reference: int
    mechanism: int
    operations: frozenset[str]
    algo_ref: int | None


@dataclass(frozen=True)
class TokenInfo:
    version: int
    serial_number: bytes
    manufacturer: str | None
    label: str | None
    flags: frozenset[str]
    algorithms: tuple[Algorithm, ...]


@dataclass(frozen=True)
class PrivateKeyInfo:
    label: str | None
    id: bytes
    usage: frozenset[str]
    key_reference: int | None
    path: bytes
    modulus_length: int
    auth_id: bytes | None
    access_flags: frozenset[str] = frozenset()
    algo_refs: tuple[int, ...] = ()


@dataclass(frozen=True)
class CertificateInfo:
    label: str | None
    id: bytes
    path: bytes
    authority: bool = False


@dataclass(frozen=True)
class PinInfo:
    label: str | None
    auth_id: bytes
    flags: frozenset[str]
    pin_type: str
    min_length: int
    stored_length: int
    max_length: int | None
    reference: int
    pad_char: bytes | None = None
    path: bytes | None = None


@dataclass(frozen=True)
class DataObjectInfo:
    label: str | None
    application: str | None
    path: bytes
    auth_id: bytes | None = None
    private: bool = False


# -- parsing --------------------------------------------------------------------------------

T = TypeVar("T")


def _guard(what: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except MalformedResponseError:
        raise
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, OverflowError...
        raise MalformedResponseError(f"malformed PKCS#15 {what}: {exc}") from None


def _elements(data: bytes) -> list[bytes]:
    """Split a directory file into its top-level TLVs, stopping at the 00/FF padding."""
    out = []
    offset = 0
    while offset < len(data):
        if data[offset] in (0x00, 0xFF):
            if data[offset:].strip(bytes((data[offset],))):
                raise MalformedResponseError("data found after the padding of a PKCS#15 file")
            break
        _, end = parse_one(data, offset)
        out.append(data[offset:end])
        offset = end
    return out


def _common(obj: Any) -> tuple[str | None, frozenset[str], bytes | None]:
    common = obj["common"]
    label = common["label"].native
    flags = frozenset(common["flags"].native or ()) if common["flags"].native is not None else (
        frozenset()
    )
    auth_id = common["auth_id"].native
    return label, flags, auth_id


def _path(path: Path) -> bytes:
    value = path["path"].native
    if not isinstance(value, bytes) or not value:
        raise MalformedResponseError("empty PKCS#15 path")
    return value


def parse_odf(data: bytes) -> tuple[OdfRecord, ...]:
    def run() -> tuple[OdfRecord, ...]:
        records = []
        for raw in _elements(data):
            entry = OdfEntry.load(raw, strict=True)
            _ = entry.native  # force the full (lazy) parse
            records.append(OdfRecord(entry.name, _path(entry.chosen)))
        return tuple(records)

    return _guard("ODF", run)


def parse_token_info(data: bytes) -> TokenInfo:
    def run() -> TokenInfo:
        elements = _elements(data)
        if len(elements) != 1:
            raise MalformedResponseError("TokenInfo must be exactly one SEQUENCE")
        info = TokenInfoAsn1.load(elements[0], strict=True)
        _ = info.native  # force the full (lazy) parse
        algorithms = []
        if info["supported_algorithms"].native is not None:
            for algo in info["supported_algorithms"]:
                algorithms.append(
                    Algorithm(
                        algo["reference"].native,
                        algo["algorithm"].native,
                        frozenset(algo["supported_operations"].native),
                        algo["alg_ref"].native,
                    )
                )
        return TokenInfo(
            info["version"].native,
            info["serial_number"].native,
            info["manufacturer_id"].native,
            info["label"].native,
            frozenset(info["token_flags"].native),
            tuple(algorithms),
        )

    return _guard("TokenInfo", run)


def parse_prkdf(data: bytes) -> tuple[PrivateKeyInfo, ...]:
    def run() -> tuple[PrivateKeyInfo, ...]:
        keys = []
        for raw in _elements(data):
            choice = PrivateKeyChoice.load(raw, strict=True)
            _ = choice.native  # force the full (lazy) parse
            obj = choice.chosen
            label, _flags, auth_id = _common(obj)
            key = obj["key"]
            keys.append(
                PrivateKeyInfo(
                    label,
                    key["id"].native,
                    frozenset(key["usage"].native),
                    key["key_reference"].native,
                    _path(obj["rsa"]["value"]),
                    obj["rsa"]["modulus_length"].native,
                    auth_id,
                    frozenset(key["access_flags"].native or ()),
                    tuple(key["alg_reference"].native or ()),
                )
            )
        return tuple(keys)

    return _guard("PrKDF", run)


def parse_cdf(data: bytes) -> tuple[CertificateInfo, ...]:
    def run() -> tuple[CertificateInfo, ...]:
        certs = []
        for raw in _elements(data):
            choice = CertificateChoice.load(raw, strict=True)
            _ = choice.native  # force the full (lazy) parse
            obj = choice.chosen
            label, _flags, _auth = _common(obj)
            certs.append(
                CertificateInfo(
                    label,
                    obj["certificate"]["id"].native,
                    _path(obj["x509"]["value"]),
                    bool(obj["certificate"]["authority"].native),
                )
            )
        return tuple(certs)

    return _guard("CDF", run)


def parse_aodf(data: bytes) -> tuple[PinInfo, ...]:
    def run() -> tuple[PinInfo, ...]:
        pins = []
        for raw in _elements(data):
            choice = AuthenticationChoice.load(raw, strict=True)
            _ = choice.native  # force the full (lazy) parse
            obj = choice.chosen
            label, _flags, _auth = _common(obj)
            attrs = obj["pin"]
            pad = attrs["pad_char"].native
            if pad is not None and len(pad) != 1:
                raise MalformedResponseError("PIN padChar must be one byte")
            path = attrs["path"]
            pins.append(
                PinInfo(
                    label,
                    obj["auth"]["auth_id"].native,
                    frozenset(attrs["pin_flags"].native),
                    attrs["pin_type"].native,
                    attrs["min_length"].native,
                    attrs["stored_length"].native,
                    attrs["max_length"].native,
                    attrs["pin_reference"].native,
                    pad,
                    None if path.native is None else _path(path),
                )
            )
        return tuple(pins)

    return _guard("AODF", run)


def parse_dodf(data: bytes) -> tuple[DataObjectInfo, ...]:
    def run() -> tuple[DataObjectInfo, ...]:
        objects = []
        for raw in _elements(data):
            choice = DataObjectChoice.load(raw, strict=True)
            _ = choice.native  # force the full (lazy) parse
            obj = choice.chosen
            label, flags, auth_id = _common(obj)
            objects.append(
                DataObjectInfo(
                    label,
                    obj["data"]["application_name"].native,
                    _path(obj["value"]),
                    auth_id,
                    "private" in flags,
                )
            )
        return tuple(objects)

    return _guard("DODF", run)


# -- encoding (emulator, tests) ---------------------------------------------------------------


def _common_attrs(label: str | None, auth_id: bytes | None, private: bool) -> dict[str, Any]:
    common: dict[str, Any] = {}
    if label is not None:
        common["label"] = label
    if private:
        common["flags"] = {"private"}
    if auth_id is not None:
        common["auth_id"] = auth_id
    return common


def _pad(data: bytes, size: int | None) -> bytes:
    """Directory files are fixed-size EFs on a card: the unused end is 00."""
    if size is None:
        return data
    if len(data) > size:
        raise ValueError(f"encoded directory ({len(data)} bytes) exceeds its file ({size})")
    return data + bytes(size - len(data))


def encode_odf(records: Iterable[OdfRecord], *, size: int | None = None) -> bytes:
    out = b"".join(
        OdfEntry(name=r.kind, value=Path({"path": r.path})).dump(force=True) for r in records
    )
    return _pad(out, size)


def encode_token_info(info: TokenInfo) -> bytes:
    value: dict[str, Any] = {
        "version": info.version,
        "serial_number": info.serial_number,
        "token_flags": set(info.flags),
    }
    if info.manufacturer is not None:
        value["manufacturer_id"] = info.manufacturer
    if info.label is not None:
        value["label"] = info.label
    if info.algorithms:
        value["supported_algorithms"] = [
            {
                "reference": a.reference,
                "algorithm": a.mechanism,
                "parameters": core.Null(),
                "supported_operations": set(a.operations),
                **({"alg_ref": a.algo_ref} if a.algo_ref is not None else {}),
            }
            for a in info.algorithms
        ]
    return TokenInfoAsn1(value).dump(force=True)


def encode_prkdf(keys: Iterable[PrivateKeyInfo], *, size: int | None = None) -> bytes:
    out = b""
    for k in keys:
        key_attrs: dict[str, Any] = {"id": k.id, "usage": set(k.usage)}
        if k.access_flags:
            key_attrs["access_flags"] = set(k.access_flags)
        if k.key_reference is not None:
            key_attrs["key_reference"] = k.key_reference
        if k.algo_refs:
            key_attrs["alg_reference"] = list(k.algo_refs)
        obj = PrivateRsaKeyObject(
            {
                "common": _common_attrs(k.label, k.auth_id, k.auth_id is not None),
                "key": key_attrs,
                "rsa": {"value": {"path": k.path}, "modulus_length": k.modulus_length},
            }
        )
        out += PrivateKeyChoice(name="private_rsa_key", value=obj).dump(force=True)
    return _pad(out, size)


def encode_cdf(certs: Iterable[CertificateInfo], *, size: int | None = None) -> bytes:
    out = b""
    for c in certs:
        obj = X509CertificateObject(
            {
                "common": _common_attrs(c.label, None, False),
                "certificate": {"id": c.id, "authority": c.authority},
                "x509": {"value": {"path": c.path}},
            }
        )
        out += CertificateChoice(name="x509_certificate", value=obj).dump(force=True)
    return _pad(out, size)


def encode_aodf(pins: Iterable[PinInfo], *, size: int | None = None) -> bytes:
    out = b""
    for p in pins:
        attrs: dict[str, Any] = {
            "pin_flags": set(p.flags),
            "pin_type": p.pin_type,
            "min_length": p.min_length,
            "stored_length": p.stored_length,
            "pin_reference": p.reference,
        }
        if p.max_length is not None:
            attrs["max_length"] = p.max_length
        if p.pad_char is not None:
            attrs["pad_char"] = p.pad_char
        if p.path is not None:
            attrs["path"] = {"path": p.path}
        obj = PinObject(
            {
                "common": _common_attrs(p.label, None, False),
                "auth": {"auth_id": p.auth_id},
                "pin": attrs,
            }
        )
        out += AuthenticationChoice(name="pin", value=obj).dump(force=True)
    return _pad(out, size)


def encode_dodf(objects: Iterable[DataObjectInfo], *, size: int | None = None) -> bytes:
    out = b""
    for d in objects:
        data_attrs: dict[str, Any] = {}
        if d.application is not None:
            data_attrs["application_name"] = d.application
        obj = OpaqueDataObject(
            {
                "common": _common_attrs(d.label, d.auth_id, d.private),
                "data": data_attrs,
                "value": {"path": d.path},
            }
        )
        out += DataObjectChoice(name="opaque_do", value=obj).dump(force=True)
    return _pad(out, size)
