"""What the fault-injection tests share: the site (the reference host in its own process,
real TLS), the agents started on demand, and libfaketime to shift an agent's clock."""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pki import TestHealthCA
from tests.live import AgentProcess, HostProcess

PIN = "1234"
StartAgent = Callable[..., AgentProcess]


def libfaketime() -> str:
    """Debian's libfaketime (package faketime, installed by scripts/setup)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.skip("libfaketime is missing: apt-get install faketime (scripts/setup does)")
    return found[0]


def skewed(offset: str) -> dict[str, str]:
    """The environment that shifts a process's wall clock by ``offset`` ("-10m", "-400d"):
    time(), gettimeofday() and clock_gettime(CLOCK_REALTIME), hence Python and OpenSSL. The
    monotonic clock is left alone (timeouts and waits stay true)."""
    return {"LD_PRELOAD": libfaketime(), "FAKETIME": offset,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}


@dataclass
class Site:
    root: Path
    pki: Path
    host: HostProcess

    def cps(self, profile: str = "gp") -> VirtualCps:
        """A virtual CPS the host trusts (its keys and PIN counters kept per profile)."""
        return VirtualCps.from_profile(profile, ca=TestHealthCA.load(self.pki / "health-ca"),
                                       state_dir=self.root / f"card-{profile}")
