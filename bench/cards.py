"""Card-layer figures through the real pcscd + vpcd: APDU counts and median times, vs OpenSC.

Run it in its own namespace (it starts its own pcscd):

    scripts/isolated .venv/bin/python bench/cards.py [--runs 20]

For each operation: the number of APDUs the virtual card received (counted by the card
itself) and the median and p95 wall time over the runs. OpenSC's `pkcs15-tool
--list-certificates` runs on the same virtual CPS in the same run, side by side with our read
of the certificates and the identity. The last line is the latency from a virtual card
insertion to the monitor's event (bounded by pcscd's 400 ms presence polling of vpcd, a
serial-style driver; USB CCID readers signal insertions by interrupt).
"""

from __future__ import annotations

import argparse
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
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
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vpcd import VpcdLink, slot_port
from cardreader.vitale import Vitale2Profile

PIN = "1234"


def measure(
    name: str, runs: int, link: VpcdLink, operation: Callable[[], object]
) -> tuple[str, str, float, float]:
    """Name, APDUs per run ("first/then" when the first run reads more), median, p95 (ms)."""
    times: list[float] = []
    counts: list[int] = []
    for _ in range(runs):
        before = link.apdu_count
        started = time.perf_counter()
        operation()
        times.append(time.perf_counter() - started)
        counts.append(link.apdu_count - before)
    assert len(set(counts[1:])) <= 1, f"{name}: APDU count varies between runs: {counts}"
    apdus = str(counts[0]) if counts[-1] == counts[0] else f"{counts[0]}/{counts[-1]}"
    p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
    return name, apdus, statistics.median(times) * 1000, p95 * 1000


def insert(card, slot: int, port: int) -> VpcdLink:
    reader = list_readers()[slot]
    wait_for_card(reader, present=False)
    link = VpcdLink(card, slot_port(slot, port)).start()
    wait_for_card(reader)
    return link


def main() -> int:
    parser = argparse.ArgumentParser(description="card-layer benchmark (prints figures)")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    runs = args.runs
    rows: list[tuple[str, str, float, float]] = []
    with Pcscd() as pcscd, tempfile.TemporaryDirectory() as state:
        reader = list_readers()[0]
        cps = VirtualCps.from_profile("gp", state_dir=Path(state) / "gp")
        link = insert(cps, 0, pcscd.port)

        def cps_read() -> None:
            with PcscConnection(reader) as connection:
                card = CpsCard(ApduProtocol(connection))
                card.read_identity()
                card.certificate(CpsKey.AUTHENTICATION)
                card.certificate(CpsKey.SIGNATURE)

        rows.append(measure("CPS read (identity + 2 certificates)", runs, link, cps_read))

        def cps_certificates() -> None:
            with PcscConnection(reader) as connection:
                card = CpsCard(ApduProtocol(connection))
                card.certificate(CpsKey.AUTHENTICATION)
                card.certificate(CpsKey.SIGNATURE)

        rows.append(measure("CPS read (2 certificates only)", runs, link, cps_certificates))

        with PcscConnection(reader) as connection:
            card = CpsCard(ApduProtocol(connection))
            card.read_identity()  # locate the PIN and keys once, as a session does
            rows.append(measure("CPS PIN verify", runs, link, lambda: card.verify_pin(PIN)))
            for key in CpsKey:
                rows.append(measure(
                    f"CPS signature, {key.name.lower()} key", runs, link,
                    lambda key=key: card.sign(key, b"submission set digest list"),
                ))

        if shutil.which("pkcs15-tool"):
            def opensc() -> None:
                subprocess.run(
                    ["pkcs15-tool", "--reader", "0", "--list-certificates"],
                    check=True, capture_output=True, timeout=60,
                )

            rows.append(measure("OpenSC pkcs15-tool --list-certificates", runs, link, opensc))
        link.stop()

        for name, people in (("single", 1), ("family", 3)):
            vitale_link = insert(VirtualVitale.from_profile(name), 1, pcscd.port)
            vitale_reader = list_readers()[1]

            def vitale_read(vitale_reader: str = vitale_reader) -> None:
                with PcscConnection(vitale_reader) as connection:
                    Vitale2Profile(ApduProtocol(connection)).read()

            rows.append(measure(f"Vitale read, {people} person(s)", runs, vitale_link,
                                vitale_read))
            vitale_link.stop()

        latencies = insertion_latency(runs, pcscd.port)

    print(f"{'operation':<42} {'APDUs':>6} {'median ms':>10} {'p95 ms':>8}")
    for name, count, median, p95 in rows:
        print(f"{name:<42} {count:>6} {median:>10.1f} {p95:>8.1f}")
    print(f"{'insertion -> monitor event':<42} {'':>6} {statistics.median(latencies):>10.1f} "
          f"{sorted(latencies)[int(len(latencies) * 0.95) - 1]:>8.1f}")
    return 0


def insertion_latency(runs: int, port: int) -> list[float]:
    events: queue.Queue[SlotEvent] = queue.Queue()
    latencies: list[float] = []
    reader = list_readers()[0]
    with Monitor(events.put) as monitor:
        monitor.ready.wait(5)
        for _ in range(runs):
            wait_for_card(reader, present=False)
            while not events.empty():
                events.get_nowait()
            started = time.perf_counter()
            link = VpcdLink(VirtualVitale.from_profile("single"), slot_port(0, port)).start()
            while events.get(timeout=10).kind is not EventKind.CARD_INSERTED:
                pass
            latencies.append((time.perf_counter() - started) * 1000)
            link.stop()
    return latencies


if __name__ == "__main__":
    sys.exit(main())
