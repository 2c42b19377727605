"""Starting and stopping a real pcscd configured with the vpcd virtual reader.

Tests, the benchmarks and the sandbox run their own pcscd in the foreground with a private
reader configuration (two vpcd slots on 35963/35964), so the code under test goes through
the real PC/SC stack. pcscd's client socket path is fixed (/run/pcscd/pcscd.comm): run two of
these side by side only in separate mount namespaces (`scripts/isolated` does that).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import pid_alive
from .vpcd import FIRST_SLOT_PORT

SOCKET = Path("/run/pcscd/pcscd.comm")
PIDFILE = Path("/run/pcscd/pcscd.pid")
VPCD_DRIVER_CANDIDATES = (
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so.0.8",
)
READER_NAME = "DMP Virtual Reader"


class PcscdError(RuntimeError):
    """pcscd could not be started or stopped as asked (with the reason and the fix)."""


def vpcd_driver() -> str:
    for candidate in VPCD_DRIVER_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise PcscdError(
        "The vpcd reader driver is missing: install Debian's vsmartcard-vpcd "
        "(apt-get install vsmartcard-vpcd)."
    )


def running_pid() -> int | None:
    """The pid of a pcscd already running on this machine (or namespace), if any."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


class Pcscd:
    """A pcscd process with two vpcd slots starting at ``port``."""

    def __init__(self, port: int = FIRST_SLOT_PORT, *, log_apdus: bool = False) -> None:
        self.port = port
        self.log_apdus = log_apdus
        self.workdir = Path(tempfile.mkdtemp(prefix="dmp-pcscd-"))
        self.logfile = self.workdir / "pcscd.log"
        self.process: subprocess.Popen[bytes] | None = None
        conf = self.workdir / "reader.conf.d"
        conf.mkdir()
        (conf / "vpcd").write_text(
            f'FRIENDLYNAME "{READER_NAME}"\n'
            f"DEVICENAME   /dev/null:0x{port:04X}\n"
            f"LIBPATH      {vpcd_driver()}\n"
            f"CHANNELID    0x{port:04X}\n"
        )
        self.confdir = conf

    def start(self, timeout: float = 10.0) -> Pcscd:
        if shutil.which("pcscd") is None:
            raise PcscdError("pcscd is not installed: apt-get install pcscd")
        other = running_pid()
        if other is not None and (self.process is None or other != self.process.pid):
            raise PcscdError(
                f"another pcscd (pid {other}) is running: stop it first, or run the tests "
                "through scripts/isolated, which gives them a private pcscd"
            )
        SOCKET.parent.mkdir(parents=True, exist_ok=True)
        args = ["pcscd", "--foreground", "--config", str(self.confdir)]
        if self.log_apdus:
            args += ["--apdu", "--debug"]
        with open(self.logfile, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while not SOCKET.exists():
            if self.process.poll() is not None:
                raise PcscdError(f"pcscd exited at start; see {self.logfile}")
            if time.monotonic() > deadline:
                self.stop()
                raise PcscdError(f"pcscd did not open {SOCKET} within {timeout}s")
            time.sleep(0.02)
        return self

    def stop(self, *, kill: bool = False) -> None:
        """Stop pcscd (SIGTERM, or SIGKILL with ``kill`` to simulate a crash)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()  # SIGKILL (TerminateProcess on Windows)
            else:
                self.process.terminate()  # SIGTERM
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if kill:  # a killed pcscd leaves its socket and pid file behind
            for leftover in (SOCKET, PIDFILE):
                leftover.unlink(missing_ok=True)

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Pcscd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
