"""Who sees which deposit (issue 17): the outbox JSON the views get lists the open
session's professional's own deposits, counts the others (another professional's, or an
older item queued before the author was recorded) without listing them, and nobody's
without a session; and the deposit types never offer the agent's own technical type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.client.dmp import deposit_types
from agent.outbox import Outbox, SealedFileKeyStore
from agent.outbox.report import outbox_json
from policies.matrix import default_matrix
from wire import codes

ANNE, BRUNO = "810001234565", "810002345675"


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    keys = SealedFileKeyStore(tmp_path / "credentials", tmp_path / "keys")
    with Outbox(tmp_path / "outbox" / "outbox.sqlite3", keys=keys) as box:
        for n, author in enumerate((ANNE, ANNE, BRUNO, None)):
            metadata: dict[str, object] = {"title": f"doc {n}"}
            if author is not None:
                metadata["author"] = author
            box.add(f"2.25.{n + 1}", "INS-1", b"{}", metadata)
        yield box


def titles(answer: dict[str, object]) -> list[str]:
    return [str(item["title"]) for item in answer["items"]]  # type: ignore[attr-defined, index]


def test_a_professional_sees_only_their_own_deposits(outbox: Outbox) -> None:
    mine = outbox_json(outbox, sending=None, professional=ANNE)
    assert titles(mine) == ["doc 0", "doc 1"]
    assert mine["pending"] == 2 and mine["failed"] == 0
    # Bruno's and the older item without an author: counted, in a neutral total only.
    assert mine["others"] == {"pending": 2, "failed": 0, "reasons": {"not-tried": 2}}
    theirs = outbox_json(outbox, sending=None, professional=BRUNO)
    assert titles(theirs) == ["doc 2"] and theirs["others"]["pending"] == 3


def test_without_a_session_nobody_s_deposits_are_listed(outbox: Outbox) -> None:
    nobody = outbox_json(outbox, sending=None, professional=None)
    assert nobody["items"] == [] and nobody["pending"] == 0
    assert nobody["others"]["pending"] == 4 and nobody["others"]["failed"] == 0
    assert sum(nobody["others"]["reasons"].values()) == 4  # why they wait, counted only


def test_someone_else_s_deposit_being_sent_is_not_named(outbox: Outbox) -> None:
    bruno_item = next(i for i in outbox.pending() if i.metadata.get("author") == BRUNO)
    sending = {"id": bruno_item.id, "title": "doc 2"}
    assert outbox_json(outbox, sending=sending, professional=ANNE)["sending"] is None
    assert outbox_json(outbox, sending=sending, professional=BRUNO)["sending"] == sending


def test_unscoped_the_outbox_lists_everything(outbox: Outbox) -> None:
    everyone = outbox_json(outbox, sending=None)
    assert len(everyone["items"]) == 4 and everyone["pending"] == 4


def test_the_submission_set_signature_is_never_a_deposit_type() -> None:
    matrix = default_matrix()
    for profession in matrix.professions:
        offered = {code for code, _class, _label in deposit_types(profession)}
        assert codes.SIGNATURE_TYPE_CODE not in offered
        assert all(matrix.document_types[c].class_code != codes.SIGNATURE_CLASS_CODE
                   for c in offered)
    # The matrix itself keeps it (the host checks the signature document against it).
    assert codes.SIGNATURE_TYPE_CODE in matrix.document_types
