"""Issue 18's figure: the deposits per second the outbox achieves under the DMP's pace (fewer
than 5 per second per establishment and software; `outbox.max_deposits_per_second`,
default 4), in real time, through the real outbox and its worker, with a send that answers
at once (the host is not the subject: the pace is). Also: two establishments side by side,
and how long a stop takes when the worker is waiting its turn. Figures only, no pass/fail:

    .venv/bin/python bench/outbox_throttle.py [--deposits 40] [--per-second 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from agent.config import AgentConfig
from agent.outbox import Item, OutboxWorker, SendResult, open_outbox, structure_of
from agent.outbox.report import outbox_json


def run(root: Path, deposits: int, per_second: float, structures: int) -> dict[str, object]:
    config = AgentConfig(data_dir=root / "data", credentials_dir=root / "credentials",
                         max_deposits_per_second=per_second)
    starts: dict[str, list[float]] = {}
    done = threading.Event()
    shown: list[object] = []

    with open_outbox(config) as outbox:
        for k in range(deposits):
            outbox.add(f"2.25.{k + 1}", f"INS-{k}", b"{}",
                       {"title": f"bench {k}", "structure": f"structure-{k % structures}"})

        def send(item: Item) -> SendResult:
            starts.setdefault(structure_of(item), []).append(time.monotonic())
            if sum(map(len, starts.values())) == 3:  # the first were held back by now
                shown.append(outbox_json(outbox, sending=None)["throttle"])
            if sum(map(len, starts.values())) == deposits:
                done.set()
            return SendResult.stored("201 Created", 201)

        worker = OutboxWorker(outbox, send, threading.Event()).start()
        began = time.monotonic()
        try:
            done.wait(deposits / per_second + 30)
        finally:
            worker.stop()
        elapsed = max(t for s in starts.values() for t in s) - min(
            t for s in starts.values() for t in s)
    busiest = max(max(sum(1 for u in s if t <= u < t + 1.0) for t in s)
                  for s in starts.values())
    return {"sent": sum(map(len, starts.values())), "elapsed": elapsed,
            "rate": (sum(map(len, starts.values())) - 1) / elapsed if elapsed else 0.0,
            "per_structure": {k: (len(s) - 1) / (s[-1] - s[0]) if len(s) > 1 else 0.0
                              for k, s in sorted(starts.items())},
            "busiest": busiest, "startup": min(min(s) for s in starts.values()) - began,
            "shown": shown[0] if shown else None}


def stop_latency(root: Path, per_second: float) -> float:
    """Seconds `OutboxWorker.stop` takes while the worker waits its turn."""
    config = AgentConfig(data_dir=root / "data", credentials_dir=root / "credentials",
                         max_deposits_per_second=per_second)
    with open_outbox(config) as outbox:
        for k in range(3):
            outbox.add(f"2.25.{k + 1}", f"INS-{k}", b"{}", {"structure": "s"})
        sent = threading.Event()

        def send(item: Item) -> SendResult:
            sent.set()
            return SendResult.stored("201 Created", 201)

        worker = OutboxWorker(outbox, send, threading.Event()).start()
        sent.wait(10)
        time.sleep(0.5 / per_second)  # now within the wait for the next turn
        told = time.monotonic()
        worker.stop()
        return time.monotonic() - told


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deposits", type=int, default=40)
    parser.add_argument("--per-second", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dmp-throttle-") as temp:
        one = run(Path(temp) / "one", args.deposits, args.per_second, 1)
        two = run(Path(temp) / "two", args.deposits, args.per_second, 2)
        stop = stop_latency(Path(temp) / "stop", args.per_second)
    print(f"pace: outbox.max_deposits_per_second = {args.per_second:g} (DMP rule: fewer "
          "than 5 per second per establishment and software)")
    print(f"one establishment: {one['sent']} deposits in {one['elapsed']:.2f} s = "
          f"{one['rate']:.2f} deposits/s; at most {one['busiest']} in any second")
    rates = ", ".join(f"{k} {v:.2f}/s" for k, v in two["per_structure"].items())  # type: ignore[attr-defined]
    print(f"two establishments: {two['sent']} deposits in {two['elapsed']:.2f} s = "
          f"{two['rate']:.2f} deposits/s in all ({rates}); at most {two['busiest']} in "
          "any second for one establishment")
    print(f"status while held back: {one['shown']}")
    print(f"stop while waiting its turn: {stop * 1000:.0f} ms")


if __name__ == "__main__":
    main()
