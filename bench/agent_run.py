"""The running agent (`dmp-agent run`) as a user and practice software meet it.

    scripts/isolated .venv/bin/python bench/agent_run.py [--idle 60] [--requests 200]

- start → local API ready: from exec to the first 200 on /api/health (median of 5 starts),
  and with the tray under Xvfb + trayer when they are installed: to the icon docked.
- idle over a minute with a CPS and a Vitale card inserted and the session open: CPU time
  used, resident memory, and wake-ups (context switches of every thread of the process:
  no polling means almost none).
- local API latency: GET /api/documents (dossier listing through the host, 20 documents)
  and GET /api/status, median and 95th percentile over ``--requests`` calls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pcscd = Pcscd()
        pcscd.start()
        try:
            with live_world(Path(tmp)) as world:
                agent = world.agent
                starts = []
                for _ in range(5):
                    agent.stop()
                    begin = time.perf_counter()
                    agent.start()
                    starts.append(time.perf_counter() - begin)
                print(f"start → API ready: median {statistics.median(starts) * 1000:.0f} ms "
                      f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f}, 5 starts)")
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
                with agent.client() as api:
                    assert api.post("/api/session", json={"pin": "1234"}).status_code == 200
                    agent.wait_for(lambda s: s["patient"]["state"] == "ready")
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
                pid = agent.process.pid  # type: ignore[union-attr]
                time.sleep(2)  # let the last calls settle
                cpu0, sw0 = cpu_seconds(pid), switches(pid)
                time.sleep(args.idle)
                cpu1, sw1 = cpu_seconds(pid), switches(pid)
                print(f"idle {args.idle:.0f} s, cards inserted, session open: CPU "
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
