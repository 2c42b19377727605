"""ITI-67: DocumentReference search, for one patient, filtered by the access rules.

The SQL names the patient and the status first (ix_documents_search), then the filters; rows
come newest first in batches and each is kept only if the guard allows it (SEARCH for a
default search of current documents, READ when the query asks for superseded or archived
ones explicitly). Pages are cut by a keyset cursor (deposit time, id) in the next link, so a
page never re-reads the ones before it. The whole search is one line of the access log.

What a search costs the store is fixed: the dossier's state (one statement), the page (one
statement built and compiled once per shape of query, every value bound; the first batch is
the page and one row more), and the trace, written and committed on the same connection.

The parameters are `wire.search.PARAMETERS` (docs/wire-search.md). Tokens keep their system:
the store keeps codes, and each stored code has one system (the deposit checked it against the
matrix or `wire.codes`), so ``system|code`` is resolved to the codes it can match before the
SQL. Elements the store keeps only inside the resource (context.event, context.related, the
author's names, relatesTo's identifier) are matched on the row's JSON after the SQL.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import json
import unicodedata
from collections.abc import Callable
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
from wire.search import (
    Criterion,
    DateBound,
    ParsedSearch,
    SearchError,
    SearchQuery,
    Token,
    parse_search,
    parse_search_query,
    search_bundle_bytes,
)

from .. import audit
from ..actors import SessionActor
from ..errors import HostError, operation_outcome
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


_LABEL_FLAGS = {
    codes.MASQUE_PS: "masked",
    codes.INVISIBLE_PATIENT: "invisible_to_patient",
    codes.INVISIBLE_REPRESENTANTS_LEGAUX: "invisible_to_legal_reps",
}


def _fixed(system: str) -> Callable[[Any, str], str | None]:
    return lambda matrix, code: system


# Token parameters on one column: the column, and the system a stored code has (the store
# keeps codes; each code has one system, which the deposit checked).
_TOKEN_COLUMNS: dict[str, tuple[str, Callable[[Any, str], str | None]]] = {
    "category": ("class_code", _fixed(codes.CLASS_SYSTEM)),
    "type": ("type_code", lambda matrix, code: getattr(
        matrix.document_types.get(code), "system", None)),
    "format": ("format_code", lambda matrix, code: getattr(
        codes.FORMATS.get(code), "system", None)),
    "facility": ("facility_type", _fixed(codes.FACILITY_SYSTEM)),
    "setting": ("practice_setting", _fixed(codes.PRACTICE_SYSTEM)),
    # The author's identifier system is checked on the resource (`_AUTHOR`): any here.
    "author": ("author_id", lambda matrix, code: None),
    "author.identifier": ("author_id", lambda matrix, code: None),
}
_AUTHOR = frozenset({"author", "author.identifier"})
# Date parameters: (start column, end column) of the target's interval; one column: an instant.
_DATE_COLUMNS = {
    "creation": ("created_at", "created_at"), "date": ("deposited_at", "deposited_at"),
    "period": ("service_start", "service_stop"),
    "period-start": ("service_start", "service_start"),
    "period-end": ("service_stop", "service_stop"),
}
# Parameters on elements the store keeps only in the resource: matched on its JSON, row by
# row, after the SQL (they narrow a patient's documents, never widen them).
_RESOURCE_FILTERS = frozenset({"event", "related", "author.given", "author.family"})


def parse_query(raw: str) -> SearchQuery:
    """A query the host writes itself (no one to tell about ignored parameters)."""
    try:
        return parse_search_query(raw)
    except SearchError as error:
        raise SearchRefused(error) from None


class SearchRefused(HostError):
    """A refused search: the OperationOutcome names the parameter (issue.expression)."""

    def __init__(self, error: SearchError) -> None:
        super().__init__(400, error.code, error.message, issue_type=error.issue)
        self.parameter = error.parameter

    def outcome(self) -> dict[str, Any]:
        return _outcome(self.code, self.message, self.issue_type, "error", self.parameter)


def _outcome(code: str, message: str, issue_type: str, severity: str,
             parameter: str | None) -> dict[str, Any]:
    """The host's OperationOutcome, its issue naming ``parameter`` (issue.expression)."""
    return operation_outcome(code, message, issue_type=issue_type, severity=severity,
                             expression=parameter)


def parse_request(raw: str, prefer: str | None) -> ParsedSearch:
    """The client's query; ``Prefer: handling=strict`` makes an unknown parameter a 400
    (FHIR R4 search), lenient (the default) ignores it and says so in the Bundle."""
    strict = any(part.strip().lower() == "handling=strict" for part in (prefer or "").split(","))
    try:
        return parse_search(raw, strict=strict)
    except SearchError as error:
        raise SearchRefused(error) from None


def ignored_outcome(ignored: tuple[str, ...]) -> dict[str, Any] | None:
    """The search.mode = outcome entry telling which parameters were ignored."""
    if not ignored:
        return None
    return {"resourceType": "OperationOutcome", "issue": [
        _outcome("unknown-search-parameter", f"Paramètre inconnu ignoré / unknown parameter "
                 f"ignored: {name}", "not-supported", "warning", name)["issue"][0]
        for name in ignored]}


# -- the SQL: one statement per shape of query ---------------------------------------------------

Clause = tuple[Any, ...]  # hashable: what the SQL of one criterion depends on (not its values)


def _date_clause(op: str, name: str, start: Any, end: Any, period: bool) -> Any:
    """FHIR R4 date search (search.html#prefix): the target is ``[start, end]`` (an instant
    when one column; an open end of a period is infinite), the value ``[lo, hi)``."""
    lo = bindparam(f"{name}_lo", type_=start.type)
    hi = bindparam(f"{name}_hi", type_=start.type)

    def open_or(column: Any, test: Any) -> Any:
        return or_(column.is_(None), test) if period else test

    has = or_(start.is_not(None), end.is_not(None)) if period else start.is_not(None)
    inside = and_(start >= lo, end < hi)
    above = and_(has, open_or(end, end >= hi))  # the part above the value meets the target
    below = and_(has, open_or(start, start < lo))
    return {
        "eq": inside, "ne": and_(has, or_(open_or(start, start < lo), open_or(end, end >= hi))),
        "gt": above, "lt": below, "ge": or_(above, inside), "le": or_(below, inside),
        "sa": start >= hi, "eb": end < lo,
    }[op]


def _clause_sql(index: int, clause: Clause) -> ColumnElement[bool]:
    kind = clause[0]
    name = f"c{index}"
    if kind == "in":
        _, column, count = clause
        return _any_of(documents.c[column], name, count) if count else false()
    if kind == "identifier":
        _, uids, ids = clause
        matches = ([_any_of(documents.c.unique_id, f"{name}_u", uids)] if uids else []) + (
            [_any_of(documents.c.id, f"{name}_i", ids)] if ids else [])
        return or_(*matches) if matches else false()
    if kind == "labels":
        _, levels, flags = clause
        matches = [documents.c[flag].is_(True) for flag in flags]
        if levels:
            matches.insert(0, _any_of(documents.c.confidentiality, name, levels))
        return or_(*matches) if matches else false()
    _, start, end, ops = clause  # "date": the values OR'ed
    period = start != end
    return or_(*(_date_clause(op, f"{name}_{i}", documents.c[start], documents.c[end], period)
                 for i, op in enumerate(ops)))


def _token_codes(tokens: tuple[Any, ...], system_of: Callable[[str], str | None]) -> list[str]:
    """The codes a stored value may equal: ``system|code`` only when ``code``'s system is it
    (a ``system_of`` of None: any, checked elsewhere); ``|code`` never (every stored code has
    a system)."""
    kept = []
    for token in tokens:
        system = system_of(token.code)
        if token.system is None or (token.system and system in (None, token.system)):
            kept.append(token.code)
    return kept


def _clause(index: int, criterion: Criterion, matrix: Any, params: dict[str, Any]
            ) -> Clause | None:
    """The SQL clause of ``criterion`` (its values bound into ``params``), or None when it is
    matched on the resource instead."""
    name, values = f"c{index}", criterion.values
    if criterion.name in _RESOURCE_FILTERS or (criterion.name == "relatesto"
                                               and criterion.modifier):
        return None
    if criterion.name in _DATE_COLUMNS:
        start, end = _DATE_COLUMNS[criterion.name]
        for i, bound in enumerate(values):
            assert isinstance(bound, DateBound)
            params[f"{name}_{i}_lo"], params[f"{name}_{i}_hi"] = bound.low, bound.high
        return ("date", start, end, tuple(v.op for v in values if isinstance(v, DateBound)))
    if criterion.name == "relatesto":  # DocumentReference/<id> or <id>: the replaced one
        kept = [str(v).removeprefix("DocumentReference/") for v in values]
        params.update({f"{name}_{i}": value for i, value in enumerate(kept)})
        return ("in", "replaces_id", len(kept))
    tokens = tuple(_as_token(v) for v in values)
    if criterion.name == "identifier":
        uids = _token_codes(tokens, lambda code: codes.RFC3986)
        ids = _token_codes(tokens, lambda code: codes.DOCUMENT_ID_SYSTEM)
        params.update({f"{name}_u_{i}": value for i, value in enumerate(uids)})
        params.update({f"{name}_i_{i}": value for i, value in enumerate(ids)})
        return ("identifier", len(uids), len(ids))
    if criterion.name == "security-label":
        levels = _token_codes(tokens, lambda code: getattr(
            codes.CONFIDENTIALITY_LEVELS.get(code), "system", None))
        flags = _token_codes(tokens, lambda code: codes.VISIBILITY_SYSTEM
                             if code in _LABEL_FLAGS else None)
        params.update({f"{name}_{i}": value for i, value in enumerate(levels)})
        return ("labels", len(levels),
                tuple(sorted({_LABEL_FLAGS[f] for f in flags if f in _LABEL_FLAGS})))
    column, system_of = _TOKEN_COLUMNS[criterion.name]
    kept = _token_codes(tokens, lambda code: system_of(matrix, code))
    params.update({f"{name}_{i}": value for i, value in enumerate(kept)})
    return ("in", column, len(kept))


def _as_token(value: Any) -> Token:
    """A token value; ``author`` (a reference) also takes ``Practitioner/<idNat_PS>`` or the
    bare idNat_PS, and ``system|value`` as the PDSm search page names it a token."""
    if isinstance(value, Token):
        return value
    text = str(value)
    if "|" in text:
        system, _, code = text.partition("|")
        return Token(system, code)
    return Token(None, text.removeprefix("Practitioner/"))


def _shape(query: SearchQuery, matrix: Any) -> tuple[Any, dict[str, Any]]:
    """What the SQL of ``query`` depends on (its values are bound, one parameter per value,
    so the compiled statement is used as is): one statement per shape, built once."""
    params: dict[str, Any] = {"ins": query.patient.ins}
    params.update({f"status_{i}": value for i, value in enumerate(query.status)})
    clauses = []
    for index, criterion in enumerate(query.criteria):
        clause = _clause(index, criterion, matrix, params)
        if clause is not None:
            clauses.append((index, clause))
    return (len(query.status), tuple(clauses), query.archived), params


def _any_of(column: Any, name: str, count: int) -> ColumnElement[bool]:
    return column.in_([bindparam(f"{name}_{i}", type_=column.type) for i in range(count)])


@functools.lru_cache(maxsize=512)
def _statement(shape: Any, after_cursor: bool) -> Any:
    """The page's SELECT for queries of ``shape``: the patient and the status first
    (ix_documents_search), then the filters, newest first, ``limit`` rows (after the keyset
    ``at``, ``last_id`` when ``after_cursor``)."""
    statuses, clauses, archived = shape
    where: list[ColumnElement[bool]] = [
        documents.c.ins == bindparam("ins", type_=documents.c.ins.type),
        _any_of(documents.c.status, "status", statuses) if statuses else false(),
    ]
    where += [_clause_sql(index, clause) for index, clause in clauses]
    if archived is not None:
        where.append(documents.c.archived.is_(archived))
    if after_cursor:
        at = bindparam("at", type_=documents.c.deposited_at.type)
        where.append(or_(documents.c.deposited_at < at, and_(
            documents.c.deposited_at == at,
            documents.c.id < bindparam("last_id", type_=documents.c.id.type))))
    return (select(*_SELECTED).where(*where)
            .order_by(documents.c.deposited_at.desc(), documents.c.id.desc())
            .limit(bindparam("limit", type_=Integer)))


# -- the criteria matched on the stored resource --------------------------------------------------


def _fold(text: str) -> str:
    """FHIR string search: case and accents do not count."""
    return "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c)).casefold()


def _string_match(modifier: str, wanted: str, found: str) -> bool:
    if modifier == "exact":
        return found == wanted
    if modifier == "contains":
        return _fold(wanted) in _fold(found)
    return _fold(found).startswith(_fold(wanted))


def _codings(concepts: Any) -> list[tuple[str | None, str]]:
    out = []
    for concept in concepts if isinstance(concepts, list) else []:
        for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                out.append((coding.get("system"), coding["code"]))
    return out


def _token_match(token: Token, system: Any, code: Any) -> bool:
    if token.code != code:
        return False
    return token.system is None or token.system == (system or "")


def _author_names(resource: dict[str, Any], part: str) -> list[str]:
    names: list[str] = []
    for contained in resource.get("contained", []):
        if isinstance(contained, dict) and contained.get("resourceType") == "Practitioner":
            for name in contained.get("name", []):
                value = name.get(part) if isinstance(name, dict) else None
                names += [value] if isinstance(value, str) else [
                    v for v in value or [] if isinstance(v, str)]
    return names


def _criterion_matches(criterion: Criterion, resource: dict[str, Any]) -> bool:
    context = resource.get("context") if isinstance(resource.get("context"), dict) else {}
    assert isinstance(context, dict)
    if criterion.name in ("author.given", "author.family"):
        found = _author_names(resource, criterion.name.partition(".")[2])
        return any(_string_match(criterion.modifier, str(wanted), name)
                   for wanted in criterion.values for name in found)
    if criterion.name in _AUTHOR:  # the author's identifier, with its system
        identifiers = [i for c in resource.get("contained", []) if isinstance(c, dict)
                       and c.get("resourceType") == "Practitioner"
                       for i in c.get("identifier", []) if isinstance(i, dict)]
        return any(_token_match(_as_token(t), i.get("system"), i.get("value"))
                   for t in criterion.values for i in identifiers)
    if criterion.name == "event":
        codings = _codings(context.get("event"))
        return any(_token_match(t, s, c) for t in criterion.values if isinstance(t, Token)
                   for s, c in codings)
    if criterion.name == "relatesto":  # :identifier
        targets = [r.get("target", {}).get("identifier", {})
                   for r in resource.get("relatesTo", []) if isinstance(r, dict)]
        return any(_token_match(t, i.get("system"), i.get("value"))
                   for t in criterion.values if isinstance(t, Token)
                   for i in targets if isinstance(i, dict))
    related = [r for r in context.get("related", []) if isinstance(r, dict)]  # "related"
    if criterion.modifier:
        return any(_token_match(t, i.get("system"), i.get("value"))
                   for t in criterion.values if isinstance(t, Token)
                   for i in (r.get("identifier") for r in related) if isinstance(i, dict))
    return any(r.get("reference") == wanted for wanted in criterion.values for r in related)


def _resource_filter(query: SearchQuery) -> Callable[[str], bool] | None:
    """The criteria the SQL cannot match, as one test of a row's resource text."""
    kept = [c for c in query.criteria if c.name in _RESOURCE_FILTERS
            or (c.name == "relatesto" and c.modifier)
            or (c.name in _AUTHOR and any(_as_token(v).system is not None for v in c.values))]
    if not kept:
        return None

    def matches(text: str) -> bool:
        resource = json.loads(text)
        return all(_criterion_matches(criterion, resource) for criterion in kept)

    return matches


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
        raise SearchRefused(SearchError(
            "invalid-search", "_cursor : curseur inconnu / not a cursor this host gave",
            "_cursor", "value")) from None


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
           base: str, ignored: tuple[str, ...] = ()) -> bytes:
    """The searchset Bundle (JSON bytes) of what ``actor`` may see, with an outcome entry
    naming the ``ignored`` parameters; HostError 403 when the dossier itself is closed to
    them."""
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
        shape, params = _shape(query, guard.policy.matrix)
        on_resource = _resource_filter(query)
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
                if on_resource is not None and not on_resource(row.text):
                    continue
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
    return search_bundle_bytes(resources, base=base, self_url=self_url, next_url=next_url,
                               outcome=ignored_outcome(ignored))

