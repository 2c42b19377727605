"""The per-platform branches that can be driven from Linux: the token file's Windows rule
(no POSIX modes: an existing well-formed file is reused, never regenerated at each read),
the discovery file, the fallback port when another user's agent holds api.port, and the
process probes of the virtual cards. (The calls that exist only on Windows are checked by
the platform type-check of scripts/test: mypy --platform win32.)"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.views import run
from agent.views.localapi import discovery, token
from cardreader.virtual.atomic import write_atomic
from cardreader.virtual.processes import pid_alive, reap


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AgentConfig:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with socket.socket() as sock:  # a port nobody listens on: no agent runs
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return AgentConfig(credentials_dir=tmp_path / "config" / "workstation",
                       data_dir=tmp_path / "data", log_dir=tmp_path / "log", api_port=port)


# -- the token file ---------------------------------------------------------------------------


def _stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 0, 0, 1, uid, 0, 44, 0, 0, 0))


def test_posix_rule_wants_no_bit_for_others_and_this_owner() -> None:
    assert token._private_posix(_stat(0o600, 1000), 1000)
    assert not token._private_posix(_stat(0o640, 1000), 1000)
    assert not token._private_posix(_stat(0o604, 1000), 1000)
    assert not token._private_posix(_stat(0o600, 1001), 1000)


def test_windows_rule_takes_a_plain_file_whatever_its_mode_bits() -> None:
    # Windows' st_mode is 0o666 or 0o444 (read-only attribute) for every file.
    assert token._private_windows(_stat(0o666, 0))
    assert token._private_windows(_stat(0o444, 0))
    directory = os.stat_result((stat.S_IFDIR | 0o777, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    assert not token._private_windows(directory)


def test_on_windows_the_token_is_reused_not_made_anew_at_each_read(
        config: AgentConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(token, "_private", token._private_windows)
    first = token.load_or_create_token(config)
    path = token.token_path(config)
    os.chmod(path, 0o666)  # what Windows reports: under the POSIX rule, a leak
    assert token.load_or_create_token(config) == first
    assert token.client_token(config) == first  # no agent runs: the file's, kept
    keeper = token.TokenKeeper(path, first)
    assert keeper.restore() == "ok" and keeper.token == first
    assert path.read_text().strip() == first


def test_on_posix_a_file_others_can_read_gets_a_new_token(config: AgentConfig) -> None:
    first = token.load_or_create_token(config)
    os.chmod(token.token_path(config), 0o644)
    assert token.load_or_create_token(config) != first


def test_a_malformed_token_file_is_replaced(config: AgentConfig) -> None:
    path = token.token_path(config)
    token.load_or_create_token(config)
    path.write_text("not a token: spaces and too short\n")
    os.chmod(path, 0o600)
    fresh = token.load_or_create_token(config)
    assert fresh != "not a token: spaces and too short" and len(fresh) >= 43


# -- the discovery file -----------------------------------------------------------------------


def test_discovery_file_is_owner_only_holds_no_token_and_goes_at_stop(
        config: AgentConfig) -> None:
    secret = token.load_or_create_token(config)
    path = discovery.publish(config, 23456, token.token_path(config))
    assert path.parent == Path(os.environ["XDG_RUNTIME_DIR"]) / "dmp-agent"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    record = json.loads(path.read_text())
    assert record == {"pid": os.getpid(), "port": 23456, "url": "http://127.0.0.1:23456",
                      "tokenFile": str(token.token_path(config))}
    assert secret not in path.read_text()
    assert discovery.read(config) == discovery.Endpoint(port=23456, pid=os.getpid())
    discovery.withdraw(path)
    assert not path.exists() and discovery.read(config) is None


def test_two_configurations_of_one_user_have_two_discovery_files(
        config: AgentConfig, tmp_path: Path) -> None:
    other = AgentConfig(credentials_dir=tmp_path / "other" / "workstation",
                        data_dir=tmp_path / "other-data", log_dir=tmp_path / "other-log")
    assert discovery.discovery_path(config) != discovery.discovery_path(other)


def test_withdraw_leaves_the_file_of_another_agent(config: AgentConfig) -> None:
    path = discovery.publish(config, 23456, token.token_path(config))
    path.write_text(json.dumps({"pid": os.getpid() + 1, "port": 23457}))
    discovery.withdraw(path)
    assert discovery.read(config) == discovery.Endpoint(port=23457, pid=os.getpid() + 1)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"port": "80", "pid": 1}',
                                  '{"port": 70000, "pid": 1}', '{"port": 8080}',
                                  '{"port": true, "pid": 1}'])
def test_a_malformed_discovery_file_is_ignored(config: AgentConfig, text: str) -> None:
    path = discovery.discovery_path(config)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(text)
    assert discovery.read(config) is None


def test_a_stale_discovery_file_does_not_change_the_page_link(config: AgentConfig) -> None:
    # Left by an agent that was killed: nobody answers on its port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        stale = sock.getsockname()[1]
    discovery.publish(config, stale, token.token_path(config))
    url = token.page_url(config)
    assert url.startswith(f"http://127.0.0.1:{config.api_port}/#token=")


def test_this_process_agent_gives_its_own_port_in_the_page_link(config: AgentConfig) -> None:
    keeper = token.TokenKeeper.start(config, 34567)
    try:
        assert token.page_url(config, "deposit") == (
            f"http://127.0.0.1:34567/#token={keeper.token}&section=deposit")
    finally:
        keeper.stop()
    assert token.page_url(config).startswith(f"http://127.0.0.1:{config.api_port}/")


# -- the API's port ---------------------------------------------------------------------------


def test_a_taken_port_gives_a_free_loopback_port_said_in_the_log(
        config: AgentConfig, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as holder:  # another user's process holds api.port
        holder.bind(("127.0.0.1", config.api_port))
        with caplog.at_level("WARNING"):
            sock = run._listen(config)
        assert sock is not None
        with sock:
            host, port = sock.getsockname()
            assert host == "127.0.0.1" and port != config.api_port
    assert f"port {config.api_port} is taken" in caplog.text
    assert f"listens on port {port} instead" in caplog.text


def test_a_free_port_is_taken_as_configured(config: AgentConfig) -> None:
    sock = run._listen(config)
    assert sock is not None
    with sock:
        assert sock.getsockname() == ("127.0.0.1", config.api_port)


# -- files and processes of the virtual cards ---------------------------------------------------


def test_write_atomic_sets_the_mode_on_posix(tmp_path: Path) -> None:
    write_atomic(tmp_path / "state", b"counters", mode=0o640)
    assert (tmp_path / "state").read_bytes() == b"counters"
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o640


def test_process_probes(tmp_path: Path) -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while not reap(child.pid):
        pass
    child.returncode = 0  # reaped above: Popen must not wait for it again
    assert not pid_alive(child.pid)
    assert not reap(child.pid)  # not our child any more
