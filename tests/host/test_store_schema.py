"""The migrations build the same schema on SQLite and PostgreSQL, and datetimes stay UTC."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from host.store import open_engine
from host.store.schema import DOSSIER_TABLES, dossiers, metadata


def test_migrations_create_every_table(db_url: str) -> None:
    engine = open_engine(db_url)
    names = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= names


def test_every_dossier_table_is_keyed_by_patient_first(db_url: str) -> None:
    engine = open_engine(db_url)
    for table in DOSSIER_TABLES:
        primary = inspect(engine).get_pk_constraint(table.name)["constrained_columns"]
        assert primary[0] == "ins", table.name


def _dossier(ins: str, at: dt.datetime) -> dict:
    return dict(
        ins=ins, status="open", created_at=at, created_by="810001234565", consent_at=at,
        consent_break_the_glass=True, consent_regulation_centre=True,
        consent_emergency_sees_masked=False, secret_sha256="0" * 64,
    )


def test_datetimes_come_back_aware_utc(db_url: str) -> None:
    engine = open_engine(db_url)
    paris = dt.timezone(dt.timedelta(hours=1))
    at = dt.datetime(2026, 11, 27, 17, 30, tzinfo=paris)
    with engine.begin() as connection:
        connection.execute(insert(dossiers).values(**_dossier("180017500100126", at)))
    with engine.connect() as connection:
        stored = connection.execute(select(dossiers.c.created_at)).scalar_one()
    assert stored == at and stored.tzinfo is not None and stored.utcoffset() == dt.timedelta(0)


def test_naive_datetimes_are_refused(db_url: str) -> None:
    engine = open_engine(db_url)
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(
            insert(dossiers).values(**_dossier("180017500100126", dt.datetime(2026, 1, 1)))
        )


def test_one_dossier_per_patient(db_url: str) -> None:
    engine = open_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(insert(dossiers).values(**_dossier("180017500100126", now)))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(dossiers).values(**_dossier("180017500100126", now)))
