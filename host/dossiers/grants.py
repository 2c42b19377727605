"""Who the patient authorised, blocked or designated as médecin traitant DMP: the rows of
`authorizations` and `medecins_traitants`, read and written for callers that decided they
may (the guard). The care team is not stored: it is derived from the structures of valid
authorizations (`host.guard.dossier_state`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from ..errors import bad_request, not_found
from ..store.schema import authorizations, medecins_traitants
from .lifecycle import iso

_ID_NAT_PS = re.compile(r"^[08]\d{8,31}$")  # 8 + RPPS, 0 + ADELI
DOCTOR = "10"  # G15: médecin


def checked_id_nat_ps(value: str) -> str:
    if not _ID_NAT_PS.match(value):
        raise bad_request("bad-id-nat-ps", "idNat_PS mal formé / malformed professional id: "
                          "8 + RPPS or 0 + ADELI")
    return value


def authorization_document(row: Row[Any], now: dt.datetime) -> dict[str, Any]:
    expired = row.expires_at is not None and row.expires_at <= now
    status = "forbidden" if row.blocked else (
        "expired" if row.status == "valid" and expired else row.status)
    return {
        "idNatPs": row.id_nat_ps,
        "structureId": row.structure_id,
        "status": status,  # valid / expired / revoked / none (block only) / forbidden
        "grantedAt": iso(row.granted_at),
        "grantedBy": row.granted_by,
        "expiresAt": iso(row.expires_at),
        "revokedAt": iso(row.revoked_at),
        "blocked": row.blocked,
        "blockedAt": iso(row.blocked_at),
    }


def list_authorizations(connection: Connection, ins: str, now: dt.datetime) -> dict[str, Any]:
    grants = connection.execute(
        select(authorizations).where(authorizations.c.ins == ins)
        .order_by(authorizations.c.id_nat_ps)
    ).all()
    traitants = connection.execute(
        select(medecins_traitants).where(medecins_traitants.c.ins == ins,
                                         medecins_traitants.c.ended_at.is_(None))
        .order_by(medecins_traitants.c.id_nat_ps)
    ).all()
    return {
        "ins": ins,
        "authorizations": [authorization_document(row, now) for row in grants],
        "medecinsTraitants": [
            {"idNatPs": row.id_nat_ps, "designatedAt": iso(row.designated_at),
             "designatedBy": row.designated_by} for row in traitants
        ],
    }


def _grant_row(connection: Connection, ins: str, id_nat_ps: str) -> Row[Any] | None:
    return connection.execute(select(authorizations).where(
        authorizations.c.ins == ins, authorizations.c.id_nat_ps == id_nat_ps)).one_or_none()


def grant(
    connection: Connection, ins: str, id_nat_ps: str, *, structure_id: str | None,
    expires_at: dt.datetime | None, granted_by: str, now: dt.datetime,
) -> tuple[bool, dict[str, Any]]:
    """Record a valid authorization (the caller decided it may); True when it is new."""
    values = {"structure_id": structure_id, "status": "valid", "granted_at": now,
              "granted_by": granted_by, "expires_at": expires_at, "revoked_at": None}
    existing = _grant_row(connection, ins, id_nat_ps)
    if existing is None:
        connection.execute(insert(authorizations).values(
            ins=ins, id_nat_ps=id_nat_ps, blocked=False, **values))
    else:
        connection.execute(update(authorizations).where(
            authorizations.c.ins == ins, authorizations.c.id_nat_ps == id_nat_ps,
        ).values(**values))
    row = _grant_row(connection, ins, id_nat_ps)
    assert row is not None
    return existing is None, authorization_document(row, now)


def revoke(connection: Connection, ins: str, id_nat_ps: str, now: dt.datetime) -> dict[str, Any]:
    """Revoke a valid authorization (the caller decided it may); 404 when there is none."""
    row = _grant_row(connection, ins, id_nat_ps)
    if row is None or row.status != "valid":
        raise not_found("authorization-unknown",
                        "Aucune autorisation pour ce professionnel / no authorization to revoke")
    connection.execute(update(authorizations).where(
        authorizations.c.ins == ins, authorizations.c.id_nat_ps == id_nat_ps,
    ).values(status="revoked", revoked_at=now))
    row = _grant_row(connection, ins, id_nat_ps)
    assert row is not None
    return authorization_document(row, now)


def set_blocked(
    connection: Connection, ins: str, id_nat_ps: str, blocked: bool, now: dt.datetime
) -> dict[str, Any]:
    """Block or unblock a professional; an authorization they hold is kept (it applies
    again once unblocked)."""
    row = _grant_row(connection, ins, id_nat_ps)
    if not blocked and (row is None or not row.blocked):
        raise not_found("not-blocked", "Ce professionnel n'est pas bloqué / this "
                        "professional is not blocked")
    if row is None:
        # "none": no authorization, only the block.
        connection.execute(insert(authorizations).values(
            ins=ins, id_nat_ps=id_nat_ps, status="none", blocked=True, blocked_at=now))
    else:
        connection.execute(update(authorizations).where(
            authorizations.c.ins == ins, authorizations.c.id_nat_ps == id_nat_ps,
        ).values(blocked=blocked, blocked_at=now if blocked else None))
    row = _grant_row(connection, ins, id_nat_ps)
    assert row is not None
    return authorization_document(row, now)


def designate(
    connection: Connection, ins: str, id_nat_ps: str, designated_by: str, now: dt.datetime
) -> tuple[bool, dict[str, Any]]:
    """Make ``id_nat_ps`` a médecin traitant DMP (several are allowed); True when new."""
    row = connection.execute(select(medecins_traitants).where(
        medecins_traitants.c.ins == ins, medecins_traitants.c.id_nat_ps == id_nat_ps,
    )).one_or_none()
    if row is None:
        connection.execute(insert(medecins_traitants).values(
            ins=ins, id_nat_ps=id_nat_ps, designated_at=now, designated_by=designated_by))
    elif row.ended_at is not None:
        connection.execute(update(medecins_traitants).where(
            medecins_traitants.c.ins == ins, medecins_traitants.c.id_nat_ps == id_nat_ps,
        ).values(designated_at=now, designated_by=designated_by, ended_at=None))
    new = row is None or row.ended_at is not None
    designated_at = now if new else row.designated_at  # type: ignore[union-attr]
    return new, {"idNatPs": id_nat_ps, "designatedAt": iso(designated_at),
                 "designatedBy": designated_by if new else row.designated_by}  # type: ignore[union-attr]


def end_designation(
    connection: Connection, ins: str, id_nat_ps: str, now: dt.datetime
) -> dict[str, Any]:
    result = connection.execute(update(medecins_traitants).where(
        medecins_traitants.c.ins == ins, medecins_traitants.c.id_nat_ps == id_nat_ps,
        medecins_traitants.c.ended_at.is_(None),
    ).values(ended_at=now))
    if result.rowcount == 0:
        raise not_found("medecin-traitant-unknown", "Ce professionnel n'est pas médecin "
                        "traitant DMP de ce patient / not a médecin traitant of this patient")
    return {"idNatPs": id_nat_ps, "endedAt": iso(now)}
