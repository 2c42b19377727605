"""The rows of card-rooted sessions: one-time challenges and opened sessions (not patient
data). `host.routes.sessions` decides; these functions read and write."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, insert, update

from .store.schema import challenges, sessions


def record_challenge(engine: Engine, value: bytes, workstation_sha256: str,
                     now: dt.datetime, expires: dt.datetime) -> None:
    with engine.begin() as connection:
        connection.execute(insert(challenges).values(
            challenge=value, workstation_sha256=workstation_sha256, created_at=now,
            expires_at=expires,
        ))


def consume_challenge(engine: Engine, value: bytes, workstation_sha256: str,
                      now: dt.datetime) -> bool:
    """True once for a challenge this workstation got and has not used, before it expires."""
    with engine.begin() as connection:
        used = connection.execute(
            update(challenges)
            .where(challenges.c.challenge == value,
                   challenges.c.workstation_sha256 == workstation_sha256,
                   challenges.c.used_at.is_(None),
                   challenges.c.expires_at > now)
            .values(used_at=now)
        ).rowcount
    return used == 1


def record_session(engine: Engine, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(insert(sessions).values(**values))


def end_session(engine: Engine, session_id: str, now: dt.datetime, reason: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(sessions).where(sessions.c.id == session_id)
                           .values(revoked_at=now, revoked_reason=reason))
