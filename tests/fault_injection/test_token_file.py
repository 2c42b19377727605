"""The API token file deleted, changed or made readable while the agent runs: the running
agent owns it, `dmp-agent page --print-token` asks it, and what it prints is accepted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from agent.config import AgentConfig
from agent.views.localapi import client_token
from tests.fault_injection.world import StartAgent
from tests.live import BIN, AgentProcess, free_port

pytestmark = pytest.mark.pcsc


def _token_file(agent: AgentProcess) -> Path:
    return agent.root / "config" / "dmp-agent" / "api-token"


def _print_token(agent: AgentProcess, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dmp-agent"), "page", "--print-token"],
                          env=env or agent.env, capture_output=True, text=True, timeout=30)


def _status(agent: AgentProcess, token: str) -> httpx.Response:
    return httpx.get(f"{agent.url}/api/status", headers={"authorization": f"Bearer {token}"})


def test_print_token_after_the_file_was_deleted_gives_the_token_the_agent_accepts(
        start_agent: StartAgent) -> None:
    agent = start_agent()
    before = agent.token
    _token_file(agent).unlink()
    printed = _print_token(agent)
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    assert token == before  # not a new token the running agent would refuse
    assert _status(agent, token).status_code == 200
    assert _token_file(agent).read_text().strip() == before  # the agent put its file back
    assert (_token_file(agent).stat().st_mode & 0o777) == 0o600


def test_a_refused_request_puts_the_file_back_and_says_where_to_get_the_token(
        start_agent: StartAgent) -> None:
    agent = start_agent()
    before = agent.token
    _token_file(agent).unlink()
    refused = httpx.get(f"{agent.url}/api/status")  # practice software found no file
    assert refused.status_code == 401
    assert "dmp-agent page --print-token" in refused.json()["message"]
    assert _token_file(agent).read_text().strip() == before
    assert _status(agent, before).status_code == 200


def test_a_changed_file_is_put_back_and_the_page_address_carries_the_right_token(
        start_agent: StartAgent) -> None:
    agent = start_agent()
    before = agent.token
    _token_file(agent).write_text("x" * 43 + "\n")
    address = subprocess.run([str(BIN / "dmp-agent"), "page", "--print-url"], env=agent.env,
                             capture_output=True, text=True, timeout=30)
    assert address.returncode == 0, address.stderr
    assert address.stdout.strip().endswith(f"#token={before}")
    assert agent.token == before


def test_a_file_readable_by_others_gets_a_new_token_which_the_agent_accepts(
        start_agent: StartAgent) -> None:
    agent = start_agent()
    before = agent.token
    os.chmod(_token_file(agent), 0o644)  # it may have leaked
    printed = _print_token(agent)
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    assert token != before and len(token) >= 40
    assert (_token_file(agent).stat().st_mode & 0o777) == 0o600
    assert _status(agent, token).status_code == 200
    assert _status(agent, before).status_code == 401


def test_another_users_agent_on_the_port_is_named_not_a_silent_new_token(
        start_agent: StartAgent, tmp_path: Path) -> None:
    agent = start_agent()
    other = {**agent.env, "XDG_CONFIG_HOME": str(tmp_path / "other-user" / "config")}
    printed = _print_token(agent, other)
    assert printed.returncode == 1
    assert "n'accepte pas le jeton" in printed.stderr and "autre utilisateur" in printed.stderr
    assert not (tmp_path / "other-user" / "config" / "dmp-agent" / "api-token").exists()


def test_without_a_running_agent_print_token_makes_the_token_the_next_agent_uses(
        tmp_path: Path) -> None:
    config = AgentConfig(credentials_dir=tmp_path / "config" / "workstation",
                         data_dir=tmp_path / "data", log_dir=tmp_path / "log",
                         api_port=free_port())
    token = client_token(config)
    assert (tmp_path / "config" / "api-token").read_text().strip() == token
    assert client_token(config) == token
