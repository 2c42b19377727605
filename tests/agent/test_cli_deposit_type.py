"""`dmp-agent deposit`: a PDF or a text file needs --type (the agent wraps it in a CDA whose
header it writes); a CDA document from the practice's software names its own type and title,
so --type may be left out (docs/cda.md). Pure: the agent behind the command is a recorder."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.views import commands
from agent.views.command_session import CommandError
from tests.cda_support import TROD, a_pdf


class Recorder:
    def __init__(self) -> None:
        self.deposits: list[dict[str, Any]] = []

    def deposit_types(self) -> list[dict[str, str]]:
        return [{"code": "60593-1", "classCode": "43", "label": "Dispensation"}]

    def snapshot(self) -> dict[str, Any]:
        return {"patient": {"patient": None}}

    def deposit(self, path: Path, **options: Any) -> dict[str, Any]:
        self.deposits.append({"path": path, **options})
        return {"id": 1, "uniqueId": "urn:oid:1.2", "title": "TROD"}


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    @contextlib.contextmanager
    def open_agent(args: Any, **options: Any) -> Iterator[Recorder]:
        yield recorder

    monkeypatch.setattr(commands, "open_agent", open_agent)
    monkeypatch.setattr(commands, "_sent", lambda agent, queued: 0)
    monkeypatch.setattr(commands, "_patient_line", lambda patient: "")
    return recorder


def args(path: Path, kind: str | None) -> argparse.Namespace:
    return argparse.Namespace(list_types=False, file=path, type=kind, title=None,
                              masked=False, invisible_to_patient=False)


def test_a_pdf_without_its_type_is_a_usage_error(agent: Recorder, tmp_path: Path) -> None:
    pdf = tmp_path / "bilan.pdf"
    pdf.write_bytes(a_pdf())
    with pytest.raises(CommandError) as refused:
        commands.cmd_deposit(args(pdf, None))
    assert "--type" in str(refused.value) and agent.deposits == []


def test_a_cda_document_is_deposited_with_the_type_its_header_names(
        agent: Recorder, tmp_path: Path) -> None:
    trod = tmp_path / "trod.xml"
    trod.write_bytes(TROD.read_bytes())
    assert commands.cmd_deposit(args(trod, None)) == 0
    assert [(d["mime_type"], d["type_code"]) for d in agent.deposits] == [("text/xml", "")]
