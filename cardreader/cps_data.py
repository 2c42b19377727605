"""OUR encoding of the CPS data objects (CPS_ID_CARD, CPS_NAME_PS, CPS_INFO_PS, CPS_ACTIVITY_xx_PS).

The real byte layout of these PKCS#15 data objects is in an ANS document that is not public
(shared/CARDS.md), so this project defines a small ASN.1 DER encoding of its own, documented in
docs/cps.md, that carries the same information:

    CpsIdCard    ::= SEQUENCE { version INTEGER (1), categoryCode UTF8String,
                                testCard BOOLEAN, notBefore GeneralizedTime,
                                notAfter GeneralizedTime }
    CpsNamePs    ::= SEQUENCE { lastName UTF8String, firstName UTF8String }
    CpsInfoPs    ::= SEQUENCE { idNatPs PrintableString, professionCode PrintableString,
                                specialtyCode [0] IMPLICIT PrintableString OPTIONAL }
    CpsActivityPs ::= SEQUENCE { structureId PrintableString, structureName UTF8String,
                                 mode UTF8String, role UTF8String,
                                 sector [0] IMPLICIT PrintableString OPTIONAL }

``sector`` is the situation's activity sector, a TRE_R02-SecteurActivite code ("SA33" a
pharmacy): the real card's practice situation carries one; a card written before it was
added reads as None.

A data-object file may be longer than its content: the rest is 00 padding. An all-zero file
is an unused slot (a card has room for 16 practice situations). Every decoding failure raises
`MalformedResponseError`.
"""

# asn1crypto declares structures as class-level lists.
# ruff: noqa: RUF012

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from asn1crypto import core

from .errors import MalformedResponseError
from .tlv import parse_one

FORMAT_VERSION = 1


class _IdCard(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("category_code", core.UTF8String),
        ("test_card", core.Boolean),
        ("not_before", core.GeneralizedTime),
        ("not_after", core.GeneralizedTime),
    ]


class _NamePs(core.Sequence):
    _fields = [("last_name", core.UTF8String), ("first_name", core.UTF8String)]


class _InfoPs(core.Sequence):
    _fields = [
        ("id_nat_ps", core.PrintableString),
        ("profession_code", core.PrintableString),
        ("specialty_code", core.PrintableString, {"implicit": 0, "optional": True}),
    ]


class _ActivityPs(core.Sequence):
    _fields = [
        ("structure_id", core.PrintableString),
        ("structure_name", core.UTF8String),
        ("mode", core.UTF8String),
        ("role", core.UTF8String),
        ("sector", core.PrintableString, {"implicit": 0, "optional": True}),
    ]


@dataclass(frozen=True)
class CardInfo:
    """CPS_ID_CARD: the card's category (table G01 label, ours) and validity."""

    category_code: str
    is_test_card: bool
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class HolderName:
    """CPS_NAME_PS."""

    last_name: str
    first_name: str


@dataclass(frozen=True)
class HolderInfo:
    """CPS_INFO_PS: idNat_PS, profession (G15) and specialty (R38), when there is one."""

    id_nat_ps: str
    profession_code: str
    specialty_code: str | None


@dataclass(frozen=True)
class PracticeSituation:
    """One CPS_ACTIVITY_xx_PS: where and how the professional practises.

    ``structure_id`` is the structure's national id with its type prefix ("3" + FINESS,
    "4" + SIREN, "5" + SIRET...); ``mode`` is the practice mode (e.g. "liberal", "salarie")
    and ``role`` the professional's role in the structure; ``sector`` its TRE_R02 activity
    sector code, when the card has one.
    """

    structure_id: str
    structure_name: str
    mode: str
    role: str
    sector: str | None = None


S = TypeVar("S", bound=core.Sequence)


def _content(data: bytes) -> bytes | None:
    """The DER object at the start of a data-object file, or None for an unused (00) file."""
    if not data or not data.strip(b"\x00"):
        return None
    _tlv, end = parse_one(data)
    if data[end:].strip(b"\x00"):
        raise MalformedResponseError("data found after the CPS data object")
    return data[:end]


def _load(spec: type[S], data: bytes, what: str) -> S:
    content = _content(data)
    if content is None:
        raise MalformedResponseError(f"{what} is empty")
    try:
        value = spec.load(content, strict=True)
        _ = value.native  # force the full (lazy) parse
    except Exception as exc:  # asn1crypto raises ValueError, TypeError...
        raise MalformedResponseError(f"malformed {what}: {exc}") from None
    return value


def _aware(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise MalformedResponseError(f"{what} is not a date")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MalformedResponseError(f"{what} is empty")
    return value


# -- decode ----------------------------------------------------------------------------------


def decode_id_card(data: bytes) -> CardInfo:
    obj = _load(_IdCard, data, "CPS_ID_CARD")
    if obj["version"].native != FORMAT_VERSION:
        raise MalformedResponseError(f"unknown CPS_ID_CARD version {obj['version'].native}")
    return CardInfo(
        _text(obj["category_code"].native, "card category"),
        bool(obj["test_card"].native),
        _aware(obj["not_before"].native, "card validity start"),
        _aware(obj["not_after"].native, "card validity end"),
    )


def decode_name(data: bytes) -> HolderName:
    obj = _load(_NamePs, data, "CPS_NAME_PS")
    return HolderName(
        _text(obj["last_name"].native, "last name"), _text(obj["first_name"].native, "first name")
    )


def decode_info(data: bytes) -> HolderInfo:
    obj = _load(_InfoPs, data, "CPS_INFO_PS")
    return HolderInfo(
        _text(obj["id_nat_ps"].native, "idNat_PS"),
        _text(obj["profession_code"].native, "profession code"),
        obj["specialty_code"].native,
    )


def decode_activity(data: bytes) -> PracticeSituation | None:
    """A practice situation, or None when the file is an unused slot (all 00)."""
    if _content(data) is None:
        return None
    obj = _load(_ActivityPs, data, "CPS_ACTIVITY_PS")
    return PracticeSituation(
        _text(obj["structure_id"].native, "structure id"),
        _text(obj["structure_name"].native, "structure name"),
        obj["mode"].native,
        obj["role"].native,
        _sector(obj["sector"].native),
    )


def _sector(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"SA\d{2}", value):
        raise MalformedResponseError(f"activity sector {value[:16]!r} is not a TRE_R02 code")
    return value


# -- encode (emulator, tests) ----------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def encode_id_card(info: CardInfo) -> bytes:
    return _IdCard(
        {
            "version": FORMAT_VERSION,
            "category_code": info.category_code,
            "test_card": info.is_test_card,
            "not_before": _utc(info.not_before),
            "not_after": _utc(info.not_after),
        }
    ).dump(force=True)


def encode_name(name: HolderName) -> bytes:
    return _NamePs({"last_name": name.last_name, "first_name": name.first_name}).dump(force=True)


def encode_info(info: HolderInfo) -> bytes:
    value = {"id_nat_ps": info.id_nat_ps, "profession_code": info.profession_code}
    if info.specialty_code:
        value["specialty_code"] = info.specialty_code
    return _InfoPs(value).dump(force=True)


def encode_activity(situation: PracticeSituation) -> bytes:
    return _ActivityPs(
        {
            "structure_id": situation.structure_id,
            "structure_name": situation.structure_name,
            "mode": situation.mode,
            "role": situation.role,
            **({"sector": situation.sector} if situation.sector is not None else {}),
        }
    ).dump(force=True)
