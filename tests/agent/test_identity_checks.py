"""The patients' identity checks in the outbox database (schema 4, agent/outbox/identities.py):
kept across a reopening, worth only the traits they were made for, nothing personal in
clear, and an outbox of schema 3 brought to 4 with its queue intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.outbox import SCHEMA_VERSION, Outbox
from tests.agent.test_outbox_at_rest import assert_nothing_in_clear, sealed_keys

INS = "284057511402396"
TRAITS = f"{INS}|1.2.250.1.213.1.4.8|MARTIN|CLAIRE|F|19840517|75114|1"
CHANGED = TRAITS.replace("CLAIRE", "CLAIRE ANNE")
GP = "810001234567"


def _open(root: Path) -> Outbox:
    return Outbox(root / "outbox" / "outbox.sqlite3", keys=sealed_keys(root))


def test_a_check_is_kept_for_its_traits_only(tmp_path: Path) -> None:
    with _open(tmp_path) as box:
        assert box.checked(INS, TRAITS) is None
        box.record_check(INS, TRAITS, document="passeport", parent_document=None,
                         professional=GP, when=1_000.0)
    with _open(tmp_path) as box:  # another run of the agent
        check = box.checked(INS, TRAITS)
        assert check is not None and check.same_traits
        assert (check.document, check.validated, check.professional) == ("passeport", 1_000.0,
                                                                         GP)
        other = box.checked(INS, CHANGED)
        assert other is not None and not other.same_traits  # the caller forgets it
        assert box.forget_check(INS) and box.checked(INS, TRAITS) is None
        assert not box.forget_check(INS)
        box.record_check(INS, TRAITS, document="acte-de-naissance",
                         parent_document="carte-identite", professional=GP)
        assert box.checked(INS, TRAITS).parent_document == "carte-identite"  # type: ignore[union-attr]
    assert_nothing_in_clear(tmp_path / "outbox", INS.encode(), b"MARTIN", b"CLAIRE")


def test_an_outbox_of_schema_3_gets_the_table_and_keeps_its_queue(tmp_path: Path) -> None:
    with _open(tmp_path) as box:
        item = box.add("urn:uuid:kept", INS, b'{"bundle": 1}', {"title": "CR"})
    path = tmp_path / "outbox" / "outbox.sqlite3"
    with sqlite3.connect(path) as db:  # as the agent of schema 3 left it
        db.execute("DROP TABLE identities")
        db.execute("PRAGMA user_version=3")
    with _open(tmp_path) as box:
        assert box.get(item).unique_id == "urn:uuid:kept"
        box.record_check(INS, TRAITS, document="passeport", parent_document=None,
                         professional=GP)
        assert box.checked(INS, TRAITS) is not None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (4,)
