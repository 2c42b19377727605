"""The tray for real: pystray's X11 backend under Xvfb, docked in Debian's trayer.

What a user relies on, checked on the X server: the icon docks in the tray (also when the
tray host starts late or restarts), its pixels follow the agent's state, a click opens the
page, the menu's entries act (pystray's X11 backend draws no menu: they are invoked through
``icon.menu``, as a menu-capable backend would), and notices become desktop notifications
(dunst on a private D-Bus session bus) without the patient's identity.
Screenshots go to tests/artefacts/tray-*.png.
"""

from __future__ import annotations

import gc
import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent.views.tray import LOOKS, Tray, TrayState, tray_tooltip, x11_title
from tests.tray import xdesk
from tests.tray.scripted import PATIENT_INS, PATIENT_WORDS, ScriptedSource, snapshot

pytestmark = [
    pytest.mark.tray,
    pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("trayer") is None,
                       reason="needs Debian's xvfb and trayer"),
]

ICON_CLASS = "dmp-agent"  # pystray names the icon window's WM_CLASS after the icon


@pytest.fixture(autouse=True)
def xserver(monkeypatch: pytest.MonkeyPatch) -> Iterator[xdesk.Xvfb]:
    """A fresh X server for each test: nothing one test leaves can meet the next."""
    server = xdesk.Xvfb().start()
    monkeypatch.setenv("DISPLAY", server.display)
    # pystray would prefer AppIndicator or GTK where PyGObject exists: test the X11 backend,
    # the one a plain venv gets.
    monkeypatch.setenv("PYSTRAY_BACKEND", "xorg")
    yield server
    # pystray's X11 icon sits in reference cycles; its __del__ closes its X connection,
    # which must happen while this Xvfb still runs.
    gc.collect()
    server.stop()


@pytest.fixture
def x(xserver: xdesk.Xvfb) -> Iterator[Any]:
    connection = xdesk.connect(xserver.display)
    yield connection
    connection.close()


@pytest.fixture
def trayer(xserver: xdesk.Xvfb) -> Iterator[xdesk.Trayer]:
    host = xdesk.Trayer(xserver.display).start()
    yield host
    host.stop()


@dataclass
class Running:
    tray: Tray
    thread: threading.Thread
    opened: list[str]
    quits: list[int]
    errors: list[BaseException]


@contextmanager
def running_tray(source: ScriptedSource) -> Iterator[Running]:
    """The tray in pystray's loop on a thread of its own (``dmp-agent run`` uses the main
    thread; the X11 backend does not mind)."""
    opened: list[str] = []
    quits: list[int] = []
    errors: list[BaseException] = []
    tray = Tray(source, quit=lambda: quits.append(1), open_url=opened.append, dock_retry=0.1)

    def loop() -> None:
        try:
            tray.run()
        except BaseException as error:
            errors.append(error)

    running = Running(tray, threading.Thread(target=loop, name="tray-loop", daemon=True),
                      opened, quits, errors)
    running.thread.start()
    xdesk.wait_for(lambda: running.errors or (running.tray.icon is not None
                                              and source.subscribers == 1), "the tray to start")
    try:
        yield running
    finally:
        running.tray.stop()
        running.thread.join(timeout=15)
        assert not running.thread.is_alive(), "the tray did not stop"
        assert not running.errors
        assert source.subscribers == 0


def icon_window(x: Any) -> Any:
    return xdesk.wait_for(lambda: xdesk.find_window(x, ICON_CLASS), "the icon window")


def wait_docked(x: Any) -> Any:
    window = icon_window(x)
    xdesk.wait_for(lambda: xdesk.docked_in_trayer(x, window), "the icon to dock in trayer")
    return window


def shows(image: Image.Image, state: TrayState) -> bool:
    """Whether ``image`` is mostly ``state``'s colour and has none of the others'."""
    return xdesk.colour_share(image, LOOKS[state].colour) >= 0.4 and all(
        xdesk.colour_share(image, LOOKS[other].colour) <= 0.02
        for other in TrayState if other is not state)


def wait_colour(x: Any, window: Any, state: TrayState) -> Image.Image:
    def showing() -> Image.Image | None:
        image = xdesk.window_pixels(x, window)
        return image if image is not None and shows(image, state) else None

    return xdesk.wait_for(showing, f"the icon to show {state.name}")


def save_panel(x: Any, name: str) -> None:
    panel = xdesk.find_window(x, "panel")
    image = xdesk.screenshot(x, xdesk.screen_box(x, panel)) if panel else xdesk.screenshot(x)
    image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST).save(
        xdesk.artefacts() / f"tray-{name}.png")


STATES = [
    ("cards", snapshot("none"), TrayState.NO_CARD),
    ("session", snapshot("locked"), TrayState.CPS_LOCKED),
    ("session", snapshot("open"), TrayState.SESSION_OPEN),
    ("patient", snapshot("open", "ready"), TrayState.PATIENT_LOADED),
    ("outbox", snapshot("open", "ready", pending=2), TrayState.DEPOSITS_PENDING),
    ("session", snapshot("open", "ready", pending=2,
                         problem="Hôte DMP injoignable"), TrayState.ERROR),
    ("session", snapshot("none"), TrayState.NO_CARD),
]


def test_the_icon_docks_and_its_pixels_follow_the_state(trayer: xdesk.Trayer, x: Any) -> None:
    source = ScriptedSource(snapshot("none"))
    with running_tray(source):
        window = wait_docked(x)
        seen: dict[TrayState, bytes] = {}
        for kind, snap, state in STATES * 2:
            source.set(snap, kind)
            image = wait_colour(x, window, state)
            # still a whole icon, not a sliver (re-docking at each change shrank it)
            assert min(image.size) >= 16, image.size
            # the X11 backend's tooltip is the icon window's name
            expected = x11_title(tray_tooltip(snap))
            xdesk.wait_for(lambda expected=expected: xdesk.window_name(window) == expected,
                           f"the title of {state.name}")
            seen.setdefault(state, image.tobytes())
            save_panel(x, state.value)
        assert len(set(seen.values())) == len(TrayState)


def test_a_click_on_the_icon_opens_the_page(trayer: xdesk.Trayer, x: Any) -> None:
    source = ScriptedSource(snapshot("open"))
    with running_tray(source) as running:
        window = wait_docked(x)
        wait_colour(x, window, TrayState.SESSION_OPEN)  # mapped and drawn: it can be clicked
        left, top, right, bottom = xdesk.screen_box(x, window)
        xdesk.click(x, ((left + right) // 2, (top + bottom) // 2))
        xdesk.wait_for(lambda: running.opened, "the page to open")
        assert running.opened == [source.PAGE]


def test_the_menu_entries_act_and_lock_follows_the_session(trayer: xdesk.Trayer,
                                                           x: Any) -> None:
    source = ScriptedSource(snapshot("locked"))
    with running_tray(source) as running:
        window = wait_docked(x)
        icon = running.tray.icon
        assert type(icon).HAS_MENU is False  # the X11 backend shows no menu (docs/agent-tray.md)
        items = {item.text: item for item in icon.menu if item.text != "- - - -"}
        assert list(items) == [entry.label for entry in running.tray.menu_entries()]
        lock = items["Verrouiller la session"]
        assert not lock.enabled

        source.set(snapshot("open"))
        xdesk.wait_for(lambda: lock.enabled, "Lock to be enabled with the session open")
        wait_colour(x, window, TrayState.SESSION_OPEN)
        lock(icon)
        xdesk.wait_for(lambda: source.locks == 1, "the session to be locked")
        wait_colour(x, window, TrayState.CPS_LOCKED)
        assert not lock.enabled

        for label, fragment in [("Ouvrir la page", ""),
                                ("Déposer un document…", "#deposit"),
                                ("Diagnostic", "#diagnostics"),
                                ("Paramètres", "#settings")]:
            items[label](icon)
            xdesk.wait_for(lambda fragment=fragment: running.opened[-1:] == [
                source.PAGE + fragment], f"{label} to open the page")

        items["Quitter"](icon)
        running.thread.join(timeout=15)
        assert not running.thread.is_alive(), "Quit did not end the tray's loop"
        assert running.quits == [1]
        assert xdesk.find_window(x, ICON_CLASS) is None


def test_the_icon_docks_when_the_tray_host_starts_late_or_restarts(
        xserver: xdesk.Xvfb, x: Any, caplog: pytest.LogCaptureFixture) -> None:
    # pystray logs "Failed to dock icon" with a traceback when its tray host goes away; a
    # captured traceback would keep the icon (and its X connection) past this X server.
    caplog.set_level(logging.CRITICAL, logger="pystray")
    source = ScriptedSource(snapshot("locked"))
    with running_tray(source):
        window = icon_window(x)
        assert not xdesk.docked_in_trayer(x, window)
        host = xdesk.Trayer(xserver.display).start()
        try:
            window = wait_docked(x)
            wait_colour(x, window, TrayState.CPS_LOCKED)
            host.stop()
            host = xdesk.Trayer(xserver.display).start()
            window = wait_docked(x)
            wait_colour(x, window, TrayState.CPS_LOCKED)
            save_panel(x, "redocked")
        finally:
            host.stop()


@pytest.mark.skipif(bool(xdesk.notify_tools_missing()),
                    reason=f"needs {', '.join(xdesk.NOTIFY_TOOLS)} (dbus, dunst, libnotify-bin)")
def test_notices_become_desktop_notifications_without_patient_data(
        xserver: xdesk.Xvfb, trayer: xdesk.Trayer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with xdesk.notification_server(xserver.display, tmp_path) as (address, record):
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        source = ScriptedSource(snapshot("open", "ready"))
        with running_tray(source):
            source.notice("Document déposé", "Compte rendu (1 Mo)")
            source.notice("Dépôt refusé",
                          f"Compte rendu de Léa DURAND ({PATIENT_INS}) refusé", level="error")

            def shown() -> list[str]:
                lines = record.read_text().splitlines() if record.exists() else []
                return lines if len(lines) >= 2 else []

            lines = xdesk.wait_for(shown, "dunst to show two notifications")
    assert lines == [
        "Agent DMP|Document déposé|Compte rendu (1 Mo)|LOW",
        "Agent DMP|Dépôt refusé|"
        "Compte rendu de [masqué] [masqué] ([masqué]) refusé|CRITICAL",
    ]
    for word in PATIENT_WORDS:
        assert word.lower() not in "\n".join(lines).lower()


def test_without_a_notification_service_notices_go_to_the_log(
        trayer: xdesk.Trayer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no notify-send here
    caplog.set_level(logging.INFO, logger="agent.views.tray")
    source = ScriptedSource(snapshot("open"))
    with running_tray(source):
        source.notice("Document déposé", "Compte rendu (1 Mo)")
        xdesk.wait_for(lambda: "notification: Document déposé — "
                               "Compte rendu (1 Mo)" in caplog.text, "the notice in the log")


class RefusingSource(ScriptedSource):
    """A service whose session ended just before Lock was chosen."""

    def lock_session(self) -> None:
        raise RuntimeError("Aucune session ouverte / no session open")


def test_a_failing_menu_action_leaves_the_tray_running(trayer: xdesk.Trayer, x: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    source = RefusingSource(snapshot("open"))
    with running_tray(source) as running:
        window = wait_docked(x)
        wait_colour(x, window, TrayState.SESSION_OPEN)
        lock = next(item for item in running.tray.icon.menu
                    if item.text == "Verrouiller la session")
        lock(running.tray.icon)
        xdesk.wait_for(lambda: "Verrouiller la session failed" in caplog.text, "the failure logged")
        source.set(snapshot("open", "ready"), "patient")
        wait_colour(x, window, TrayState.PATIENT_LOADED)
        assert running.thread.is_alive()


def test_stop_before_run_tray_returns_at_once(trayer: xdesk.Trayer, x: Any) -> None:
    from agent.views import tray as tray_module

    tray_module.stop()  # a signal while the agent was starting
    source = ScriptedSource(snapshot())
    thread = threading.Thread(target=tray_module.run_tray, args=(source, lambda: None),
                              daemon=True)
    thread.start()
    thread.join(timeout=15)
    if thread.is_alive():  # do not leave it running into the next test
        tray_module.stop()
        thread.join(timeout=15)
        pytest.fail("run_tray ignored the stop() that came before it")
    assert source.subscribers == 0
    assert xdesk.find_window(x, ICON_CLASS) is None
