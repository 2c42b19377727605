"""Issue 11's figure: seconds from a session opening to the host acknowledging a deposit
that waited (behind a stopped host, in a backoff of a minute), through `dmp-agent run`, the
real host, pcscd and virtual cards. Run inside the namespaces:

    bash scripts/isolated .venv/bin/python bench/outbox_wake.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from cardreader.virtual.pcscd import Pcscd
from tests.agent.test_outbox_wake_live import held_world, session_opening_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    daemon = Pcscd()
    daemon.start()
    try:
        with tempfile.TemporaryDirectory(prefix="dmp-wake-") as root, \
                held_world(Path(root), daemon.port) as held:
            delays = [session_opening_round(held, f"bench {n}") for n in range(runs)]
    finally:
        daemon.close()
    for n, delay in enumerate(delays, 1):
        print(f"run {n}: session open -> host acknowledged in {delay * 1000:.0f} ms")
    print(f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
          f"over {runs} runs (backoff without the wake: 60 s)")


if __name__ == "__main__":
    main()
