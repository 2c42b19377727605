"""Live processes for end-to-end tests: the reference host (`dmp-host serve`, real TLS) and
the agent (`dmp-agent run`, its local API on loopback), each in its own process with its
own data, config and logs under a temporary directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from host.pki import init_pki

BIN = Path(sys.executable).parent
ECPS_CODE = "2468"  # the virtual e-CPS apps' code in tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(predicate: Any, timeout: float = 15.0) -> bool:
    """Wait (a bound, not a measure) until ``predicate()``; True when it came."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> int | None:
    if process is None or process.poll() is not None:
        return None if process is None else process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class HostProcess:
    """`dmp-host serve` on a fixed port and data directory, stoppable and restartable.
    ``command`` ("psc", "serve") runs the reference Pro Santé Connect the same way."""

    def __init__(self, pki: Path, data: Path, *args: str,
                 command: tuple[str, ...] = ("serve",)) -> None:
        self.pki, self.data, self.port = pki, data, free_port()
        self.args = args  # more `dmp-host serve` options
        self.command = command
        self.url = f"https://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"{'-'.join(('host', *command[:-1]))}.log"

    def start(self) -> None:
        log = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [str(BIN / "dmp-host"), *self.command, "--pki", str(self.pki), "--data",
             str(self.data), "--port", str(self.port), *self.args],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), 0.5):
                return
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the host did not start"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.process, sig)
        self.process = None

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data / 'host.db'}?mode=ro", uri=True)


class AgentProcess:
    """`dmp-agent run --no-tray` for one user: its own HOME and XDG directories, enrolled
    from the sandbox PKI, talking to ``host_url``."""

    def __init__(self, root: Path, host_url: str, pki: Path, *, tray: bool = False,
                 extra_config: str = "", host_config: str = "") -> None:
        self.root, self.host_url, self.pki, self.tray = root, host_url, pki, tray
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_file = root / "agent.toml"
        self.extra_config = extra_config
        self.host_config = host_config  # more lines of the [host] section
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "HOME": str(root / "home"),
                    "XDG_CONFIG_HOME": str(root / "config"),
                    "XDG_DATA_HOME": str(root / "data"), "XDG_STATE_HOME": str(root / "state"),
                    "XDG_CACHE_HOME": str(root / "cache"),
                    "DMP_AGENT_CONFIG": str(self.config_file),
                    "DMP_AGENT_PROVISIONING": str(root / "no-provisioning")}
        if not tray:
            self.env.pop("DISPLAY", None)

    @property
    def log_file(self) -> Path:
        return self.root / "agent.out"

    def enrol(self) -> None:
        root = self.root
        (root / "home").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            f'[host]\nurl = "{self.host_url}"\n{self.host_config}\n\n'
            f"[api]\nport = {self.port}\n\n"
            "[outbox]\nretry_base_seconds = 0.2\nretry_max_seconds = 2\n" + self.extra_config)
        done = subprocess.run([str(BIN / "dmp-agent"), "enrol", "--from-pki", str(self.pki)],
                              env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    def start(self, *args: str) -> None:
        assert self.process is None, "stop the running agent first"
        out = open(self.log_file, "ab")  # noqa: SIM115 - the child keeps it
        command = [str(BIN / "dmp-agent"), "run", *(() if self.tray else ("--no-tray",)), *args]
        self.process = subprocess.Popen(command, env=self.env, stdout=out,
                                        stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            assert self.process.poll() is None, self.log_file.read_text()
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        code = _stop(self.process, sig)
        self.process = None
        return code

    @property
    def token(self) -> str:
        return (self.root / "config" / "dmp-agent" / "api-token").read_text().strip()

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=options.pop("timeout", 30),
                            headers={"authorization": f"Bearer {self.token}"}, **options)

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The status once ``predicate(status)`` holds (status polled: a test helper only)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                status = client.get("/api/status").json()
                if predicate(status):
                    return status
                assert time.monotonic() < deadline, f"condition never met; last: {status}"
                time.sleep(0.05)


@dataclass
class LiveWorld:
    host: HostProcess
    agent: AgentProcess
    pki: Path
    root: Path
    psc: HostProcess | None = None  # the reference Pro Santé Connect (``psc=True``)

    def phone(self, id_nat_ps: str, code: str = ECPS_CODE) -> Any:
        """The professional's virtual e-CPS app, enrolled at the running PSC."""
        from host.psc.vecps import VirtualEcps

        assert self.psc is not None, "live_world(psc=True)"
        app = VirtualEcps(self.root / "phones" / id_nat_ps)
        app.enrol(self.psc.url, self.pki / "psc" / "ca.pem", id_nat_ps, code)
        return app

    def cps(self, profile: str = "gp", **changes: object) -> VirtualCps:
        """A virtual CPS issued by the host's health CA (its keys kept per profile)."""
        ca = TestHealthCA.load(self.pki / "health-ca")
        return VirtualCps.from_profile(profile, ca=ca, state_dir=self.root / f"card-{profile}",
                                       **changes)  # type: ignore[arg-type]

    def stored(self, ins: str) -> list[tuple[str, str, str]]:
        """(uniqueId, title, type code) of the current documents the host holds for ``ins``."""
        with contextlib.closing(self.host.db()) as db:
            return db.execute("SELECT unique_id, title, type_code FROM documents WHERE ins = ? "
                              "AND status = 'current'", (ins,)).fetchall()


def start_psc(pki: Path, data: Path) -> tuple[HostProcess, str]:
    """`dmp-host psc serve` (polls every second); the agent.toml lines that use it."""
    from host.psc.app import REALM

    psc = HostProcess(pki, data, "--interval", "1", command=("psc", "serve"))
    psc.start()
    client = json.loads((data / "clients.json").read_text())["clients"][0]
    secret = data.parent / "psc-secret"
    secret.write_text(client["secret"] + "\n")
    secret.chmod(0o600)
    return psc, (f'\n[psc]\nissuer = "{psc.url}{REALM}"\nca = "{pki / "psc" / "ca.pem"}"\n'
                 f'client_id = "{client["id"]}"\nsecret_file = "{secret}"\n')


@contextlib.contextmanager
def live_world(root: Path, *, tray: bool = False, psc: bool = False) -> Iterator[LiveWorld]:
    """The reference host and an enrolled agent, both running, under ``root``; with ``psc``
    the reference Pro Santé Connect too, trusted by the host and configured in the agent."""
    pki = root / "pki"
    init_pki(pki)
    provider, psc_config, host_args = None, "", ()
    if psc:
        provider, psc_config = start_psc(pki, root / "psc")
        host_args = ("--psc-issuer", psc_config.split('"')[1], "--psc-ca",
                     str(pki / "psc" / "ca.pem"))
    host = HostProcess(pki, root / "host", *host_args)
    agent = AgentProcess(root / "agent", host.url, pki, tray=tray, extra_config=psc_config)
    try:
        host.start()
        agent.enrol()
        agent.start()
        yield LiveWorld(host, agent, pki, root, provider)
    finally:
        agent.stop()
        host.stop()
        if provider is not None:
            provider.stop()


def qualify(api: httpx.Client, document: str = "passeport") -> dict[str, Any]:
    """Record, through the agent's API as a user does, that the patient's identity document
    was checked (RNIV: the identity becomes qualifiée, deposits are allowed); the patient."""
    answer = api.post("/api/patient/identity/validate", json={"document": document})
    assert answer.status_code == 200, answer.text
    assert answer.json()["identity"]["status"] == "qualifiée"
    return dict(answer.json())
