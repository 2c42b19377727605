"""Issue 14's figure: seconds from a break-the-glass access (the host's answer) to the
notification's delivery to an SMTP server (aiosmtpd), with the sender running as
`dmp-host notify run` would (a thread here, waking every --interval seconds). A figure, not a
pass/fail. Run inside the namespaces:

    bash scripts/isolated .venv/bin/python bench/notify.py [--runs 10] [--interval 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host import notify, patient
from host.mailbox import SmtpServer
from host.settings import NotifySettings
from host.store import upgrade
from tests.host.harness import GP, PHARMACIST, InProcessHost

CLAIRE = "284057511402396"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=NotifySettings.interval)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/host.db"
        upgrade(url)
        host = InProcessHost(url, Path(tmp))
        host.app.state.guard.clock = notify.utc_now
        server = SmtpServer().start()
        host.client(PHARMACIST).post(f"/dossiers/{CLAIRE}", json={
            "consent": True, "contact": {"email": "claire@example.org"}})
        patient.set_notifications(host.app.state.guard, CLAIRE, channel="email")
        stop = threading.Event()
        sender = notify.Sender(host.app.state.engine, NotifySettings(
            smtp_url=server.url, interval=args.interval))
        thread = threading.Thread(target=sender.run, kwargs={"stop": stop}, daemon=True)
        thread.start()
        client = host.client(GP, **{"x-dmp-access-mode": "bris_de_glace",
                                    "x-dmp-justification": "urgence"})
        time.sleep(1)
        delays = []
        for _ in range(args.runs):
            time.sleep(random.uniform(0, args.interval))
            before = server.mailbox.count()
            response = client.get(f"/dossiers/{CLAIRE}")
            answered = time.monotonic()
            assert response.status_code == 200, response.text
            while server.mailbox.count() == before:
                time.sleep(0.005)
            delays.append(time.monotonic() - answered)
        stop.set()
        thread.join()
        server.stop()
    print(f"notification delay, access answered -> SMTP delivery, sender waking every "
          f"{args.interval:g} s, {args.runs} runs: median {statistics.median(delays):.2f} s, "
          f"min {min(delays):.2f} s, max {max(delays):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
