"""Two people on one PC (or a terminal server): each runs `dmp-agent run` with the same
configured port. The second one's agent listens on a free port instead, says so in its log
and in its discovery file, and each user's page link and token reach their own agent only.

True distinct uids are not available here: each "user" has their own HOME and XDG
directories (config, data, state, runtime), which is what the agent goes by."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from host.pki import init_pki
from tests.live import BIN, AgentProcess, HostProcess

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("two-users")
    init_pki(root / "pki")
    host = HostProcess(root / "pki", root / "host")
    host.start()
    try:
        yield root, host.url
    finally:
        host.stop()


def _user(root: Path, name: str, host_url: str, port: int | None = None) -> AgentProcess:
    agent = AgentProcess(root / name, host_url, root / "pki")
    if port is not None:  # the configuration every workstation got: one port for all
        agent.port, agent.url = port, f"http://127.0.0.1:{port}"
    runtime = root / name / "runtime"
    runtime.mkdir(mode=0o700, parents=True)
    agent.env["XDG_RUNTIME_DIR"] = str(runtime)
    agent.enrol()
    return agent


def _discovery(agent: AgentProcess) -> Path | None:
    found = sorted((agent.root / "runtime" / "dmp-agent").glob("api-*.json"))
    return found[0] if found else None


def _wait_for_discovery(agent: AgentProcess) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while (path := _discovery(agent)) is None:
        assert agent.process is not None and agent.process.poll() is None, \
            agent.log_file.read_text()
        assert time.monotonic() < deadline, "no discovery file"
        time.sleep(0.05)
    record: dict[str, object] = json.loads(path.read_text())
    return record


def _page(agent: AgentProcess, *options: str) -> str:
    done = subprocess.run([str(BIN / "dmp-agent"), "page", *options], env=agent.env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _status(url: str, token: str) -> int:
    return httpx.get(f"{url}/api/status", headers={"authorization": f"Bearer {token}"},
                     timeout=10).status_code


def test_two_users_with_one_configured_port_each_reach_their_own_agent(
        site: tuple[Path, str]) -> None:
    root, host_url = site
    anne = _user(root, "anne", host_url)
    bruno = _user(root, "bruno", host_url, port=anne.port)  # the same api.port
    try:
        anne.start()
        assert _wait_for_discovery(anne)["port"] == anne.port  # the first has the port
        # Bruno's start: his agent finds the port taken by an agent that refuses his token.
        bruno.start()  # returns at once: Anne's agent answers on that port
        record = _wait_for_discovery(bruno)
        port = record["port"]
        assert isinstance(port, int) and port != anne.port
        bruno.url = f"http://127.0.0.1:{port}"
        assert record["url"] == bruno.url
        assert httpx.get(f"{bruno.url}/api/health", timeout=10).status_code == 200

        # The discovery file: owner-only, where the agent is, never the token.
        path = _discovery(bruno)
        assert path is not None
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert bruno.token not in path.read_text() and anne.token not in path.read_text()
        assert bruno.process is not None and record["pid"] == bruno.process.pid
        log = "".join(p.read_text() for p in (bruno.root / "state").rglob("*.log"))
        assert f"port {anne.port} is taken" in log and f"listens on port {port}" in log

        # Each page link and printed token reach the user's own agent, which accepts them.
        for user, url in ((anne, anne.url), (bruno, bruno.url)):
            link = _page(user, "--print-url")
            assert link == f"{url}/#token={user.token}"
            assert _page(user, "--print-token") == user.token
            assert _status(url, user.token) == 200
        assert anne.token != bruno.token
        # One user's token is refused by the other's agent, both ways.
        assert _status(bruno.url, anne.token) == 401
        assert _status(anne.url, bruno.token) == 401

        # A second agent of the same user is told its agent runs already (exit 3).
        again = subprocess.run([str(BIN / "dmp-agent"), "run", "--no-tray"], env=bruno.env,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 3, again.stderr
        assert _discovery(bruno) == path  # the running agent's file is untouched

        # A clean stop removes the discovery file; the other user's agent runs on.
        assert bruno.stop() == 0
        assert _discovery(bruno) is None
        assert _status(anne.url, anne.token) == 200
    finally:
        bruno.stop()
        anne.stop()
