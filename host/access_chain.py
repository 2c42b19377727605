"""The tamper-evident access history: a SHA-256 hash chain per patient over `access_log`.

Each entry carries ``seq`` (1, 2, ... per patient), ``prev_hash`` (the hash of the patient's
previous entry, `GENESIS` for the first) and ``hash`` = SHA-256 hex of `canonical(entry)`
followed by ``prev_hash``. ``seq`` is deliberately left out of the hash: an entry's position
is pinned by the links, so renumbering entries shows as "out of order" or "missing" rather
than as an edit. The chain stays per patient, so the patient remains the distribution key.

The head of each chain (`access_chain`: last seq, its prev_hash and hash) is advanced by one
upsert that computes the new hash inside the database (`sha256_hex`): the row lock it takes
(PostgreSQL) or the single writer (SQLite) serialises writers of one patient, so the chain
cannot fork. On PostgreSQL the upsert and the entry's insert are one statement (a
data-modifying WITH); SQLite, which has none, runs the two in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, String, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from .store.engine import SQLITE_SHA256
from .store.schema import access_chain, access_log

GENESIS = "0" * 64  # the prev_hash of a patient's first entry

# The hashed fields, in this order; seq, prev_hash and hash are not among them (see above).
FIELDS = ("ins", "id", "at", "actor_kind", "actor_id", "actor_name", "profession",
          "structure_id", "action", "mode", "justification", "document_id", "outcome",
          "reason")
# Hashed after `FIELDS` only when set: entries written before they existed keep their hash
# (migration 0010: how the professional authenticated, card or e-CPS).
OPTIONAL_FIELDS = ("auth_means",)


def canonical(entry: Mapping[str, Any]) -> str:
    """The entry's fields as one JSON array in `FIELDS` order (times in UTC, microseconds),
    then the `OPTIONAL_FIELDS` that are set."""
    values = [
        entry[name].astimezone(dt.UTC).isoformat(timespec="microseconds") if name == "at"
        else entry[name] for name in FIELDS
    ]
    values += [[name, entry[name]] for name in OPTIONAL_FIELDS if entry.get(name) is not None]
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash(entry: Mapping[str, Any], prev_hash: str) -> str:
    return sha256_text(canonical(entry) + prev_hash)


class sha256_hex(FunctionElement[str]):
    """SHA-256 hex of a text expression (UTF-8), computed by the database."""

    type = String()
    inherit_cache = True
    name = "sha256_hex"


@compiles(sha256_hex, "postgresql")
def _sha256_postgresql(element: sha256_hex, compiler: SQLCompiler, **kw: Any) -> str:
    return f"encode(sha256(convert_to({compiler.process(element.clauses, **kw)}, 'UTF8')), 'hex')"


@compiles(sha256_hex, "sqlite")
def _sha256_sqlite(element: sha256_hex, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_SHA256}({compiler.process(element.clauses, **kw)})"


def _upsert_head(dialect: str) -> Any:
    """The head's upsert, built once per dialect with bound parameters (``ins``, ``first``:
    the hash of a first entry, ``body``: the canonical entry), so that a trace compiles
    nothing and builds no statement."""
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(access_chain)
    return (
        upsert.values(ins=bindparam("ins", type_=String), seq=1, prev_hash=GENESIS,
                      hash=bindparam("first", type_=String))
        .on_conflict_do_update(
            index_elements=[access_chain.c.ins],
            # Right-hand sides read the row as it was: the old head becomes prev_hash.
            set_={"seq": access_chain.c.seq + 1, "prev_hash": access_chain.c.hash,
                  "hash": sha256_hex(bindparam("body", type_=String) + access_chain.c.hash)},
        )
        .returning(access_chain.c.seq, access_chain.c.prev_hash, access_chain.c.hash)
    )


_UPSERT_HEAD = {dialect: _upsert_head(dialect) for dialect in ("postgresql", "sqlite")}
_INSERT_ENTRY = insert(access_log)
# PostgreSQL: both in one statement (one round trip), the entry inserted from what the
# head's upsert returns (a data-modifying WITH runs once, before the outer INSERT reads it).
_HEAD = _UPSERT_HEAD["postgresql"].cte("head")
_APPEND_POSTGRESQL = insert(access_log).from_select(
    [*FIELDS, *OPTIONAL_FIELDS, "seq", "prev_hash", "hash"],
    select(*(bindparam(name, type_=access_log.c[name].type)
             for name in (*FIELDS, *OPTIONAL_FIELDS)),
           _HEAD.c.seq, _HEAD.c.prev_hash, _HEAD.c.hash),
).returning(access_log.c.seq)  # exactly one row, or the append fails


def append(connection: Connection, entry: dict[str, Any]) -> None:
    """Append ``entry`` (every `FIELDS` value, `OPTIONAL_FIELDS` when set) to its
    patient's chain, in the caller's transaction: advance the head (one upsert, which locks
    it) then insert the row."""
    entry = {name: None for name in OPTIONAL_FIELDS} | entry
    body = canonical(entry)
    head_params = {"first": sha256_text(body + GENESIS), "body": body}
    if connection.dialect.name == "postgresql":
        connection.execute(_APPEND_POSTGRESQL, {**entry, **head_params}).one()
        return
    head = connection.execute(_UPSERT_HEAD[connection.dialect.name], {
        "ins": entry["ins"], **head_params,
    }).one()
    connection.execute(_INSERT_ENTRY, {
        **entry, "seq": head.seq, "prev_hash": head.prev_hash, "hash": head.hash,
    })


Problem = Literal["edited", "missing", "out of order"]


@dataclass(frozen=True)
class ChainBreak:
    """The first bad entry: its seq, its time (None when the entry itself is gone and
    nothing follows it) and what is wrong with it."""

    seq: int
    at: dt.datetime | None
    problem: Problem

    def describe(self) -> str:
        when = self.at.isoformat() if self.at else "unknown time"
        if self.problem == "missing":
            where = f"before the entry of {when}" if self.at else "at the end of the log"
            return f"entry {self.seq} is missing ({where})"
        return f"entry {self.seq} of {when} was {self.problem}" if self.problem == "edited" \
            else f"entry {self.seq} of {when} is out of order"


@dataclass(frozen=True)
class Verdict:
    entries: int
    first_break: ChainBreak | None

    @property
    def whole(self) -> bool:
        return self.first_break is None


def verify(connection: Connection, ins: str) -> Verdict:
    """Walk the patient's chain in seq order and name the first bad entry, if any."""
    rows = connection.execute(
        select(access_log).where(access_log.c.ins == ins).order_by(access_log.c.seq)
    ).all()
    head = connection.execute(
        select(access_chain.c.seq, access_chain.c.hash).where(access_chain.c.ins == ins)
    ).one_or_none()
    hashes = {row.hash for row in rows}
    expected_seq, expected_prev = 1, GENESIS
    for row in rows:
        fields = row._mapping
        if entry_hash(fields, row.prev_hash) != row.hash:
            return Verdict(len(rows), ChainBreak(row.seq, row.at, "edited"))
        if row.seq != expected_seq:  # a gap in the numbering: entries were deleted
            return Verdict(len(rows), ChainBreak(expected_seq, row.at, "missing"))
        if row.prev_hash != expected_prev:
            # Linked to another entry still in the log: moved; to none: its predecessor went.
            problem: Problem = "out of order" if row.prev_hash in hashes else "missing"
            return Verdict(len(rows), ChainBreak(row.seq, row.at, problem))
        expected_seq, expected_prev = row.seq + 1, row.hash
    return Verdict(len(rows), _check_head(head, rows, expected_seq - 1))


def _check_head(head: Any, rows: list[Any], last_seq: int) -> ChainBreak | None:
    """The head remembers the last entry the host wrote: entries cut off the end, or
    forged after it, show here."""
    if head is None and not rows:
        return None
    if head is None or head.seq < last_seq:  # entries the host never wrote
        first_forged = rows[0] if head is None else rows[head.seq]
        return ChainBreak(first_forged.seq, first_forged.at, "edited")
    if head.seq > last_seq:
        return ChainBreak(last_seq + 1, None, "missing")
    if head.hash != rows[-1].hash:
        return ChainBreak(last_seq, rows[-1].at, "edited")
    return None
