"""A DMP's own row: creation with the first-access code, closure, reactivation, and the
documents the existence test and the lifecycle answer with. Decisions are the caller's (the
guard); these functions only read and write."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from policies import Action, Dossier, DossierStatus

from .. import notify_events
from ..errors import bad_request
from ..guard import dossier_state
from ..store.schema import access_log, dossiers
from ..text import refuse_control_characters

MAX_REASON = 200
# 32 unambiguous characters (no 0/O, 1/I): 12 of them = 60 bits, read aloud or typed easily.
ACCESS_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ACCESS_CODE_LENGTH = 12


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat().replace(
        "+00:00", "Z")


def access_code_digest(code: str) -> str:
    """The stored form of a first-access code (SHA-256 hex of the code without separators)."""
    plain = code.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256(plain.encode("ascii")).hexdigest()


def new_access_code() -> str:
    code = "".join(secrets.choice(ACCESS_CODE_ALPHABET) for _ in range(ACCESS_CODE_LENGTH))
    return "-".join(code[i:i + 4] for i in range(0, ACCESS_CODE_LENGTH, 4))


def dossier_row(connection: Connection, ins: str) -> Row[Any] | None:
    return connection.execute(select(dossiers).where(dossiers.c.ins == ins)).one_or_none()


def consents_document(row: Row[Any]) -> dict[str, Any]:
    return {
        "consentAt": iso(row.consent_at),
        "regulationCentre": row.consent_regulation_centre,
        "breakTheGlass": row.consent_break_the_glass,
        "emergencySeesMasked": row.consent_emergency_sees_masked,
    }


def last_consultation(connection: Connection, ins: str, actor_id: str) -> dt.datetime | None:
    """When this professional last consulted this dossier (an allowed search or read in
    its access log), for the ANS's incremental consultation: what is new since then."""
    found = connection.execute(
        select(func.max(access_log.c.at)).where(
            access_log.c.ins == ins, access_log.c.actor_id == actor_id,
            access_log.c.actor_kind == "professional", access_log.c.outcome == "allowed",
            access_log.c.action.in_((Action.SEARCH.value, Action.READ.value)))).scalar()
    return found if isinstance(found, dt.datetime) else None


def existence_document(row: Row[Any] | None, state: Dossier) -> dict[str, Any]:
    """The existence test's answer for the caller whose `dossier_state` is ``state``."""
    return {
        "status": state.status.value,
        "closedAt": None if row is None else iso(row.closed_at),
        "closureReason": None if row is None else row.closure_reason,
        "retentionUntil": None if row is None else iso(row.retention_until),
        "authorization": state.authorization.value,
        "medecinTraitant": state.is_medecin_traitant,
    }


def create(connection: Connection, ins: str, created_by: str, consents: dict[str, bool],
           code: str, now: dt.datetime, email: str | None = None,
           creator: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Insert the DMP (the caller decided it may); its creation answer with the first-access
    code shown this once, or None when a concurrent request created it first. ``email``:
    the patient's address (channel email), to which the creation is notified (``creator``:
    who, for the message); the creator's access is their first one."""
    try:
        with connection.begin_nested():
            connection.execute(insert(dossiers).values(
                ins=ins, status=DossierStatus.OPEN.value, created_at=now,
                created_by=created_by, consent_at=now,
                consent_regulation_centre=consents["regulationCentre"],
                consent_break_the_glass=consents["breakTheGlass"],
                consent_emergency_sees_masked=consents["emergencySeesMasked"],
                secret_sha256=access_code_digest(code),
            ))
    except IntegrityError:
        return None
    notify_events.first_time(connection, ins, "access", created_by, now)
    if email is not None:
        notify_events.set_contact(connection, ins, now, email=email, channel="email")
        notify_events.add_if_contact(connection, ins, notify_events.DOSSIER_CREATED,
                                     {"action": "create", "mode": "normal", **(creator or {})},
                                     now)
    row = dossier_row(connection, ins)
    assert row is not None
    return {"ins": ins, "identifier": ins, "accessCode": code, "createdAt": iso(row.created_at),
            "createdBy": row.created_by, "consents": consents_document(row)}


def already_exists(
    connection: Connection, ins: str, id_nat_ps: str, now: dt.datetime
) -> dict[str, Any]:
    """The answer to creating a DMP that exists: its state, no new code."""
    row = dossier_row(connection, ins)
    assert row is not None
    state = dossier_state(connection, ins, id_nat_ps, now)
    return {
        "code": "already-exists",
        "ins": ins,
        "identifier": ins,
        "createdAt": iso(row.created_at),
        "createdBy": row.created_by,
        "consents": consents_document(row),
        **existence_document(row, state),
    }


def close(
    connection: Connection, ins: str, reason: str, now: dt.datetime, retention: dt.timedelta
) -> dict[str, Any]:
    """Close an open DMP (the caller decided it may): kept until ``now + retention``.
    Nothing else changes: documents, authorizations and the log stay as they are."""
    connection.execute(update(dossiers).where(dossiers.c.ins == ins).values(
        status=DossierStatus.CLOSED.value, closed_at=now, closure_reason=reason,
        retention_until=now + retention,
    ))
    row = dossier_row(connection, ins)
    assert row is not None
    return {"ins": ins, "status": row.status, "closedAt": iso(row.closed_at),
            "closureReason": row.closure_reason, "retentionUntil": iso(row.retention_until)}


def reactivate(connection: Connection, ins: str, now: dt.datetime) -> dict[str, Any]:
    """Reopen a closed DMP (the caller decided it may)."""
    connection.execute(update(dossiers).where(dossiers.c.ins == ins).values(
        status=DossierStatus.OPEN.value, reactivated_at=now, closed_at=None,
        closure_reason=None, retention_until=None,
    ))
    return {"ins": ins, "status": DossierStatus.OPEN.value, "reactivatedAt": iso(now)}


def closure_reason(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise bad_request("reason-required", "Motif de fermeture requis / a closure reason is "
                          "required")
    if len(reason.strip()) > MAX_REASON:
        raise bad_request("reason-too-long", f"Motif trop long (max {MAX_REASON} caractères)")
    return refuse_control_characters(reason.strip(), "reason", "bad-reason")
