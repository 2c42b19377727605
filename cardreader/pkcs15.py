"""ISO 7816-15 / PKCS#15 structures: the directory files a CPS3 card describes itself with.

The ODF lists the other directory files; TokenInfo names the token and its algorithms; the
PrKDF, CDF, AODF and DODF describe private keys, certificates, PINs and data objects. The
structures are asn1crypto classes (`cardreader.pkcs15_asn1`); the `parse_*` here turn file
bytes into small frozen dataclasses (`cardreader.pkcs15_model`), and `encode_*`
(`cardreader.pkcs15_encode`) build the files for the emulator and the tests. Every name of
those modules is importable from here.

Every parse failure raises `MalformedResponseError`: asn1crypto parses lazily, so each parse
forces the full decoding inside the ``try``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .errors import MalformedResponseError
from .pkcs15_asn1 import (
    ODF_KINDS,
    AlgorithmInfo,
    AlgorithmInfos,
    AlgorithmOperations,
    AuthenticationChoice,
    CertificateChoice,
    CommonAuthenticationObjectAttributes,
    CommonCertificateAttributes,
    CommonDataObjectAttributes,
    CommonKeyAttributes,
    CommonObjectAttributes,
    CommonObjectFlags,
    DataObjectChoice,
    KeyAccessFlags,
    KeyUsageFlags,
    OdfEntry,
    OpaqueDataObject,
    Path,
    PinAttributes,
    PinFlags,
    PinObject,
    PinType,
    PrivateKeyChoice,
    PrivateRsaKeyAttributes,
    PrivateRsaKeyObject,
    References,
    TokenFlags,
    TokenInfoAsn1,
    Unparsed,
    X509CertificateAttributes,
    X509CertificateObject,
)
from .pkcs15_encode import (
    encode_aodf,
    encode_cdf,
    encode_dodf,
    encode_odf,
    encode_prkdf,
    encode_token_info,
)
from .pkcs15_model import (
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA256,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA_1,
    Algorithm,
    CertificateInfo,
    DataObjectInfo,
    OdfRecord,
    PinInfo,
    PrivateKeyInfo,
    TokenInfo,
)
from .tlv import parse_one

__all__ = [
    "CKM_RSA_PKCS",
    "CKM_SHA1_RSA_PKCS",
    "CKM_SHA256",
    "CKM_SHA256_RSA_PKCS",
    "CKM_SHA_1",
    "ODF_KINDS",
    "Algorithm",
    "AlgorithmInfo",
    "AlgorithmInfos",
    "AlgorithmOperations",
    "AuthenticationChoice",
    "CertificateChoice",
    "CertificateInfo",
    "CommonAuthenticationObjectAttributes",
    "CommonCertificateAttributes",
    "CommonDataObjectAttributes",
    "CommonKeyAttributes",
    "CommonObjectAttributes",
    "CommonObjectFlags",
    "DataObjectChoice",
    "DataObjectInfo",
    "KeyAccessFlags",
    "KeyUsageFlags",
    "OdfEntry",
    "OdfRecord",
    "OpaqueDataObject",
    "Path",
    "PinAttributes",
    "PinFlags",
    "PinInfo",
    "PinObject",
    "PinType",
    "PrivateKeyChoice",
    "PrivateKeyInfo",
    "PrivateRsaKeyAttributes",
    "PrivateRsaKeyObject",
    "References",
    "TokenFlags",
    "TokenInfo",
    "TokenInfoAsn1",
    "Unparsed",
    "X509CertificateAttributes",
    "X509CertificateObject",
    "encode_aodf",
    "encode_cdf",
    "encode_dodf",
    "encode_odf",
    "encode_prkdf",
    "encode_token_info",
    "parse_aodf",
    "parse_cdf",
    "parse_dodf",
    "parse_odf",
    "parse_prkdf",
    "parse_token_info",
]


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
