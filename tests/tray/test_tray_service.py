"""The tray of the real agent: `dmp-agent run` with its tray on Xvfb, docked in trayer, the
real host, virtual cards in the real pcscd. The icon follows what the user does with the
cards, the tooltip names the professional and never the patient, and the tray ends with the
agent."""

from __future__ import annotations

import gc
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from agent.views.tray import LOOKS, TrayState
from cardreader.pcsc import list_readers, wait_for_card
from cardreader.virtual.vitale import VirtualVitale
from tests.live import LiveWorld, live_world
from tests.tray import xdesk

pytestmark = [
    pytest.mark.pcsc,
    pytest.mark.tray,
    pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("trayer") is None,
                       reason="needs Debian's xvfb and trayer"),
]
PIN = "1234"


@pytest.fixture(scope="module")
def desktop() -> Iterator[tuple[xdesk.Xvfb, xdesk.Trayer]]:
    server = xdesk.Xvfb().start()
    host = xdesk.Trayer(server.display).start()
    yield server, host
    host.stop()
    gc.collect()
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pcscd: object,
         desktop: tuple[xdesk.Xvfb, xdesk.Trayer]) -> Iterator[LiveWorld]:
    server, _ = desktop
    with pytest.MonkeyPatch.context() as env:
        # the agent process inherits them: our display, and pystray's X11 backend
        env.setenv("DISPLAY", server.display)
        env.setenv("PYSTRAY_BACKEND", "xorg")
        with live_world(tmp_path_factory.mktemp("live"), tray=True) as world:
            yield world


def _showing(x: Any, state: TrayState, timeout: float = 30) -> Any:
    def shows() -> Any:
        window = xdesk.find_window(x, "dmp-agent")
        if window is None or not xdesk.docked_in_trayer(x, window):
            return None
        image = xdesk.window_pixels(x, window)
        return window if image is not None and xdesk.colour_share(
            image, LOOKS[state].colour) >= 0.4 else None

    window = xdesk.wait_for(shows, f"the agent's icon to show {state.name}", timeout=timeout)
    panel = xdesk.find_window(x, "panel")
    image = xdesk.screenshot(x, xdesk.screen_box(x, panel))
    image.resize((image.width * 4, image.height * 4)).save(
        xdesk.artefacts() / f"tray-service-{state.value}.png")
    return window


def _removed(slot: int) -> None:
    assert wait_for_card(list_readers()[slot], present=False)


def test_the_icon_follows_the_cards_and_the_session(
        live: LiveWorld, desktop: tuple[xdesk.Xvfb, xdesk.Trayer], insert_card: Any) -> None:
    server, _ = desktop
    x = xdesk.connect(server.display)
    try:
        _showing(x, TrayState.NO_CARD)

        cps = insert_card(live.cps("gp"), slot=0)
        _showing(x, TrayState.CPS_LOCKED)

        with live.agent.client() as api:
            assert api.post("/api/session", json={"pin": PIN}).status_code == 200
        window = _showing(x, TrayState.SESSION_OPEN)
        assert xdesk.window_name(window) == "Agent DMP - session ouverte : Dr Claire MARTIN"

        # ("single" is a Claire MARTIN too: a patient who is not the GP's namesake)
        vitale = insert_card(VirtualVitale.from_profile("corsica"), slot=1)
        status = live.agent.wait_for(lambda s: s["patient"]["state"] in ("ready", "error"))
        assert status["patient"]["state"] == "ready", status["patient"]
        window = _showing(x, TrayState.PATIENT_LOADED)
        patient = status["patient"]["patient"]
        title = xdesk.window_name(window)
        assert title == ("Agent DMP - session ouverte : Dr Claire MARTIN\nDossier patient ouvert"
                         "\nIdentité récupérée : vérifiez une pièce d'identité")
        for word in (patient["firstName"], patient["birthName"], patient["ins"][:13]):
            assert str(word).lower() not in title.lower()

        vitale.stop()
        _removed(1)
        _showing(x, TrayState.SESSION_OPEN)

        with live.agent.client() as api:
            assert api.delete("/api/session").status_code == 204
            _showing(x, TrayState.CPS_LOCKED)
            assert api.post("/api/session", json={"pin": PIN}).status_code == 200
            _showing(x, TrayState.SESSION_OPEN)

        # the CPS leaves with the session open: the session ends at once
        cps.stop()
        _removed(0)
        _showing(x, TrayState.NO_CARD)
    finally:
        x.close()


def test_a_cps_removed_without_a_session_leaves_no_card(
        live: LiveWorld, desktop: tuple[xdesk.Xvfb, xdesk.Trayer], insert_card: Any) -> None:
    server, _ = desktop
    x = xdesk.connect(server.display)
    try:
        cps = insert_card(live.cps("pharmacist"), slot=0)
        _showing(x, TrayState.CPS_LOCKED)
        cps.stop()
        _removed(0)
        _showing(x, TrayState.NO_CARD, timeout=5)
    finally:
        x.close()


def test_the_tray_ends_with_the_agent(live: LiveWorld,
                                      desktop: tuple[xdesk.Xvfb, xdesk.Trayer]) -> None:
    server, _ = desktop
    x = xdesk.connect(server.display)
    try:
        xdesk.wait_for(lambda: xdesk.find_window(x, "dmp-agent"), "the agent's icon")
        assert live.agent.stop(signal.SIGTERM) == 0
        xdesk.wait_for(lambda: xdesk.find_window(x, "dmp-agent") is None,
                       "the icon to go with the agent")
    finally:
        x.close()
