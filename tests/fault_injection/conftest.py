"""The fault-injection suite's world: the reference host in its own process (real TLS), and
agents (`dmp-agent run`, each its own process and user directories) started on demand, some
with their clock shifted by libfaketime. Every test asserts the sentence the user sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from host.pki import init_pki
from tests.fault_injection.world import Site, StartAgent, skewed
from tests.live import AgentProcess, HostProcess


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("faults")
    pki = root / "pki"
    init_pki(pki)  # the host's certificate is issued now: "recently issued"
    host = HostProcess(pki, root / "host")
    host.start()
    try:
        yield Site(root, pki, host)
    finally:
        host.stop()


@pytest.fixture
def start_agent(site: Site, tmp_path: Path) -> Iterator[StartAgent]:
    """start_agent(clock_offset=None, name="agent"): an enrolled agent (enrolled at the true
    time), running with its clock shifted when asked; stopped at the end of the test."""
    agents: list[AgentProcess] = []

    def start(clock_offset: str | None = None, name: str = "agent") -> AgentProcess:
        agent = AgentProcess(tmp_path / name, site.host.url, site.pki)
        agent.enrol()
        if clock_offset is not None:
            agent.env.update(skewed(clock_offset))
        agents.append(agent)
        agent.start()
        return agent

    yield start
    for agent in agents:
        agent.stop()
