"""A command-line deposit in its own process starts compiling the CI-SIS schematrons before
the PIN is asked (docs/cda.md "Where a first check's time goes"); beside a running
`dmp-agent run` it starts nothing (the running agent checks, its schematrons compiled)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from agent.views import command_session
from wire import cda


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    @contextlib.contextmanager
    def open_work(args: Any, **options: Any) -> Iterator[Any]:
        seen.append("session")  # where the PIN is asked
        yield SimpleNamespace(core="core")

    monkeypatch.setattr(command_session, "open_work", open_work)
    monkeypatch.setattr(command_session, "load_command_config", lambda: None)
    monkeypatch.setattr(cda, "preload", lambda: seen.append("preload"))
    return seen


def test_a_deposit_in_its_own_process_compiles_before_the_pin(
        calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command_session, "find_running_agent", lambda config: None)
    with command_session.open_agent(argparse.Namespace(), checks_cda=True) as agent:
        assert agent == "core"
    assert calls == ["preload", "session"]
    calls.clear()
    with command_session.open_agent(argparse.Namespace()):  # not a deposit: nothing started
        pass
    assert calls == ["session"]


def test_beside_a_running_agent_nothing_is_compiled_here(
        calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    running = SimpleNamespace(close=lambda: None)
    monkeypatch.setattr(command_session, "find_running_agent", lambda config: running)
    monkeypatch.setattr(command_session, "_open_remote_session", lambda agent, args: None)
    with command_session.open_agent(argparse.Namespace(), with_patient=False,
                                    checks_cda=True) as agent:
        assert agent is running
    assert calls == []
