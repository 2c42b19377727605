"""Fault injection on the outbox (issue 19; docs/agent-outbox.md, "What survives what"): a
database truncated, garbled or lost while the agent was stopped, a read-only directory,
an outbox held by another agent, a disk that fills up (a small real tmpfs), a log file that
cannot be written, a host that answers 503 or cuts its answers. Each case asserts that
nothing is lost, nothing is stored twice by the host, and the words the user is given.

Real SQLite files, real sealed files, real mounts (scripts/isolated: root in a private
mount namespace), a real HTTP host on loopback (tests/faults.py), `dmp-agent` run as a
process where the user meets it."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agent.client.provide import DepositMetadata
from agent.config import AgentConfig, load_config
from agent.core.deposit import BUNDLE_ROOM, make_sender, queue_deposit, recover_contents
from agent.install.doctor import Status, check_outbox
from agent.outbox import (
    ItemState,
    Outbox,
    OutboxBusyError,
    OutboxFullError,
    OutboxStorageError,
    OutboxWorker,
    RetryPolicy,
    Sender,
    open_outbox,
    quarantine_report,
)
from agent.outbox.report import outbox_json, outbox_lines
from agent.outbox.sealed import sealed_size
from agent.outbox.storage import RESERVE
from tests.faults import (
    AUTHOR,
    FAKE_SIGNER,
    INS,
    MB,
    PATIENT,
    SETTING,
    FaultyHost,
    fill,
    read_only,
    tmpfs,
)
from tests.live import AgentProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAST = RetryPolicy(base=0.2, maximum=1.0, jitter=0.0)


class Clock:
    def __init__(self, now: float = 2_000_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def document(seed: str, size: int = 200_000) -> bytes:
    return b"%PDF-1.4\n" + hashlib.sha256(seed.encode()).digest() * (size // 32)


def queue(outbox: Outbox, content: bytes, title: str) -> str:
    item_id = queue_deposit(outbox, PATIENT, content, DepositMetadata("34810-2", title),
                            author=AUTHOR, setting=SETTING, signer=FAKE_SIGNER)
    return outbox.get(item_id).unique_id


def drain(outbox: Outbox, host: FaultyHost, clock: Clock | None = None) -> None:
    """Send until nothing is pending (with ``clock``, its time jumps over each backoff)."""
    send = make_sender(host.client, outbox)
    sender = Sender(outbox, FAST, on_progress=send.on_progress,
                    **({"clock": clock} if clock else {}))
    for _ in range(20):
        sender.send_pending(send)
        if not outbox.pending():
            return
        if clock is not None:
            clock.now += 10
        else:
            time.sleep(0.25)
    raise AssertionError(f"still pending: {outbox.pending()}")


@pytest.fixture(autouse=True)
def _sealed_file_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # The key in its sealed file, for this process and the dmp-agent it runs alike.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


def config_for(root: Path, data: Path | None = None, port: int = 0) -> AgentConfig:
    """A configuration file under ``root`` naming every directory (data in ``data``), read
    back the way `dmp-agent` reads it."""
    file = root / "agent.toml"
    file.write_text(
        f'[host]\nurl = "https://127.0.0.1:1"\n\n[api]\nport = {port or free_port()}\n\n'
        f'[paths]\ndata_dir = "{data or root / "data"}"\n'
        f'credentials_dir = "{root / "config" / "dmp-agent" / "workstation"}"\n'
        f'log_dir = "{root / "logs"}"\n\n'
        "[outbox]\nretry_base_seconds = 0.2\nretry_max_seconds = 1\n")
    return load_config(file)


def dmp_agent(config: AgentConfig, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    assert config.source is not None
    env = {**os.environ, "DMP_AGENT_CONFIG": str(config.source),
           "DMP_AGENT_PROVISIONING": str(config.source.parent / "no-provisioning")}
    env.pop("DISPLAY", None)
    return subprocess.run([str(BIN / "dmp-agent"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def one_sentence(stderr: str) -> str:
    """What `dmp-agent` said on stderr, its log records aside: one line, no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()
             and not LOG_RECORD.match(line)]
    assert len(lines) == 1, stderr
    return lines[0]


# -- the database damaged or lost while the agent was stopped ------------------------------


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def _foreign(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (text TEXT)")


DAMAGE = {
    "truncated to 0 bytes": lambda p: os.truncate(p, 0),
    "cut in half": lambda p: os.truncate(p, p.stat().st_size // 2),
    "garbled header": lambda p: _overwrite(p, 0, os.urandom(100)),
    "garbled after its header": lambda p: _overwrite(p, 100, os.urandom(p.stat().st_size - 100)),
    "another SQLite file": _foreign,
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_or_lost_database_is_rebuilt_from_the_files_and_nothing_is_lost(
    tmp_path: Path, how: str
) -> None:
    config = config_for(tmp_path)
    bodies = {f"report {k}": document(f"{how} {k}") for k in range(2)}
    with open_outbox(config) as box:  # two deposits accepted (202) and pending
        queued = {queue(box, body, title): title for title, body in bodies.items()}
    DAMAGE[how](config.outbox_path)

    with open_outbox(config) as box:
        items = box.pending()  # nothing lost
        assert {i.unique_id: i.metadata["title"] for i in items} == queued
        assert all(i.patient == INS and i.state is ItemState.PENDING for i in items)
        # What the user is told (the page's `recovered`, dmp-agent outbox's first line).
        assert box.rebuilt is not None and "2 dépôt(s) remis en file" in box.rebuilt
        held = quarantine_report(box.directory)
        if how == "deleted":
            assert "database missing" in box.rebuilt and held is None
        else:
            assert held is not None and str(held.folders[0]) in box.rebuilt
            aside = held.folders[0] / "database" / config.outbox_path.name
            assert aside.exists()  # the damaged database, kept for a person
            assert "database/outbox.sqlite3: " in (held.folders[0] / "reasons.txt").read_text()
        assert box.recovery is not None and box.recovery["rebuilt"] == 2
        assert recover_contents(box) == 0  # each copy is named by its rebuilt item
        lines = outbox_lines(box)
        assert lines[0].startswith("Attention : file d'envoi reconstruite")
        with FaultyHost() as host:
            drain(box, host)
        assert host.stored == {uid: 1 for uid in queued}  # both reach the host, once each
        assert sorted(host.binaries.values()) == sorted(
            hashlib.sha256(body).hexdigest() for body in bodies.values())
        assert list(box.bundles.iterdir()) == [] and list(box.contents.iterdir()) == []
    if how != "deleted":  # doctor says where the damaged database was put
        check = check_outbox(config)
        assert check.status is Status.WARNING and "quarantine" in check.found
        assert "dmp-agent outbox --recover" in check.fix


def test_a_row_lost_from_a_sound_database_is_rebuilt_and_a_file_that_does_not_open_is_kept(
    tmp_path: Path
) -> None:
    config = config_for(tmp_path)
    with open_outbox(config) as box:
        kept = queue(box, document("kept"), "kept")
        lost = queue(box, document("lost"), "lost")
        bundles, contents = box.bundles, box.contents
    with sqlite3.connect(config.outbox_path) as raw:  # as if its commit never reached the disk
        raw.execute("DELETE FROM items WHERE unique_id = ?", (lost,))
    (bundles / "0123abcd.bundle").write_bytes(b"not sealed by this outbox" * 40)
    (contents / "feedbeef.content").write_bytes(os.urandom(5000))

    with open_outbox(config) as box:
        assert {i.unique_id for i in box.pending()} == {kept, lost}
        assert box.repair.rebuilt == 1 and box.repair.quarantined == 1
        assert recover_contents(box) == 1  # the content that does not open: set aside
        held = quarantine_report(box.directory)
        assert held is not None and held.files == 2
        reasons = (held.folders[0] / "reasons.txt").read_text()
        assert "bundles/0123abcd.bundle: damaged" in reasons
        assert "contents/feedbeef.content: damaged" in reasons
        with FaultyHost() as host:
            drain(box, host)
        assert host.stored == {kept: 1, lost: 1}
    check = check_outbox(config)
    assert check.status is Status.WARNING and "2 fichier(s) mis de côté" in check.found


def test_a_database_that_cannot_be_read_is_named_with_its_fix_and_recover_rebuilds(
    tmp_path: Path
) -> None:
    config = config_for(tmp_path)
    with open_outbox(config) as box:
        uid = queue(box, document("unreadable"), "unreadable")
    with sqlite3.connect(config.outbox_path) as raw:  # sound SQLite, not what the agent reads
        raw.execute("ALTER TABLE items RENAME TO items_elsewhere")
        raw.execute("CREATE TABLE items (id INTEGER PRIMARY KEY)")
    run = dmp_agent(config, "run", "--no-tray")
    assert run.returncode == 4, run.stderr
    said = one_sentence(run.stderr)
    assert "La base de la file d'envoi est illisible" in said
    assert "dmp-agent outbox --recover" in said
    assert str(config.outbox_path.parent / "quarantine") in said
    listing = dmp_agent(config, "outbox")
    assert listing.returncode == 1 and "--recover" in one_sentence(listing.stderr)
    recovered = dmp_agent(config, "outbox", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    assert "file d'envoi reconstruite" in recovered.stdout
    assert "1 en attente" in recovered.stdout
    with open_outbox(config) as box:
        assert [i.unique_id for i in box.pending()] == [uid]
        held = quarantine_report(box.directory)
        assert held is not None and (held.folders[0] / "database" / "outbox.sqlite3").exists()


def test_dmp_agent_run_on_a_garbled_outbox_starts_and_shows_what_it_rebuilt(
    tmp_path: Path
) -> None:
    agent = AgentProcess(tmp_path / "agent", "https://127.0.0.1:1", tmp_path / "no-pki")
    (agent.root / "home").mkdir(parents=True)
    config = config_for(agent.root, port=agent.port)
    with open_outbox(config) as box:
        uids = {queue(box, document(f"run {k}"), f"run {k}") for k in range(2)}
    _overwrite(config.outbox_path, 0, os.urandom(4096))
    agent.env.update(DMP_AGENT_CONFIG=str(config.source))
    agent.start()
    try:
        with agent.client() as api:
            outbox = api.get("/api/outbox").json()
        # No session: nobody's deposits are listed (issue 17), both are counted.
        assert outbox["others"]["pending"] == 2 and outbox["items"] == []
        assert outbox["recovered"] and "quarantine" in outbox["recovered"]
        assert outbox["quarantine"]["files"] == 1  # the damaged database
        # No session yet: that is why they wait, and they are tried again.
        outbox = agent.wait_for(
            lambda s: s["outbox"]["others"]["reasons"] == {"no-session": 2})["outbox"]
    finally:
        assert agent.stop() == 0
    with open_outbox(config) as box:  # both rebuilt from the files
        assert {i.unique_id for i in box.pending()} == uids


# -- read-only, held by another agent: one sentence, a documented status ------------------


def test_a_read_only_data_directory_is_said_in_one_sentence_and_nothing_is_lost(
    tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "data", 8 * MB) as data:
        config = config_for(tmp_path, data)
        with open_outbox(config) as box:
            uid = queue(box, document("read-only"), "read-only")
        read_only(data)
        with pytest.raises(OutboxStorageError, match="lecture seule") as refused:
            open_outbox(config)
        assert refused.value.reason == "read-only" and str(config.outbox_path.parent) in str(
            refused.value)
        listing = dmp_agent(config, "outbox")
        assert listing.returncode == 1
        assert "le dossier de la file d'envoi est en lecture seule" in one_sentence(
            listing.stderr)
        run = dmp_agent(config, "run", "--no-tray")
        assert run.returncode == 4, run.stderr  # documented: the outbox cannot be used
        said = one_sentence(run.stderr)
        assert said.startswith("dmp-agent run: ") and "lecture seule" in said
        assert "rendez-le accessible en écriture" in said  # and the fix
        read_only(data, False)
        with open_outbox(config) as box:
            assert [i.unique_id for i in box.pending()] == [uid]


def test_an_outbox_held_by_another_agent_names_its_pid_and_port(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    with open_outbox(config, holder="dmp-agent run, port 17999") as held:
        uid = queue(held, document("held"), "held")
        with pytest.raises(OutboxBusyError) as busy:
            open_outbox(config)
        assert busy.value.pid == os.getpid()
        run = dmp_agent(config, "run", "--no-tray")
        assert run.returncode == 3, run.stderr  # another agent runs: not to be retried
        said = one_sentence(run.stderr)
        assert f"pid {os.getpid()}, dmp-agent run, port 17999" in said
        listing = dmp_agent(config, "outbox")
        assert listing.returncode == 1 and f"pid {os.getpid()}" in one_sentence(
            listing.stderr)
    with open_outbox(config) as box:
        assert [i.unique_id for i in box.pending()] == [uid]


# -- the disk fills up --------------------------------------------------------------------


def test_a_deposit_the_disk_cannot_hold_is_refused_up_front(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", 10 * MB) as data:
        config = config_for(tmp_path, data)
        with open_outbox(config) as box:
            fill(data, leave=int(2.5 * MB))
            big = document("too big", 5 * MB)
            with pytest.raises(OutboxFullError) as refused:
                queue(box, big, "5 MB")
            found = re.search(r"disque plein : (\d+) Mo nécessaires, (\d+) Mo libres",
                              str(refused.value))
            assert found is not None, refused.value
            needed = sealed_size(len(big)) + BUNDLE_ROOM + RESERVE
            assert (int(found[1]), int(found[2])) == (-(-needed // MB), 2)
            # Nothing half-written, nothing queued.
            assert list(box.contents.iterdir()) == [] and list(box.bundles.iterdir()) == []
            assert box.counts().pending == 0
            small = queue(box, document("small", 100_000), "small")  # what fits, goes in
            assert [i.unique_id for i in box.pending()] == [small]


def test_a_pending_deposit_says_the_disk_is_full_and_goes_out_once_space_is_freed(
    tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "data", 8 * MB) as data, FaultyHost() as host:
        config = config_for(tmp_path, data)
        with open_outbox(config) as box:
            uid = queue(box, document("pending"), "pending")
            # The host cannot be reached: it waits, and says why.
            down = make_sender(lambda: httpx.Client(base_url="http://127.0.0.1:1"), box)
            Sender(box, FAST).send_pending(down)
            view = outbox_json(box, sending=None)["items"][0]
            assert view["reason"] == "network" and view["lastError"].startswith("ConnectError")
            filler = fill(data, leave=0)
            send = make_sender(host.client, box)
            done = threading.Event()
            worker = OutboxWorker(box, send, threading.Event(), policy=FAST,
                                  on_progress=lambda p: (send.on_progress(p), p.kind == "done"
                                                         and done.set()))
            worker.start()
            try:
                deadline = time.monotonic() + 10
                while box.write_problem is None:  # its next attempt cannot be written
                    assert time.monotonic() < deadline, "no write failed"
                    time.sleep(0.05)
                outbox = outbox_json(box, sending=None)
                view = outbox["items"][0]
                assert view["reason"] == "disk" and "disque plein" in view["reasonText"]
                assert outbox["problem"].startswith("disque plein")  # not a stale ConnectError
                assert host.deliveries[uid] == 0
                filler.unlink()  # space freed: it goes out by itself
                assert done.wait(10)
            finally:
                worker.stop()
            assert host.stored == {uid: 1}
            assert outbox_json(box, sending=None)["problem"] == "" and not box.pending()


LOGGING = """
import logging, sys
from pathlib import Path
from agent.config import AgentConfig
from agent.logs import setup_logging
from tests.faults import fill

directory = Path(sys.argv[1])
setup_logging(AgentConfig(log_dir=directory))
log = logging.getLogger("agent.test")
log.warning("before: %s", "x" * 100)
if sys.argv[2] == "full":
    fill(directory, 0)
log.warning("while unwritable: %s", "y" * 20000)
log.warning("and after that")
"""


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_logging_goes_to_stderr_when_its_file_cannot_be_written(tmp_path: Path,
                                                                   how: str) -> None:
    with tmpfs(tmp_path / "logs", 1 * MB) as logs:
        if how == "read-only":
            read_only(logs)
        child = subprocess.run([sys.executable, "-c", LOGGING, str(logs), how], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        assert child.returncode == 0, child.stderr
        assert "Traceback" not in child.stderr and "Logging error" not in child.stderr
        assert "cannot be written" in child.stderr
        assert "while unwritable: yyy" in child.stderr and "and after that" in child.stderr
        if how == "full":
            assert "before: xxx" in (logs / "agent.log").read_text(errors="replace")


# -- the host answers 503 or cuts its answers ----------------------------------------------


@pytest.mark.parametrize("faults, cause, text", [
    (["503", "503", "503"], "host", "l'hôte DMP ne répond pas (HTTP 503)"),
    (["cut-after-store"], "network", "réponse coupée"),
    (["cut", "cut"], "network", "réponse coupée"),
])
def test_a_host_that_answers_503_or_cuts_its_answers_gets_each_deposit_once(
    tmp_path: Path, faults: list[str], cause: str, text: str
) -> None:
    clock = Clock()
    config = config_for(tmp_path)
    with open_outbox(config, clock=clock) as box, FaultyHost() as host:
        uid = queue(box, document("flaky"), "flaky")
        host.faults = list(faults)
        send = make_sender(host.client, box)
        sender = Sender(box, FAST, clock=clock, on_progress=send.on_progress)
        for attempt in range(1, len(faults) + 1):
            sender.send_pending(send)
            item = box.get(box.find(uid).id)  # type: ignore[union-attr]
            assert item.state is ItemState.PENDING and item.attempts == attempt
            view = outbox_json(box, sending=None, paused_until=sender.paused_until)
            shown = view["items"][0]
            # The page and the API say why it waits and when it is tried again.
            assert shown["reason"] == cause and text in shown["reasonText"], shown
            assert shown["status"] == (503 if cause == "host" else None)
            assert _when(shown["nextAttempt"]) > clock.now
            line = next(x for x in outbox_lines(box) if "n° " in x)
            assert text in line and "nouvel essai" in line
            clock.now = max(sender.paused_until, item.next_attempt) + 0.1
        drain(box, host, clock)
        done = box.find(uid)
        assert done is not None and done.state is ItemState.DONE
        assert host.stored == {uid: 1}  # delivered more than once maybe, stored once
        replayed = "cut-after-store" in faults
        assert host.deliveries[uid] == len(faults) + 1
        assert (done.acknowledgement or "").startswith("already-stored") == replayed


def _when(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()
