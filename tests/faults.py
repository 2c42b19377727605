"""Fault injection for the outbox tests: a small real tmpfs (to fill up, or to remount
read-only), and a real HTTP deposit host on loopback that answers 503 or cuts its answers
when told to. The tests run as root in their own mount namespace (scripts/isolated), so a
mount made here is seen by this process and its children only."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.client.dmp import PatientContext
from agent.client.provide import CardSigner, CareSetting
from wire.mhd import Author, ResponseEntry, transaction_response_json

MB = 1_000_000
# The patient and the depositor of the outbox fault tests.
INS = "279017512345678"
PATIENT = PatientContext(INS, "1.2.250.1.213.1.4.8", "CLAIRE", "MARTIN", "19840517")
# A signature the fake hosts never check: these tests are about the outbox, not the card.
FAKE_SIGNER = CardSigner(lambda data: b"\x01" * 256, b"certificate")
AUTHOR = Author("810001234567", "28", "structure1", "SM26", "OPTIQUE", "Olivier")
SETTING = CareSetting("SA42", "AMBULATOIRE")  # an optician's shop


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()}): run through scripts/isolated "
                    "as root")


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted on ``path`` (made if missing), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (scripts/isolated)")
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def read_only(path: Path, on: bool = True) -> None:
    """Remount the tmpfs on ``path`` read-only (or read-write again)."""
    _mount("-o", f"remount,{'ro' if on else 'rw'}", str(path))


def fill(directory: Path, leave: int) -> Path:
    """Write a filler file in ``directory`` until only ``leave`` bytes are free there (all
    of it for ``leave=0``); its path, to delete to free the space again."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 16)
    with open(filler, "ab") as out:
        while (free := shutil.disk_usage(directory).free) > leave:
            try:
                out.write(chunk[:max(1, min(len(chunk), free - leave))])
                out.flush()
            except OSError:
                break
    return filler


class FaultyHost:
    """A deposit host over real HTTP: ``POST /fhir/Binary`` stores an upload, ``POST
    /fhir`` a bundle, once per document uniqueId (a replay is answered 200 "200 OK", as the
    reference host does). ``faults`` says what the next bundle posts get: ``503`` (with
    Retry-After: 1), ``cut-after-store`` (stored, then the connection is closed without an
    answer) or ``cut`` (closed before anything is stored)."""

    def __init__(self) -> None:
        self.stored: Counter[str] = Counter()  # uniqueId -> times stored
        self.deliveries: Counter[str] = Counter()
        self.binaries: dict[str, str] = {}  # id -> sha256
        self.faults: list[str] = []
        self.lock = threading.Lock()
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with host.lock:
                    answer = host.answer(self.path, body)
                if answer is None:  # cut: no answer at all
                    self.close_connection = True
                    return
                status, data, headers = answer
                self.send_response(status)
                for name, value in {"content-type": "application/fhir+json",
                                    "content-length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, body: bytes) -> tuple[int, bytes, dict[str, str]] | None:
        if path == "/fhir/Binary":
            binary = f"b{len(self.binaries) + 1}"
            self.binaries[binary] = hashlib.sha256(body).hexdigest()
            return 201, json.dumps({"id": binary}).encode(), {}
        bundle = json.loads(body)
        unique_id = _unique_id(bundle)
        inline = inline_document(bundle)
        if inline is not None:  # the document inside the bundle (a small one)
            self.binaries[f"inline-{unique_id}"] = hashlib.sha256(inline).hexdigest()
        self.deliveries[unique_id] += 1
        fault = self.faults.pop(0) if self.faults else ""
        if fault == "503":
            outcome = {"resourceType": "OperationOutcome", "issue": [{"details": {
                "coding": [{"code": "maintenance"}], "text": "maintenance"}}]}
            return 503, json.dumps(outcome).encode(), {"retry-after": "1"}
        if fault == "cut":
            return None
        replay = unique_id in self.stored
        if not replay:
            self.stored[unique_id] += 1
        if fault == "cut-after-store":
            return None
        entry = ResponseEntry("200 OK" if replay else "201 Created",
                              f"DocumentReference/{unique_id}")
        return 200, json.dumps(transaction_response_json([entry])).encode(), {}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def __enter__(self) -> FaultyHost:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def inline_document(bundle: dict[str, Any]) -> bytes | None:
    """The bytes of the bundle's (first) document when they travel inside it as a Binary
    entry, else None (uploaded before, ``Binary/<id>``)."""
    url = next(resource["content"][0]["attachment"]["url"]
               for entry in bundle.get("entry", [])
               for resource in [entry.get("resource", {})]
               if resource.get("resourceType") == "DocumentReference")
    for entry in bundle.get("entry", []):
        if entry.get("fullUrl") == url and entry["resource"]["resourceType"] == "Binary":
            return base64.b64decode(entry["resource"]["data"])
    return None


def _unique_id(bundle: dict[str, Any]) -> str:
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "DocumentReference":
            return str(resource["masterIdentifier"]["value"])
    raise AssertionError("no DocumentReference in the bundle")
