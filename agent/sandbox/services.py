"""The sandbox's plumbing: its server processes (each its own process with its log file,
waited for until its port answers, stopped on exit) and the way it speaks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def say(text: str) -> None:
    print(f"   {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def service(command: list[str], log_path: Path, port: int | None, *, name: str,
            timeout: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running until the block ends; SystemExit (naming ``log_path``) when it
    does not listen on ``port`` within ``timeout`` seconds (``port`` None: a worker that
    listens on nothing, which must merely still be running a moment after its start)."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        if port is None:
            time.sleep(0.3)
            if process.poll() is not None:
                raise SystemExit(f"sandbox: {name} stopped at once; see {log_path}")
        deadline = time.monotonic() + timeout
        while port is not None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sandbox: {name} did not start; see {log_path}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
