"""ITI-67: DocumentReference search, for one patient, filtered by the access rules.

The SQL names the patient and the status first (ix_documents_search), then the filters; rows
come newest first in batches and each is kept only if the guard allows it (SEARCH for a
default search of current documents, READ when the query asks for superseded or archived
ones explicitly). Pages are cut by a keyset cursor (deposit time, id) in the next link, so a
page never re-reads the ones before it. The whole search is one line of the access log.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, false, or_, select

from policies import AccessMode, Action, Decision, Document
from wire import codes
from wire.mhd import SearchQuery, WireError, parse_search_query, search_bundle_bytes

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
# What a decision reads of a row (the stored resource comes as text, spliced into the page).
_DECIDED_ON = [column for column in documents.c if column.name != "resource"]
_OPS = {"ge": "__ge__", "le": "__le__", "gt": "__gt__", "lt": "__lt__", "eq": "__eq__"}


def parse_query(raw: str) -> SearchQuery:
    try:
        return parse_search_query(raw)
    except WireError as error:
        raise bad_request(error.code, f"Recherche mal formée / malformed search: "
                          f"{error.message}") from None


def _label_condition(label: str) -> ColumnElement[bool]:
    if label in codes.CONFIDENTIALITY_LEVELS:
        return documents.c.confidentiality == label
    column = {
        codes.MASQUE_PS: documents.c.masked,
        codes.INVISIBLE_PATIENT: documents.c.invisible_to_patient,
        codes.INVISIBLE_REPRESENTANTS_LEGAUX: documents.c.invisible_to_legal_reps,
    }.get(label)
    return column.is_(True) if column is not None else false()


def _filters(query: SearchQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        documents.c.ins == query.patient.ins, documents.c.status.in_(query.status),
    ]
    for values, column in ((query.classes, documents.c.class_code),
                           (query.types, documents.c.type_code),
                           (query.formats, documents.c.format_code),
                           (query.authors, documents.c.author_id)):
        if values:
            where.append(column.in_(values))
    for bounds, column in ((query.creation, documents.c.created_at),
                           (query.date, documents.c.deposited_at)):
        for op, moment in bounds:
            where.append(getattr(column, _OPS[op])(moment))
    if query.security_labels:
        where.append(or_(*(_label_condition(label) for label in query.security_labels)))
    if query.archived is not None:
        where.append(documents.c.archived.is_(query.archived))
    return where


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
        # A probe document no one authored tells whether the dossier is open to this actor.
        probe = guard.decide(connection, ins=ins, actor=actor, action=action, mode=mode,
                             document=Document("10", "11488-4", "", now), dossier=dossier)
        if probe.refused and probe.reason.code in DOSSIER_REFUSALS:
            guard.trace(ins, actor, Action.SEARCH, mode, probe)
            raise HostError(403, probe.reason.code.lower().replace("_", "-"),
                            probe.reason.message, issue_type="forbidden")
        # One decision per kind of row: a dossier holds many documents that the rules see
        # alike (same type, author, status, flags), so each is decided once per request.
        decided: dict[tuple[Any, ...], Decision] = {}

        def decide_row(row: Any) -> Decision:
            key = records.decision_key(row)
            if key not in decided:
                decided[key] = guard.decide(
                    connection, ins=ins, actor=actor, action=action, mode=mode,
                    document=records.policy_document(row), dossier=dossier)
            return decided[key]

        where = _filters(query)
        cursor = decode_cursor(query.cursor) if query.cursor else None
        batch = max(page_size * 2, 50)
        while len(results) <= page_size:
            page_where = list(where)
            if cursor is not None:
                at, last_id = cursor
                page_where.append(or_(documents.c.deposited_at < at, and_(
                    documents.c.deposited_at == at, documents.c.id < last_id)))
            rows = connection.execute(
                select(*_DECIDED_ON, cast(documents.c.resource, Text).label("text"))
                .where(*page_where)
                .order_by(documents.c.deposited_at.desc(), documents.c.id.desc()).limit(batch)
            ).all()
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
    resources = [(item[2], item[0]) for item in results]
    next_url = None
    if more:
        _, last_at, last_id = results[-1]
        next_query = dataclasses.replace(query, cursor=encode_cursor(last_at, last_id),
                                         count=page_size)
        next_url = f"{base}/DocumentReference?{next_query.to_query_string()}"
    guard.trace(ins, actor, Action.SEARCH, mode, first_allowed or probe)
    self_url = f"{base}/DocumentReference?{query.to_query_string()}"
    return search_bundle_bytes(resources, base=base, self_url=self_url, next_url=next_url)

