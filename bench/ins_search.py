"""INS service figures: search p50/p99 over a generated national-like population, through
the host's real TLS boundary with a session opened by a virtual CPS card, beside the cost of
the query alone.

    scripts/isolated .venv/bin/python bench/ins_search.py [--people 1000000] [--runs 500]

The population comes from `dmp-host seed --ins-people N`'s generator (host.ins.population,
seed 1): homonyms, composite names, lunar dates, Corsica and abroad, twins. Each run asks
for a person drawn from the table: from the Vitale card (NIR, birth date, rank), from typed
traits (birth name, first names, sex, birth date), and the verification of the INS.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from host.ins.population import generate
from host.ins.query import CardQuery, Traits, by_card, by_traits
from host.store import open_engine, upgrade
from host.store.schema import patients
from tests.host.tls_harness import make_pki, tls_host


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms"


def _timed(runs: list[Any], call: Callable[[Any], Any]) -> list[float]:
    times = []
    for run in runs:
        started = time.perf_counter()
        call(run)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        url = f"sqlite:///{Path(root) / 'host.db'}"
        upgrade(url)
        engine = open_engine(url)
        started = time.perf_counter()
        generate(engine, args.people, seed=1)
        with engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(patients)).scalar_one()
            sample = connection.execute(select(patients).order_by(func.random()).limit(
                args.runs)).all()
        print(f"population: {count} people generated in {time.perf_counter() - started:.0f} s "
              "(SQLite)")
        rng = random.Random(2)
        rng.shuffle(sample)
        with engine.connect() as connection:
            card = _timed(sample, lambda r: by_card(connection, CardQuery(
                r.insured_nir, r.birth_date, r.birth_rank)))
            traits = _timed(sample, lambda r: by_traits(connection, Traits(
                r.birth_name, tuple(r.first_names.split()[:1]), r.sex, r.birth_date)))
        print(f"query alone, from the card:       {_percentiles(card)}")
        print(f"query alone, from typed traits:   {_percentiles(traits)}")
        engine.dispose()
        with tls_host(url, make_pki(Path(root) / "pki"), Path(root) / "blobs") as host:
            client = host.session("gp").client
            by_http = {
                "search-card": lambda r: {"nir": r.insured_nir, "birthDate": r.birth_date,
                                          "birthRank": r.birth_rank},
                "search-traits": lambda r: {"birthName": r.birth_name,
                                            "firstNames": r.first_names.split()[:1],
                                            "sex": r.sex, "birthDate": r.birth_date},
                "verify": lambda r: {"ins": r.ins, "birthName": r.birth_name,
                                     "firstNames": r.first_names.split(), "sex": r.sex,
                                     "birthDate": r.birth_date, "birthPlace": r.birth_place},
            }
            for operation, body in by_http.items():
                def ask(row: Any, operation: str = operation,
                        body: Callable[[Any], dict[str, Any]] = body) -> None:
                    answer = client.post(f"/ins/${operation}", json=body(row))
                    assert answer.status_code == 200, answer.text

                ask(sample[0])  # the connection warmed
                times = _timed(sample, ask)
                print(f"HTTPS (TLS 1.3, session), {operation:14} {_percentiles(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
