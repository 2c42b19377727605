"""The outbox's files describe themselves, so the outbox can account for each one
(docs/agent-outbox.md, "Recovery"): the labels, the migration of an outbox of schema 2 (the
sealed files written before labels), the crash windows of a deposit (a copy no item names
is kept in quarantine, an add cut before its commit is rebuilt), a missing file replaced
by a sound spare copy, and `dmp-agent outbox --recover` bringing files back from
quarantine. Real SQLite, real sealed files, real processes killed mid-way."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.client.provide import DepositMetadata, Digest, signed_bundle
from agent.config import AgentConfig
from agent.core.deposit import KIND, PLACEHOLDER, make_sender, queue_deposit, recover_contents
from agent.outbox import (
    SCHEMA_VERSION,
    Description,
    ItemState,
    Outbox,
    SealedFileKeyStore,
    Sender,
    quarantine_report,
)
from agent.outbox.recovery import describe
from agent.outbox.sealed import CHUNK, MAGIC_V2, SALT, OutboxCipher, _subkey, key_id_of, new_key
from tests.faults import AUTHOR, FAKE_SIGNER, INS, PATIENT, SETTING, FaultyHost

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def keys(root: Path) -> SealedFileKeyStore:
    return SealedFileKeyStore(root / "credentials", root / "keys")


def open_box(root: Path) -> Outbox:
    return Outbox(root / "outbox" / "outbox.sqlite3", keys=keys(root))


def document(seed: str, size: int = 150_000) -> bytes:
    return b"%PDF-1.4\n" + hashlib.sha256(seed.encode()).digest() * (size // 32)


def queue(outbox: Outbox, content: bytes, title: str) -> int:
    return queue_deposit(outbox, PATIENT, content, DepositMetadata("34810-2", title),
                         author=AUTHOR, setting=SETTING, signer=FAKE_SIGNER)


def drain(outbox: Outbox, host: FaultyHost) -> None:
    send = make_sender(host.client, outbox)
    Sender(outbox, on_progress=send.on_progress).send_pending(send)
    assert not outbox.pending(), outbox.pending()


def test_each_file_names_its_item_patient_size_and_checksum(tmp_path: Path) -> None:
    body = document("labels")
    with open_box(tmp_path) as box:
        item = box.get(queue(box, body, "labelled"))
        assert item.payload_path is not None
        bundle = describe(box.files, item.payload_path).description
        content = describe(box.files, box.contents / item.metadata["content"]).description
        key_id = box._cipher.key_id
    assert bundle is not None and content is not None
    assert (bundle.kind, bundle.unique_id, bundle.patient, bundle.state) == (
        "bundle", item.unique_id, INS, "queued")
    assert (bundle.size, bundle.sha256) == (item.size, item.sha256)
    assert bundle.metadata["title"] == "labelled" and bundle.created == item.created
    assert (content.kind, content.unique_id, content.patient) == ("content", item.unique_id,
                                                                  INS)
    assert (content.size, content.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    # The key's id in clear, so a lost database still finds its key; nothing personal.
    assert key_id_of(item.payload_path) == key_id
    raw = item.payload_path.read_bytes()
    assert INS.encode() not in raw and b"labelled" not in raw


# -- the outbox of schema 2 (sealed files without labels) ------------------------------------

V2_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, unique_id TEXT NOT NULL UNIQUE,
    patient_tag TEXT NOT NULL, personal BLOB, bundle TEXT, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, last_error BLOB, next_attempt REAL NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, acknowledged REAL, acknowledgement BLOB,
    purged REAL
);
CREATE INDEX items_by_state ON items (state, id);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
PRAGMA user_version=2;
"""


def _seal_v2(key: bytes, directory: Path, suffix: str, data: bytes) -> str:
    """A file as the agent of schema 2 sealed it: header, chunks, no key id, no label."""
    name = secrets.token_hex(16) + suffix
    header = MAGIC_V2 + os.urandom(SALT)
    aead = AESGCM(_subkey(key, b"file\n" + name.encode(), header[-SALT:]))
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    sealed = [aead.encrypt(n.to_bytes(12, "big"), chunk,
                           header + (b"\x01" if n == len(chunks) - 1 else b"\x00"))
              for n, chunk in enumerate(chunks)]
    (directory / name).write_bytes(header + b"".join(sealed))
    return name


def _v2_outbox(root: Path, body: bytes) -> dict[str, str]:
    directory = root / "outbox"
    (directory / "bundles").mkdir(parents=True)
    (directory / "contents").mkdir()
    key_id, key = secrets.token_hex(8), new_key()
    keys(root).save(key_id, key)
    cipher = OutboxCipher(key, key_id)
    content = _seal_v2(key, directory / "contents", ".content", body)
    unique_id, bundle = signed_bundle(
        PATIENT, PLACEHOLDER, Digest(len(body), hashlib.sha256(body).hexdigest(),
                                     "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        DepositMetadata("34810-2", "schema 2"), author=AUTHOR, setting=SETTING, signer=FAKE_SIGNER)
    by_reference = json.dumps(bundle, separators=(",", ":")).encode()
    inline = b'{"inline": "bundle"}'
    rows = [  # (unique_id, state, bundle bytes, metadata, last error)
        (unique_id, "pending", by_reference, {
            "kind": KIND, "content": content, "content_size": len(body),
            "content_sha256": hashlib.sha256(body).hexdigest(), "mime_type": "application/pdf",
            "title": "schema 2", "type_code": "34810-2"}, None),
        ("urn:uuid:refused", "failed", inline, {"title": "refused"}, "422 unknown"),
    ]
    db = sqlite3.connect(directory / "outbox.sqlite3")
    db.executescript(V2_SCHEMA)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("key_id", key_id),
                                                     ("key_check", cipher.check)])
    for uid, state, data, metadata, error in rows:
        name = _seal_v2(key, directory / "bundles", ".bundle", data)
        personal = json.dumps({"patient": INS, "metadata": metadata}, sort_keys=True)
        db.execute(
            "INSERT INTO items (unique_id, patient_tag, personal, bundle, size, sha256, state, "
            "attempts, last_error, next_attempt, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, 0, 1000, 1000)",
            (uid, cipher.tag(INS), cipher.seal(personal.encode(), f"item {uid} personal"), name,
             len(data), hashlib.sha256(data).hexdigest(), state,
             cipher.seal_text(error, f"item {uid} last_error")))
    db.commit()
    db.close()
    return {"uid": unique_id, "key_id": key_id}


def test_an_outbox_of_schema_2_is_relabelled_when_opened_and_nothing_is_lost(
    tmp_path: Path
) -> None:
    body = document("schema 2")
    made = _v2_outbox(tmp_path, body)
    old = {p.name for p in (tmp_path / "outbox").rglob("*") if p.is_file()}
    with open_box(tmp_path) as box:
        item = box.find(made["uid"])
        assert item is not None and item.state is ItemState.PENDING
        assert item.metadata["title"] == "schema 2"
        refused = box.find("urn:uuid:refused")
        assert refused is not None and refused.state is ItemState.FAILED
        assert refused.last_error == "422 unknown" and refused.read_payload() == \
            b'{"inline": "bundle"}'
        # Every file is now labelled, under a new name; the old ones are gone.
        for path in [*box.bundles.iterdir(), *box.contents.iterdir()]:
            said = describe(box.files, path).description
            assert said is not None and key_id_of(path) == made["key_id"]
            assert path.name not in old
        assert box.repair.quarantined == 0 and quarantine_report(box.directory) is None
        assert recover_contents(box) == 0
        with FaultyHost() as host:
            send = make_sender(host.client, box)
            Sender(box, on_progress=send.on_progress).send_pending(send)
        assert host.stored == {made["uid"]: 1}
        assert list(host.binaries.values()) == [hashlib.sha256(body).hexdigest()]
    with sqlite3.connect(tmp_path / "outbox" / "outbox.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


# -- crash windows of a deposit --------------------------------------------------------------

# A deposit killed at a chosen instant (os._exit: nothing cleans up, as with SIGKILL).
KILLED_DEPOSIT = """
import os, sys
from pathlib import Path
from agent.core.deposit import queue_deposit
from agent.client.provide import CardSigner, CareSetting, DepositMetadata
from agent.client.dmp import PatientContext
from agent.outbox import Outbox, SealedFileKeyStore
from wire.mhd import Author

root, where = Path(sys.argv[1]), sys.argv[2]
box = Outbox(root / "outbox" / "outbox.sqlite3",
             keys=SealedFileKeyStore(root / "credentials", root / "keys"))
if where == "before the add":  # the copy has its name, the bundle is not written
    box.add = lambda *a, **k: os._exit(9)
else:  # the bundle has its name, its row is not committed
    box._transaction = lambda: os._exit(9)
queue_deposit(box, PatientContext("279017512345678", "1.2.250.1.213.1.4.8", "CLAIRE",
              "MARTIN", "19840517"), b"%PDF-1.4 cut" * 5000, DepositMetadata("34810-2", "cut"),
              author=Author("810001234567", "28", "s1", "SM26", "OPTIQUE", "Olivier"),
              setting=CareSetting("SA42", "AMBULATOIRE"),
              signer=CardSigner(lambda d: b"\\x01" * 256, b"certificate"))
"""


def _killed_deposit(root: Path, where: str) -> None:
    with open_box(root):
        pass  # made, with its key
    killed = subprocess.run([sys.executable, "-c", KILLED_DEPOSIT, str(root), where],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert killed.returncode == 9, killed.stderr


def test_a_deposit_cut_before_its_item_existed_keeps_the_document_in_quarantine(
    tmp_path: Path
) -> None:
    _killed_deposit(tmp_path, "before the add")
    with open_box(tmp_path) as box:
        assert box.pending() == []  # never queued: nothing to send
        assert recover_contents(box) == 1
        assert list(box.contents.iterdir()) == []
        held = quarantine_report(box.directory)
        assert held is not None and held.files == 1  # the document, kept for a person
        assert "no item for it" in (held.folders[0] / "reasons.txt").read_text()


def test_an_add_cut_before_its_commit_is_rebuilt_from_its_file_and_sent_once(
    tmp_path: Path
) -> None:
    _killed_deposit(tmp_path, "before the commit")
    with open_box(tmp_path) as box:
        [item] = box.pending()
        assert item.metadata["title"] == "cut" and box.repair.rebuilt == 1
        assert recover_contents(box) == 0  # its copy is named by the rebuilt item
        with FaultyHost() as host:
            drain(box, host)
        assert host.stored == {item.unique_id: 1}


def test_a_missing_bundle_is_replaced_by_a_sound_spare_copy_of_the_same_item(
    tmp_path: Path
) -> None:
    with open_box(tmp_path) as box:
        item = box.get(box.add("urn:uuid:spare", INS, b"the signed bundle" * 500,
                               {"title": "spare"}))
        assert item.payload_path is not None
        label = describe(box.files, item.payload_path).description
        assert label is not None
        with box.files.create(box.bundles, ".bundle") as writer:  # as a migration leaves
            writer.write(item.read_payload())
            spare = writer.install(label.to_bytes())
    item.payload_path.unlink()
    with open_box(tmp_path) as box:
        again = box.get(item.id)
        assert again.state is ItemState.PENDING and again.payload_path == spare
        assert again.read_payload() == b"the signed bundle" * 500


def test_recover_brings_back_from_quarantine_what_opens_and_the_command_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    config = AgentConfig(data_dir=tmp_path / "data", credentials_dir=tmp_path / "credentials",
                         log_dir=tmp_path / "logs")
    from agent.outbox import open_outbox

    with open_outbox(config) as box:
        item = box.get(queue(box, document("set aside"), "set aside"))
        # As a recovery made while these files could not be opened would have left them.
        folder = box.directory / "quarantine" / "20240101-000000"
        for part, path in (("bundles", item.payload_path),
                           ("contents", box.contents / item.metadata["content"])):
            assert path is not None
            (folder / part).mkdir(parents=True, exist_ok=True)
            shutil.move(path, folder / part / path.name)
    with sqlite3.connect(config.outbox_path) as db:
        db.execute("DELETE FROM items")
    file = tmp_path / "agent.toml"
    file.write_text(f'[paths]\ndata_dir = "{config.data_dir}"\n'
                    f'credentials_dir = "{config.credentials_dir}"\n'
                    f'log_dir = "{config.log_dir}"\n')
    done = subprocess.run([str(BIN / "dmp-agent"), "outbox", "--recover"],
                          env={**os.environ, "DMP_AGENT_CONFIG": str(file)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 dépôt(s) remis en file" in done.stdout
    assert "2 fichier(s) sorti(s) de quarantaine" in done.stdout
    assert "1 en attente" in done.stdout
    with open_outbox(config) as box:
        [back] = box.pending()
        assert back.unique_id == item.unique_id and back.metadata["title"] == "set aside"
        assert quarantine_report(box.directory) is None  # nothing left there
        assert recover_contents(box) == 0
        with FaultyHost() as host:
            drain(box, host)
        assert host.stored == {item.unique_id: 1}


def test_a_label_names_what_the_outbox_needs_to_rebuild_an_item() -> None:
    said = Description("bundle", "urn:uuid:x", INS, 10, "ab" * 32, 1.5, {"title": "t"})
    assert Description.from_bytes(said.to_bytes()) == said
    assert json.loads(said.to_bytes())["v"] == 3
