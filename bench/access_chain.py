"""Time the access-log chain: write 10,000 entries for one patient, then verify them.

    .venv/bin/python -m bench.access_chain [DATABASE_URL]   (default: a temporary SQLite)
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from host.access_chain import verify
from host.guard import record_access
from host.store import open_engine, upgrade
from policies import NORMAL

ENTRIES = 10_000
INS = "284057511402396"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else \
        f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    upgrade(url)
    engine = open_engine(url)
    start, began = dt.datetime.now(dt.UTC), time.perf_counter()
    for i in range(ENTRIES):
        record_access(engine, ins=INS, at=start + dt.timedelta(seconds=i),
                      actor_kind="professional", actor_id="810001234565", actor_name="Dr X",
                      action="read", mode=NORMAL, allowed=True, reason="ALLOWED")
    written = time.perf_counter() - began
    began = time.perf_counter()
    with engine.connect() as connection:
        verdict = verify(connection, INS)
    checked = time.perf_counter() - began
    assert verdict.whole and verdict.entries == ENTRIES
    print(f"write: {written / ENTRIES * 1e3:.2f} ms per entry; "
          f"verify {ENTRIES} entries: {checked:.3f} s")


if __name__ == "__main__":
    main()
