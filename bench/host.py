"""Reference-host figures over its real TLS setup: deposits per second and search latency with
10k and 1M documents, on SQLite and PostgreSQL, beside the throughput of a trivial endpoint.

    scripts/isolated .venv/bin/python bench/host.py [--sizes 10000,1000000]

Every call goes through uvicorn with TLS 1.3 and a session certificate obtained with a virtual
CPS card, as the agent's calls do. The store is filled fast by a generator that clones one
really deposited document row across many patients (10 documents a patient; executemany on
SQLite, COPY on PostgreSQL), then the searches name one patient, as every hot query does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from cardreader.virtual.vitale_profiles import PROFILES as VITALE
from host.access_chain import verify
from host.store import upgrade
from host.store.schema import documents, dossiers
from tests.host.documents_support import FHIR, Card, deposit_bundle, entry_for
from tests.host.harness import card_holder
from tests.host.tls_harness import TlsHost, make_pki, tls_host
from tests.postgres import PostgresCluster
from wire.mhd import Patient

PDF = b"%PDF-1.4\n% bench report\n" + bytes(range(256)) * 40  # ~10 KB


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(calls: int, call: Callable[[], Any]) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


@contextmanager
def database(backend: str, cluster: PostgresCluster | None, root: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite:///{root / f'bench-{uuid.uuid4().hex[:8]}.db'}"
    else:
        assert cluster is not None
        url = cluster.create_database(f"bench_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    yield url


def fill(host: TlsHost, template: dict[str, Any], total: int, hot_ins: str) -> float:
    """Add ``total`` documents (10 a patient) cloned from ``template``; returns seconds."""
    engine = host.app.state.engine
    started = time.perf_counter()
    patients = max(1, total // 10)
    now = dt.datetime.now(dt.UTC)
    dossier_row = {
        "status": "open", "created_at": now, "created_by": template["author_id"],
        "consent_at": now, "consent_break_the_glass": True, "consent_regulation_centre": True,
        "consent_emergency_sees_masked": False, "secret_sha256": "0" * 64,
    }

    def patient_ins(n: int) -> str:
        base = f"1990175{n:06d}"[:13]
        key = 97 - int(base) % 97
        return f"{base}{key:02d}"

    def rows() -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        for n in range(patients):
            ins = patient_ins(n)
            if ins == hot_ins:
                continue
            for k in range(10):
                row = dict(template)
                row.update(ins=ins, id=f"{ins}.{uuid.uuid4().hex}",
                           unique_id=f"urn:uuid:{uuid.uuid4()}",
                           deposited_at=now - dt.timedelta(minutes=k))
                yield row, ({"ins": ins, **dossier_row} if k == 0 else None)

    if engine.dialect.name == "postgresql":
        columns = [c.name for c in documents.columns]
        dossier_columns = [c.name for c in dossiers.columns]
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY dossiers ({', '.join(dossier_columns)}) FROM STDIN") as copy:
                for n in range(patients):
                    ins = patient_ins(n)
                    if ins != hot_ins:
                        copy.write_row([{"ins": ins, **dossier_row}.get(c) for c in
                                        dossier_columns])
            with cursor.copy(f"COPY documents ({', '.join(columns)}) FROM STDIN") as copy:
                for row, _ in rows():
                    copy.write_row([json.dumps(row[c]) if c == "resource" else row[c]
                                    for c in columns])
            raw.commit()
        finally:
            raw.close()
    else:
        batch: list[dict[str, Any]] = []
        new_dossiers: list[dict[str, Any]] = []
        with engine.begin() as connection:
            for row, dossier in rows():
                batch.append(row)
                if dossier:
                    new_dossiers.append(dossier)
                if len(batch) >= 5000:
                    if new_dossiers:
                        connection.execute(insert(dossiers), new_dossiers)
                    connection.execute(insert(documents), batch)
                    batch, new_dossiers = [], []
            if new_dossiers:
                connection.execute(insert(dossiers), new_dossiers)
            if batch:
                connection.execute(insert(documents), batch)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE documents")
            connection.exec_driver_sql("ANALYZE dossiers")
    else:
        # The bulk load went to the write-ahead log: fold it into the database, as SQLite's
        # automatic checkpoints do in a store that lives, so reads do not search its index.
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def run(backend: str, size: int, cluster: PostgresCluster | None, pki: Path, root: Path,
        deposits: int, searches: int) -> dict[str, Any]:
    with database(backend, cluster, root) as url, \
            tls_host(url, pki, root / f"blobs-{uuid.uuid4().hex[:6]}") as host:
        pharmacist = host.session("pharmacist")
        person = VITALE["single"].holder
        identity = pharmacist.client.post("/identity/$resolve", json={
            "birthName": person.birth_name, "firstNames": person.first_name,
            "birthDate": person.birth_date.raw, "insuredNir": VITALE["single"].nir_with_key,
            "birthRank": person.birth_rank}).json()
        ins, oid = identity["ins"], identity["insOid"]
        assert pharmacist.client.post(f"/dossiers/{ins}", json={"consent": True}).status_code \
            == 201
        optician_card = host.card("optician")
        optician = host.open_session(optician_card)
        signer = Card(optician_card)
        who = card_holder("optician")
        patient = Patient(ins, oid)
        bundles = [deposit_bundle(signer, [(entry_for(PDF + i.to_bytes(4, "big"), who,
                                                      patient=patient),
                                            PDF + i.to_bytes(4, "big"))], who,
                                  patient=patient).bundle for i in range(deposits)]
        started = time.perf_counter()
        for bundle in bundles:
            answer = optician.client.post("/fhir", json=bundle, headers=FHIR)
            assert answer.status_code == 200, answer.text
        deposit_rate = deposits / (time.perf_counter() - started)

        with host.app.state.engine.connect() as connection:
            template = dict(connection.execute(
                select(documents).where(documents.c.ins == ins).limit(1)).one()._mapping)
        fill_seconds = fill(host, template, size, ins)

        gp = host.session("gp")
        gp.client.put(f"/dossiers/{ins}/authorizations/{card_holder('gp').id_nat_ps}",
                      json={})
        query = "/fhir/DocumentReference?" + urllib.parse.urlencode(
            {"patient.identifier": f"urn:oid:{oid}|{ins}", "status": "current",
             "_count": "20"})
        first = gp.client.get(query)
        assert first.status_code == 200 and len(first.json().get("entry", [])) >= 20
        search_times = timed(searches, lambda: gp.client.get(query))
        trivial = timed(max(searches, 200), lambda: gp.client.get("/session"))
        trivial_rate = 1000 / statistics.mean(trivial)
        # Every search above was traced, and the patient's hash chain is whole.
        with host.app.state.engine.connect() as connection:
            verdict = verify(connection, ins)
        assert verdict.whole, verdict.first_break
        return {
            "backend": backend, "size": size, "fill_s": fill_seconds,
            "deposits_per_s": deposit_rate,
            "search_p50": percentile(search_times, 50), "search_p99": percentile(search_times, 99),
            "trivial_per_s": trivial_rate, "trivial_p50": percentile(trivial, 50),
            "log_entries": verdict.entries,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--deposits", type=int, default=100)
    parser.add_argument("--searches", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="dmp-bench-") as tmp:
        root = Path(tmp)
        pki = make_pki(root / "pki")
        cluster = PostgresCluster().start() if "postgresql" in backends else None
        try:
            for backend in backends:
                for size in sizes:
                    result = run(backend, size, cluster, pki, root, args.deposits, args.searches)
                    results.append(result)
                    print(json.dumps(result), flush=True)
        finally:
            if cluster:
                cluster.stop()
    print()
    print(f"{'backend':<11} {'documents':>10} {'fill s':>7} {'deposits/s':>11} "
          f"{'search p50':>11} {'p99 ms':>7} {'trivial/s':>10} {'search/trivial':>15}")
    for r in results:
        ratio = r["search_p50"] / r["trivial_p50"]
        print(f"{r['backend']:<11} {r['size']:>10} {r['fill_s']:>7.1f} "
              f"{r['deposits_per_s']:>11.1f} {r['search_p50']:>11.2f} {r['search_p99']:>7.2f} "
              f"{r['trivial_per_s']:>10.0f} {ratio:>14.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
