"""The sandbox's e-CPS scenario (docs/psc.md): an optician with no card reader for her CPS
logs in with the e-CPS app on her phone through the reference Pro Santé Connect, and deposits
an eye-test report; with no card to sign, the workstation's establishment certificate signs
the submission set (the DMP's rule for deposits without a card signature).

Everything is real and over the wire: `dmp-host psc serve` in its own process (the host
trusts it: ``--psc-issuer``), the virtual phone app `dmp-vecps` as a command (its approval
over HTTPS), and the agent's own core, the one under every view. Agent and host import
nothing of each other here either: the provider and the phone are commands."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from agent.config import AgentConfig
from agent.core.service import AgentService
from agent.i18n import _
from cardreader.pcsc import list_readers

from .services import free_port, say, service

BIN = Path(sys.executable).parent
OPTICIAN = "810003456786"  # the "optician" profile (host/psc/professionals.json)
PHONE_CODE = "2468"
REALM = "/auth/realms/esante-wallet"
WAIT = 30.0
REPORT = b"Compte rendu d'examen de la vue (sous e-CPS)\nAcuite OD 10/10, OG 9/10\n"


@dataclass(frozen=True)
class Provider:
    url: str
    issuer: str
    ca: Path
    client_id: str
    secret_file: Path


@contextlib.contextmanager
def pro_sante_connect(state: Path, pki: Path) -> Iterator[Provider]:
    """`dmp-host psc serve` on a free port (polls every second), its client for the agent."""
    port = free_port()
    data = state / "psc"
    with service([str(BIN / "dmp-host"), "psc", "serve", "--pki", str(pki), "--data",
                  str(data), "--port", str(port), "--interval", "1"], state / "psc.log", port,
                 name="Pro Santé Connect"):
        client = json.loads((data / "clients.json").read_text())["clients"][0]
        secret = state / "agent" / "psc-secret"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(client["secret"] + "\n")
        secret.chmod(0o600)
        url = f"https://127.0.0.1:{port}"
        yield Provider(url, url + REALM, pki / "psc" / "ca.pem", client["id"], secret)


def host_arguments(provider: Provider) -> list[str]:
    """What `dmp-host serve` needs to trust the provider's tokens."""
    return ["--psc-issuer", provider.issuer, "--psc-ca", str(provider.ca)]


def _phone(state: Path, *args: str) -> str:
    done = subprocess.run([str(BIN / "dmp-vecps"), "--state", str(state / "phone"), "--code",
                           PHONE_CODE, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sandbox: dmp-vecps {args[0]}: {done.stderr.strip()}")
    return done.stdout


def _until(core: AgentService, ready: Callable[[], bool], what: str) -> None:
    if not core.wait_until(ready, WAIT):
        raise SystemExit(f"sandbox: {what} did not happen; state: "
                         f"{core.snapshot()['session']}")


def optician_with_ecps_deposits(state: Path, config: AgentConfig, provider: Provider,
                                vitale_reader: str) -> None:
    _phone(state, "enrol", OPTICIAN, "--provider", provider.url, "--ca", str(provider.ca))
    say(_("dmp-vecps: e-CPS activated on the optician's phone ({idnat})").format(idnat=OPTICIAN))
    config = replace(config, psc_issuer=provider.issuer, psc_ca=provider.ca,
                     psc_client_id=provider.client_id, psc_secret_file=provider.secret_file)
    readers = list_readers()
    with AgentService(config, cps_reader=readers[0], vitale_reader=vitale_reader,
                      holder="dmp-agent sandbox") as core:
        core.settle()
        core.login_ecps(OPTICIAN)
        _until(core, lambda: (core.snapshot()["session"].get("ecps") or {}).get("phase")
               == "waiting", "the CIBA request")
        login = core.snapshot()["session"]["ecps"]
        say(_("the agent shows: « {message} », {seconds} s to approve").format(
            message=login["bindingMessage"], seconds=login["secondsLeft"]))
        listed = _phone(state, "pending")
        found = re.search(r"^(\w+)\s+« " + re.escape(login["bindingMessage"]) + " »", listed,
                          re.MULTILINE)
        if found is None:
            raise SystemExit(f"sandbox: the phone does not show the login:\n{listed}")
        say("dmp-vecps: " + _phone(state, "approve", found.group(1)).strip())
        _until(core, lambda: core.snapshot()["session"]["state"] == "open",
               "the e-CPS session")
        session = core.snapshot()["session"]
        who = session["professional"]
        say(_("session opened with the e-CPS: {first} {last}, {situation} (no CPS card)").format(
            first=who["firstName"], last=who["lastName"], situation=session["situation"]["name"]))
        _until(core, lambda: core.patient is not None and core.patient.state == "ready",
               "the patient's dossier")
        core.validate_identity("passeport")
        say(_("the patient's identity qualified (passport checked)"))
        report = state / "examen-vue-ecps.txt"
        report.write_bytes(REPORT)
        queued = core.deposit(report, mime_type="text/plain", type_code="34810-2",
                              title="Examen de la vue (e-CPS)")
        say(_("« {title} » signed by the workstation's establishment certificate (no card) "
              "and queued").format(title=queued["title"]))
        deadline = time.monotonic() + WAIT
        while (outbox := core.outbox())["pending"] and time.monotonic() < deadline:
            time.sleep(0.1)
        say(_("outbox: {pending} pending, {done} done, {failed} refused").format(
            pending=outbox["pending"], done=outbox["done"], failed=outbox["failed"]))
        if outbox["pending"] or outbox["failed"]:
            raise SystemExit("sandbox: the e-CPS deposit was not stored")
        core.lock_session()
        say(_("e-CPS session closed"))
