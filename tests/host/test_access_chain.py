"""The access log's hash chain: whole when untouched; an edited, deleted or moved row is
named by the verifier; concurrent writers of one patient never fork the chain."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, update

from host.access_chain import verify
from host.cli import main
from host.guard import record_access
from host.store import open_engine, upgrade
from host.store.schema import access_log
from policies import NORMAL
from tests.host.harness import START

CLAIRE = "284057511402396"
PAUL = "180017512345688"


def write(engine: Engine, ins: str, count: int, start: dt.datetime = START) -> None:
    for i in range(count):
        record_access(engine, ins=ins, at=start + dt.timedelta(minutes=i),
                      actor_kind="professional", actor_id=f"8100000{i:05d}",
                      actor_name=f"Dr {i}", action="read", mode=NORMAL, allowed=True,
                      reason="ALLOWED")


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = open_engine(db_url)
    write(engine, CLAIRE, 5)
    write(engine, PAUL, 2)
    return engine


def broken(engine: Engine, ins: str = CLAIRE) -> tuple[int, dt.datetime | None, str] | None:
    with engine.connect() as connection:
        verdict = verify(connection, ins)
    brk = verdict.first_break
    return None if brk is None else (brk.seq, brk.at, brk.problem)


def at(seq: int) -> dt.datetime:
    return START + dt.timedelta(minutes=seq - 1)


def test_an_untouched_log_is_whole_and_numbered_per_patient(engine: Engine) -> None:
    with engine.connect() as connection:
        assert verify(connection, CLAIRE).whole and verify(connection, CLAIRE).entries == 5
        assert verify(connection, PAUL).whole and verify(connection, PAUL).entries == 2
        seqs = connection.execute(select(access_log.c.seq).where(access_log.c.ins == PAUL)
                                  .order_by(access_log.c.seq)).scalars().all()
    assert seqs == [1, 2]


def test_an_edited_row_is_named(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(update(access_log).where(access_log.c.ins == CLAIRE,
                                                    access_log.c.seq == 3)
                           .values(outcome="refused"))
    assert broken(engine) == (3, at(3), "edited")
    assert broken(engine, PAUL) is None  # another patient's chain is untouched


def test_a_deleted_row_is_named(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(access_log).where(access_log.c.ins == CLAIRE,
                                                    access_log.c.seq == 2))
    assert broken(engine) == (2, at(3), "missing")


def test_a_deleted_last_row_is_named(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(delete(access_log).where(access_log.c.ins == CLAIRE,
                                                    access_log.c.seq == 5))
    assert broken(engine) == (5, None, "missing")


def test_reordered_rows_are_named(engine: Engine) -> None:
    def renumber(old: int, new: int) -> None:
        with engine.begin() as connection:
            connection.execute(update(access_log).where(access_log.c.ins == CLAIRE,
                                                        access_log.c.seq == old)
                               .values(seq=new))
    renumber(2, 99)  # swap entries 2 and 3 (through a free number: seq is unique)
    renumber(3, 2)
    renumber(99, 3)
    assert broken(engine) == (2, at(3), "out of order")


def test_concurrent_writers_of_one_patient_do_not_fork_the_chain(db_url: str) -> None:
    engine = open_engine(db_url)
    threads = [threading.Thread(target=write, args=(engine, CLAIRE, 40)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as connection:
        verdict = verify(connection, CLAIRE)
    assert verdict.whole and verdict.entries == 80


def test_the_command_exits_1_naming_the_first_bad_entry(
        engine: Engine, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["access-log", "verify", CLAIRE, "--database", db_url]) == 0
    assert "5 entries, chain whole" in capsys.readouterr().out
    with engine.begin() as connection:
        connection.execute(update(access_log).where(access_log.c.ins == CLAIRE,
                                                    access_log.c.seq == 4)
                           .values(actor_name="someone else"))
    assert main(["access-log", "verify", CLAIRE, "--database", db_url]) == 1
    assert "entry 4 of 2026-11-27T09:03:00+00:00 was edited" in capsys.readouterr().out


def test_the_migration_chains_rows_logged_before_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    engine = open_engine(url)
    with engine.begin() as connection:
        for i in (2, 0, 1):  # inserted out of time order: chained in (at, id) order
            connection.exec_driver_sql(
                "INSERT INTO access_log (ins, id, at, actor_kind, actor_id, action, mode, "
                "outcome, reason) VALUES (?, ?, ?, 'professional', '810001234565', 'read', "
                "'normal', 'allowed', 'ALLOWED')",
                (CLAIRE, f"id-{i}", f"2026-11-27 09:0{i}:00.000000"))
    engine.dispose()
    upgrade(url)
    engine = open_engine(url)
    with engine.connect() as connection:
        assert verify(connection, CLAIRE).entries == 3 and verify(connection, CLAIRE).whole
        ids = connection.execute(select(access_log.c.id).order_by(access_log.c.seq)).scalars()
        assert list(ids) == ["id-0", "id-1", "id-2"]
    write(engine, CLAIRE, 1)  # new entries continue the migrated chain
    assert broken(engine) is None
