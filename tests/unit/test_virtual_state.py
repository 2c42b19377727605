"""The virtual CPS keeps its PIN counters across a process killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cardreader.virtual.atomic import write_atomic
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA

WRITER = """
import sys
from pathlib import Path
from cardreader.virtual.atomic import write_atomic
path = Path(sys.argv[1])
big = b"x" * 4_000_000
print("ready", flush=True)
while True:
    write_atomic(path, big)
"""


def test_a_writer_killed_mid_write_leaves_the_old_or_new_content_never_a_torn_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"x" * 4_000_000)
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE
        )
        assert writer.stdout is not None
        writer.stdout.readline()
        time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        assert path.read_bytes() == b"x" * 4_000_000
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_the_pin_counter_survives_a_reload_from_the_state_directory(tmp_path: Path) -> None:
    ca = TestHealthCA.create()
    card = VirtualCps.from_profile("gp", ca=ca, state_dir=tmp_path)
    card._counters.pin_tries = 1  # as after two wrong PINs
    card._save_counters()
    again = VirtualCps.from_profile("gp", ca=ca, state_dir=tmp_path)
    assert again._counters.pin_tries == 1
    assert again.auth_cert == card.auth_cert
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
