"""Long fuzz run of the host's input handling: prints how many hostile inputs each target took.

1. The three wire parsers (ITI-65 bundles — raw bytes, arbitrary JSON, valid bundles with one
   node replaced, and the PDSm guide's examples mutated structurally —, JSON patches, search
   query strings): only `WireError` may come out.
2. The HTTP endpoints (deposit, conditional PATCH, search) of an in-process host on SQLite
   and PostgreSQL: never a 5xx, and a refused deposit stores nothing.

    scripts/isolated .venv/bin/python bench/fuzz_host.py --count 100000 --http 3000
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wire.mhd  # noqa: E402


def _per_target(argv: list[str]) -> int:
    count = 100_000
    if "--count" in argv:
        count = int(argv[argv.index("--count") + 1])
    return math.ceil(count / 5)  # the five TARGETS below


# The test module reads its example count when it is imported.
os.environ["DMP_FUZZ_WIRE_EXAMPLES"] = str(_per_target(sys.argv))
import tests.unit.test_wire_mhd as wire_tests  # noqa: E402

TARGETS = {
    "bundle (bytes / JSON)": wire_tests.test_fuzz_bundle_parser,
    "bundle (mutated valid)": wire_tests.test_fuzz_bundle_parser_mutations,
    "bundle (PDSm examples)": wire_tests.test_fuzz_guide_bundle_mutations,
    "json patch": wire_tests.test_fuzz_json_patch,
    "search query": wire_tests.test_fuzz_search_query,
}
PARSERS = ("parse_provide_bundle", "parse_json_patch", "parse_search_query")


def count_calls() -> dict[str, int]:
    """Wrap the parsers (in wire.mhd and in the test module) to count what they receive."""
    counts = dict.fromkeys(PARSERS, 0)
    for name in PARSERS:
        original = getattr(wire.mhd, name)

        def counted(*args, __name=name, __original=original, **kwargs):
            counts[__name] += 1
            return __original(*args, **kwargs)

        setattr(wire_tests, name, counted)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="parser inputs in all")
    parser.add_argument("--http", type=int, default=2000,
                        help="hostile requests per endpoint and database")
    args = parser.parse_args()
    counts = count_calls()
    per_target = math.ceil(args.count / len(TARGETS))
    failures = 0
    started = time.perf_counter()
    for name, test in TARGETS.items():
        t0 = time.perf_counter()
        try:
            test()
            outcome = "ok"
        except Exception as exc:  # the first input that raised something else than WireError
            failures += 1
            outcome = f"FAILED: {type(exc).__name__}: {str(exc)[:200]}"
        print(f"{name:<24} {per_target:>8} inputs  {time.perf_counter() - t0:6.1f} s  {outcome}",
              flush=True)
    print(f"parser calls: {counts}; total {sum(counts.values())} in "
          f"{time.perf_counter() - started:.0f} s; untyped failures: {failures}", flush=True)

    if args.http:
        env = {**os.environ, "DMP_FUZZ_EXAMPLES": str(args.http)}
        t0 = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(ROOT / "tests/host/test_fuzz_http.py")],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        tail = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        print(f"HTTP: {args.http} hostile requests x 4 targets (deposit, patch, search, JSON "
              f"routes) x 2 databases: {tail} "
              f"({time.perf_counter() - t0:.0f} s)")
        if result.returncode != 0:
            print(result.stdout[-3000:])
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
