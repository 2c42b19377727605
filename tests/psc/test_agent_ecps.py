"""The agent core logs a professional in with the e-CPS (docs/psc.md): the reference PSC and
the host over real TLS in threads, the real agent core (its card monitor on the private
pcscd, no card needed), the virtual e-CPS app answering on the "phone". Approve, deny, time
out, a request already pending, the provider down, cancel and logout, each said in its own
words; the session is the card's (same host session, revoked at logout)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.config import AgentConfig
from agent.core.service import AgentService
from agent.errors import AgentError
from agent.install.enrol import enrol_from_pki
from host.psc.vecps import VirtualEcps
from host.psc_token import PscTrust
from host.store.schema import sessions
from tests.host.tls_harness import TlsHost, make_pki, tls_host
from tests.live import free_port

from .harness import CLIENT_ID, CLIENT_SECRET, CODE, GP, RunningPsc, running_psc

pytestmark = pytest.mark.pcsc

WAIT = 10.0
OPTICIAN, OPTICS = "810003456786", "582345678900021"
PHARMACIST = "810002345675"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class EcpsWorld:
    psc: RunningPsc
    host: TlsHost
    core: AgentService
    root: Path

    def phone(self, id_nat_ps: str = OPTICIAN) -> VirtualEcps:
        return self.psc.phone(self.root / "phone" / id_nat_ps, id_nat_ps)

    def session(self) -> dict[str, Any]:
        return self.core.snapshot()["session"]

    def until(self, predicate: Any) -> dict[str, Any]:
        assert self.core.wait_until(lambda: predicate(self.core.snapshot()["session"]), WAIT), \
            self.session()
        return self.session()

    def waiting(self) -> dict[str, Any]:
        return self.until(lambda s: (s.get("ecps") or {}).get("phase") == "waiting")

    def answer(self, phone: VirtualEcps, approve: bool) -> str:
        """The professional reads the phone, checks the binding message, answers."""
        shown = self.waiting()["ecps"]["bindingMessage"]
        (pending,) = phone.pending(CODE)
        assert pending.binding_message == shown  # what the screen and the phone both say
        _login, status = phone.decide(pending.id, approve, CODE)
        return status

    def failed(self) -> dict[str, Any]:
        return self.until(lambda s: s.get("ecps") is None and s["state"] != "opening")


def agent_config(root: Path, host: TlsHost, pki: Path, issuer: str, ca: Path,
                 **more: Any) -> AgentConfig:
    (root / "workstation").mkdir(parents=True, exist_ok=True)
    secret = root / "workstation" / "psc-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    secret.chmod(0o600)
    return AgentConfig(host_url=host.base_url, host_ca=pki / "server" / "ca.pem",
                       credentials_dir=root / "workstation", data_dir=root / "data",
                       log_dir=root / "log", psc_issuer=issuer, psc_ca=ca,
                       psc_client_id=CLIENT_ID, **more)


@pytest.fixture
def world(pki: Path, tmp_path: Path, _migrated_templates: dict[str, Any]
          ) -> Iterator[EcpsWorld]:
    shutil.copyfile(_migrated_templates["sqlite"], tmp_path / "host.db")
    with running_psc(pki, tmp_path / "psc") as psc:
        trust = PscTrust(issuer=psc.issuer, ca_file=psc.ca, client_id=CLIENT_ID)
        with tls_host(f"sqlite:///{tmp_path / 'host.db'}", pki, tmp_path / "blobs",
                      psc=trust) as host:
            config = agent_config(tmp_path, host, pki, psc.issuer, psc.ca)
            enrol_from_pki(pki, config=config)
            with AgentService(config, with_outbox=False) as core:
                yield EcpsWorld(psc, host, core, tmp_path)


def test_approved_on_the_phone_opens_the_session_and_logout_ends_it(world: EcpsWorld) -> None:
    phone = world.phone()
    started = world.core.login_ecps(OPTICIAN)
    assert started["state"] == "opening" and started["ecps"]["idNatPs"] == OPTICIAN
    waiting = world.waiting()["ecps"]
    assert waiting["bindingMessage"].startswith("Poste ") and 0 < waiting["secondsLeft"] <= 90
    assert world.answer(phone, True) == "approved"
    opened = world.until(lambda s: s["state"] == "open")
    assert opened["authMeans"] == "e-cps" and opened["ecps"] is None
    assert opened["professional"]["idNatPs"] == OPTICIAN
    assert opened["situation"] == {"structureId": OPTICS, "name": "Optique du Vieux-Port"}
    session = world.core.session
    assert session is not None and session.signed_by == "establishment"
    with session.calls() as client:  # the host knows who, and how they came in
        assert client.get("/session").json()["idNatPs"] == OPTICIAN
    session_id = session.session_id
    world.core.lock_session()
    assert world.session()["state"] == "none" and world.core.session is None
    assert session.wait_revoked(WAIT)
    with world.host.app.state.engine.connect() as connection:
        row = connection.execute(select(sessions).where(sessions.c.id == session_id)).one()
    assert (row.revoked_reason, row.auth_means) == ("logout", "e-cps")


def test_several_situations_are_chosen_as_with_the_card(world: EcpsWorld) -> None:
    phone = world.phone(GP)
    world.core.login_ecps(GP)
    world.answer(phone, True)
    choosing = world.until(lambda s: s["state"] == "choosing")
    assert [s["structureId"] for s in choosing["situations"]] == [
        "581234567800015", "3750100042"]
    world.core.choose_situation(1)
    opened = world.until(lambda s: s["state"] == "open")
    assert opened["situation"]["structureId"] == "3750100042"


def test_denied_on_the_phone(world: EcpsWorld) -> None:
    phone = world.phone()
    world.core.login_ecps(OPTICIAN)
    assert world.answer(phone, False) == "denied"
    failed = world.failed()
    assert failed["ecpsError"]["code"] == "ecps-denied"
    assert failed["error"] == "Connexion e-CPS refusée sur le téléphone"
    assert world.core.session is None


def test_no_answer_in_time(world: EcpsWorld) -> None:
    world.phone()
    world.core.login_ecps(OPTICIAN)
    world.waiting()
    world.psc.clock.advance(600)  # the provider's time passes, nobody answers
    failed = world.failed()
    assert failed["ecpsError"]["code"] == "ecps-expired"
    assert "expiré" in failed["error"]


def test_a_login_already_waiting_on_the_phone(world: EcpsWorld) -> None:
    world.phone(PHARMACIST)
    assert world.psc.ciba(login_hint=PHARMACIST).status_code == 200  # another workstation
    world.core.login_ecps(PHARMACIST)
    failed = world.failed()
    assert failed["ecpsError"]["code"] == "ecps-pending"
    assert "attend déjà" in failed["error"]
    # And on this workstation, one login at a time.
    world.phone()
    world.core.login_ecps(OPTICIAN)
    with pytest.raises(AgentError) as busy:
        world.core.login_ecps(OPTICIAN)
    assert busy.value.code == "ecps-busy"


def test_cancelled_on_the_workstation(world: EcpsWorld) -> None:
    world.phone()
    world.core.login_ecps(OPTICIAN)
    world.waiting()
    world.core.cancel_ecps()
    failed = world.failed()
    assert failed["ecpsError"]["code"] == "cancelled" and failed["error"] == ""
    assert world.core.session is None
    with pytest.raises(AgentError) as none:
        world.core.cancel_ecps()
    assert none.value.code == "no-ecps-login"


def test_unknown_professional_and_unreachable_provider(world: EcpsWorld, pki: Path) -> None:
    world.core.login_ecps("810009999999")  # no e-CPS enrolled for this one
    assert world.failed()["ecpsError"]["code"] == "ecps-unknown-user"
    down = agent_config(world.root / "down", world.host, pki,
                        f"https://127.0.0.1:{free_port()}/auth/realms/esante-wallet",
                        world.psc.ca)
    enrol_from_pki(pki, config=down)
    with AgentService(down, with_outbox=False) as core:
        core.login_ecps(OPTICIAN)
        assert core.wait_until(lambda: not core.ecps_pending, WAIT)
        failed = core.snapshot()["session"]
        assert failed["ecpsError"]["code"] == "psc-unreachable"
        assert "Pro Santé Connect" in failed["error"]
