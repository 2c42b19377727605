"""Long fuzz run of the card parsers (hypothesis): prints how many inputs each target took.

Every target (APDU responses, TLV, FCP, PKCS#15 files, CPS data objects, Vitale files, and
whole CPS/Vitale profile sessions with one response replaced) gets random bytes and mutations
of real responses; only `CardError` may come out, and no call may hang.

    .venv/bin/python bench/fuzz_parsers.py --count 100000
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, settings

from cardreader.errors import CardError
from tests.fuzz_targets import TARGETS, hostile_bytes


def fuzz(
    target: Callable[[bytes], object], count: int
) -> tuple[collections.Counter[str], float, Exception | None]:
    """Feed ``count`` hostile inputs to ``target``; return counts, slowest call, first defect."""
    stats: collections.Counter[str] = collections.Counter()
    slowest = 0.0

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(hostile_bytes())
    def run(data: bytes) -> None:
        nonlocal slowest
        started = time.perf_counter()
        try:
            target(data)
            stats["accepted"] += 1
        except CardError:
            stats["typed"] += 1
        finally:
            slowest = max(slowest, time.perf_counter() - started)
            stats["inputs"] += 1

    try:
        run()
    except Exception as exc:  # hypothesis re-raises the first untyped exception
        return stats, slowest, exc
    return stats, slowest, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="total inputs (all targets)")
    args = parser.parse_args()
    per_target = math.ceil(args.count / len(TARGETS))
    total = 0
    failures = 0
    started = time.perf_counter()
    print(f"{'target':<18} {'inputs':>8} {'accepted':>9} {'typed errors':>13} {'max ms':>8}")
    for name, target in TARGETS.items():
        stats, slowest, error = fuzz(target, per_target)
        if error is not None:
            failures += 1
            print(f"{name}: FAILED with {type(error).__name__}: {error}")
        total += stats["inputs"]
        print(f"{name:<18} {stats['inputs']:>8} {stats['accepted']:>9} {stats['typed']:>13} "
              f"{slowest * 1000:>8.1f}")
    elapsed = time.perf_counter() - started
    print(f"total inputs: {total} in {elapsed:.0f} s; untyped failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
