"""The sandbox's e-CPS scenario (docs/psc.md): an orthoptist on a laptop with no card reader
logs in with the e-CPS app on his phone through the reference Pro Santé Connect, qualifies
the patient's identity (the laptop's agent has never seen her: the INS service's identity
comes back *récupérée*, the passport makes it *qualifiée*), and deposits an assessment; with
no card to sign, the workstation's establishment certificate signs the submission set (the
DMP's rule for deposits without a card signature).

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
from agent.install.enrol import enrol_from_pki
from cardreader.pcsc import list_readers

from .services import free_port, say, service

BIN = Path(sys.executable).parent
ORTHOPTIST = "810004567896"  # the "orthoptist" profile (host/psc/professionals.json)
ORTHOPTIC = "BILAN-ORTHOPTIQUE"  # the orthoptist's assessment report (policies/matrix.json)
PHONE_CODE = "2468"
REALM = "/auth/realms/esante-wallet"
WAIT = 30.0


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


def orthoptist_with_ecps_deposits(state: Path, config: AgentConfig, pki: Path,
                                  provider: Provider, vitale_reader: str, report: bytes) -> None:
    _phone(state, "enrol", ORTHOPTIST, "--provider", provider.url, "--ca", str(provider.ca))
    say(_("dmp-vecps: e-CPS activated on the orthoptist's phone ({idnat})").format(
        idnat=ORTHOPTIST))
    # His laptop: enrolled with the practice's workstation certificate, an agent store of its
    # own (no identity checked there yet, its own outbox).
    laptop = state / "agent" / "laptop"
    config = replace(config, data_dir=laptop / "data", credentials_dir=laptop / "workstation",
                     log_dir=laptop / "log", psc_issuer=provider.issuer, psc_ca=provider.ca,
                     psc_client_id=provider.client_id, psc_secret_file=provider.secret_file)
    enrol_from_pki(pki, "sandbox", config=config)
    readers = list_readers()
    with AgentService(config, cps_reader=readers[0], vitale_reader=vitale_reader,
                      holder="dmp-agent sandbox") as core:
        core.settle()
        core.login_ecps(ORTHOPTIST)
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
        status = core.snapshot()["patient"]["identity"]["status"]
        if status == "qualifiée":
            raise SystemExit("sandbox: the laptop's agent already knew the identity")
        say(_("the patient's identity: {status}").format(status=status))
        core.validate_identity("passeport")
        say(_("the patient's identity qualified (passport checked)"))
        path = state / "bilan-orthoptique-ecps.pdf"
        path.write_bytes(report)
        queued = core.deposit(path, mime_type="application/pdf", type_code=ORTHOPTIC,
                              title="Bilan orthoptique (e-CPS)")
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
