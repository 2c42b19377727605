"""What the PKCS#15 directory files say, as small frozen dataclasses (the parsers' results,
the encoders' input)."""

from __future__ import annotations

from dataclasses import dataclass

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
