"""Build the PKCS#15 directory files from their dataclasses (the emulator and the tests)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asn1crypto import core

from .pkcs15_asn1 import (
    AuthenticationChoice,
    CertificateChoice,
    DataObjectChoice,
    OdfEntry,
    OpaqueDataObject,
    Path,
    PinObject,
    PrivateKeyChoice,
    PrivateRsaKeyObject,
    TokenInfoAsn1,
    X509CertificateObject,
)
from .pkcs15_model import (
    CertificateInfo,
    DataObjectInfo,
    OdfRecord,
    PinInfo,
    PrivateKeyInfo,
    TokenInfo,
)


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
