"""The tray as a StatusNotifierItem (issue 17: a menu on Linux desktops that have an SNI
host), on a real private dbus-daemon. The test plays the SNI host's side as a panel does:
it owns ``org.kde.StatusNotifierWatcher``, receives the item's registration, reads its
icon, title and menu (``com.canonical.dbusmenu``), clicks entries, and left-clicks the
icon; the tray runs its own code over a scripted state source."""


import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.views.tray import Tray
from agent.views.tray_sni import ITEM_PATH, MENU_PATH, WATCHER, sni_host_present
from tests.tray.scripted import ScriptedSource, snapshot

dbus_fast = pytest.importorskip("dbus_fast")  # Linux only (pyproject.toml's marker)
from dbus_fast import BusType, Message, MessageType, Variant  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from dbus_fast.service import ServiceInterface, method  # noqa: E402


class Watcher(ServiceInterface):  # the SNI host's side, as a panel provides it
    def __init__(self) -> None:
        super().__init__(WATCHER)
        self.items: list[str] = []
        self.registered = threading.Event()

    @method()
    def RegisterStatusNotifierItem(self, service: "s") -> None:  # type: ignore[name-defined]  # noqa: F821
        self.items.append(service)
        self.registered.set()


class Host:
    """A loop on its own thread with a connection to the bus; ``call`` runs a coroutine."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        async def connect() -> Any:
            return await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()

        self.bus: Any = self.call(connect())

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def send(self, service: str, path: str, interface: str, member: str, signature: str = "",
             body: list[Any] | None = None) -> list[Any]:
        reply = self.call(self.bus.call(Message(destination=service, path=path,
                                                interface=interface, member=member,
                                                signature=signature, body=body or [])))
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        return list(reply.body)

    def get(self, service: str, path: str, interface: str, name: str) -> Any:
        return self.send(service, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                         [interface, name])[0].value

    def close(self) -> None:
        self.bus.disconnect()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def session_bus() -> Iterator[str]:
    if shutil.which("dbus-daemon") is None:
        pytest.fail("dbus-daemon is missing: run scripts/setup (Debian package dbus-daemon)",
                    pytrace=False)
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert bus.stdout is not None
        yield bus.stdout.readline().strip()
    finally:
        bus.terminate()
        bus.wait(timeout=10)


def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout  # a bound, not a measure
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def labels(layout: Any) -> list[tuple[str, bool]]:
    """(label, enabled) of the menu's entries, separators left out."""
    _root, _props, children = layout
    out = []
    for child in children:
        _id, props, _sub = child.value
        if "label" in props:
            out.append((props["label"].value, props["enabled"].value))
    return out


def entry_id(layout: Any, label: str) -> int:
    for child in layout[2]:
        number, props, _sub = child.value
        if "label" in props and props["label"].value == label:
            return int(number)
    raise AssertionError(f"no entry {label!r}")


def test_the_tray_registers_its_item_and_its_menu_works(
        session_bus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not sni_host_present(session_bus)  # no panel yet: pystray's backend would run
    host = Host(session_bus)
    watcher = Watcher()
    host.bus.export("/StatusNotifierWatcher", watcher)
    host.call(host.bus.request_name(WATCHER))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)
    monkeypatch.delenv("DISPLAY", raising=False)  # no X: an SNI host is all it needs
    assert sni_host_present()

    source = ScriptedSource(snapshot("locked"))
    opened: list[str] = []
    quit_called = threading.Event()
    tray = Tray(source, quit_called.set, open_url=opened.append)
    runner = threading.Thread(target=tray.run, daemon=True)
    runner.start()
    try:
        assert watcher.registered.wait(10), "the item never registered"
        service = watcher.items[0]
        item = "org.kde.StatusNotifierItem"
        assert service == f"org.kde.StatusNotifierItem-{os.getpid()}-1"
        wait_for(lambda: host.get(service, ITEM_PATH, item, "Status") == "Active",
                 "the icon shown")
        assert host.get(service, ITEM_PATH, item, "Menu") == MENU_PATH
        assert "CPS verrouillée" in host.get(service, ITEM_PATH, item, "Title")
        [(width, height, pixels)] = host.get(service, ITEM_PATH, item, "IconPixmap")
        assert width > 0 and len(pixels) == width * height * 4

        menu = "com.canonical.dbusmenu"
        revision, layout = host.send(service, MENU_PATH, menu, "GetLayout", "iias",
                                     [0, -1, []])
        assert labels(layout) == [
            ("Ouvrir la page", True), ("Déposer un document…", True),
            ("Se connecter avec e-CPS…", True),
            ("Verrouiller la session", False), ("Diagnostic", True),
            ("Paramètres", True), ("Quitter", True)]

        # The session opens: the host is told the layout changed, and Lock is enabled.
        source.set(snapshot("open"))
        wait_for(lambda: host.send(service, MENU_PATH, menu, "GetLayout", "iias",
                                   [0, -1, []])[0] > revision, "the layout updated")
        layout = host.send(service, MENU_PATH, menu, "GetLayout", "iias", [0, -1, []])[1]
        assert ("Verrouiller la session", True) in labels(layout)
        wait_for(lambda: "ouverte" in host.get(service, ITEM_PATH, item, "Title").lower(),
                 "the title updated")

        # A right-click menu entry, then a left click on the icon.
        host.send(service, MENU_PATH, menu, "Event", "isvu",
                  [entry_id(layout, "Déposer un document…"), "clicked", Variant("i", 0), 0])
        wait_for(lambda: opened == [f"{ScriptedSource.PAGE}#deposit"], "the deposit page")
        host.send(service, ITEM_PATH, item, "Activate", "ii", [0, 0])
        wait_for(lambda: len(opened) == 2, "the page")
        assert opened[1] == ScriptedSource.PAGE
        host.send(service, MENU_PATH, menu, "Event", "isvu",
                  [entry_id(layout, "Verrouiller la session"), "clicked", Variant("i", 0), 0])
        wait_for(lambda: source.locks == 1, "the session locked")

        host.send(service, MENU_PATH, menu, "Event", "isvu",
                  [entry_id(layout, "Quitter"), "clicked", Variant("i", 0), 0])
        assert quit_called.wait(10)
        runner.join(10)
        assert not runner.is_alive(), "Quit did not end the tray"
    finally:
        tray.stop()
        runner.join(10)
        with contextlib.suppress(Exception):
            host.close()
