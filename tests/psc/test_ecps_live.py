"""A professional without a card logs in with the e-CPS and deposits, end to end over the
real processes: `dmp-host psc serve`, `dmp-host serve --psc-issuer`, `dmp-agent run` (its local
API) and `dmp-agent login --ecps`, the virtual e-CPS app approving over HTTPS, the patient's
Vitale card through the private pcscd (docs/psc.md)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from cardreader.virtual.vitale import VirtualVitale
from tests.agent.test_no_traceback import as_at_a_terminal
from tests.live import BIN, ECPS_CODE, LiveWorld, live_world, qualify
from wire import dsg

pytestmark = pytest.mark.pcsc

PHARMACIST, PHARMACY = "810002345675", "3690001234"
OPTICIAN = "810003456786"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[LiveWorld]:
    with live_world(tmp_path_factory.mktemp("ecps-live"), psc=True) as world:
        yield world


def approve_when_asked(phone: Any, approve: bool = True, timeout: float = 20.0) -> list[str]:
    """Answer the first login the phone lists (on a thread: the test's command waits);
    the binding messages shown go in the list returned."""
    shown: list[str] = []

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = phone.pending(ECPS_CODE)
            if pending:
                shown.append(pending[0].binding_message)
                phone.decide(pending[0].id, approve, ECPS_CODE)
                return
            time.sleep(0.1)

    threading.Thread(target=run, daemon=True).start()
    return shown


def test_a_deposit_under_e_cps_is_signed_by_the_workstation(live: LiveWorld,
                                                            insert_card: Any) -> None:
    phone = live.phone(PHARMACIST)
    with live.agent.client() as api:
        started = api.post("/api/session/ecps", json={"idNatPs": PHARMACIST})
        assert started.status_code == 202, started.text
        waiting = live.agent.wait_for(
            lambda s: (s["session"]["ecps"] or {}).get("phase") == "waiting")["session"]
        assert waiting["state"] == "opening" and waiting["ecps"]["secondsLeft"] > 0
        (pending,) = phone.pending(ECPS_CODE)
        assert pending.binding_message == waiting["ecps"]["bindingMessage"]
        again = api.post("/api/session/ecps", json={"idNatPs": PHARMACIST})
        assert again.status_code == 409 and again.json()["code"] == "ecps-busy"
        phone.decide(pending.id, True, ECPS_CODE)
        opened = live.agent.wait_for(lambda s: s["session"]["state"] == "open")["session"]
        assert opened["authMeans"] == "e-cps" and opened["situation"]["structureId"] == PHARMACY

        insert_card(VirtualVitale.from_profile("single"), slot=1)
        patient = live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")["patient"]
        if patient["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        qualify(api)
        kind = api.get("/api/deposit-types").json()[0]["code"]
        queued = api.post("/api/deposits", params={"typeCode": kind, "title": "Sous e-CPS"},
                          content=b"conseil officinal\n", headers={"content-type": "text/plain"})
        assert queued.status_code == 202, queued.text
        outbox = live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=30)
        assert (outbox["outbox"]["failed"], outbox["outbox"]["done"]) == (0, 1), outbox
        assert api.delete("/api/session").status_code == 204

    # The host keeps the signature document: the workstation's certificate signed, and says so.
    with contextlib.closing(live.host.db()) as db:
        (sha,) = db.execute("SELECT sha256 FROM documents WHERE format_code = ?",
                            (dsg.POLICY,)).fetchone()
    signed = dsg.verify((live.host.data / "blobs" / sha[:2] / sha).read_bytes())
    assert signed.signer == dsg.SIGNER_ESTABLISHMENT
    workstation = x509.load_pem_x509_certificate(
        (live.pki / "workstations" / "sandbox.pem").read_bytes())
    assert signed.certificate.serial_number == workstation.serial_number


def login(live: LiveWorld, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dmp-agent"), "login", "--ecps", *args],
                          env=live.agent.env, capture_output=True, text=True, timeout=60)


def test_the_command_line_logs_in_with_the_e_cps(live: LiveWorld) -> None:
    phone = live.phone(OPTICIAN)
    shown = approve_when_asked(phone)
    done = login(live, "--idnat", OPTICIAN)
    assert done.returncode == 0, done.stderr
    assert shown and shown[0] in done.stderr  # the same binding message on the terminal
    assert "Session ouverte (e-CPS) : Sophie PETIT, Optique du Vieux-Port" in done.stdout
    assert "Session fermée" in done.stdout

    approve_when_asked(phone, approve=False)
    denied = login(live)  # the last idNat_PS used on this workstation
    assert denied.returncode == 1
    assert "Connexion e-CPS refusée sur le téléphone" in denied.stderr

    # Ctrl-C while the phone is asked: cancelled cleanly, nothing opened.
    command = subprocess.Popen([str(BIN / "dmp-agent"), "login", "--ecps"],
                               env=live.agent.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=as_at_a_terminal)
    assert command.stderr is not None
    asked = command.stderr.readline()
    assert "Validez la connexion sur votre téléphone" in asked
    command.send_signal(signal.SIGINT)
    out, err = command.communicate(timeout=30)
    assert command.returncode == 130 and "interrompu" in err, err
    assert "Session ouverte" not in out
    (stale,) = phone.pending(ECPS_CODE)  # CIBA has no withdrawal: answered on the phone
    assert stale.binding_message in asked
    phone.decide(stale.id, False, ECPS_CODE)
