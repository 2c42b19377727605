"""The registry of structures: what kind each practice structure is.

A client names its structure (the practice situation chosen on the card); the host checks
that the card holds it (`host.session_crypto`) and reads its *kind* here: only a structure
registered as a regulation centre may use the centre 15 mode, and occupational health
services, insurers and mutuals get no access at all (policies, CSP L1111-18). A structure
missing from the registry is an ordinary care structure. The operator fills the registry
with ``dmp-host structure add``; a test or sandbox host loads `seed_structures.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from policies import StructureKind

from .store.schema import structures

STRUCTURE_ID = re.compile(r"^[345][0-9]{8,31}$")  # 3 + FINESS, 4 + SIREN, 5 + SIRET
SEED_FILE = Path(__file__).with_name("seed_structures.json")
FORMAT = "dmp-host-seed-structures"
MAX_NAME = 200


class StructureError(ValueError):
    """A malformed structure id, kind or name (or seed file)."""


def checked(structure_id: str, name: str, kind: str) -> dict[str, str]:
    if not STRUCTURE_ID.match(structure_id):
        raise StructureError(f"{structure_id!r}: 3 + FINESS, 4 + SIREN or 5 + SIRET expected")
    if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise StructureError(f"name: 1 to {MAX_NAME} printable characters")
    try:
        StructureKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in StructureKind)
        raise StructureError(f"kind {kind!r}: one of {kinds}") from None
    return {"id": structure_id, "name": name.strip(), "kind": kind}


def register(engine: Engine, structure_id: str, name: str, kind: str, now: dt.datetime
             ) -> dict[str, Any]:
    """Add or change one structure; returns it."""
    values = checked(structure_id, name, kind)
    with engine.begin() as connection:
        found = connection.execute(
            select(structures.c.id).where(structures.c.id == structure_id)
        ).first()
        if found is None:
            connection.execute(insert(structures).values(**values, registered_at=now))
        else:
            connection.execute(update(structures).where(structures.c.id == structure_id)
                               .values(name=values["name"], kind=values["kind"]))
    return values


def kind_of(connection: Connection, structure_id: str) -> StructureKind:
    kind = connection.execute(
        select(structures.c.kind).where(structures.c.id == structure_id)
    ).scalar_one_or_none()
    return StructureKind.CARE if kind is None else StructureKind(kind)


def structure_kind(engine: Engine, structure_id: str) -> StructureKind:
    with engine.connect() as connection:
        return kind_of(connection, structure_id)


def listing(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(structures).order_by(structures.c.id)).all()
    return [{"id": r.id, "name": r.name, "kind": r.kind,
             "registeredAt": r.registered_at.isoformat()} for r in rows]


def load_seed(path: Path = SEED_FILE) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StructureError(f"{path}: unreadable seed file ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != 1:
        raise StructureError(f"{path}: not a version 1 {FORMAT} file")
    entries = []
    for index, entry in enumerate(data.get("structures") or []):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("id", "name", "kind")
        ):
            raise StructureError(f"{path}: structures[{index}]: id, name and kind expected")
        try:
            entries.append(checked(entry["id"], entry["name"], entry["kind"]))
        except StructureError as error:
            raise StructureError(f"{path}: structures[{index}]: {error}") from None
    return entries


def seed_structures(engine: Engine, now: dt.datetime, path: Path = SEED_FILE) -> int:
    """Register the structures of ``path`` (idempotent); returns how many it holds."""
    entries = load_seed(path)
    for entry in entries:
        register(engine, entry["id"], entry["name"], entry["kind"], now)
    return len(entries)
