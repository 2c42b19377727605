"""The rows of card-rooted sessions: one-time challenges and opened sessions (not patient
data). `host.routes.sessions` decides; these functions read and write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, insert, select, update

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


def challenge_used(engine: Engine, value: bytes, workstation_sha256: str) -> bool:
    """Whether this workstation's challenge exists and was already used (a replay, told
    apart from an unknown or expired challenge)."""
    with engine.connect() as connection:
        used = connection.execute(
            select(challenges.c.used_at).where(
                challenges.c.challenge == value,
                challenges.c.workstation_sha256 == workstation_sha256)
        ).scalar_one_or_none()
    return used is not None


def record_session(engine: Engine, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(insert(sessions).values(**values))


def end_session(engine: Engine, session_id: str, now: dt.datetime, reason: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(sessions).where(sessions.c.id == session_id)
                           .values(revoked_at=now, revoked_reason=reason))


def revoke_sessions(engine: Engine, workstation_sha256: str,
                    revocations: Sequence[tuple[str, str]], now: dt.datetime
                    ) -> tuple[int, int, int]:
    """End the sessions named in ``revocations`` (session id, reason) that this workstation
    opened and that are not yet ended (revoked or expired); returns (revoked, already
    ended, unknown). A session of another workstation counts as unknown and is not touched:
    the answer says nothing of whose it is. Ids are taken once each (the first reason)."""
    wanted: dict[str, str] = {}
    for session_id, reason in revocations:
        wanted.setdefault(session_id, reason)
    if not wanted:
        return 0, 0, 0
    revoked = 0
    with engine.begin() as connection:
        owned = {row.id for row in connection.execute(
            select(sessions.c.id).where(sessions.c.id.in_(list(wanted)),
                                        sessions.c.workstation_sha256 == workstation_sha256))}
        for session_id in owned:
            # Ended once: a revocation already recorded (or an expiry) keeps its reason.
            revoked += connection.execute(
                update(sessions)
                .where(sessions.c.id == session_id,
                       sessions.c.workstation_sha256 == workstation_sha256,
                       sessions.c.revoked_at.is_(None), sessions.c.not_after > now)
                .values(revoked_at=now, revoked_reason=wanted[session_id])
            ).rowcount
    return revoked, len(owned) - revoked, len(wanted) - len(owned)
