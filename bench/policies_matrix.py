"""Long run of the access-matrix properties (issue 16): many more Hypothesis examples than
the test suite, and the count of decisions checked.

    scripts/isolated .venv/bin/python bench/policies_matrix.py [--examples 20000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=20000,
                        help="Hypothesis examples per property (each decides every action)")
    args = parser.parse_args()
    from policies import Action

    env = {**os.environ, "POLICY_MATRIX_EXAMPLES": str(args.examples)}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/unit/test_policies_access_matrix.py"], cwd=ROOT, env=env)
    elapsed = time.monotonic() - start
    properties = 3
    print(f"properties: {properties}, examples each: {args.examples}, decisions checked: "
          f"{properties * args.examples * len(Action)} (+ the exhaustive grid), "
          f"{elapsed:.1f} s, {'ok' if result.returncode == 0 else 'FAILED'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
