"""Behind a pharmacy's HTTP proxy (`host.proxy`): the agent reaches the host only through
its CONNECT tunnel, mutual TLS included: the session opens, the patient's dossier loads, the
doctor passes. The host's address is one only the proxy can reach (localhost:1 is routed by
the proxy to the real host), so nothing can have gone around it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from cardreader.virtual.vitale import VirtualVitale
from host.pki import init_pki
from tests.live import BIN, AgentProcess, HostProcess, LiveWorld
from tests.proxy import ConnectProxy

pytestmark = pytest.mark.pcsc

UNREACHABLE = "localhost:1"  # in the host's certificate, and nothing listens there


def test_the_agent_works_through_an_http_proxy_and_only_through_it(
    tmp_path: Path, pcscd: object, insert_card: Any
) -> None:
    pki = tmp_path / "pki"
    init_pki(pki)
    host = HostProcess(pki, tmp_path / "host")
    host.start()
    proxy = ConnectProxy({UNREACHABLE: ("127.0.0.1", host.port)}).start()
    agent = AgentProcess(tmp_path / "agent", f"https://{UNREACHABLE}", pki,
                         host_config=f'proxy = "{proxy.url}"')
    try:
        agent.enrol()
        doctor = subprocess.run([str(BIN / "dmp-agent"), "doctor"], env=agent.env,
                                capture_output=True, text=True, timeout=60)
        assert "] Hôte DMP : Hôte joignable" in doctor.stdout, doctor.stdout
        agent.start()
        live = LiveWorld(host, agent, pki, tmp_path)
        insert_card(live.cps("pharmacist"), slot=0)
        agent.wait_for(lambda s: s["session"]["state"] == "locked")
        with agent.client() as api:
            api.post("/api/session", json={"pin": "1234"}).raise_for_status()
            insert_card(VirtualVitale.from_profile("single"), slot=1)
            status = agent.wait_for(lambda s: s["patient"]["state"] in ("ready", "error"))
            assert status["patient"]["state"] == "ready", status["patient"]
        assert proxy.tunnels and set(proxy.tunnels) == {UNREACHABLE}
    finally:
        agent.stop()
        proxy.stop()
        host.stop()
