"""Issue 17: the command line beside a running `dmp-agent run` (the normal state once
installed). Each command is a `dmp-agent` process of the same user; it finds the running
agent (discovery file, token) and goes through its local API: the agent's session (no PIN
asked once open), its outbox (no "outbox in use"), its patient. A reader that goes away
(`dmp-agent documents | head -1`) ends the command quietly."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cardreader.virtual.vitale import VirtualVitale
from tests.cda_support import report_pdf
from tests.live import BIN, LiveWorld

pytestmark = pytest.mark.pcsc
PIN = "1234"


def dmp_agent(live: LiveWorld, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dmp-agent"), *args], input=stdin, capture_output=True,
                          text=True, env=live.agent.env, timeout=90)


def test_the_commands_go_through_the_running_agent(
        live: LiveWorld, insert_card: Any, tmp_path: Path) -> None:
    insert_card(live.cps("pharmacist"), slot=0)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    insert_card(VirtualVitale.from_profile("single"), slot=1)

    status = dmp_agent(live, "status")
    assert status.returncode == 0, status.stderr
    assert f"Agent en cours d'exécution : {live.agent.url}" in status.stdout
    assert "Session : fermée ; carte CPS de Louis BERNARD" in status.stdout

    # The running agent's session is closed: the PIN typed here opens it there.
    patient = dmp_agent(live, "patient", "--pin-stdin", stdin=f"{PIN}\n")
    assert patient.returncode == 0, patient.stderr
    assert patient.stdout.startswith("Patient : ")
    opened = live.agent.wait_for(lambda s: s["session"]["state"] == "open")
    assert opened["session"]["professional"]["lastName"] == "BERNARD"
    ready = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
    with live.agent.client() as api:
        if ready["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        types = [t["code"] for t in api.get("/api/deposit-types").json()]

    # From now on no PIN is asked: nothing on standard input, no --pin-stdin.
    checked = dmp_agent(live, "identity", "--document", "passeport")
    assert checked.returncode == 0, checked.stderr
    assert "qualifiée" in checked.stdout and "PIN" not in checked.stderr
    report = tmp_path / "ordonnance.pdf"
    report.write_bytes(report_pdf("Dispensation", "dispensation " * 40))
    deposited = dmp_agent(live, "deposit", str(report), "--type", types[0], "--title",
                          "Dispensation CLI")
    assert deposited.returncode == 0, deposited.stderr
    assert "Déposé : Dispensation CLI" in deposited.stdout
    assert "PIN" not in deposited.stderr
    ins = ready["patient"]["ins"]
    assert "Dispensation CLI" in [title for _u, title, _c in live.stored(ins)]

    # The outbox the running agent holds, listed through it ("outbox in use" before).
    outbox = dmp_agent(live, "outbox")
    assert outbox.returncode == 0, outbox.stderr
    assert "0 en attente, 0 refusé(s)" in outbox.stdout.splitlines()[0]

    listed = dmp_agent(live, "documents")
    assert listed.returncode == 0, listed.stderr
    assert "Dispensation CLI" in listed.stdout
    found = re.search(r"Dispensation CLI.*\n\s+(\S+)", listed.stdout)
    assert found is not None, listed.stdout
    unique_id = found.group(1)
    masked = dmp_agent(live, "mask", unique_id)
    assert masked.returncode == 0, masked.stderr
    assert masked.stdout.strip() == f"Masqué : Dispensation CLI — {unique_id}"
    with live.host.db() as db:
        assert db.execute("SELECT masked FROM documents WHERE unique_id = ?",
                          (unique_id,)).fetchone() == (1,)

    # `dmp-agent documents | head -1`: the reader goes away, the command ends quietly.
    command = subprocess.Popen([str(BIN / "dmp-agent"), "documents"], env=live.agent.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    assert command.stdout is not None and command.stderr is not None
    assert command.stdout.readline().startswith(b"Patient : ")
    command.stdout.close()
    assert command.wait(timeout=60) == 0
    assert command.stderr.read() == b""  # no traceback

    # The page's session closed: a command asks for the PIN again, and a wrong one is said.
    with live.agent.client() as api:
        assert api.delete("/api/session").status_code == 204
    wrong = dmp_agent(live, "documents", "--pin-stdin", stdin="0000\n")
    assert wrong.returncode == 1
    assert "2 essais restants" in wrong.stderr or "2 essai" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr
