"""The agent on a slow link: a delaying TCP relay between `dmp-agent run` and the host,
and the daily workflows timed through the local API at several round-trip times.

    scripts/isolated .venv/bin/python bench/latency.py [--rtt 0 0.5 3] [--mbit 0]

The relay delays each direction by RTT/2, delays each new connection by one RTT (the TCP
handshake the relay would otherwise answer at once), and with ``--mbit`` limits the
bandwidth with a TCP-like slow start (10 segments, doubled each RTT): large bodies cost what
they cost. It counts the connections and the round trips: a round trip starts each time
the agent sends after the host spoke (or first) on a connection, so a TLS handshake is one
and each sequential HTTP request another; two requests in flight at once count once.

Workflows, as a pharmacist meets them (each after the previous one, the CPS in reader 0):
PIN → session open; Vitale → patient ready (DMP and documents listed); the documents asked
again by practice software (GET /api/documents); a 1 MiB and a 4 MiB deposit → done and
listed; and a patient without a DMP: Vitale → "no DMP" shown, then the DMP created and shown open.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.pcscd import Pcscd
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vpcd import VpcdLink, slot_port
from tests.live import LiveWorld
from tests.relay import Relay, relayed_world


@dataclass
class Measure:
    name: str
    seconds: float
    connections: int
    round_trips: int


class Cards:
    """The two vpcd slots: the CPS in slot 0, a Vitale card in slot 1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.links: dict[int, VpcdLink] = {}

    def insert(self, slot: int, card: Any) -> None:
        self.remove(slot)
        self.links[slot] = VpcdLink(card, slot_port(slot, self.port)).start()
        assert wait_for_card(list_readers()[slot], present=True)

    def remove(self, slot: int) -> None:
        link = self.links.pop(slot, None)
        if link is not None:
            link.stop()
            assert wait_for_card(list_readers()[slot], present=False)


def timed(relay: Relay, name: str, action: Callable[[], None]) -> Measure:
    relay.reset()
    begin = time.perf_counter()
    action()
    return Measure(name, time.perf_counter() - begin, relay.connections, relay.round_trips)


def workflows(world: LiveWorld, relay: Relay, cards: Cards, newcomer: str) -> list[Measure]:
    agent = world.agent
    status: Callable[[Callable[[dict[str, Any]], bool]], dict[str, Any]] = \
        lambda predicate: agent.wait_for(predicate, timeout=600)  # noqa: E731
    measures = []
    with agent.client(timeout=600) as api:
        status(lambda s: s["session"]["state"] == "locked")

        def open_session() -> None:
            answer = api.post("/api/session", json={"pin": "1234"})
            assert answer.status_code == 200, f"RTT {relay.rtt}: {answer.text}"

        measures.append(timed(relay, "PIN → session open", open_session))
        # The patient's card goes in a few seconds later (a greeting): the session's own
        # connection, opened in the background meanwhile, is warm by then.
        time.sleep(3 * relay.rtt + 0.5)

        def patient_ready() -> None:
            cards.insert(1, VirtualVitale.from_profile("single"))
            status(lambda s: s["patient"]["state"] in ("ready", "error"))

        measures.append(timed(relay, "Vitale → patient ready", patient_ready))
        measures.append(timed(relay, "… → GET /api/documents answers",
                              lambda: api.get("/api/documents").raise_for_status()))
        code = api.get("/api/deposit-types").json()[0]["code"]

        def deposit(mib: int) -> Callable[[], None]:
            def run() -> None:
                answer = api.post("/api/deposits", params={"typeCode": code, "title": "Bilan"},
                                  content=b"%PDF-1.4\n" + os.urandom(mib * 1024 * 1024),
                                  headers={"content-type": "application/pdf"})
                assert answer.status_code == 202, answer.text
                unique_id = answer.json()["uniqueId"]
                status(lambda s: any(d["uniqueId"] == unique_id
                                     for d in s["patient"]["documents"]))
            return run

        # 1 MiB travels inside its bundle, 4 MiB is streamed first (agent.core.deposit);
        # then the held list is loaded again (one round trip).
        measures.append(timed(relay, "1 MiB deposit → done and listed", deposit(1)))
        measures.append(timed(relay, "4 MiB deposit → done and listed", deposit(4)))
        cards.remove(1)

        def create() -> None:
            cards.insert(1, VirtualVitale.from_profile(newcomer))
            shown = status(lambda s: s["patient"]["state"] in ("ready", "error"))
            assert shown["patient"]["dmp"]["status"] == "absent", shown["patient"]
            created = api.post("/api/dmp", json={"consent": True})
            assert created.status_code == 201, created.text
            status(lambda s: (s["patient"].get("dmp") or {}).get("status") == "open")

        measures.append(timed(relay, "Vitale → \"no DMP\", then created", create))
        cards.remove(1)
        api.delete("/api/session")
    return measures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", type=float, nargs="+", default=[0.0, 0.5, 3.0],
                        help="round-trip times to measure, seconds")
    parser.add_argument("--mbit", type=float, default=0.0,
                        help="bandwidth limit, Mbit/s (0: unlimited)")
    args = parser.parse_args()
    newcomers = ["test", "demo", "corsica"]
    if len(args.rtt) > len(newcomers):
        parser.error(f"at most {len(newcomers)} round-trip times (one new patient each)")
    results: dict[float, list[Measure]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pcscd = Pcscd()
        pcscd.start()
        try:
            with relayed_world(Path(tmp)) as (live, relay):
                relay.bytes_per_second = args.mbit * 125_000
                cards = Cards(pcscd.port)
                cards.insert(0, live.cps("pharmacist"))
                # Claire's DMP exists before the measures (the pharmacist creates it).
                live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
                with live.agent.client() as api:
                    assert api.post("/api/session", json={"pin": "1234"}).status_code == 200
                    cards.insert(1, VirtualVitale.from_profile("single"))
                    live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
                    assert api.post("/api/dmp", json={"consent": True}).status_code == 201
                    cards.remove(1)
                    api.delete("/api/session")
                for rtt, newcomer in zip(args.rtt, newcomers, strict=False):
                    time.sleep(2)  # the previous session's revocation lands (background)
                    relay.rtt = rtt
                    results[rtt] = workflows(live, relay, cards, newcomer)
                cards.remove(0)
        finally:
            pcscd.stop()
    names = [m.name for m in next(iter(results.values()))]
    print("| step | connections | round trips | " +
          " / ".join(f"{rtt:g} s" for rtt in results) + " |")
    print("|---|---|---|---|")
    for index, name in enumerate(names):
        row = [results[rtt][index] for rtt in results]
        connections = "/".join(str(m.connections) for m in row)
        trips = "/".join(str(m.round_trips) for m in row)
        times = " / ".join(f"{m.seconds:.2f}" for m in row)
        print(f"| {name} | {connections} | {trips} | {times} s |")
    bandwidth = f"{args.mbit:g} Mbit/s" if args.mbit else "unlimited bandwidth"
    print(f"(RTT {', '.join(f'{r:g}' for r in results)} s; {bandwidth}; connections and round "
          "trips per RTT, separated by /)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
