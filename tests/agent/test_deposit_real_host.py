"""The agent's deposit path (agent/core/deposit.py) against the REAL reference host: `dmp-host
serve` in its own process (TLS 1.3, mutual TLS, SQLite), virtual CPS cards issued by its
health CA. Large documents arrive intact; an agent SIGKILLed again and again loses nothing
and stores nothing twice; a host stopped and restarted on the same database gets the pending
deposits when it is back; a CPS removed mid-deposit leaves the item queued and nothing
half-written on the host, and the next session sends it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from agent.client.dmp import DmpClient, PatientContext
from agent.client.provide import CardSigner, CareSetting, DepositMetadata
from agent.client.session import HostSession
from agent.core.deposit import CONTENTS, make_sender, queue_deposit
from agent.outbox import (
    ItemState,
    Outbox,
    OutboxWorker,
    RetryPolicy,
    SealedFileKeyStore,
    Sender,
)
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.direct import DirectConnection
from cardreader.virtual.pki import TestHealthCA
from cardreader.virtual.vitale_profiles import PROFILES as VITALE
from host.pki import init_pki
from tests.host.tls_harness import PIN, workstation
from tests.live import HostProcess
from wire.mhd import Author

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REPORT_TYPE = "34810-2"  # eye-test report: the optician may deposit it
FAST = RetryPolicy(base=0.1, maximum=0.5, jitter=0.0)
MiB = 1 << 20


def _outbox(root: Path) -> Outbox:
    """The outbox under ``root``, its key in a sealed file of ``root`` (not beside it)."""
    return Outbox(root / "outbox" / "outbox.sqlite3",
                  keys=SealedFileKeyStore(root / "credentials", root / "keys"))


def _card(virtual: VirtualCps) -> CpsCard:
    card = CpsCard(ApduProtocol(DirectConnection(virtual)))
    card.verify_pin(PIN)
    return card


def _session(url: str, pki: Path, card: CpsCard) -> HostSession:
    identity = card.read_identity()
    return HostSession.open(
        url, workstation(pki),
        card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(Encoding.DER),
        sign=lambda data: card.sign(CpsKey.AUTHENTICATION, data),
        id_nat_ps=identity.id_nat_ps,
        structure_id=card.read_situations()[0].structure_id,
    )


def _author(card: CpsCard) -> Author:
    who, situation = card.read_identity(), card.read_situations()[0]
    return Author(who.id_nat_ps, who.profession_code, situation.structure_id,
                  who.specialty_code, who.last_name, who.first_name)


@dataclass
class World:
    host: HostProcess
    pki: Path
    optician_dir: Path  # the optician card's keys, so that child processes use the same card
    patient: PatientContext

    def optician(self) -> CpsCard:
        ca = TestHealthCA.load(self.pki / "health-ca")
        return _card(VirtualCps.from_profile("optician", ca=ca, state_dir=self.optician_dir))

    def stored(self, *, title_prefix: str = "") -> dict[str, list[tuple[str, str]]]:
        """uniqueId -> [(title, sha256)] of the eye-test reports the host holds."""
        with contextlib.closing(self.host.db()) as db:
            rows = db.execute(
                "SELECT unique_id, title, sha256 FROM documents WHERE ins = ? AND type_code = ? "
                "AND title LIKE ?", (self.patient.ins, REPORT_TYPE, title_prefix + "%")).fetchall()
        found: dict[str, list[tuple[str, str]]] = {}
        for unique_id, title, sha256 in rows:
            found.setdefault(unique_id, []).append((title, sha256))
        return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("deposit")
    pki = root / "pki"
    init_pki(pki)
    host = HostProcess(pki, root / "host")
    host.start()
    try:
        ca = TestHealthCA.load(pki / "health-ca")
        pharmacist = _session(host.url, pki, _card(VirtualCps.from_profile("pharmacist", ca=ca)))
        card = VITALE["single"]
        person = card.holder
        dmp = DmpClient(pharmacist)
        answer = pharmacist.client.post("/identity/$resolve", json={
            "birthName": person.birth_name, "firstNames": person.first_name,
            "birthDate": person.birth_date.raw, "insuredNir": card.nir_with_key,
            "birthRank": person.birth_rank})
        assert answer.status_code == 200, answer.text
        found = answer.json()
        patient = PatientContext(found["ins"], found["insOid"], found["firstName"],
                                 found["birthName"], found["birthDate"])
        dmp.create(patient, consent=True)
        pharmacist.client.close()
        optician_dir = root / "optician-card"
        VirtualCps.from_profile("optician", ca=ca, state_dir=optician_dir)  # keys saved once
        yield World(host, pki, optician_dir, patient)
    finally:
        host.stop()


def _queue(world: World, outbox: Outbox, card: CpsCard, content: bytes | Path, title: str
           ) -> int:
    return queue_deposit(
        outbox, world.patient, content, DepositMetadata(REPORT_TYPE, title), author=_author(card),
        setting=CareSetting.of_sector(card.read_situations()[0].sector),
        signer=CardSigner(lambda data: card.sign(CpsKey.SIGNATURE, data),
                          card.certificate(CpsKey.SIGNATURE).public_bytes(Encoding.DER)))


class LazySession:
    """The http_factory of a workstation whose host may be away: a session is opened on
    demand (raises while the host is down) and dropped when a call fails."""

    def __init__(self, world: World, card: CpsCard) -> None:
        self.world, self.card = world, card
        self.session: HostSession | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[httpx.Client]:
        if self.session is None:
            self.session = _session(self.world.host.url, self.world.pki, self.card)
        try:
            yield self.session.client
        except httpx.TransportError:
            self.session.client.close()
            self.session = None
            raise

    def close(self) -> None:
        if self.session is not None:
            self.session.client.close()


def _drain(outbox: Outbox, send: Any, timeout: float = 30.0) -> None:
    sender = Sender(outbox, FAST, on_progress=send.on_progress)
    deadline = time.monotonic() + timeout
    while outbox.pending():
        assert time.monotonic() < deadline, outbox.pending()
        sender.send_pending(send)
        time.sleep(0.05)


# -- large documents --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1 * MiB, 20 * MiB])
def test_a_large_deposit_arrives_intact(world: World, tmp_path: Path, size: int) -> None:
    card = world.optician()
    document = tmp_path / "report.pdf"
    with open(document, "wb") as out:
        out.write(b"%PDF-1.4\n")
        out.write(os.urandom(size - 9))
    expected = hashlib.sha256(document.read_bytes()).hexdigest()
    outbox = _outbox(tmp_path)
    lazy = LazySession(world, card)
    try:
        item_id = _queue(world, outbox, card, document, f"large-{size}")
        document.unlink()  # the user may delete the original once it is queued
        queued = outbox.get(item_id)
        assert queued.size < 64 * 1024  # the bundle does not carry the document
        send = make_sender(lazy, outbox)
        _drain(outbox, send)
        done = outbox.get(item_id)
        assert done.state is ItemState.DONE and done.acknowledgement == "stored"
        assert list((outbox.directory / CONTENTS).iterdir()) == []  # no copy left behind
        # Retrieved through the search and ITI-68, by the author, compared by SHA-256.
        assert lazy.session is not None
        dmp = DmpClient(lazy.session)
        entry = next(e for e in dmp.documents(world.patient) if e.unique_id == done.unique_id)
        body = dmp.retrieve(entry)
        assert len(body) == size and hashlib.sha256(body).hexdigest() == expected
        assert world.stored()[done.unique_id] == [(f"large-{size}", expected)]
    finally:
        lazy.close()
        outbox.close()


# -- the agent killed again and again ---------------------------------------------------------


# The agent of the kill test, run with `python -c`: it imports only the agent's side (the test
# module itself imports pytest and the host, too slow to start for a process killed often).
# It queues the deposits not yet queued, then sends until all are done, saying each step.
CHILD = """
import json, random, sys, time
from pathlib import Path
from cryptography.hazmat.primitives.serialization import Encoding
from agent.core.deposit import make_sender, queue_deposit, recover_contents
from agent.client.provide import CardSigner, CareSetting, DepositMetadata
from agent.client.dmp import PatientContext
from agent.outbox import Outbox, RetryPolicy, SealedFileKeyStore, Sender
from agent.client.session import HostSession, Workstation
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.direct import DirectConnection
from cardreader.virtual.pki import TestHealthCA
from wire.mhd import Author

args = json.loads(sys.argv[1])
pki = Path(args["pki"])
card = CpsCard(ApduProtocol(DirectConnection(VirtualCps.from_profile(
    "optician", ca=TestHealthCA.load(pki / "health-ca"), state_dir=Path(args["card"])))))
card.verify_pin("1234")
who, situation = card.read_identity(), card.read_situations()[0]
author = Author(who.id_nat_ps, who.profession_code, situation.structure_id,
                who.specialty_code, who.last_name, who.first_name)
patient = PatientContext(**args["patient"])
root = Path(args["outbox"]).parents[1]
outbox = Outbox(Path(args["outbox"]),
                keys=SealedFileKeyStore(root / "credentials", root / "keys"))
recover_contents(outbox)
print("ready", flush=True)
queued = {i.metadata["title"] for i in outbox.pending() + outbox.done() + outbox.failed()}
certificate = card.certificate(CpsKey.SIGNATURE).public_bytes(Encoding.DER)
for k in range(args["count"]):
    if f"kill-{k}" not in queued:
        generator = random.Random(k)
        content = b"%PDF-1.4\\n" + generator.randbytes(generator.choice([2000, 60000, 400000]))
        queue_deposit(outbox, patient, content, DepositMetadata("34810-2", f"kill-{k}"),
                      author=author, setting=CareSetting("SA42", "AMBULATOIRE"),
                      signer=CardSigner(lambda d: card.sign(CpsKey.SIGNATURE, d),
                                        certificate))
        print(f"queued kill-{k}", flush=True)
session = None
def http():
    global session
    if session is None:
        session = HostSession.open(
            args["url"], Workstation((pki / "workstations" / "sandbox.pem").read_bytes(),
                                     (pki / "workstations" / "sandbox.key").read_bytes(), None,
                                     pki / "server" / "ca.pem"),
            card_certificate_der=card.certificate(CpsKey.AUTHENTICATION).public_bytes(
                Encoding.DER),
            sign=lambda d: card.sign(CpsKey.AUTHENTICATION, d), id_nat_ps=who.id_nat_ps,
            structure_id=situation.structure_id)
    return session.client
send = make_sender(http, outbox)
def progress(p):
    send.on_progress(p)
    print(p.kind, p.item.metadata["title"], flush=True)
sender = Sender(outbox, RetryPolicy(0.1, 0.5, 0.0), on_progress=progress)
deadline = time.monotonic() + 60
while outbox.pending() and time.monotonic() < deadline:
    sender.send_pending(send)
    time.sleep(0.05)
print("all done" if not outbox.pending() else "timed out", flush=True)
"""


def _content(k: int) -> bytes:
    generator = random.Random(k)
    return b"%PDF-1.4\n" + generator.randbytes(generator.choice([2000, 60000, 400000]))


def test_an_agent_killed_at_random_points_loses_nothing_and_stores_once(
    world: World, tmp_path: Path
) -> None:
    # Each round asks for 6 more deposits (so every round has work to be killed in), and the
    # child is SIGKILLed at a random instant; a last round runs to the end.
    rounds, per_round = 14, 6
    count = per_round * (rounds + 1)
    outbox_path = tmp_path / "outbox" / "outbox.sqlite3"

    def command(wanted: int) -> list[str]:
        return [sys.executable, "-c", CHILD, json.dumps({
            "pki": str(world.pki), "card": str(world.optician_dir), "url": world.host.url,
            "outbox": str(outbox_path), "count": wanted,
            "patient": {"ins": world.patient.ins, "ins_oid": world.patient.ins_oid,
                        "first_name": world.patient.first_name,
                        "birth_name": world.patient.birth_name,
                        "birth_date": world.patient.birth_date}})]

    generator = random.Random(20261127)
    killed_at_work = steps = 0
    for round_ in range(rounds):
        process = subprocess.Popen(command(per_round * (round_ + 1)), cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Mostly once the child is at work (after "ready": outbox open, card read), at a
        # random instant of queueing or sending; sometimes while it starts or recovers.
        ready = False
        if generator.random() < 0.2:
            time.sleep(generator.uniform(0.1, 0.8))
        else:
            assert process.stdout is not None
            ready = process.stdout.readline() == b"ready\n"
            time.sleep(generator.uniform(0.0, 0.6))
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        said = process.communicate()[0].decode()
        # Killed while at work: queueing (signing, copying) or sending.
        killed_at_work += killed and ready
        steps += said.count("queued") + said.count("done ")
    last = subprocess.run(command(count), cwd=ROOT, capture_output=True, text=True,
                          timeout=90)
    assert last.returncode == 0 and "all done" in last.stdout, last.stderr[-3000:]

    with _outbox(tmp_path) as outbox:
        done = outbox.done()
        assert outbox.counts().done == count and not outbox.pending() and not outbox.failed()
        assert list(outbox.bundles.iterdir()) == []
        assert list((outbox.directory / CONTENTS).iterdir()) == []
    stored = world.stored(title_prefix="kill-")
    # Exactly the outbox's items, each stored once, with the bytes the agent queued.
    assert set(stored) == {item.unique_id for item in done}
    for item in done:
        k = int(item.metadata["title"].removeprefix("kill-"))
        assert stored[item.unique_id] == [
            (f"kill-{k}", hashlib.sha256(_content(k)).hexdigest())]
    assert sorted(title for rows in stored.values() for title, _ in rows) == sorted(
        f"kill-{k}" for k in range(count))
    # The kills did land mid-way (not all before the start or after the end).
    assert killed_at_work >= rounds // 3 and steps > 0, (killed_at_work, steps)
    print(f"\nkilled at work {killed_at_work}/{rounds}, {steps} steps before the kills; "
          f"{sum(item.attempts > 1 for item in done)} items sent more than once, "
          f"{sum((item.acknowledgement or '').startswith('already') for item in done)} replays")


# -- the host stopped and restarted -----------------------------------------------------------


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_deposits_pending_while_the_host_is_down_go_through_when_it_is_back(
    world: World, tmp_path: Path, how: int
) -> None:
    card = world.optician()
    outbox = _outbox(tmp_path)
    lazy = LazySession(world, card)
    send = make_sender(lazy, outbox)
    steps: list[str] = []
    worker = OutboxWorker(outbox, send, threading.Event(), policy=FAST,
                          on_progress=lambda p: (steps.append(p.kind), send.on_progress(p)))
    prefix = f"restart-{how}-"
    try:
        _queue(world, outbox, card, _content(100), prefix + "0")
        worker.start()
        worker.wakeup.set()
        _wait(lambda: outbox.counts().done == 1)
        world.host.stop(how)  # the session's connection dies with it
        for k in range(1, 4):  # the card signs: no host needed to queue
            _queue(world, outbox, card, _content(100 + k), f"{prefix}{k}")
        worker.wakeup.set()
        _wait(lambda: steps.count("retry") >= 2)  # it tried, and backs off
        assert outbox.counts().done == 1
        world.host.start()  # same database, same blobs
        _wait(lambda: outbox.counts().done == 4, timeout=20)
    finally:
        worker.stop()
        lazy.close()
        if world.host.process is None:
            world.host.start()
    stored = world.stored(title_prefix=prefix)
    assert sorted(rows[0][0] for rows in stored.values()) == [f"{prefix}{k}" for k in range(4)]
    assert all(len(rows) == 1 for rows in stored.values())
    assert not outbox.pending() and not outbox.failed()
    outbox.close()


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- the CPS removed during a deposit (through the real pcscd) ---------------------------------


class RemoveDuring:
    """Wraps the session's client: pulls the card out once the named request is under way
    (after the first chunk of the upload, or just before the bundle leaves)."""

    def __init__(self, client: httpx.Client, path: str, remove: Any) -> None:
        self.client, self.path, self.remove = client, path, remove

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        if url != self.path:
            return self.client.post(url, **kwargs)
        if url == "/fhir/Binary":
            chunks = kwargs.pop("content")

            def body() -> Iterator[bytes]:
                for index, chunk in enumerate(chunks):
                    yield chunk
                    if index == 0:
                        self.remove()

            return self.client.post(url, content=body(), **kwargs)
        self.remove()
        return self.client.post(url, **kwargs)


@pytest.mark.pcsc
@pytest.mark.parametrize("during", ["/fhir/Binary", "/fhir"])
def test_a_cps_removed_mid_deposit_keeps_the_item_and_the_next_session_sends_it(
    world: World, tmp_path: Path, insert_card: Any, during: str
) -> None:
    from agent.core.pin import FixedPrompt
    from agent.core.professional import ProfessionalSession
    from cardreader.pcsc import list_readers

    ca = TestHealthCA.load(world.pki / "health-ca")
    virtual = VirtualCps.from_profile("optician", ca=ca, state_dir=world.optician_dir)
    link = insert_card(virtual)
    reader = list_readers()[0]
    outbox = _outbox(tmp_path)
    current: dict[str, ProfessionalSession] = {}
    session = current["s"] = ProfessionalSession.open(
        reader, workstation(world.pki), world.host.url, FixedPrompt(PIN))
    try:
        title = f"removed-{during}"
        item_id = queue_deposit(
            outbox, world.patient, b"%PDF-1.4\n" + os.urandom(8 * MiB),
            DepositMetadata(REPORT_TYPE, title), author=session.author(),
            setting=session.care_setting(), signer=session)

        def remove() -> None:
            link.stop()
            assert session.wait_ended(5.0)

        @contextlib.contextmanager
        def factory() -> Iterator[Any]:
            with current["s"].calls() as http:
                yield RemoveDuring(http, during, remove) if current["s"] is session else http

        send = make_sender(factory, outbox)
        report = Sender(outbox, FAST, on_progress=send.on_progress).send_pending(send)
        assert report.retried == 1 and report.sent == 0 and report.failed == 0
        item = outbox.get(item_id)
        assert item.state is ItemState.PENDING and "session" in (item.last_error or "").lower()
        assert (outbox.directory / CONTENTS / item.metadata["content"]).exists()
        # Nothing half-written: no document row, no submission set for it.
        with contextlib.closing(world.host.db()) as db:
            assert db.execute("SELECT COUNT(*) FROM documents WHERE unique_id = ?",
                              (item.unique_id,)).fetchone() == (0,)
            orphan = db.execute(
                "SELECT COUNT(*) FROM submission_sets s WHERE ins = ? AND NOT EXISTS (SELECT 1 "
                "FROM documents d WHERE d.ins = s.ins AND d.submission_set_id = s.id)",
                (world.patient.ins,)).fetchone()
            assert orphan == (0,)
        # No session, no card: the sender waits, it does not fail the item.
        assert send(outbox.get(item_id)).outcome == "retry"

        # The card comes back: a new session sends it.
        session.close()
        insert_card(VirtualCps.from_profile("optician", ca=ca, state_dir=world.optician_dir))
        current["s"] = ProfessionalSession.open(
            reader, workstation(world.pki), world.host.url, FixedPrompt(PIN))
        _drain(outbox, send)
        assert outbox.get(item_id).state is ItemState.DONE
        assert len(world.stored(title_prefix=title)[item.unique_id]) == 1
    finally:
        for opened in {id(s): s for s in (session, current["s"])}.values():
            opened.close()
        outbox.close()
