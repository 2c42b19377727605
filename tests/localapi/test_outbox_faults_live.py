"""The disk fills up under `dmp-agent run` (issue 19, item 3), as practice software and the
page see it: the agent's data and logs on a small real tmpfs, real cards in the real
pcscd, the real host over mutual TLS. A deposit the disk cannot hold is refused before it
is read, with the space needed and free; a deposit waiting for a host that is down says
so, then says the disk is full when its next attempt cannot be written; the log goes to
standard error meanwhile; once space is freed and the host is back, it is stored once."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cardreader.virtual.vitale import VirtualVitale
from host.pki import init_pki
from tests.cda_support import report_pdf
from tests.faults import MB, fill, tmpfs
from tests.live import AgentProcess, HostProcess, LiveWorld, qualify

pytestmark = pytest.mark.pcsc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pcscd: Any
          ) -> Iterator[tuple[LiveWorld, Path]]:
    """An enrolled agent whose data and log directories are on a 24 MB tmpfs, with a GP's
    session open and a patient with a DMP in the readers."""
    from cardreader.pcsc import list_readers, wait_for_card
    from cardreader.virtual.vpcd import VpcdLink, slot_port

    root = tmp_path_factory.mktemp("disk-full")
    pki = root / "pki"
    init_pki(pki)
    host = HostProcess(pki, root / "host")
    host.start()
    agent = AgentProcess(root / "agent", host.url, pki)
    links = []
    with tmpfs(root / "disk", 24 * MB) as disk:
        agent.env.update(XDG_DATA_HOME=str(disk / "data"), XDG_STATE_HOME=str(disk / "state"))
        try:
            agent.enrol()
            agent.start()
            live = LiveWorld(host, agent, pki, root)
            for slot, card in ((0, live.cps("gp")), (1, VirtualVitale.from_profile("single"))):
                reader = list_readers()[slot]
                links.append(VpcdLink(card, slot_port(slot, pcscd.port)).start())
                assert wait_for_card(reader, present=True)
            agent.wait_for(lambda s: s["session"]["state"] == "locked")
            with agent.client() as api:
                assert api.post("/api/session", json={"pin": "1234"}).status_code == 200
                agent.wait_for(lambda s: s["patient"]["state"] == "ready")
                if api.get("/api/status").json()["patient"]["dmp"]["status"] == "absent":
                    assert api.post("/api/dmp", json={"consent": True}).status_code == 201
            yield live, disk
        finally:
            for link in links:
                link.stop()
            agent.stop()
            if host.process is None:
                host.start()
            host.stop()


def test_a_full_disk_refuses_a_deposit_up_front_then_the_waiting_deposit_says_why(
    world: tuple[LiveWorld, Path]
) -> None:
    live, disk = world
    agent = live.agent
    outbox_dir = disk / "data" / "dmp-agent" / "outbox"
    with agent.client() as api:
        code = api.get("/api/deposit-types").json()[0]["code"]
        ins = api.get("/api/status").json()["patient"]["patient"]["ins"]
        qualify(api)  # the patient's passport checked (RNIV: no deposit before)

        # 1. A 5 MB deposit, 2.5 MB free: refused before the upload is read, and why.
        filler = fill(disk, leave=int(2.5 * MB))
        refused = api.post("/api/deposits", params={"typeCode": code, "title": "gros"},
                           content=b"%PDF-1.4\n" + b"x" * (5 * MB),
                           headers={"content-type": "application/pdf"})
        assert refused.status_code == 507, refused.text
        answer = refused.json()
        assert answer["code"] == "disk-full"
        found = re.search(r"disque plein : (\d+) Mo nécessaires, (\d+) Mo libres",
                          answer["message"])
        assert found is not None and int(found[1]) >= 6 and int(found[2]) == 2, answer
        assert api.get("/api/outbox").json()["items"] == []
        assert list((outbox_dir / "contents").iterdir()) == []
        filler.unlink()

        # 2. The host is down: the deposit is accepted, and waits for the network.
        live.host.stop()
        queued = api.post("/api/deposits", params={"typeCode": code, "title": "attente"},
                          content=report_pdf("attente"),
                          headers={"content-type": "application/pdf"})
        assert queued.status_code == 202, queued.text
        unique_id = queued.json()["uniqueId"]
        item = agent.wait_for(lambda s: any(
            i["reason"] == "network" for i in s["outbox"]["items"]))["outbox"]["items"][0]
        assert item["uniqueId"] == unique_id and item["nextAttempt"]
        assert "hôte DMP injoignable" in item["reasonText"]

        # 3. The disk fills up: its next attempt cannot be written, and that is what shows.
        filler = fill(disk, leave=0)
        status = agent.wait_for(lambda s: s["outbox"]["items"][0]["reason"] == "disk",
                                timeout=20)
        item = status["outbox"]["items"][0]
        assert "disque plein" in item["reasonText"]  # not a stale ConnectError
        assert status["outbox"]["problem"].startswith("disque plein")
        # The log file fills its last page, then refuses: records go to standard error.
        deadline = time.monotonic() + 30
        while "logging to standard error" not in agent.log_file.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the log never fell back to stderr"
            time.sleep(0.2)

        # 4. Space freed, host back: it goes out, once.
        filler.unlink()
        live.host.start()
        agent.wait_for(lambda s: s["outbox"]["pending"] == 0 and not s["outbox"]["items"],
                       timeout=30)
        assert api.get("/api/outbox").json()["problem"] == ""
    assert [row for row in live.stored(ins) if row[0] == unique_id] == [
        (unique_id, "attente", code)]
    said = agent.log_file.read_text(errors="replace")  # the agent's standard error
    assert "Traceback" not in said and "Logging error" not in said
