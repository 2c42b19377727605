"""ITI-67: DocumentReference search, for one patient, filtered by the access rules.

The SQL names the patient and the status first (ix_documents_search), then the filters; rows
come newest first in batches and each is kept only if the guard allows it (SEARCH for a
default search of current documents, READ when the query asks for superseded or archived
ones explicitly). Pages are cut by a keyset cursor (deposit time, id) in the next link, so a
page never re-reads the ones before it. The whole search is one line of the access log.

What a search costs the store is fixed: the dossier's state (one statement), the page (one
statement built and compiled once per shape of query, every value bound; the first batch is
the page and one row more), and the trace, written and committed on the same connection.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    and_,
    bindparam,
    cast,
    false,
    or_,
    select,
)

from policies import AccessMode, Action, Decision, Document
from wire import codes
from wire.mhd import SearchQuery, WireError, parse_search_query, search_bundle_bytes

from .. import audit
from ..actors import SessionActor
from ..errors import HostError, bad_request
from ..guard import dossier_state
from ..store.schema import documents
from . import records

# Refusals that concern the whole dossier (not one document): the search is refused (403).
DOSSIER_REFUSALS = frozenset({
    "BLOCKED", "MODE_NOT_FOR_ACTOR", "JUSTIFICATION_REQUIRED", "ACTION_NOT_IN_EMERGENCY_MODE",
    "UNKNOWN_PROFESSION", "DOSSIER_ABSENT", "DOSSIER_CLOSED", "BREAK_THE_GLASS_OPTED_OUT",
    "CENTRE_15_OPTED_OUT", "REGULATION_CENTRE_ONLY", "EXCLUDED_PRACTICE",
})
# What a decision reads of a row (`records.decision_key`, `records.policy_document`), the
# keyset of the cursor, and the stored resource as text, spliced into the page unparsed.
_SELECTED = [documents.c.id, documents.c.deposited_at, documents.c.status,
             documents.c.class_code, documents.c.type_code, documents.c.author_id,
             documents.c.archived, documents.c.masked, documents.c.invisible_to_patient,
             documents.c.visible_to_patient_from, documents.c.invisible_to_legal_reps,
             documents.c.confidentiality, cast(documents.c.resource, Text).label("text")]
# `records.decision_key` read by position from `_SELECTED` (status ... confidentiality, and
# the deposit time where the patient's visibility date makes it count): per row, cheaply.
_KEY_COLUMNS = slice(2, 12)
_DEPOSITED, _INVISIBLE_TO_PATIENT = 1, 8


def _decision_key(row: Any) -> tuple[Any, ...]:
    return (*row[_KEY_COLUMNS], row[_DEPOSITED] if row[_INVISIBLE_TO_PATIENT] else None)


_OPS = {"ge": "__ge__", "le": "__le__", "gt": "__gt__", "lt": "__lt__", "eq": "__eq__"}
_LABEL_FLAGS = {
    codes.MASQUE_PS: "masked",
    codes.INVISIBLE_PATIENT: "invisible_to_patient",
    codes.INVISIBLE_REPRESENTANTS_LEGAUX: "invisible_to_legal_reps",
}
_TOKEN_FILTERS = (("classes", "class_code"), ("types", "type_code"), ("formats", "format_code"),
                  ("authors", "author_id"))
_BOUND_FILTERS = (("creation", "created_at"), ("date", "deposited_at"))


def parse_query(raw: str) -> SearchQuery:
    try:
        return parse_search_query(raw)
    except WireError as error:
        raise bad_request(error.code, f"Recherche mal formée / malformed search: "
                          f"{error.message}") from None


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What the SQL of a query depends on (its values are bound, one parameter per value,
    so the compiled statement is used as is): one statement per shape, built once."""

    status: int  # how many statuses
    tokens: tuple[tuple[str, int], ...]  # (token filter, how many values)
    bounds: tuple[tuple[str, tuple[str, ...]], ...]  # (filter, its comparison operators)
    levels: int  # how many security-labels are confidentiality levels
    flags: tuple[str, ...]  # the flag columns some security-label names
    labels: bool  # security-label given at all (no known label: nothing matches)
    archived: bool | None


def _shape(query: SearchQuery) -> tuple[_Shape, dict[str, Any]]:
    params: dict[str, Any] = {"ins": query.patient.ins}
    params.update({f"status_{i}": value for i, value in enumerate(query.status)})
    tokens = []
    for name, _ in _TOKEN_FILTERS:
        values = getattr(query, name)
        if values:
            tokens.append((name, len(values)))
            params.update({f"{name}_{i}": value for i, value in enumerate(values)})
    bounds = []
    for name, _ in _BOUND_FILTERS:
        ops = getattr(query, name)
        if ops:
            bounds.append((name, tuple(op for op, _ in ops)))
            params.update({f"{name}_{i}": moment for i, (_, moment) in enumerate(ops)})
    levels = [label for label in query.security_labels if label in codes.CONFIDENTIALITY_LEVELS]
    params.update({f"level_{i}": level for i, level in enumerate(levels)})
    flags = tuple(sorted({_LABEL_FLAGS[label] for label in query.security_labels
                          if label in _LABEL_FLAGS}))
    return _Shape(len(query.status), tuple(tokens), tuple(bounds), len(levels), flags,
                  bool(query.security_labels), query.archived), params


def _any_of(column: Any, name: str, count: int) -> ColumnElement[bool]:
    return column.in_([bindparam(f"{name}_{i}", type_=column.type) for i in range(count)])


@functools.lru_cache(maxsize=512)
def _statement(shape: _Shape, after_cursor: bool) -> Any:
    """The page's SELECT for queries of ``shape``: the patient and the status first
    (ix_documents_search), then the filters, newest first, ``limit`` rows (after the keyset
    ``at``, ``last_id`` when ``after_cursor``)."""
    where: list[ColumnElement[bool]] = [
        documents.c.ins == bindparam("ins", type_=documents.c.ins.type),
        _any_of(documents.c.status, "status", shape.status),
    ]
    columns = dict(_TOKEN_FILTERS)
    for name, count in shape.tokens:
        where.append(_any_of(documents.c[columns[name]], name, count))
    bound_columns = dict(_BOUND_FILTERS)
    for name, ops in shape.bounds:
        column = documents.c[bound_columns[name]]
        for i, op in enumerate(ops):
            where.append(getattr(column, _OPS[op])(bindparam(f"{name}_{i}", type_=column.type)))
    if shape.labels:
        matches: list[ColumnElement[bool]] = [documents.c[flag].is_(True) for flag in shape.flags]
        if shape.levels:
            matches.insert(0, _any_of(documents.c.confidentiality, "level", shape.levels))
        where.append(or_(*matches) if matches else false())
    if shape.archived is not None:
        where.append(documents.c.archived.is_(shape.archived))
    if after_cursor:
        at = bindparam("at", type_=documents.c.deposited_at.type)
        where.append(or_(documents.c.deposited_at < at, and_(
            documents.c.deposited_at == at,
            documents.c.id < bindparam("last_id", type_=documents.c.id.type))))
    return (select(*_SELECTED).where(*where)
            .order_by(documents.c.deposited_at.desc(), documents.c.id.desc())
            .limit(bindparam("limit", type_=Integer)))


def encode_cursor(deposited_at: dt.datetime, doc_id: str) -> str:
    raw = f"{deposited_at.astimezone(dt.UTC).isoformat()}|{doc_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        moment, _, doc_id = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().partition(
            "|")
        when = dt.datetime.fromisoformat(moment)
        if when.tzinfo is None or not doc_id:
            raise ValueError
        return when, doc_id
    except (ValueError, binascii.Error, UnicodeError):
        raise bad_request("invalid-search", "_cursor is not one this host gave") from None


def _action(query: SearchQuery) -> Action:
    default = query.status == ("current",) and query.archived is not True
    return Action.SEARCH if default else Action.READ


def dossier_probe(guard: Any, connection: Any, ins: str, actor: SessionActor,
                  mode: AccessMode, action: Action, dossier: Any, now: dt.datetime) -> Decision:
    """Whether the dossier itself is open to ``actor`` for ``action`` (not traced): a probe
    document no one authored, so only the dossier-wide rules can refuse it."""
    return guard.decide(connection, ins=ins, actor=actor, action=action, mode=mode,
                        document=Document("10", "11488-4", "", now), dossier=dossier)


# Refusals that mean the actor may consult nobody's documents here (their own excepted).
_NO_GROUND = frozenset({"NO_AUTHORISATION", "AUTHORISATION_EXPIRED"})


def may_search(state: Any, actor: SessionActor, mode: AccessMode, ins: str) -> bool:
    """Whether a default search of ``ins`` by ``actor`` would find anything they may see
    (decided, not traced): a search asked ahead is made only then, so it never adds a
    refusal to the patient's history. Without a ground to consult, an author still sees
    their own documents."""
    guard, now = state.guard, state.clock()
    with guard.engine.connect() as connection:
        dossier = dossier_state(connection, ins, actor.id_nat_ps, now)
        probe = dossier_probe(guard, connection, ins, actor, mode, Action.SEARCH, dossier, now)
        if not probe.refused:
            return True
        if probe.reason.code in DOSSIER_REFUSALS:
            return False
        if probe.reason.code not in _NO_GROUND:
            return True  # refused for the probe's type only: the search decides per document
        with audit.guard_internal():  # what the decision needs: is there anything of theirs
            own = connection.execute(select(documents.c.id).where(
                documents.c.ins == ins, documents.c.author_id == actor.id_nat_ps).limit(1)
            ).first()
    return own is not None


def search(state: Any, actor: SessionActor, mode: AccessMode, query: SearchQuery, *,
           base: str) -> bytes:
    """The searchset Bundle (JSON bytes) of what ``actor`` may see; HostError 403 when the
    dossier itself is closed to them."""
    guard, now = state.guard, state.clock()
    ins = query.patient.ins
    action = _action(query)
    page_size = min(query.count or state.settings.page_size, state.settings.page_size)
    results: list[tuple[str, dt.datetime, str]] = []  # (resource JSON, deposited, id)
    first_allowed: Decision | None = None
    more = False
    with guard.engine.connect() as connection:
        dossier = dossier_state(connection, ins, actor.id_nat_ps, now)
        probe = dossier_probe(guard, connection, ins, actor, mode, action, dossier, now)
        if probe.refused and probe.reason.code in DOSSIER_REFUSALS:
            guard.trace(ins, actor, Action.SEARCH, mode, probe, connection=connection)
            raise HostError(403, probe.reason.code.lower().replace("_", "-"),
                            probe.reason.message, issue_type="forbidden")
        # One decision per kind of row: a dossier holds many documents that the rules see
        # alike (same type, author, status, flags), so each is decided once per request.
        decided: dict[tuple[Any, ...], Decision] = {}

        def decide_row(row: Any) -> Decision:
            key = _decision_key(row)
            if key not in decided:
                decided[key] = guard.decide(
                    connection, ins=ins, actor=actor, action=action, mode=mode,
                    document=records.policy_document(row), dossier=dossier)
            return decided[key]

        cursor = decode_cursor(query.cursor) if query.cursor else None
        shape, params = _shape(query)
        # The first batch is what a page needs when every row is allowed (one more tells
        # whether there is a next page); refusals call for more, in larger batches.
        batch = page_size + 1
        while len(results) <= page_size:
            if cursor is not None:
                params["at"], params["last_id"] = cursor
            params["limit"] = batch
            rows = connection.execute(_statement(shape, cursor is not None), params).all()
            for row in rows:
                cursor = (row.deposited_at, row.id)
                decision = decide_row(row)
                if decision.allowed:
                    if len(results) == page_size:
                        more = True
                        break
                    first_allowed = first_allowed or decision
                    results.append((row.text, row.deposited_at, row.id))
            if more or len(rows) < batch:
                break
            batch = max(page_size * 2, 50)
        # The whole search is one access, traced on this connection (it only read here).
        guard.trace(ins, actor, Action.SEARCH, mode, first_allowed or probe,
                    connection=connection)
    resources = [(item[2], item[0]) for item in results]
    next_url = None
    if more:
        _, last_at, last_id = results[-1]
        next_query = dataclasses.replace(query, cursor=encode_cursor(last_at, last_id),
                                         count=page_size)
        next_url = f"{base}/DocumentReference?{next_query.to_query_string()}"
    self_url = f"{base}/DocumentReference?{query.to_query_string()}"
    return search_bundle_bytes(resources, base=base, self_url=self_url, next_url=next_url)

