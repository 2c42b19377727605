"""Issue 18's figures: CPS removal → the patient's data gone from the core (what `/api/status`,
the page and the tray show), with the host reachable and with a host that does not answer.
The agent core runs in this process with the real pcscd + vpcd and the real host over TLS;
"not answering" holds every revocation request unanswered for ``--hold`` seconds (a dead
link, or a 3 s round trip and worse), then lets them through.

    bash scripts/isolated .venv/bin/python bench/session_end.py [--runs 5] [--hold 3]

Per run, times from the card leaving the reader (the vpcd link stopped):
- event: pcscd's report of the removal (vpcd's presence poll, ~0.4 s: not ours);
- cleared: the core's publication of the patient cleared (event → cleared is ours);
- Vitale: the patient's card pulled right after the CPS, its CARD_REMOVED → its context
  cleared: the card thread is not held by the host (before issue 18, a host that did not
  answer held it for the revocation's 2 s timeout);
- told: the host holding the revocation (reachable: from the removal; not answering: from
  the moment it answers again).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from agent.config import AgentConfig
from agent.core.service import AgentService
from agent.install.enrol import enrol_from_pki
from cardreader.pcsc import EventKind, SlotEvent, list_readers, wait_for_card
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pcscd import Pcscd
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vpcd import VpcdLink, slot_port
from host.app import create_app
from host.settings import HostSettings
from host.store import upgrade
from host.tls import running_server, server_ssl_context
from tests.agent.test_revocations import Gate
from tests.host.tls_harness import PIN, make_pki

WAIT = 30.0


def one_round(core: AgentService, gate: Gate, pki: Path, port: int, *, hold: float
              ) -> dict[str, float]:
    readers = list_readers()
    cps_reader, vitale_reader = readers[0], readers[1]
    cps = VpcdLink(VirtualCps.from_profile("gp", ca=TestHealthCA.load(pki / "health-ca")),
                   slot_port(0, port)).start()
    vitale = VpcdLink(VirtualVitale.from_profile("single"), slot_port(1, port)).start()
    try:
        assert wait_for_card(cps_reader, present=True)
        assert wait_for_card(vitale_reader, present=True)
        assert core.wait_until(lambda: core.snapshot()["session"]["state"] == "locked", WAIT)
        core.open_session(PIN)
        assert core.wait_until(lambda: core.patient is not None
                               and core.patient.state == "ready", WAIT)
        marks: dict[str, float] = {}

        def listener(kind: str, data: dict[str, Any]) -> None:
            if kind == "patient" and data["patient"] is None:
                marks.setdefault("cleared", time.monotonic())
                if data["state"] == "none":
                    marks.setdefault("vitale cleared", time.monotonic())

        handle = core._on_card_event

        def on_card_event(event: SlotEvent) -> None:
            if event.kind is EventKind.CARD_REMOVED:
                marks.setdefault("event" if event.reader == cps_reader else "vitale event",
                                 time.monotonic())
            handle(event)

        unsubscribe = core.subscribe(listener)
        core._on_card_event = on_card_event  # type: ignore[method-assign]
        session = core.session
        assert session is not None and core._revocations is not None
        session_id = session.session_id
        revoker = core._revocations

        def wait_told() -> None:
            if revoker.wait_delivered([session_id], WAIT):
                marks["told"] = time.monotonic()

        watcher = threading.Thread(target=wait_told)
        try:
            gate.mode = "hang" if hold else "up"
            removed = time.monotonic()
            cps.stop()
            assert core.wait_until(lambda: "cleared" in marks, WAIT)
            assert session.wait_ended(WAIT)  # the revocation handed over: pending until told
            watcher.start()
            vitale.stop()
            assert core.wait_until(lambda: "vitale cleared" in marks, WAIT)
            if hold:
                time.sleep(max(0.0, hold - (time.monotonic() - removed)))
                answering = time.monotonic()
                gate.mode = "up"
            else:
                answering = removed
            watcher.join(WAIT)
            assert "told" in marks
        finally:
            del core._on_card_event  # type: ignore[method-assign]
            unsubscribe()
            gate.mode = "up"
        return {"event": marks["event"] - removed, "cleared": marks["cleared"] - removed,
                "ours": marks["cleared"] - marks["event"],
                "vitale": marks["vitale cleared"] - marks["vitale event"],
                "told": marks["told"] - answering}
    finally:
        cps.stop()
        vitale.stop()
        wait_for_card(cps_reader, present=False)
        wait_for_card(vitale_reader, present=False)


def _line(name: str, values: list[float]) -> str:
    return (f"  {name:<34} median {statistics.median(values) * 1000:7.1f} ms   "
            f"max {max(values) * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hold", type=float, default=3.0,
                        help="seconds the host does not answer, in the second series")
    options = parser.parse_args()
    daemon = Pcscd()
    daemon.start()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="dmp-session-end-") as directory:
            root = Path(directory)
            pki = make_pki(root / "pki")
            upgrade(f"sqlite:///{root / 'host.db'}")
            app = create_app(HostSettings(database_url=f"sqlite:///{root / 'host.db'}",
                                          blob_dir=root / "blobs", pki_dir=pki))
            gate = Gate(app)
            with running_server(gate, server_ssl_context(pki)) as url:
                config = AgentConfig(host_url=url, host_ca=pki / "server" / "ca.pem",
                                     credentials_dir=root / "workstation",
                                     data_dir=root / "data", log_dir=root / "log")
                enrol_from_pki(pki, config=config)
                readers = list_readers()
                with AgentService(config, cps_reader=readers[0], vitale_reader=readers[1],
                                  with_outbox=False) as core:
                    assert core.settle()
                    for label, hold in (("host reachable", 0.0),
                                        (f"host not answering for {options.hold:g} s",
                                         options.hold)):
                        results[label] = [one_round(core, gate, pki, daemon.port, hold=hold)
                                          for _ in range(options.runs)]
            shutil.rmtree(root / "data", ignore_errors=True)
    finally:
        daemon.close()
    for label, runs in results.items():
        print(f"{label} ({len(runs)} runs):")
        print(_line("removal -> pcscd's event", [r["event"] for r in runs]))
        print(_line("event -> patient cleared (ours)", [r["ours"] for r in runs]))
        print(_line("removal -> patient cleared", [r["cleared"] for r in runs]))
        print(_line("next card (Vitale) event -> cleared", [r["vitale"] for r in runs]))
        told = "removal" if label == "host reachable" else "host answering"
        print(_line(f"{told} -> host told", [r["told"] for r in runs]))


if __name__ == "__main__":
    main()
