"""The outbox at rest (docs/agent-outbox.md, "At rest"): nothing personal in clear on disk,
damaged files detected and never sent, the key kept away from the outbox (OS keyring or
sealed file), the purge of acknowledged items, and the migration of a clear outbox of
schema 1. Real files, real SQLite, the real AES-GCM; the host is an httpx transport."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked

from agent.client.provide import DepositMetadata, Digest, signed_bundle
from agent.config import AgentConfig, ConfigError, load_config, render_config
from agent.core.deposit import (
    INLINE_MAX,
    PLACEHOLDER,
    make_sender,
    queue_deposit,
    recover_contents,
)
from agent.outbox import (
    CONTENTS,
    SCHEMA_VERSION,
    ItemState,
    Outbox,
    OutboxDamagedError,
    OutboxKeyError,
    OutboxWorker,
    RetryPolicy,
    SealedFileKeyStore,
    Sender,
    SendResult,
    open_outbox,
)
from agent.outbox import keys as keys_module
from agent.outbox.sealed import CHUNK, TAG, SealedFiles, new_key, sealed_size
from tests.faults import AUTHOR, FAKE_SIGNER, INS, PATIENT, SETTING, inline_document

TITLE = "Compte rendu très confidentiel de Mme Martin"
MARKER = b"DOCUMENT-BODY-MARKER-0123456789"
NO_JITTER = RetryPolicy(base=10.0, maximum=100.0, jitter=0.0)
DAY = 86400.0
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sealed_keys(root: Path) -> SealedFileKeyStore:
    return SealedFileKeyStore(root / "credentials", root / "keys")


def document(size: int = 300_000) -> bytes:
    body = b"%PDF-1.4\n" + MARKER + os.urandom(size)
    return body + MARKER


def queue(outbox: Outbox, content: bytes | Path, title: str = TITLE) -> int:
    return queue_deposit(outbox, PATIENT, content, DepositMetadata("34810-2", title),
                         author=AUTHOR, setting=SETTING, signer=FAKE_SIGNER)


class Host(httpx.BaseTransport):
    """An httpx transport standing for the host: takes the streamed Binary chunk by chunk
    (hashing it as it arrives, holding nothing: httpx's MockTransport would read it whole)
    and acknowledges the bundle."""

    def __init__(self) -> None:
        # (size, sha256) of each document received, uploaded or inside a bundle
        self.binaries: list[tuple[int, str]] = []
        self.bundles: list[dict[str, Any]] = []
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if request.url.path == "/fhir/Binary":
            digest, size = hashlib.sha256(), 0
            for chunk in request.stream:  # type: ignore[union-attr]
                digest.update(chunk)
                size += len(chunk)
            self.binaries.append((size, digest.hexdigest()))
            return httpx.Response(201, json={"id": f"b{len(self.binaries)}"})
        bundle = json.loads(request.read())
        inline = inline_document(bundle)
        if inline is not None:
            self.binaries.append((len(inline), hashlib.sha256(inline).hexdigest()))
        self.bundles.append(bundle)
        return httpx.Response(201)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self, base_url="https://host.test")


def drain(outbox: Outbox, host: Host, clock: Clock | None = None) -> None:
    send = make_sender(host.client, outbox)
    Sender(outbox, NO_JITTER, on_progress=send.on_progress,
           **({"clock": clock} if clock else {})).send_pending(send)


def raw_files(directory: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def assert_nothing_in_clear(directory: Path, *secrets: bytes) -> None:
    for path, data in raw_files(directory):
        for secret in secrets:
            assert secret not in data, f"{secret[:40]!r} in clear in {path}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox" / "outbox.sqlite3", keys=sealed_keys(tmp_path),
                clock=clock) as box:
        yield box


# -- nothing in clear ----------------------------------------------------------------------


def test_the_disk_holds_neither_the_ins_nor_the_title_nor_the_document(
    outbox: Outbox, clock: Clock
) -> None:
    body = document()
    refused = outbox.add("urn:uuid:refused", INS, b"bundle of " + INS.encode(), {"title": TITLE})
    waiting = queue(outbox, body)
    inline = outbox.add("urn:uuid:inline", INS, b'{"patient": "%s", "title": "%s"}' % (
        INS.encode(), TITLE.encode()), {"title": TITLE})
    Sender(outbox, NO_JITTER, clock=clock).send_pending(
        lambda item: SendResult.refused(f"unknown patient {INS}, {TITLE}", 404)
        if item.unique_id == "urn:uuid:refused" else SendResult.retry("later"))
    assert outbox.get(refused).state is ItemState.FAILED
    # Read back through the outbox, everything is there...
    item = outbox.get(waiting)
    assert item.patient == INS and item.metadata["title"] == TITLE
    assert outbox.get(refused).last_error == f"404 unknown patient {INS}, {TITLE}"
    assert INS.encode() in outbox.get(inline).read_payload()
    # ...and on disk (database, its log, bundles, document copies), none of it.
    assert_nothing_in_clear(outbox.directory, INS.encode(), TITLE.encode(), MARKER,
                            body[1000:1064], b"Olivier", b"OPTIQUE")
    assert len(list(outbox.contents.iterdir())) == 1


def test_a_deposit_reaches_the_host_as_its_plaintext_with_its_sha256(outbox: Outbox) -> None:
    body = document()
    item_id = queue(outbox, body)
    host = Host()
    drain(outbox, host)
    assert host.binaries == [(len(body), hashlib.sha256(body).hexdigest())]
    assert outbox.get(item_id).state is ItemState.DONE
    assert list(outbox.contents.iterdir()) == [] and list(outbox.bundles.iterdir()) == []


@pytest.mark.parametrize(("size", "requests"), [
    (INLINE_MAX, ["/fhir"]),  # one round trip: the bytes inside the bundle
    (INLINE_MAX + 1, ["/fhir/Binary", "/fhir"]),  # streamed first, then the bundle
])
def test_a_small_document_travels_inside_its_bundle_a_large_one_is_streamed_first(
    outbox: Outbox, size: int, requests: list[str]
) -> None:
    body = document()
    body = (body * (size // len(body) + 1))[:size]
    queue(outbox, body)
    host = Host()
    drain(outbox, host)
    assert host.requests == requests
    assert host.binaries == [(size, hashlib.sha256(body).hexdigest())]
    [bundle] = host.bundles
    urls = [content["attachment"]["url"] for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == "DocumentReference"
            for content in entry["resource"]["content"]]
    assert len(urls) == 2  # the document and the signature document
    assert f"Binary/{PLACEHOLDER}" not in urls


def test_a_64_mib_document_is_queued_and_sent_in_constant_memory(
    outbox: Outbox, tmp_path: Path
) -> None:
    source = tmp_path / "big.pdf"
    block = os.urandom(1 << 20)
    expected = hashlib.sha256()
    with open(source, "wb") as out:
        for _ in range(64):
            out.write(block)
            expected.update(block)
    del block
    host = Host()
    tracemalloc.start()
    try:
        item_id = queue(outbox, source)
        drain(outbox, host)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert host.binaries == [(64 << 20, expected.hexdigest())]
    assert outbox.get(item_id).state is ItemState.DONE
    assert peak < 8 << 20, f"peak {peak / (1 << 20):.1f} MiB"
    print(f"peak {peak / (1 << 20):.2f} MiB")


# -- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_a_sealed_file_reads_back_and_has_the_announced_size(tmp_path: Path, size: int) -> None:
    files = SealedFiles(new_key())
    data = os.urandom(size)
    with files.create(tmp_path, ".x") as writer:
        for start in range(0, size, 10_000):
            writer.write(data[start:start + 10_000])
        path = writer.install()
    assert path.stat().st_size == sealed_size(size)
    assert b"".join(files.read(path)) == data
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def _sealed(directory: Path, files: SealedFiles, data: bytes) -> Path:
    with files.create(directory, ".x") as writer:
        writer.write(data)
        return writer.install()


def _tamper(path: Path, how: str, other: Path) -> None:
    raw = bytearray(path.read_bytes())
    header, block = len(raw) - 3 * (CHUNK + TAG) - (100 + TAG), CHUNK + TAG
    if how == "flip a byte":
        raw[header + block + 500] ^= 0x01
        path.write_bytes(raw)
    elif how == "cut at a chunk boundary":
        path.write_bytes(raw[:header + 2 * block])
    elif how == "cut mid-chunk":
        path.write_bytes(raw[:header + block + 1000])
    elif how == "drop the last chunk":
        path.write_bytes(raw[:header + 3 * block])
    elif how == "swap two chunks":
        first, second = raw[header:header + block], raw[header + block:header + 2 * block]
        path.write_bytes(raw[:header] + second + first + raw[header + 2 * block:])
    elif how == "append a chunk":
        path.write_bytes(raw + raw[header:header + block])
    elif how == "another file's content under this name":
        path.write_bytes(other.read_bytes())
    elif how == "not sealed at all":
        path.write_bytes(b"%PDF-1.4 clear text" * 1000)


@pytest.mark.parametrize("how", [
    "flip a byte", "cut at a chunk boundary", "cut mid-chunk", "drop the last chunk",
    "swap two chunks", "append a chunk", "another file's content under this name",
    "not sealed at all",
])
def test_a_tampered_file_fails_authentication_and_yields_only_genuine_chunks(
    tmp_path: Path, how: str
) -> None:
    files = SealedFiles(new_key())
    data = os.urandom(3 * CHUNK + 100)
    path = _sealed(tmp_path, files, data)
    other = _sealed(tmp_path, files, data)
    _tamper(path, how, other)
    read = b""
    with pytest.raises(OutboxDamagedError, match="damaged"):
        for chunk in files.read(path):
            read += chunk
    assert data.startswith(read)  # whatever came out before the failure was genuine
    assert len(read) < len(data)


def test_a_file_of_another_outbox_key_does_not_open(tmp_path: Path) -> None:
    path = _sealed(tmp_path, SealedFiles(new_key()), b"x" * 1000)
    with pytest.raises(OutboxDamagedError):
        b"".join(SealedFiles(new_key()).read(path))


def test_a_damaged_document_copy_fails_its_item_and_the_host_gets_no_deposit(
    outbox: Outbox, clock: Clock
) -> None:
    body = document(4 * CHUNK)
    item_id = queue(outbox, body)
    copy = outbox.contents / outbox.get(item_id).metadata["content"]
    raw = bytearray(copy.read_bytes())
    raw[len(raw) - 1000] ^= 0x40  # in the last chunk: the first ones are genuine
    copy.write_bytes(raw)
    host = Host()
    drain(outbox, host, clock)
    item = outbox.get(item_id)
    assert item.state is ItemState.FAILED
    assert "damaged" in (item.last_error or "") and "document copy" in (item.last_error or "")
    assert host.bundles == []  # the upload was cut short: nothing deposited
    assert all(size < len(body) for size, _ in host.binaries)


def test_a_damaged_bundle_of_the_right_size_fails_its_item_unsent(
    outbox: Outbox, clock: Clock
) -> None:
    item_id = outbox.add("urn:uuid:b", INS, b"the signed bundle" * 100)
    path = outbox.get(item_id).payload_path
    assert path is not None
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0x01
    path.write_bytes(raw)
    sent: list[bytes] = []

    def send(item: Any) -> SendResult:
        sent.append(item.read_payload())
        return SendResult.stored()

    Sender(outbox, NO_JITTER, clock=clock).send_pending(send)
    assert sent == []
    item = outbox.get(item_id)
    assert item.state is ItemState.FAILED and "damaged" in (item.last_error or "")


def test_a_row_whose_sealed_fields_were_altered_is_failed_at_open(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "outbox" / "outbox.sqlite3"
    with Outbox(path, keys=sealed_keys(tmp_path), clock=clock) as box:
        first = box.add("urn:uuid:1", INS, b"one", {"title": "A"})
        second = box.add("urn:uuid:2", INS, b"two", {"title": "B"})
    with sqlite3.connect(path) as db:  # one row's sealed fields copied onto the other
        db.execute("UPDATE items SET personal = (SELECT personal FROM items WHERE id = ?) "
                   "WHERE id = ?", (first, second))
    with Outbox(path, keys=sealed_keys(tmp_path), clock=clock) as box:
        assert box.get(first).metadata == {"title": "A"}
        damaged = box.get(second)
        assert damaged.state is ItemState.FAILED and "row damaged" in (damaged.last_error or "")
        assert damaged.read_payload() == b"two"  # its bundle is still there, for a retry


# -- the key ---------------------------------------------------------------------------------


def _key_id(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()[0])


def test_the_key_is_sealed_beside_the_workstation_key_never_beside_the_outbox(
    tmp_path: Path
) -> None:
    config = AgentConfig(credentials_dir=tmp_path / "config" / "workstation",
                         data_dir=tmp_path / "data")
    with open_outbox(config) as box:
        box.add("urn:uuid:1", INS, b"bundle")
        key_id = _key_id(box.path)
    assert keys_module.usable_keyring() is None  # the tests' keyring is the "fail" stand-in
    sealed = config.credentials_dir / f"outbox-{key_id}.key"
    secret = config.data_dir / "keys" / f"outbox-{key_id}.secret"
    assert sealed.is_file() and secret.is_file()
    for path in (sealed, secret, sealed.parent, secret.parent):
        assert (path.stat().st_mode & 0o077) == 0
    key = SealedFileKeyStore.from_config(config).load(key_id)
    assert key is not None and len(key) == 32
    assert key not in sealed.read_bytes()
    assert_nothing_in_clear(config.outbox_path.parent, key, key.hex().encode(), secret.read_bytes())
    with open_outbox(config) as box:  # opened again after a restart, nobody typing
        assert box.find("urn:uuid:1") is not None


def test_a_missing_key_is_a_clear_error_and_no_new_key_is_made(tmp_path: Path) -> None:
    path = tmp_path / "outbox" / "outbox.sqlite3"
    with Outbox(path, keys=sealed_keys(tmp_path)) as box:
        box.add("urn:uuid:1", INS, b"bundle")
    key_id = _key_id(path)
    sealed = tmp_path / "credentials" / f"outbox-{key_id}.key"
    sealed.rename(sealed.with_suffix(".moved"))
    with pytest.raises(OutboxKeyError, match=f"outbox key {key_id} is missing") as error:
        Outbox(path, keys=sealed_keys(tmp_path))
    assert "cannot be read" in str(error.value) and str(path.parent) in str(error.value)
    assert _key_id(path) == key_id  # nothing replaced it
    sealed.with_suffix(".moved").rename(sealed)
    (tmp_path / "keys" / f"outbox-{key_id}.secret").unlink()
    with pytest.raises(OutboxKeyError, match="cannot be opened without it"):
        Outbox(path, keys=sealed_keys(tmp_path))


def test_the_sealed_key_does_not_open_on_another_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outbox" / "outbox.sqlite3"
    Outbox(path, keys=sealed_keys(tmp_path)).close()
    monkeypatch.setattr(keys_module, "machine_id", lambda: "another-machine")
    with pytest.raises(OutboxKeyError, match="does not open here"):
        Outbox(path, keys=sealed_keys(tmp_path))


def test_the_wrong_key_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "outbox" / "outbox.sqlite3"
    Outbox(path, keys=sealed_keys(tmp_path)).close()
    sealed_keys(tmp_path).save(_key_id(path), new_key())  # another key under the same id
    with pytest.raises(OutboxKeyError, match="not the one this outbox was sealed with"):
        Outbox(path, keys=sealed_keys(tmp_path))


class MemoryKeyring(KeyringBackend):
    """A keyring backend in memory, standing for the OS keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.entries[(service, username)]


class LockedKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the collection is locked")


@pytest.fixture
def os_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


def test_with_an_os_keyring_the_key_lives_there_and_nowhere_on_disk(
    tmp_path: Path, os_keyring: MemoryKeyring
) -> None:
    config = AgentConfig(credentials_dir=tmp_path / "credentials", data_dir=tmp_path / "data")
    with open_outbox(config) as box:
        box.add("urn:uuid:1", INS, b"bundle")
        key_id = _key_id(box.path)
    assert list(os_keyring.entries) == [("dmp-agent", f"outbox-key-{key_id}")]
    assert not config.credentials_dir.exists() and not (config.data_dir / "keys").exists()
    with open_outbox(config) as box:
        assert box.find("urn:uuid:1") is not None
    os_keyring.entries.clear()
    with pytest.raises(OutboxKeyError, match="not in the OS keyring"):
        open_outbox(config)


def test_a_locked_keyring_falls_back_to_the_sealed_file(tmp_path: Path) -> None:
    config = AgentConfig(credentials_dir=tmp_path / "credentials", data_dir=tmp_path / "data")
    locked, unlocked = LockedKeyring(), MemoryKeyring()
    with open_outbox(config, keys=keys_module.outbox_keys(config, keyring_backend=locked)):
        pass
    key_id = _key_id(config.outbox_path)
    assert (config.credentials_dir / f"outbox-{key_id}.key").is_file()
    # Later the keyring works: the key is still found where it went.
    with open_outbox(config, keys=keys_module.outbox_keys(config, keyring_backend=unlocked)):
        pass
    assert unlocked.entries == {}


def test_stand_in_keyrings_are_not_used() -> None:
    from keyring.backends import fail, null

    assert keys_module.usable_keyring(fail.Keyring()) is None
    assert keys_module.usable_keyring(null.Keyring()) is None
    assert keys_module.usable_keyring(MemoryKeyring()) is not None


# -- the purge -------------------------------------------------------------------------------


def test_done_items_are_purged_after_the_delay_and_the_counts_stay(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "outbox" / "outbox.sqlite3"
    box = Outbox(path, keys=sealed_keys(tmp_path), clock=clock, purge_after=7 * DAY)
    sent = [box.add(f"urn:uuid:{n}", INS, b"bundle %d" % n, {"title": TITLE}) for n in range(2)]
    refused = box.add("urn:uuid:refused", INS, b"refused bundle", {"title": TITLE})
    waiting = box.add("urn:uuid:waiting", "another INS", b"waiting bundle", {"title": "W"})
    answers = {"urn:uuid:refused": SendResult.refused(f"bad {TITLE}", 422),
               "urn:uuid:waiting": SendResult.retry("503", 503)}
    Sender(box, NO_JITTER, clock=clock).send_pending(
        lambda item: answers.get(item.unique_id, SendResult.stored("201")))
    Sender(box, NO_JITTER, clock=clock).send_pending(
        lambda item: answers.get(item.unique_id, SendResult.stored("201")))
    counts = box.counts()
    assert (counts.done, counts.failed, counts.pending) == (2, 1, 1)
    acknowledged = box.get(sent[0]).acknowledged
    assert box.next_purge() == pytest.approx(clock.now + 7 * DAY)

    clock.now += 7 * DAY - 1
    assert box.purge() == 0 and box.get(sent[0]).metadata == {"title": TITLE}
    clock.now += 2
    assert box.purge() == 2
    assert box.next_purge() is None
    for item_id in sent:
        item = box.get(item_id)
        assert (item.patient, dict(item.metadata), item.acknowledgement) == ("", {}, None)
        assert item.purged == clock.now and item.acknowledged == acknowledged
        assert item.state is ItemState.DONE and item.size == len(b"bundle 0")
    assert box.counts() == counts
    # Refused and waiting items are the user's work: never purged.
    assert box.get(refused).metadata == {"title": TITLE}
    assert box.get(refused).last_error == f"422 bad {TITLE}"
    assert box.get(waiting).patient == "another INS"
    box.close()
    with sqlite3.connect(path) as db:
        blanked = db.execute("SELECT COUNT(*) FROM items WHERE personal IS NULL AND "
                             "last_error IS NULL AND acknowledgement IS NULL").fetchone()
    assert blanked == (2,)


def test_the_purge_runs_when_the_outbox_opens(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "outbox" / "outbox.sqlite3"
    with Outbox(path, keys=sealed_keys(tmp_path), clock=clock, purge_after=DAY) as box:
        item_id = box.add("urn:uuid:1", INS, b"bundle", {"title": TITLE})
        Sender(box, NO_JITTER, clock=clock).send_pending(lambda item: SendResult.stored())
    clock.now += 2 * DAY
    with Outbox(path, keys=sealed_keys(tmp_path), clock=clock, purge_after=DAY) as box:
        assert box.get(item_id).purged == clock.now and box.counts().done == 1


def test_the_worker_wakes_for_the_purge_without_polling(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.sqlite3", keys=sealed_keys(tmp_path),
                purge_after=0.4) as box:
        item_id = box.add("urn:uuid:1", INS, b"bundle", {"title": TITLE})
        wakeup = threading.Event()
        worker = OutboxWorker(box, lambda item: SendResult.stored(), wakeup).start()
        try:
            deadline = time.monotonic() + 10
            while box.get(item_id).purged is None:
                assert time.monotonic() < deadline, "not purged"
                time.sleep(0.05)
            assert box.get(item_id).acknowledged is not None
            assert box.get(item_id).purged >= box.get(item_id).acknowledged + 0.4  # type: ignore[operator]
        finally:
            worker.stop()


def test_the_purge_delay_is_a_documented_setting(tmp_path: Path) -> None:
    assert AgentConfig().outbox_purge_days == 7
    assert "purge_after_days = 7.0" in render_config()
    file = tmp_path / "agent.toml"
    file.write_text("[outbox]\npurge_after_days = 0.5\n")
    config = load_config(file)
    assert config.outbox_purge_days == 0.5
    with open_outbox(config) as box:
        assert box.purge_after == 0.5 * DAY
    file.write_text("[outbox]\npurge_after_days = -1\n")
    with pytest.raises(ConfigError, match=r"outbox\.purge_after_days"):
        load_config(file)


# -- migration from schema 1 (clear) -----------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, unique_id TEXT NOT NULL UNIQUE, patient TEXT NOT NULL,
    bundle TEXT, size INTEGER NOT NULL, sha256 TEXT NOT NULL, metadata TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_attempt REAL NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, acknowledged REAL, acknowledgement TEXT
);
CREATE INDEX items_by_state ON items (state, id);
PRAGMA user_version=1;
"""


def _v1_outbox(directory: Path, now: float, body: bytes) -> dict[str, Any]:
    """An outbox as the agent of schema 1 left it: clear rows, clear bundles and document
    copies (the layout and metadata `queue_deposit` and `Outbox.add` wrote then)."""
    (directory / "bundles").mkdir(parents=True)
    (directory / "contents").mkdir()
    (directory / "contents" / "c0ffee.content").write_bytes(body)
    unique_id, bundle = signed_bundle(
        PATIENT, PLACEHOLDER, Digest(len(body), hashlib.sha256(body).hexdigest(),
                                     "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        DepositMetadata("34810-2", TITLE), author=AUTHOR, setting=SETTING, signer=FAKE_SIGNER)
    by_reference = json.dumps(bundle, separators=(",", ":")).encode()
    inline = b'{"inline bundle of": "%s"}' % INS.encode()
    rows = [  # (unique_id, state, bundle bytes or None, metadata, last_error, acknowledged)
        (unique_id, "pending", by_reference, {
            "kind": "deposit-by-reference", "content": "c0ffee.content",
            "content_size": len(body), "content_sha256": hashlib.sha256(body).hexdigest(),
            "mime_type": "application/pdf", "title": TITLE, "type_code": "34810-2"}, None, None),
        ("urn:uuid:inline", "sending", inline, {"title": TITLE}, None, None),
        ("urn:uuid:refused", "failed", b"refused " + INS.encode(), {"title": TITLE},
         f"422 INS {INS} unknown", None),
        ("urn:uuid:old", "done", None, {"title": TITLE}, None, now - 10 * DAY),
        ("urn:uuid:recent", "done", None, {"title": TITLE}, None, now - DAY),
    ]
    db = sqlite3.connect(directory / "outbox.sqlite3")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    for number, (uid, state, data, metadata, error, acknowledged) in enumerate(rows):
        name = None
        if data is not None:
            name = f"{number:032x}.bundle"
            (directory / "bundles" / name).write_bytes(data)
        db.execute(
            "INSERT INTO items (unique_id, patient, bundle, size, sha256, metadata, state, "
            "attempts, last_error, next_attempt, created, updated, acknowledged, "
            "acknowledgement) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (uid, INS, name, len(data or b"x" * 7), hashlib.sha256(data or b"").hexdigest(),
             json.dumps(metadata), state, error, now, now - 20 * DAY, now, acknowledged,
             "stored: 201" if acknowledged else None))
    db.commit()
    db.close()
    return {"by_reference": unique_id, "by_reference_bundle": by_reference, "inline": inline}


def test_a_clear_outbox_of_schema_1_is_sealed_on_open_and_nothing_is_lost(
    tmp_path: Path, clock: Clock
) -> None:
    directory = tmp_path / "outbox"
    body = document()
    made = _v1_outbox(directory, clock.now, body)
    with Outbox(directory / "outbox.sqlite3", keys=sealed_keys(tmp_path), clock=clock) as box:
        assert recover_contents(box) == 0  # the sealed copy is the item's now
        by_reference = box.find(made["by_reference"])
        inline = box.find("urn:uuid:inline")
        assert by_reference is not None and inline is not None
        assert by_reference.state is ItemState.PENDING and by_reference.patient == INS
        assert by_reference.metadata["title"] == TITLE
        assert by_reference.read_payload() == made["by_reference_bundle"]
        assert inline.state is ItemState.PENDING  # was sending: interrupted mid-send
        assert inline.read_payload() == made["inline"]
        refused = box.find("urn:uuid:refused")
        assert refused is not None and refused.state is ItemState.FAILED
        assert refused.last_error == f"422 INS {INS} unknown"
        old, recent = box.find("urn:uuid:old"), box.find("urn:uuid:recent")
        assert old is not None and old.purged is not None and old.metadata == {}
        assert recent is not None and recent.purged is None and recent.metadata["title"] == TITLE
        assert box.counts().done == 2 and box.counts().pending == 2
        # The clear files are gone; the disk holds nothing personal in clear any more.
        assert not (directory / "contents" / "c0ffee.content").exists()
        assert_nothing_in_clear(directory, INS.encode(), TITLE.encode(), MARKER,
                                body[5000:5064])
        # And the pending deposit goes to the host, as it would have before.
        host = Host()
        drain(box, host, clock)
        assert host.binaries == [(len(body), hashlib.sha256(body).hexdigest())]
        assert box.find(made["by_reference"]).state is ItemState.DONE  # type: ignore[union-attr]
        assert list((directory / CONTENTS).iterdir()) == []
    with sqlite3.connect(directory / "outbox.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


# The agent of schema 2 killed at the instant its migration would commit (os._exit: no
# cleanup runs, as with SIGKILL or a power cut).
KILLED_MIGRATION = """
import os, sys
from pathlib import Path
from agent.outbox import Outbox, SealedFileKeyStore

original, calls = Outbox._transaction, []
def killing(self):
    calls.append(1)
    if len(calls) == 2:  # the first names the key, the second rewrites the rows
        os._exit(9)
    return original(self)
Outbox._transaction = killing
root = Path(sys.argv[1])
Outbox(root / "outbox" / "outbox.sqlite3",
       keys=SealedFileKeyStore(root / "credentials", root / "keys"))
"""


def test_a_migration_killed_before_its_commit_is_done_again_at_the_next_open(
    tmp_path: Path, clock: Clock
) -> None:
    directory = tmp_path / "outbox"
    body = document()
    made = _v1_outbox(directory, clock.now, body)
    killed = subprocess.run([sys.executable, "-c", KILLED_MIGRATION, str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert killed.returncode == 9, killed.stderr
    # Still schema 1 with its clear files, beside sealed copies no row names.
    assert (directory / "contents" / "c0ffee.content").read_bytes() == body
    assert len(list((directory / "bundles").iterdir())) == 3 + 3
    with Outbox(directory / "outbox.sqlite3", keys=sealed_keys(tmp_path), clock=clock) as box:
        assert recover_contents(box) == 1  # the first attempt's sealed copy
        item = box.find(made["by_reference"])
        assert item is not None and item.read_payload() == made["by_reference_bundle"]
        assert len(list((directory / "bundles").iterdir())) == 3  # pending, sending, failed
        assert len(list((directory / "contents").iterdir())) == 1
        assert_nothing_in_clear(directory, INS.encode(), TITLE.encode(), MARKER)
        host = Host()
        drain(box, host, clock)
        assert host.binaries == [(len(body), hashlib.sha256(body).hexdigest())]


def test_the_doctor_names_a_missing_outbox_key(tmp_path: Path) -> None:
    from agent.install.doctor import Status, check_outbox

    config = AgentConfig(credentials_dir=tmp_path / "credentials", data_dir=tmp_path / "data")
    with open_outbox(config) as box:
        box.add("urn:uuid:1", INS, b"bundle")
        assert check_outbox(config).status is Status.OK  # read while the outbox is held
    (config.credentials_dir / f"outbox-{_key_id(config.outbox_path)}.key").unlink()
    check = check_outbox(config)
    assert check.status is Status.PROBLEM
    assert "Clé de la file d'envoi introuvable" in check.found and "is missing" in check.found
    assert str(config.outbox_path.parent) in check.fix
