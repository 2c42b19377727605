"""The running agent (`dmp-agent run`) as a user and practice software meet it.

    scripts/isolated .venv/bin/python bench/agent_run.py [--idle 60] [--requests 200] [--starts 9]

- start → local API ready: from exec to the first 200 on /api/health (median of
  ``--starts``; the CPU time the agent used until then, which other loads on the machine
  disturb less), twice: as the dev venv runs it, and as production runs it (``production``:
  the dev-only packages that schemathesis pulls in, rich and pygments, made unimportable by
  a ``sitecustomize`` on the agent's PYTHONPATH, and the bytecode cached as an installed
  package has it: PYTHONPYCACHEPREFIX in a temporary directory, one start not counted
  first); with the tray under Xvfb + trayer when they are installed: to the icon docked.
- resident memory with a CPS and a Vitale card in and the session open, the patient's
  dossier read; then after a DMP creation (its secrets sheet is a PDF) and 20 deposits.
- idle over a minute with a CPS and a Vitale card inserted and the session open: CPU time
  used, resident memory, and wake-ups (context switches of every thread of the process:
  no polling means almost none).
- local API latency: GET /api/documents (dossier listing through the host, 20 documents)
  and GET /api/status, median and 95th percentile over ``--requests`` calls.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.pcscd import Pcscd
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vpcd import VpcdLink, slot_port
from tests.live import live_world

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split()[1])
    return total


# Production has neither rich nor pygments (the dev venv has them through schemathesis, and
# uvicorn's click would import them): the agent's start is measured without them too.
_NO_DEV_DEPS = """import sys
BLOCKED = {"rich", "pygments"}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (production has none)",
                                      name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def production_env(env: dict[str, str], scratch: Path) -> dict[str, str]:
    """``env`` as an installed agent runs: no dev-only packages, bytecode cached."""
    site = scratch / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_NO_DEV_DEPS)
    out = {**env, "PYTHONPATH": str(site), "PYTHONPYCACHEPREFIX": str(scratch / "pycache")}
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def _start_timed(agent: Any) -> float:
    """`AgentProcess.start` (same command, environment and log), timed from exec to the
    first 200 on /api/health by a poll that costs the machine almost nothing: a bare connect
    every 2 ms until the port listens, then one GET over a client made beforehand (it waits
    in the backlog until the API serves). `start`'s own poll makes a new httpx client each
    time (~30 ms of CPU on a 2-core machine, beside the agent's start) then sleeps 50 ms:
    it saw the agent ready up to ~80 ms late."""
    url = f"{agent.url}/api/health"
    with httpx.Client(timeout=10) as client, open(agent.log_file, "ab") as out:
        begin = time.perf_counter()
        agent.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dmp-agent"), "run", "--no-tray"],
            env=agent.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert agent.process.poll() is None, agent.log_file.read_text()
            assert time.monotonic() < deadline, "the agent did not start"
            try:
                socket.create_connection(("127.0.0.1", agent.port), timeout=1).close()
            except OSError:
                time.sleep(0.002)
                continue
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.perf_counter() - begin
            time.sleep(0.002)


def time_starts(agent: Any, n: int) -> tuple[list[float], list[float]]:
    """Seconds from exec to API ready, and the agent's CPU seconds by then, of ``n`` starts."""
    starts, cpus = [], []
    for _ in range(n):
        agent.stop()
        starts.append(_start_timed(agent))
        cpus.append(cpu_seconds(agent.process.pid))
    return starts, cpus


def print_starts(label: str, starts: list[float], cpus: list[float]) -> None:
    print(f"start → API ready ({label}): median {statistics.median(starts) * 1000:.0f} ms "
          f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f}, {len(starts)} "
          f"starts), CPU {statistics.median(cpus) * 1000:.0f} ms; load average "
          f"{os.getloadavg()[0]:.2f}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_calls(api: httpx.Client, path: str, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        answer = api.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, answer.text
    return statistics.median(times), percentile(times, 0.95)


def _windows(env: dict[str, str]) -> str:
    return subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True,
                          text=True, errors="replace").stdout


def tray_start(world_agent: object) -> float | None:
    """Seconds from exec to the tray icon docked in trayer under Xvfb, or None."""
    if not (shutil.which("Xvfb") and shutil.which("trayer") and shutil.which("xwininfo")):
        return None
    display = ":97"
    xvfb = subprocess.Popen(["Xvfb", display, "-nolisten", "tcp", "-screen", "0", "800x600x24"],
                            stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": display}
    time.sleep(0.5)
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--widthtype", "request"], env=env,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    agent = world_agent  # type: ignore[assignment]
    agent.env["DISPLAY"] = display  # type: ignore[attr-defined]
    agent.tray = True  # type: ignore[attr-defined]
    try:
        before = _windows(env).count("\n")
        start = time.perf_counter()
        agent.start()  # type: ignore[attr-defined]
        while time.perf_counter() - start < 20:
            tree = _windows(env)
            if tree.count("\n") > before and "dmp" in tree.lower():
                docked = time.perf_counter() - start
                pid = agent.process.pid  # type: ignore[attr-defined]
                time.sleep(1)
                sw0 = switches(pid)
                time.sleep(10)
                print(f"idle 10 s with the tray icon docked: {switches(pid) - sw0} context "
                      "switches")
                return docked
            time.sleep(0.02)
        return None
    finally:
        agent.stop()  # type: ignore[attr-defined]
        agent.tray = False  # type: ignore[attr-defined]
        agent.env.pop("DISPLAY", None)  # type: ignore[attr-defined]
        trayer.terminate()
        xvfb.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--starts", type=int, default=9, help="starts timed, per mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pcscd = Pcscd()
        pcscd.start()
        try:
            with live_world(Path(tmp)) as world:
                agent = world.agent
                print_starts("dev venv", *time_starts(agent, args.starts))
                dev_env = agent.env
                agent.env = production_env(dev_env, Path(tmp) / "production")
                time_starts(agent, 1)  # fills the bytecode cache
                print_starts("production", *time_starts(agent, args.starts))
                agent.env = dev_env
                agent.stop()
                tray = tray_start(agent)
                print("start → tray icon docked: " + (f"{tray * 1000:.0f} ms" if tray else
                      "not measured (Xvfb, trayer or xwininfo missing)"))
                agent.start()
                links = []
                for slot, card in ((0, world.cps("optician")),
                                   (1, VirtualVitale.from_profile("single"))):
                    links.append(VpcdLink(card, slot_port(slot, pcscd.port)).start())
                    assert wait_for_card(list_readers()[slot], present=True)
                agent.wait_for(lambda s: s["session"]["state"] == "locked")
                pid = agent.process.pid  # type: ignore[union-attr]
                with agent.client() as api:
                    assert api.post("/api/session", json={"pin": "1234"}).status_code == 200
                    agent.wait_for(lambda s: s["patient"]["state"] == "ready")
                    time.sleep(2)
                    print(f"cards in, session open, dossier read: RSS {rss_mib(pid):.1f} MiB")
                    if api.get("/api/status").json()["patient"]["dmp"]["status"] == "absent":
                        created = api.post("/api/dmp", json={"consent": True})
                        assert created.status_code in (201, 403), created.text
                    code = api.get("/api/deposit-types").json()[0]["code"]
                    for n in range(20):
                        answer = api.post("/api/deposits", params={
                            "typeCode": code, "title": f"Bilan {n}"},
                            content=b"%PDF-1.4\n" + os.urandom(20_000),
                            headers={"content-type": "application/pdf"})
                        assert answer.status_code == 202, answer.text
                    agent.wait_for(lambda s: not s["outbox"]["items"], timeout=120)
                    listed = api.get("/api/documents").json()
                    median, p95 = time_calls(api, "/api/documents", args.requests)
                    print(f"GET /api/documents ({len(listed)} documents, through the host): "
                          f"median {median:.1f} ms, p95 {p95:.1f} ms ({args.requests} calls)")
                    median, p95 = time_calls(api, "/api/status", args.requests)
                    print(f"GET /api/status: median {median:.2f} ms, p95 {p95:.2f} ms")
                time.sleep(2)  # let the last calls settle
                cpu0, sw0 = cpu_seconds(pid), switches(pid)
                time.sleep(args.idle)
                cpu1, sw1 = cpu_seconds(pid), switches(pid)
                print(f"idle {args.idle:.0f} s, cards inserted, session open (after a DMP "
                      "creation and 20 deposits): CPU "
                      f"{(cpu1 - cpu0) * 1000:.0f} ms ({(cpu1 - cpu0) / args.idle * 100:.3f} %), "
                      f"RSS {rss_mib(pid):.1f} MiB, {sw1 - sw0} context switches "
                      f"({(sw1 - sw0) / args.idle:.2f}/s) over "
                      f"{len(list(Path(f'/proc/{pid}/task').iterdir()))} threads")
                for link in links:
                    link.stop()
        finally:
            pcscd.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
