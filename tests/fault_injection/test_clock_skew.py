"""A workstation clock off, the host's certificate issued minutes ago: the skew is named as
a skew, with its fix, by the session and by `doctor`, before any certificate or card is
blamed. The agent's clock is shifted by libfaketime (its OpenSSL too); the host keeps the
true time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.fault_injection.world import PIN, Site, StartAgent, skewed
from tests.live import AgentProcess

pytestmark = pytest.mark.pcsc


def _open_session(agent: AgentProcess) -> httpx.Response:
    with agent.client() as api:
        return api.post("/api/session", json={"pin": PIN})


def _doctor(agent: AgentProcess, offset: str) -> tuple[int, dict[str, dict[str, Any]]]:
    done = subprocess.run([sys.executable, "-m", "agent.install.doctor", "--json"],
                          env={**agent.env, **skewed(offset)}, capture_output=True, text=True,
                          timeout=60)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    return done.returncode, checks


def test_ten_minutes_behind_the_session_names_the_clock_not_the_host(
        site: Site, start_agent: StartAgent, insert_card: Any) -> None:
    agent = start_agent("-10m")
    insert_card(site.cps("gp"), slot=0)
    agent.wait_for(lambda s: s["session"]["state"] == "locked")
    refused = _open_session(agent)
    assert refused.status_code == 409, refused.text
    error = refused.json()
    assert error["code"] == "clock-skew"
    assert "Horloge du poste en retard de 10 min" in error["message"]
    assert "behind" not in error["message"]  # one language
    assert "timedatectl set-ntp true" in error["message"]  # the fix
    assert "injoignable" not in error["message"]
    session = agent.wait_for(lambda s: s["session"]["state"] == "locked")["session"]
    assert "en retard de 10 min" in session["error"]


def test_ten_minutes_ahead_the_hosts_refusal_is_told_with_the_amount(
        site: Site, start_agent: StartAgent, insert_card: Any) -> None:
    agent = start_agent("+10m")  # the host's certificate is valid: the host itself refuses
    insert_card(site.cps("gp"), slot=0)
    agent.wait_for(lambda s: s["session"]["state"] == "locked")
    refused = _open_session(agent)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "clock-skew"
    assert "Horloge du poste en avance de 10 min" in refused.json()["message"]


def test_four_hundred_days_behind_the_card_is_not_called_expired(
        site: Site, start_agent: StartAgent, insert_card: Any) -> None:
    agent = start_agent("-400d")
    insert_card(site.cps("pharmacist"), slot=0)
    # By this clock the CPS is not valid yet: the agent asks the host's time and says why.
    status = agent.wait_for(lambda s: "400" in s["session"]["error"], timeout=20)
    assert "Horloge du poste en retard de 400 jours" in status["session"]["error"]
    slot = next(s for s in status["cards"]["slots"] if s["kind"] == "cps")
    assert "en retard de 400 jours" in slot["message"]
    refused = _open_session(agent)
    assert refused.json()["code"] == "clock-skew", refused.text
    assert "en retard de 400 jours" in refused.json()["message"]
    assert "validité" not in refused.json()["message"]


@pytest.mark.parametrize("offset", ["-10m", "-400d"])
def test_doctor_reads_the_hosts_time_before_judging_certificates(
        site: Site, start_agent: StartAgent, insert_card: Any, offset: str) -> None:
    agent = start_agent()  # its own clock is right; the doctor's is not
    insert_card(site.cps("gp"), slot=0)
    started = time.monotonic()
    status, checks = _doctor(agent, offset)
    assert time.monotonic() - started < 30
    assert status == 1
    amount = "10 min" if offset == "-10m" else "400 jours"
    clock = checks["clock"]
    assert clock["status"] == "problem"
    assert f"Horloge du poste en retard de {amount}" in clock["found"]
    assert "timedatectl set-ntp true" in clock["fix"]
    host = checks["host"]
    assert "host.ca" not in host["fix"] and "son AC est la bonne" in host["found"]
    assert "voir Horloge" in host["fix"]
    names = list(checks)
    assert names.index("clock") < names.index("host")  # clock first
    cards = [c for name, c in checks.items() if name.startswith("card:") and "CPS" in c["found"]]
    assert cards and all("carte expirée" not in c["found"] for c in cards)
    assert all(c["status"] != "problem" for c in cards)
    assert checks["enrolment"]["status"] == "ok"
