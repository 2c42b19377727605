"""The questions the INS service answers, over the reference identities (`patients`).

Three questions, as INSi has them: from the Vitale card (the NIR shown on the card, the
beneficiary's birth date and birth rank), from typed traits (birth name, first names, sex,
birth date, birth place), and the verification of an INS already known with its traits.
A search answers every identity that matches: none, one, or several (homonyms); deciding
among several is the user's, never the service's.

Each query names its rows through an index (`ix_patients_insured` for the card,
`ix_patients_birth` for the traits): at a national volume a search reads a few dozen rows,
not the table (bench/ins_search.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, or_, select

from wire.ins import InsIdentity

from ..errors import bad_request
from ..identities import MAX_TRAIT, json_object, normalise, trait_text, valid_ins
from ..store.schema import patients

_BIRTH_DATE = re.compile(r"^\d{8}$")  # YYYYMMDD; month or day 00 when unknown (lunar)
_BIRTH_PLACE = re.compile(r"^(?:\d{5}|2A\d{3}|2B\d{3})$")  # INSEE commune, 99xxx abroad
MAX_FIRST_NAMES = 10
MAX_ANSWERS = 20  # homonyms are few; a bound keeps one answer (and its traces) small


@dataclass(frozen=True)
class Traits:
    """The traits of a typed search or of a verification, checked."""

    birth_name: str
    first_names: tuple[str, ...]
    sex: str
    birth_date: str
    birth_place: str | None = None


def _text(body: dict[str, Any], name: str) -> str:
    value = trait_text(body, name)
    assert value is not None  # required
    return value


def _birth_date(body: dict[str, Any]) -> str:
    value = _text(body, "birthDate")
    if not _BIRTH_DATE.match(value):
        raise bad_request("bad-trait", "birthDate: YYYYMMDD (00 for an unknown month or day)")
    return value


def parse_traits(body: Any) -> Traits:
    """A typed search's traits; a 400 naming the trait for anything malformed."""
    body = json_object(body)
    names = body.get("firstNames")
    if isinstance(names, str):
        names = names.split()
    if (not isinstance(names, list) or not names or len(names) > MAX_FIRST_NAMES
            or not all(isinstance(n, str) and n.strip() and len(n) <= MAX_TRAIT
                       for n in names)):
        raise bad_request("bad-trait", "firstNames: the list of first names, in the order of "
                          f"the civil registry (1 to {MAX_FIRST_NAMES})")
    sex = _text(body, "sex")
    if sex not in ("M", "F"):
        raise bad_request("bad-trait", "sex: M or F")
    place = body.get("birthPlace")
    if place is not None and (not isinstance(place, str) or not _BIRTH_PLACE.match(place)):
        raise bad_request("bad-trait", "birthPlace: the 5-character INSEE code (99xxx abroad)")
    return Traits(_text(body, "birthName"), tuple(n.strip() for n in names), sex,
                  _birth_date(body), place)


@dataclass(frozen=True)
class CardQuery:
    """What a Vitale card gives: the NIR it shows (the insured's, for a child covered under
    a parent), the beneficiary's birth date and birth rank."""

    nir: str
    birth_date: str
    birth_rank: int | None = None


def parse_card(body: Any) -> CardQuery:
    body = json_object(body)
    nir = _text(body, "nir")
    if not valid_ins(nir):
        raise bad_request("bad-trait", "nir: the NIR and its key (15 characters) as on the card")
    rank = body.get("birthRank")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)
                             or not 1 <= rank <= 9):
        raise bad_request("bad-trait", "birthRank: an integer from 1 to 9")
    return CardQuery(nir, _birth_date(body), rank)


def first_names_match(given: tuple[str, ...], first_names: str) -> bool:
    """The typed first names are the registry's list or its beginning (a user types the
    first one, or all): "MARIE" finds "MARIE ANGE", never "ANNE MARIE"."""
    wanted = normalise(" ".join(given)).split()
    names = normalise(first_names).split()
    return bool(wanted) and names[:len(wanted)] == wanted


def traits_match(row: Row[Any], traits: Traits) -> bool:
    return (normalise(row.birth_name) == normalise(traits.birth_name)
            and first_names_match(traits.first_names, row.first_names)
            and row.sex == traits.sex and row.birth_date == traits.birth_date
            and (traits.birth_place is None or row.birth_place == traits.birth_place))


def by_card(connection: Connection, card: CardQuery) -> list[Row[Any]]:
    """Every identity the card designates: the insured or someone covered under them, born
    on that date, of that birth rank when the card gives it (twins differ by it)."""
    query = select(patients).where(
        or_(patients.c.insured_nir == card.nir, patients.c.ins == card.nir),
        patients.c.birth_date == card.birth_date)
    if card.birth_rank is not None:
        query = query.where(patients.c.birth_rank == card.birth_rank)
    return list(connection.execute(query.order_by(patients.c.ins).limit(MAX_ANSWERS + 1)))


def by_traits(connection: Connection, traits: Traits) -> list[Row[Any]]:
    """Every identity with these traits (names compared without case, accents, hyphens)."""
    query = select(patients).where(patients.c.birth_date == traits.birth_date,
                                   patients.c.sex == traits.sex)
    found = [row for row in connection.execute(query.order_by(patients.c.ins))
             if traits_match(row, traits)]
    return found[:MAX_ANSWERS + 1]


def differences(row: Row[Any], traits: Traits) -> list[str]:
    """The traits (by their JSON names) on which ``row`` and ``traits`` differ."""
    out = []
    if normalise(row.birth_name) != normalise(traits.birth_name):
        out.append("birthName")
    if normalise(row.first_names) != normalise(" ".join(traits.first_names)):
        out.append("firstNames")
    if row.sex != traits.sex:
        out.append("sex")
    if row.birth_date != traits.birth_date:
        out.append("birthDate")
    if traits.birth_place is not None and row.birth_place != traits.birth_place:
        out.append("birthPlace")
    return out


def identity_of(row: Row[Any]) -> InsIdentity:
    return InsIdentity(row.ins, row.ins_oid, row.birth_name, row.first_names, row.sex,
                       row.birth_date, row.birth_place, row.birth_rank)
