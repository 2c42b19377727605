"""What the patient (the DMP's holder) does: library functions acting as `Actor.patient(ins)`.

These actions never come through the professionals' TLS API (a patient has no CPS card):
a patient portal would call them; here `dmp-host patient ...` does (host/patient_cli.py).
Each is decided by `policies.decide` and traced in the access log with actor_kind
"patient", like every professional access. The patient's documents (list, mask), the
professionals their dossier knows and the médecin traitant they declare are in
host/patient_documents.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, or_, select, update

from policies import Action

from . import notify_events
from .dossiers import grants
from .dossiers.lifecycle import (
    close as close_dossier,
)
from .dossiers.lifecycle import (
    closure_reason,
    consents_document,
    dossier_row,
    iso,
)
from .dossiers.lifecycle import (
    reactivate as reactivate_dossier,
)
from .errors import bad_request
from .guard import Guard, check_patient
from .identities import checked_ins
from .store.schema import access_log as access_log_table
from .store.schema import dossiers
from .store.schema import notifications as notifications_table

DEFAULT_RETENTION = dt.timedelta(days=3653)  # as HostSettings.retention_after_closure


def block(guard: Guard, ins: str, id_nat_ps: str) -> dict[str, Any]:
    """Forbid a professional any access, authorized or not (until `unblock`)."""
    ins, id_nat_ps = checked_ins(ins), grants.checked_id_nat_ps(id_nat_ps)
    with guard.engine.begin() as connection:
        check_patient(guard, connection, ins=ins, action=Action.BLOCK)
        return grants.set_blocked(connection, ins, id_nat_ps, True, guard.clock())


def unblock(guard: Guard, ins: str, id_nat_ps: str) -> dict[str, Any]:
    """Lift a block; an authorization the professional held applies again."""
    ins, id_nat_ps = checked_ins(ins), grants.checked_id_nat_ps(id_nat_ps)
    with guard.engine.begin() as connection:
        check_patient(guard, connection, ins=ins, action=Action.UNBLOCK)
        return grants.set_blocked(connection, ins, id_nat_ps, False, guard.clock())


def revoke(guard: Guard, ins: str, id_nat_ps: str) -> dict[str, Any]:
    """Revoke a professional's authorization (404 authorization-unknown if none is valid)."""
    ins, id_nat_ps = checked_ins(ins), grants.checked_id_nat_ps(id_nat_ps)
    with guard.engine.begin() as connection:
        check_patient(guard, connection, ins=ins, action=Action.REVOKE)
        return grants.revoke(connection, ins, id_nat_ps, guard.clock())


def end_medecin_traitant(guard: Guard, ins: str, id_nat_ps: str) -> dict[str, Any]:
    ins, id_nat_ps = checked_ins(ins), grants.checked_id_nat_ps(id_nat_ps)
    with guard.engine.begin() as connection:
        check_patient(guard, connection, ins=ins, action=Action.REVOKE,
                      log_action="end_medecin_traitant")
        return grants.end_designation(connection, ins, id_nat_ps, guard.clock())


def authorizations(guard: Guard, ins: str) -> dict[str, Any]:
    """Who the patient authorized or blocked, and their médecins traitants DMP."""
    ins = checked_ins(ins)
    with guard.engine.connect() as connection:
        check_patient(guard, connection, ins=ins, action=Action.READ_ACCESS_LOG,
                      log_action="list_authorizations")
        return grants.list_authorizations(connection, ins, guard.clock())


def set_consents(
    guard: Guard,
    ins: str,
    *,
    regulation_centre: bool | None = None,
    break_the_glass: bool | None = None,
    emergency_sees_masked: bool | None = None,
) -> dict[str, Any]:
    """Change the three emergency-access consents (None: unchanged); returns them all."""
    ins = checked_ins(ins)
    changes = {
        column: value for column, value in (
            ("consent_regulation_centre", regulation_centre),
            ("consent_break_the_glass", break_the_glass),
            ("consent_emergency_sees_masked", emergency_sees_masked),
        ) if value is not None
    }
    if not changes:
        raise bad_request("no-change", "Aucun consentement à changer / no consent to change")
    with guard.engine.begin() as connection:
        # Setting one's consents is managing one's own dossier: decided as the patient's
        # authorization management (GRANT), traced as set_consents.
        check_patient(guard, connection, ins=ins, action=Action.GRANT, log_action="set_consents")
        connection.execute(update(dossiers).where(dossiers.c.ins == ins).values(**changes))
        row = dossier_row(connection, ins)
    assert row is not None
    return consents_document(row)


def close(guard: Guard, ins: str, reason: str,
          retention: dt.timedelta = DEFAULT_RETENTION) -> dict[str, Any]:
    """Close the DMP: kept ``retention`` (10 years), reactivable."""
    ins = checked_ins(ins)
    reason = closure_reason({"reason": reason})
    with guard.engine.begin() as connection:
        check_patient(guard, connection, ins=ins, action=Action.CLOSE)
        now = guard.clock()
        closed = close_dossier(connection, ins, reason, now, retention)
        # Confirmed to the patient's address (if any), in the closure's transaction. The
        # reason is the patient's own words: kept out of the message like any free text.
        notify_events.add_if_contact(connection, ins, notify_events.DOSSIER_CLOSED,
                                     {"action": "close", "mode": "normal", "by": "patient"},
                                     now)
        return closed


def reactivate(guard: Guard, ins: str) -> dict[str, Any]:
    ins = checked_ins(ins)
    with guard.engine.begin() as connection:
        check_patient(guard, connection, ins=ins, action=Action.REACTIVATE)
        now = guard.clock()
        reopened = reactivate_dossier(connection, ins, now)
        notify_events.add_if_contact(connection, ins, notify_events.DOSSIER_REACTIVATED,
                                     {"action": "reactivate", "mode": "normal",
                                      "by": "patient"}, now)
        return reopened


def set_notifications(guard: Guard, ins: str, *, channel: str | None = None,
                      email: str | None = None) -> dict[str, Any]:
    """The patient's notification channel ("email" or "none") and address: ``email`` alone
    sets the address (channel email), ``channel`` alone switches. Decided like the other
    settings of one's own dossier (GRANT), traced as set_notifications."""
    ins = checked_ins(ins)
    if channel is None and email is None:
        raise bad_request("no-change", "Rien à changer / give a channel or an address")
    address = None if email is None else notify_events.checked_email(email)
    with guard.engine.begin() as connection:
        check_patient(guard, connection, ins=ins, action=Action.GRANT,
                      log_action="set_notifications")
        return notify_events.set_contact(connection, ins, guard.clock(), email=address,
                                         channel=channel)


PAGE = 500


def _entry(row: Any) -> dict[str, Any]:
    return {
        "at": iso(row.at),
        "actorKind": row.actor_kind,
        "actorId": row.actor_id,
        "actorName": row.actor_name,
        "profession": row.profession,
        "structureId": row.structure_id,
        "action": row.action,
        "mode": row.mode,
        "justification": row.justification,
        "documentId": row.document_id,
        "outcome": row.outcome,
        "reason": row.reason,
        # How the professional authenticated: "card" (CPS) or "e-cps"; None for the
        # patient's own entries ("card" for professionals' entries older than e-CPS).
        "authMeans": row.auth_means or ("card" if row.actor_kind == "professional" else None),
    }


def access_log_page(
    guard: Guard, ins: str, *, limit: int = PAGE, after: str | None = None,
    actor_id: str | None = None, outcome: str | None = None, actor_kind: str | None = None,
) -> dict[str, Any]:
    """One page of the access history, newest first: ``{"entries": [...], "next": cursor}``
    (``next`` is None on the last page). Pages are cut by a keyset cursor (time, id), so a
    flood of new entries never pushes older ones out of reach; ``actor_id`` and ``outcome``
    ("allowed" / "refused") and ``actor_kind`` ("professional", "patient") filter. Reading
    it is itself traced (once per page)."""
    ins = checked_ins(ins)
    if outcome not in (None, "allowed", "refused"):
        raise bad_request("bad-outcome", "outcome: allowed or refused")
    if not 1 <= limit <= PAGE:
        raise bad_request("bad-limit", f"limit: 1 to {PAGE}")
    table = access_log_table
    where = [table.c.ins == ins]
    if actor_id is not None:
        where.append(table.c.actor_id == actor_id)
    if outcome is not None:
        where.append(table.c.outcome == outcome)
    if actor_kind is not None:
        where.append(table.c.actor_kind == actor_kind)
    if after is not None:
        at, _, last_id = after.partition("|")
        try:
            moment = dt.datetime.fromisoformat(at)
        except ValueError:
            raise bad_request("bad-cursor", "cursor: as a previous page gave it") from None
        if moment.tzinfo is None or not last_id:
            raise bad_request("bad-cursor", "cursor: as a previous page gave it")
        where.append(or_(table.c.at < moment, and_(table.c.at == moment, table.c.id > last_id)))
    with guard.engine.connect() as connection:
        check_patient(guard, connection, ins=ins, action=Action.READ_ACCESS_LOG)
        rows = connection.execute(
            select(table).where(*where).order_by(table.c.at.desc(), table.c.id).limit(limit + 1)
        ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = f"{rows[-1].at.isoformat()}|{rows[-1].id}" if more else None
    return {"entries": [_entry(row) for row in rows], "next": cursor}


def access_log(guard: Guard, ins: str, *, actor_id: str | None = None,
               outcome: str | None = None) -> list[dict[str, Any]]:
    """The whole access history, newest first (every page): who, profession, structure,
    when, what, mode, outcome; filtered by professional and outcome when asked."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = access_log_page(guard, ins, after=cursor, actor_id=actor_id, outcome=outcome)
        entries.extend(page["entries"])
        cursor = page["next"]
        if cursor is None:
            return entries


def notifications(guard: Guard, ins: str) -> list[dict[str, Any]]:
    """The patient's notifications (emergency accesses, new documents...), newest first."""
    ins = checked_ins(ins)
    with guard.engine.connect() as connection:
        check_patient(guard, connection, ins=ins, action=Action.READ_ACCESS_LOG,
                      log_action="read_notifications")
        rows = connection.execute(
            select(notifications_table).where(notifications_table.c.ins == ins)
            .order_by(notifications_table.c.created_at.desc(), notifications_table.c.id)
        ).all()
    return [
        {"id": row.id, "createdAt": iso(row.created_at), "kind": row.kind,
         "payload": row.payload, "sentAt": iso(row.sent_at), "status": row.status}
        for row in rows
    ]
