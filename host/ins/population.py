"""A seeded generator of a national-like population for the INS service: the same seed gives
the same people, so a benchmark or a test can name them again.

What makes real identity data hard is kept on purpose: homonyms (the same traits under two
NIRs), composite and hyphenated names, lunar birth dates (month or day 00), people born in
Corsica (2A/2B) and abroad (99xxx), children covered under a parent's NIR and twins told apart
only by their birth rank (2). The NIRs are well-formed (sex, year, month, place, order, key)
and never collide with the seed file's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, insert, select

from ..identities import NIR_OID, ins_key
from ..store.schema import patients

FAMILY = ("MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS",
          "MOREAU", "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID",
          "BERTRAND", "MOREL", "FOURNIER", "GIRARD", "BONNET", "DUPONT", "LAMBERT", "FONTAINE",
          "ROUSSEAU", "VINCENT", "MULLER", "LEFEVRE", "FAURE", "ANDRE", "MERCIER", "BLANC",
          "GUERIN", "BOYER", "GARNIER", "CHEVALIER", "FRANCOIS", "LEGRAND", "GAUTHIER",
          "NGUYEN", "BENALI", "DA SILVA", "DE LA FONTAINE", "LE GALL", "SANTONI", "ROSSI",
          "N'DIAYE", "MARTIN-DUBOIS", "LEROY-BEAULIEU", "SAINT-JUST")
MALE = ("JEAN", "PIERRE", "MICHEL", "ANDRE", "PHILIPPE", "NICOLAS", "THOMAS", "LUCAS",
        "HUGO", "LOUIS", "PAUL", "JULIEN", "KARIM", "JEAN-PIERRE", "JEAN-LUC", "MARC",
        "ANTOINE", "YANN", "ARTHUR", "GABRIEL")
FEMALE = ("MARIE", "NATHALIE", "ISABELLE", "SYLVIE", "CATHERINE", "CLAIRE", "SOPHIE", "EMMA",
          "JADE", "LOUISE", "CHLOE", "LEA", "AMINA", "MARIE-ANGE", "ANNE-SOPHIE", "CAMILLE",
          "JULIETTE", "MANON", "INES", "ROSE")
# INSEE commune codes (a sample over mainland France and Corsica) and foreign countries (99xxx).
COMMUNES = ("75114", "75115", "75056", "69123", "13055", "31555", "33063", "44109", "59350",
            "67482", "06088", "34172", "35238", "76540", "38185", "2A004", "2B033", "97411",
            "21231", "63113", "29019", "87085", "80021", "57463")
ABROAD = ("99134", "99109", "99127", "99350", "99352", "99139", "99223", "99351")

BATCH = 10_000


def _first_names(rng: random.Random, sex: str) -> str:
    pool = MALE if sex == "M" else FEMALE
    return " ".join(rng.sample(pool, rng.choice((1, 1, 2, 2, 3))))


def _birth_date(rng: random.Random) -> str:
    year, month, day = rng.randint(1925, 2025), rng.randint(1, 12), rng.randint(1, 28)
    lunar = rng.random()
    if lunar < 0.003:
        return f"{year}0000"
    if lunar < 0.01:
        return f"{year}{month:02d}00"
    return f"{year}{month:02d}{day:02d}"


class _Nirs:
    """Well-formed NIRs, each once: sex, year, month, place (département + commune, or 99 +
    country), an order number, the key."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.orders: dict[str, int] = {}

    def new(self, sex: str, birth_date: str, place: str) -> str | None:
        month = birth_date[4:6] if birth_date[4:6] != "00" else "20"  # unknown month
        prefix = f"{1 if sex == 'M' else 2}{birth_date[2:4]}{month}{place}"
        while (order := self.orders.get(prefix, 0) + 1) < 1000:
            self.orders[prefix] = order
            nir = f"{prefix}{order:03d}"
            nir += ins_key(nir)
            if nir not in self.taken:
                self.taken.add(nir)
                return nir
        return None  # a thousand people of one place and month: skipped


def people(count: int, seed: int, taken: set[str] | None = None) -> Iterator[dict[str, Any]]:
    """``count`` rows of the `patients` table (fewer only if NIRs ran out)."""
    rng = random.Random(seed)
    nirs = _Nirs(set(taken or ()))
    made = 0
    adults: list[dict[str, Any]] = []  # insured people a child may be covered under
    previous: dict[str, Any] | None = None
    while made < count:
        roll = rng.random()
        if previous is not None and roll < 0.005:
            # A homonym: the same traits as someone else, another NIR.
            row = dict(previous)
        else:
            sex = rng.choice("MF")
            place = rng.choice(ABROAD) if rng.random() < 0.07 else rng.choice(COMMUNES)
            names = _first_names(rng, sex)
            row = {"ins_oid": NIR_OID, "birth_name": rng.choice(FAMILY), "first_names": names,
                   "first_name": names.split()[0], "sex": sex, "birth_date": _birth_date(rng),
                   "birth_place": place, "birth_rank": 1}
        ins = nirs.new(row["sex"], row["birth_date"], row["birth_place"])
        if ins is None:
            continue
        row["ins"] = ins
        row["insured_nir"] = ins
        if row["birth_date"] >= "2008" and adults and rng.random() < 0.8:
            parent = rng.choice(adults)
            row["insured_nir"], row["birth_name"] = parent["ins"], parent["birth_name"]
        elif row["birth_date"] < "1995" and len(adults) < 50_000:
            adults.append(row)
        yield row
        made += 1
        previous = row
        if made < count and row["insured_nir"] != row["ins"] and rng.random() < 0.02:
            # A twin: same insured, same birth date, birth rank 2.
            sex = rng.choice("MF")
            twin_names = _first_names(rng, sex)
            twin_ins = nirs.new(sex, row["birth_date"], row["birth_place"])
            if twin_ins is not None:
                yield {**row, "ins": twin_ins, "sex": sex, "first_names": twin_names,
                       "first_name": twin_names.split()[0], "birth_rank": 2}
                made += 1


def generate(engine: Engine, count: int, seed: int = 1) -> int:
    """Add ``count`` generated people to the migrated database at ``engine`` (in batches);
    how many were added. The same seed on a fresh database gives the same people."""
    with engine.connect() as connection:
        taken = {row.ins for row in connection.execute(select(patients.c.ins))}
    added = 0
    batch: list[dict[str, Any]] = []
    with engine.begin() as connection:
        for row in people(count, seed, taken):
            batch.append(row)
            if len(batch) >= BATCH:
                connection.execute(insert(patients), batch)
                added += len(batch)
                batch = []
        if batch:
            connection.execute(insert(patients), batch)
            added += len(batch)
    return added
