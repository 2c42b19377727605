"""Agent figures through the real stack: pcscd + vpcd virtual cards, the host over TLS 1.3.

    scripts/isolated .venv/bin/python bench/agent.py [--runs 20]

- CPS insertion → session ready: from plugging the card into the reader to a usable
  session (card read, PIN given by the harness, statement signed, session certificate),
  then split in two: pcscd's presence poll of the virtual reader (plugging → the monitor's
  CARD_INSERTED, ~400 ms, vpcd's) and ours (CARD_INSERTED → session ready: card reads, PIN,
  the host's challenge fetched meanwhile, the one round trip that opens the session).
  The host and the virtual card run in this process: their work shares its GIL with ours.
- Vitale insertion → document list ready, with a GP session open: card read, INS resolved,
  existence test, documents this GP may see.
- TLS handshakes and APDUs per scenario (a handshake is a new TLS connection on the host).
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.config import AgentConfig
from agent.core.pin import FixedPrompt
from agent.core.professional import ProfessionalSession
from agent.install.enrol import enrol_from_pki, load_workstation
from cardreader.apdu import ApduProtocol
from cardreader.pcsc import (
    EventKind,
    Monitor,
    PcscConnection,
    SlotEvent,
    list_readers,
    wait_for_card,
)
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pcscd import Pcscd
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vpcd import VpcdLink, slot_port
from cardreader.vitale import Vitale2Profile
from host import tls
from host.store import upgrade
from tests.host.tls_harness import make_pki, tls_host

HANDSHAKES = [0]
_original = tls.TlsH11Protocol.connection_made


def _counting(self, transport):  # type: ignore[no-untyped-def]
    HANDSHAKES[0] += 1
    return _original(self, transport)


tls.TlsH11Protocol.connection_made = _counting  # type: ignore[method-assign]


def stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[max(0, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(values):8.1f} {p95:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dmp-bench-agent-") as tmp, Pcscd() as pcscd:
        root = Path(tmp)
        pki = make_pki(root / "pki")
        url = f"sqlite:///{root / 'host.db'}"
        upgrade(url)
        config = AgentConfig(host_ca=pki / "server" / "ca.pem",
                             credentials_dir=root / "agent" / "cred",
                             data_dir=root / "agent" / "data", log_dir=root / "agent" / "log")
        enrol_from_pki(pki, "sandbox", config=config)
        workstation = load_workstation(config)
        ca = TestHealthCA.load(pki / "health-ca")
        cps_reader, vitale_reader = list_readers()[0], list_readers()[1]
        events: queue.Queue[SlotEvent] = queue.Queue()
        with tls_host(url, pki, root / "blobs") as host, Monitor(events.put) as monitor:
            monitor.ready.wait(5)
            gp_card = VirtualCps.from_profile("gp", ca=ca, state_dir=root / "gp")

            def wait_event(kind: EventKind, reader: str) -> None:
                while True:
                    event = events.get(timeout=10)
                    if event.kind is kind and event.reader == reader:
                        return

            # 1. CPS insertion -> session ready
            session_times, session_apdus, session_handshakes = [], [], []
            poll_times, our_times = [], []
            for _ in range(args.runs):
                wait_for_card(cps_reader, present=False)
                while not events.empty():
                    events.get_nowait()
                before = HANDSHAKES[0]
                started = time.perf_counter()
                link = VpcdLink(gp_card, slot_port(0, pcscd.port)).start()
                wait_event(EventKind.CARD_INSERTED, cps_reader)
                inserted = time.perf_counter()
                session = ProfessionalSession.open(cps_reader, workstation, host.base_url,
                                                   FixedPrompt("1234"))
                ready = time.perf_counter()
                session_times.append((ready - started) * 1000)
                poll_times.append((inserted - started) * 1000)
                our_times.append((ready - inserted) * 1000)
                session_apdus.append(link.apdu_count)
                session_handshakes.append(HANDSHAKES[0] - before)
                session.close()
                link.stop()

            # 2. Vitale insertion -> document list ready (GP session open)
            wait_for_card(cps_reader, present=False)  # pcscd notices a removal ~0.4 s late
            link = VpcdLink(gp_card, slot_port(0, pcscd.port)).start()
            wait_for_card(cps_reader)
            session = ProfessionalSession.open(cps_reader, workstation, host.base_url,
                                               FixedPrompt("1234"))
            dmp = session.dmp()
            list_times, list_apdus, list_handshakes = [], [], []
            first = True
            for _ in range(args.runs):
                wait_for_card(vitale_reader, present=False)
                while not events.empty():
                    events.get_nowait()
                vitale = VirtualVitale.from_profile("single")
                before = HANDSHAKES[0]
                started = time.perf_counter()
                vlink = VpcdLink(vitale, slot_port(1, pcscd.port)).start()
                wait_event(EventKind.CARD_INSERTED, vitale_reader)
                with PcscConnection(vitale_reader) as connection:
                    card = Vitale2Profile(ApduProtocol(connection)).read()
                patient = dmp.resolve(card, card.holder)
                state = dmp.existence(patient)
                if first and state["status"] == "absent":
                    dmp.create(patient, consent=True)
                    dmp.record_authorization(patient, session.identity.id_nat_ps,  # type: ignore[union-attr]
                                             confirmed=True)
                documents = dmp.documents(patient)
                list_times.append((time.perf_counter() - started) * 1000)
                list_apdus.append(vlink.apdu_count)
                list_handshakes.append(HANDSHAKES[0] - before)
                first = False
                vlink.stop()
            session.close()
            link.stop()
    print(f"{'scenario':<44} {'median ms':>9} {'p95 ms':>8} {'APDUs':>6} {'handshakes':>10}")
    print(f"{'CPS insertion -> session ready':<44} {stats(session_times)} "
          f"{statistics.median(session_apdus):>6.0f} "
          f"{statistics.median(session_handshakes):>10.0f}")
    print(f"{'  of which pcscd presence poll (vpcd)':<44} {stats(poll_times)}")
    print(f"{'  of which ours (card inserted -> ready)':<44} {stats(our_times)}")
    print(f"{'Vitale insertion -> document list ready':<44} {stats(list_times[1:])} "
          f"{statistics.median(list_apdus):>6.0f} {statistics.median(list_handshakes):>10.0f}")
    print(f"(documents listed: {len(documents)}; the first Vitale run, which created the DMP, "
          "is left out; insertion includes pcscd's ~400 ms presence poll of vpcd)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
