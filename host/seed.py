"""The reference identities of the identity service, loaded from `seed_identities.json`.

The JSON file is the contract with the virtual Vitale cards (the host does not import
`cardreader`): every person of a virtual card has an identity here, which a test checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from .identities import INS_OIDS, valid_ins
from .store.schema import patients

SEED_FILE = Path(__file__).with_name("seed_identities.json")
FORMAT = "dmp-host-seed-identities"

# JSON name -> column
_COLUMNS = {
    "ins": "ins",
    "insOid": "ins_oid",
    "birthName": "birth_name",
    "firstNames": "first_names",
    "firstName": "first_name",
    "sex": "sex",
    "birthDate": "birth_date",
    "birthPlace": "birth_place",
    "insuredNir": "insured_nir",
    "birthRank": "birth_rank",
}


class SeedError(ValueError):
    """The seed file is malformed (the message names the file and the entry)."""


def load_identities(path: Path = SEED_FILE) -> list[dict[str, Any]]:
    """The identities of ``path`` as rows of the `patients` table, checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SeedError(f"{path}: unreadable seed file ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 1:
        raise SeedError(f"{path}: not a version 1 {FORMAT} file")
    rows = []
    seen: set[str] = set()
    for index, entry in enumerate(data.get("identities") or []):
        where = f"{path}: identities[{index}]"
        if not isinstance(entry, dict):
            raise SeedError(f"{where}: an object is expected")
        missing = [name for name in _COLUMNS if entry.get(name) in (None, "")]
        if missing:
            raise SeedError(f"{where}: missing {', '.join(missing)}")
        for name in ("ins", "insuredNir"):
            if not valid_ins(entry[name]):
                raise SeedError(f"{where}: {name} {entry[name]!r} is not a valid INS")
        if entry["insOid"] not in INS_OIDS:
            raise SeedError(f"{where}: unknown insOid {entry['insOid']!r}")
        if entry["sex"] not in ("M", "F") or len(entry["birthDate"]) != 8:
            raise SeedError(f"{where}: sex M/F and birthDate YYYYMMDD expected")
        if entry["ins"] in seen:
            raise SeedError(f"{where}: INS {entry['ins']} appears twice")
        seen.add(entry["ins"])
        rows.append({column: entry[name] for name, column in _COLUMNS.items()})
    return rows


def seed_identities(engine: Engine, path: Path = SEED_FILE) -> int:
    """Load the identities of ``path`` into the migrated database (idempotent: existing ones
    are brought back to the file's values). Returns how many identities the file holds."""
    rows = load_identities(path)
    with engine.begin() as connection:
        existing = {
            row.ins: row._asdict()
            for row in connection.execute(
                select(patients).where(patients.c.ins.in_([r["ins"] for r in rows]))
            )
        }
        for row in rows:
            current = existing.get(row["ins"])
            if current is None:
                try:
                    with connection.begin_nested():
                        connection.execute(insert(patients).values(**row))
                except IntegrityError:
                    # Another process seeding the same database at the same moment.
                    pass
            elif current != row:
                connection.execute(
                    update(patients).where(patients.c.ins == row["ins"]).values(**row)
                )
    return len(rows)
