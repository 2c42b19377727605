"""Time the patient portal for a patient with a long history: sign-in steps, then the
history page (which checks the whole hash chain on each view) and the professionals page.

    .venv/bin/python -m bench.portal [--entries 10000] [--views 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from host.guard import record_access
from host.mailbox import SmtpServer
from host.portal.app import PortalSettings, create_portal
from host.settings import NotifySettings
from host.store import upgrade
from policies import NORMAL
from tests.host.harness import PHARMACIST, InProcessHost

INS = "284057511402396"
PASSWORD = "une phrase de passe assez longue"


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=20)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp())
    url = f"sqlite:///{directory / 'host.db'}"
    upgrade(url)
    host = InProcessHost(url, directory)
    created = host.client(PHARMACIST).post(f"/dossiers/{INS}", json={
        "consent": True, "contact": {"email": "claire@example.org"}})
    code = created.json()["accessCode"]
    engine = host.app.state.engine
    start = host.clock()
    for i in range(args.entries):
        record_access(engine, ins=INS, at=start + dt.timedelta(seconds=i),
                      actor_kind="professional", actor_id=f"8100{i % 50:08d}",
                      actor_name=f"Dr {i % 50}", profession="10", structure_id="3690001234",
                      action="search", mode=NORMAL, allowed=True, reason="ALLOWED_AUTHORISED")
    host.clock.advance(seconds=args.entries + 1)
    smtp = SmtpServer().start()
    try:
        client = TestClient(create_portal(
            PortalSettings(url, NotifySettings(smtp_url=smtp.url, timeout=5)), engine=engine,
            clock=host.clock), base_url="https://testserver", follow_redirects=False)
        began = time.perf_counter()
        client.post("/connexion", data={"ins": INS, "secret": code})
        secret_ms = (time.perf_counter() - began) * 1000
        smtp.mailbox.wait_for(1, 10)
        otp = re.search(r"\b(\d{6})\b", str(smtp.mailbox.received[-1][1]["Subject"]))
        assert otp
        began = time.perf_counter()
        client.post("/code", data={"csrf": _csrf(client.get("/code").text),
                                   "code": otp.group(1)})
        code_ms = (time.perf_counter() - began) * 1000
        client.post("/mot-de-passe", data={"csrf": _csrf(client.get("/mot-de-passe").text),
                                           "password": PASSWORD, "again": PASSWORD})
        timings: dict[str, list[float]] = {"/historique": [], "/historique?voir=tout": [],
                                           "/professionnels": []}
        for _ in range(args.views):
            for page in timings:
                began = time.perf_counter()
                answer = client.get(page)
                timings[page].append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, answer.text[:300]
    finally:
        smtp.stop()
    print(f"history of {args.entries} entries; sign-in: secret + code sent {secret_ms:.0f} ms, "
          f"code checked {code_ms:.0f} ms")
    for page, values in timings.items():
        print(f"GET {page}: median {statistics.median(values):.0f} ms, "
              f"max {max(values):.0f} ms over {args.views} views")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
