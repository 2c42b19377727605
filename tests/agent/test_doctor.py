"""`dmp-agent doctor` against the real parts: the reference host in its own process, the real
pcscd with virtual cards, an enrolled workstation; then each thing a pharmacy meets broken
(pcscd stopped, no reader, an expired workstation certificate, a wrong CA, a closed port, a
clock off) reported with its fix and exit status 1."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig, write_config
from agent.install import doctor
from agent.install.enrol import enrol_from_pki
from agent.outbox import Sender, SendResult, open_outbox
from agent.sandbox.scenarios import reference_host
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.pcscd import Pcscd
from cardreader.virtual.pki import TestHealthCA
from host.pki import issue_workstation

pytestmark = pytest.mark.pcsc


@dataclasses.dataclass
class Site:
    state: Path
    pki: Path
    config: AgentConfig


def _config(state: Path, url: str, pki: Path, name: str) -> AgentConfig:
    base = state / name
    return AgentConfig(host_url=url, host_ca=pki / "server" / "ca.pem", host_timeout=3.0,
                       credentials_dir=base / "workstation", data_dir=base / "data",
                       log_dir=base / "log")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    state = tmp_path_factory.mktemp("doctor")
    with reference_host(state) as (pki, url, _process):
        config = _config(state, url, pki, "agent")
        enrol_from_pki(pki, config=config)
        yield Site(state, pki, config)


@pytest.fixture
def with_cps(site: Site, insert_card) -> None:
    ca = TestHealthCA.load(site.pki / "health-ca")
    insert_card(VirtualCps.from_profile("pharmacist", ca=ca,
                                        state_dir=site.state / "cards"), slot=0)


def run(config: AgentConfig, capsys, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    """Exit status and the checks by name, through the command's JSON output."""
    status = doctor.run_doctor(as_json="--json" in args, config=config)
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is (status == 0)
    return status, {check["name"]: check for check in document["checks"]}


def test_all_well_every_check_ok_and_exit_0(site: Site, with_cps, capsys) -> None:
    status, checks = run(site.config, capsys, "--json")
    assert status == 0
    assert {"pcscd", "readers", "enrolment", "host-ca", "host", "clock", "outbox",
            "disk"} <= set(checks)
    # The CDA check is ok with the CI-SIS files, a warning without them (the tests' mode:
    # DMP_CDA_CISIS=optional, tests/conftest.py); everything else is ok.
    from wire import cda

    expected_cda = "ok" if cda.cisis_state().installed else "warning"
    assert checks.pop("cda")["status"] == expected_cda
    assert {c["status"] for c in checks.values()} == {"ok"}, checks
    cards = [c for name, c in checks.items() if name.startswith("card:")]
    assert len(cards) == 2  # the two vpcd slots: the CPS and an empty one
    assert any("CPS" in c["found"] and "lisible" in c["found"] for c in cards), cards
    assert "TLS 1.3" in checks["host"]["found"]
    assert "jours" in checks["enrolment"]["found"]


def test_the_command_line_prints_each_check_and_exits_0(site: Site, tmp_path: Path) -> None:
    env = {**os.environ, "DMP_AGENT_CONFIG": str(write_config(site.config,
                                                               tmp_path / "agent.toml"))}
    result = subprocess.run([sys.executable, "-m", "agent.install.doctor"], capture_output=True,
                            text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "] Hôte DMP : Hôte joignable" in result.stdout
    assert "0 problème(s)" in result.stdout


def test_stopped_pcscd_is_a_problem_with_its_fix(site: Site, pcscd: Pcscd, capsys) -> None:
    pcscd.stop()
    try:
        status, checks = run(site.config, capsys, "--json")
    finally:
        pcscd.start()
    assert status == 1
    assert checks["pcscd"]["status"] == "problem"
    # Said once, in French: not "ne répond pas (… ne répond pas)".
    assert checks["pcscd"]["found"] == "Le service carte à puce (pcscd) ne répond pas."
    assert "systemctl start pcscd.socket" in checks["pcscd"]["fix"]
    assert checks["host"]["status"] == "ok"  # the rest is still diagnosed


class _NoReaderPcscd(Pcscd):
    """pcscd with an empty reader configuration: no reader at all."""

    def __init__(self) -> None:
        super().__init__()
        (self.confdir / "vpcd").unlink()


def test_no_reader_is_a_problem_with_its_fix(site: Site, pcscd: Pcscd, capsys) -> None:
    pcscd.stop()
    empty = _NoReaderPcscd()
    try:
        empty.start()
        status, checks = run(site.config, capsys, "--json")
    finally:
        empty.close()
        pcscd.start()
    assert status == 1
    assert checks["pcscd"]["status"] == "ok"
    assert checks["readers"]["status"] == "problem"
    assert "Branchez un lecteur" in checks["readers"]["fix"]
    assert "vpcd" in checks["readers"]["fix"] and "CCID" in checks["readers"]["fix"]


def test_expired_workstation_certificate_asks_to_enrol_again(site: Site, capsys) -> None:
    now = dt.datetime.now(dt.UTC)
    issue_workstation(site.pki, "expired", not_before=now - dt.timedelta(days=400),
                      not_after=now - dt.timedelta(days=1), _warn=False)
    config = _config(site.state, site.config.host_url, site.pki, "expired")
    # Enrolled while it was still valid: the state a workstation reaches by waiting.
    enrol_from_pki(site.pki, "expired", config=config, now=now - dt.timedelta(days=2))
    status, checks = run(config, capsys, "--json")
    assert status == 1
    assert checks["enrolment"]["status"] == "problem"
    assert "expiré" in checks["enrolment"]["found"]
    assert "dmp-agent enrol" in checks["enrolment"]["fix"]
    # The host refuses the handshake with it, and says so.
    assert checks["host"]["status"] == "problem"
    assert "Poignée de main TLS refusée" in checks["host"]["found"]


def test_certificate_expiring_soon_is_a_warning(site: Site, capsys) -> None:
    now = dt.datetime.now(dt.UTC)
    issue_workstation(site.pki, "soon", not_after=now + dt.timedelta(days=10), _warn=False)
    config = _config(site.state, site.config.host_url, site.pki, "soon")
    enrol_from_pki(site.pki, "soon", config=config)
    status, checks = run(config, capsys, "--json")
    assert checks["enrolment"]["status"] == "warning"
    assert "valable encore 9 jour(s)" in checks["enrolment"]["found"]
    assert checks["host"]["status"] == "ok"
    assert status == 0  # a warning alone does not fail the run


def test_closed_port_is_named_connection_refused(site: Site, capsys) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = dataclasses.replace(site.config, host_url=f"https://127.0.0.1:{port}")
    status, checks = run(config, capsys, "--json")
    assert status == 1
    assert checks["host"]["status"] == "problem"
    assert "Connexion refusée" in checks["host"]["found"]
    assert "host.url" in checks["host"]["fix"]
    assert "clock" not in checks  # nothing to compare against


def test_wrong_host_ca_is_named(site: Site, capsys) -> None:
    config = dataclasses.replace(site.config, host_ca=site.pki / "session-ca" / "ca.pem")
    status, checks = run(config, capsys, "--json")
    assert status == 1
    assert checks["host"]["status"] == "problem"
    assert "non reconnu par l'AC configurée" in checks["host"]["found"]
    assert "host.ca" in checks["host"]["fix"]


@pytest.mark.parametrize(("offset", "expected"), [(dt.timedelta(minutes=3), "warning"),
                                                  (dt.timedelta(minutes=-6), "problem")])
def test_clock_skew_against_the_host_date(site: Site, offset: dt.timedelta,
                                          expected: str) -> None:
    checks = {c.name: c for c in doctor.check_host(
        site.config, doctor.check_enrolment(site.config, dt.datetime.now(dt.UTC))[1],
        now=dt.datetime.now(dt.UTC) + offset)}
    assert checks["clock"].status == expected
    assert "timedatectl set-ntp true" in checks["clock"].fix
    assert ("en retard" if offset < dt.timedelta(0) else "en avance") in checks["clock"].found


def test_refused_deposits_are_a_warning_pointing_to_the_outbox_command(site: Site,
                                                                        capsys) -> None:
    config = _config(site.state, site.config.host_url, site.pki, "outbox")
    enrol_from_pki(site.pki, config=config)
    with open_outbox(config) as outbox:
        outbox.add("urn:oid:1.2.3.1", "1" * 15, b"refused bundle")
        outbox.add("urn:oid:1.2.3.2", "1" * 15, b"waiting bundle")
        Sender(outbox).send_pending(lambda item: SendResult.refused("bad document"),
                                    stop=lambda: outbox.counts().failed >= 1)
        # Read while the outbox is held, as when the agent runs beside the doctor.
        status, checks = run(config, capsys, "--json")
    assert checks["outbox"]["status"] == "warning"
    assert "1 dépôt(s) en attente, 1 refusé(s)" in checks["outbox"]["found"]
    assert "dmp-agent outbox" in checks["outbox"]["fix"]
    assert status == 0


def test_blocked_and_expired_cards_are_problems_with_their_fix(site: Site, insert_card,
                                                               tmp_path: Path, capsys) -> None:
    ca = TestHealthCA.load(site.pki / "health-ca")
    blocked_state = tmp_path / "blocked"
    # A card whose PIN was mistyped three times (the card keeps its counters in state.json).
    VirtualCps.from_profile("gp", ca=ca, state_dir=blocked_state)
    counters = json.loads((blocked_state / "state.json").read_text())
    (blocked_state / "state.json").write_text(json.dumps({**counters, "pin_tries": 0}))
    insert_card(VirtualCps.from_profile("gp", ca=ca, state_dir=blocked_state), slot=0)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    insert_card(VirtualCps.from_profile("nurse", ca=ca, state_dir=tmp_path / "expired",
                                        not_before=past - dt.timedelta(days=900),
                                        not_after=past), slot=1)
    status, checks = run(site.config, capsys, "--json")
    assert status == 1
    cards = sorted((c for name, c in checks.items() if name.startswith("card:")),
                   key=lambda c: c["name"])
    found = {c["status"] for c in cards}
    assert found == {"problem"}, cards
    blocked = next(c for c in cards if "code porteur bloqué" in c["found"])
    assert "PUK" in blocked["fix"]
    expired = next(c for c in cards if "carte expirée" in c["found"])
    assert "renouvellement" in expired["fix"]
