"""The agent's deposit path against the real host: time and PEAK MEMORY of `queue_deposit` +
send (stream to POST /fhir/Binary, then the bundle) for 1 MB and 50 MB documents.

    scripts/isolated .venv/bin/python bench/agent_deposit.py [--runs 20] [--runs-large 20]

The host is `dmp-host serve` in its own process (TLS 1.3, mutual TLS, SQLite). Each size is
measured in a fresh child process so that its ``ru_maxrss`` growth belongs to that size alone:
the child first makes one warm-up deposit of 64 KB (imports, TLS, session: the baseline),
then times ``runs`` deposits (queue: copy + hash + card signature + outbox add; send: upload +
bundle), then measures the tracemalloc peak of three more (tracemalloc slows Python, so not
during the timed runs). Memory that does not grow with the document is the point: the
document is read and sent in 1 MiB chunks and never held whole.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.serialization import Encoding

from agent.client.dmp import DmpClient, PatientContext
from agent.client.provide import CardSigner, CareSetting, DepositMetadata
from agent.client.session import HostSession, Workstation
from agent.core.deposit import make_sender, queue_deposit, recover_contents
from agent.outbox import Outbox, RetryPolicy, SealedFileKeyStore, Sender
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.direct import DirectConnection
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale_profiles import PROFILES as VITALE
from wire.mhd import Author

MB = 1_000_000
WARM_UP = 64 * 1024


def _card(pki: Path, profile: str, state: Path | None = None) -> CpsCard:
    virtual = VirtualCps.from_profile(profile, ca=TestHealthCA.load(pki / "health-ca"),
                                      state_dir=state)
    card = CpsCard(ApduProtocol(DirectConnection(virtual)))
    card.verify_pin("1234")
    return card


def _session(url: str, pki: Path, card: CpsCard) -> HostSession:
    who = card.read_identity()
    return HostSession.open(
        url, Workstation((pki / "workstations" / "sandbox.pem").read_bytes(),
                         (pki / "workstations" / "sandbox.key").read_bytes(), None,
                         pki / "server" / "ca.pem"),
        card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(Encoding.DER),
        sign=lambda data: card.sign(CpsKey.AUTHENTICATION, data), id_nat_ps=who.id_nat_ps,
        structure_id=card.read_situations()[0].structure_id)


def _create_patient(url: str, pki: Path) -> PatientContext:
    pharmacist = _session(url, pki, _card(pki, "pharmacist"))
    vitale = VITALE["single"]
    person = vitale.holder
    found = pharmacist.client.post("/identity/$resolve", json={
        "birthName": person.birth_name, "firstNames": person.first_name,
        "birthDate": person.birth_date.raw, "insuredNir": vitale.nir_with_key,
        "birthRank": person.birth_rank}).json()
    patient = PatientContext(found["ins"], found["insOid"], found["firstName"],
                             found["birthName"], found["birthDate"])
    DmpClient(pharmacist).create(patient, consent=True)
    pharmacist.client.close()
    return patient


def _write_document(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        out.write(b"%PDF-1.4\n")
        left = size - 9
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            out.write(chunk)
            left -= len(chunk)


def child(arguments: dict[str, Any]) -> dict[str, Any]:
    """One size: warm-up, timed runs, tracemalloc runs; returns the figures."""
    pki, size, runs = Path(arguments["pki"]), arguments["size"], arguments["runs"]
    work = Path(arguments["work"])
    card = _card(pki, "optician")
    who, situation = card.read_identity(), card.read_situations()[0]
    author = Author(who.id_nat_ps, who.profession_code, situation.structure_id,
                    who.specialty_code, who.last_name, who.first_name)
    certificate = card.certificate(CpsKey.SIGNATURE).public_bytes(Encoding.DER)
    patient = PatientContext(**arguments["patient"])
    session = _session(arguments["url"], pki, card)
    # The sealed-file key store, as on a workstation without an OS keyring.
    outbox = Outbox(work / "outbox" / "outbox.sqlite3",
                    keys=SealedFileKeyStore(work / "credentials", work / "keys"))
    recover_contents(outbox)
    send = make_sender(lambda: session.client, outbox)
    sender = Sender(outbox, RetryPolicy(0.1, 1.0, 0.0), on_progress=send.on_progress)

    def deposit(document: Path) -> tuple[float, float]:
        started = time.perf_counter()
        queue_deposit(outbox, patient, document, DepositMetadata("34810-2", "bench"),
                      author=author, setting=CareSetting("SA42", "AMBULATOIRE"),
                      signer=CardSigner(
                          lambda data: card.sign(CpsKey.SIGNATURE, data), certificate))
        queued = time.perf_counter()
        report = sender.send_pending(send)
        if report.sent != 1:
            raise SystemExit(f"deposit not acknowledged: {report} {outbox.failed()}")
        return queued - started, time.perf_counter() - queued

    small = work / "small.pdf"
    _write_document(small, WARM_UP)
    deposit(small)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    document = work / "document.pdf"
    _write_document(document, size)
    after_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = [deposit(document) for _ in range(runs)]
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peaks = []
    tracemalloc.start()
    for _ in range(3):
        tracemalloc.reset_peak()
        deposit(document)
        peaks.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    outbox.close()
    session.client.close()
    return {"size": size, "runs": runs, "queue": [t[0] for t in times],
            "send": [t[1] for t in times], "total": [t[0] + t[1] for t in times],
            "tracemalloc_peak": max(peaks), "maxrss_delta_kib": maxrss - baseline,
            "maxrss_write_kib": after_write - baseline}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs for 1 MB (%(default)s)")
    parser.add_argument("--runs-large", type=int, default=20, help="runs for 50 MB")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from agent.sandbox.scenarios import reference_host

    with tempfile.TemporaryDirectory(prefix="bench-deposit-") as temp:
        state = Path(temp)
        with reference_host(state) as (pki, url, _process):
            patient = _create_patient(url, pki)
            print("deposit = queue_deposit (copy+hash+sign+outbox) + send (upload + bundle), "
                  "real host over TLS 1.3")
            print(f"{'size':>6} {'runs':>4} {'queue med':>10} {'send med':>9} "
                  f"{'total med':>10} {'total p95':>10} {'MB/s':>6} {'tracemalloc':>12} "
                  f"{'maxrss+':>9}")
            for size, runs in ((1 * MB, args.runs), (50 * MB, args.runs_large)):
                work = state / f"agent-{size}"
                work.mkdir()
                arguments = {"pki": str(pki), "url": url, "size": size, "runs": runs,
                             "work": str(work), "patient": patient.__dict__}
                result = subprocess.run(
                    [sys.executable, __file__, "--child", json.dumps(arguments)],
                    capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    raise SystemExit(result.stderr[-3000:])
                figures = json.loads(result.stdout.strip().splitlines()[-1])
                total = figures["total"]
                print(f"{size // MB:>4}MB {runs:>4} {statistics.median(figures['queue']):>9.3f}s "
                      f"{statistics.median(figures['send']):>8.3f}s "
                      f"{statistics.median(total):>9.3f}s {_p95(total):>9.3f}s "
                      f"{size / MB / statistics.median(total):>6.1f} "
                      f"{figures['tracemalloc_peak'] / 2**20:>10.2f}MiB "
                      f"{figures['maxrss_delta_kib'] / 1024:>7.1f}MiB", flush=True)
            print("tracemalloc: peak of Python allocations during one deposit (max of 3); "
                  "maxrss+: growth of the child's resident set over the timed runs, after a "
                  "64 KB warm-up deposit")


if __name__ == "__main__":
    main()
