"""The tray icon as a StatusNotifierItem over D-Bus (Linux desktops with an SNI host: KDE
Plasma, GNOME with the AppIndicator extension, Xfce's and LXQt's panels, waybar...).

pystray's X11 backend has no menu (an XEmbed icon knows clicks only), and its AppIndicator
backend needs PyGObject, which the agent's own environment (the .deb's /opt/dmp-agent, no
system site-packages) would have to build. So the agent speaks the two small protocols
itself, with dbus-fast (pinned in pyproject.toml):

- ``org.kde.StatusNotifierItem`` at ``/StatusNotifierItem`` (freedesktop's
  StatusNotifierItem draft): the icon (ARGB32 pixels), the title and tooltip, ``Activate``
  (a left click: the page), registered with ``org.kde.StatusNotifierWatcher``;
- ``com.canonical.dbusmenu`` at ``/MenuBar``: the menu the host draws on a right click,
  from `Tray.menu_entries` (the same entries and rules as on Windows), its ``Event``
  ("clicked") handing the entry to the tray's worker.

`SniIcon` has the part of ``pystray.Icon``'s surface the tray uses (``icon``, ``title``,
``visible``, ``update_menu``, ``run(setup)``, ``stop``), so `tray_backends.Driver` drives
it like any other backend. Where no SNI host runs (``sni_host_present`` is False), the tray
stays on pystray's X11 backend, and the page remains the way to everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from agent.views.tray import MenuEntry

log = logging.getLogger("agent.views.tray")

WATCHER = "org.kde.StatusNotifierWatcher"
ITEM_PATH = "/StatusNotifierItem"
MENU_PATH = "/MenuBar"
CHECK_TIMEOUT = 2.0  # seconds to ask the session bus whether an SNI host runs


def pixmap(image: Image.Image) -> list[list[Any]]:
    """``image`` as SNI's ``a(iiay)``: width, height, ARGB32 in network byte order."""
    red, green, blue, alpha = image.convert("RGBA").split()
    argb = Image.merge("RGBA", (alpha, red, green, blue)).tobytes()
    return [[image.width, image.height, argb]]


def sni_host_present(address: str | None = None) -> bool:
    """Whether this session's bus has a StatusNotifierWatcher (an SNI host's), asked once
    at start; False without a session bus or dbus-fast (Windows, macOS)."""
    address = address or os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if not address:
        return False
    try:
        from dbus_fast import BusType, Message
        from dbus_fast.aio import MessageBus
    except ImportError:
        return False

    async def ask() -> bool:
        bus = await MessageBus(bus_address=address, bus_type=BusType.SESSION).connect()
        try:
            reply = await bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
                body=[WATCHER]))
            return bool(reply.body and reply.body[0] is True)
        finally:
            bus.disconnect()

    try:
        return asyncio.run(asyncio.wait_for(ask(), CHECK_TIMEOUT))
    except Exception as error:  # no bus, a bus that does not answer: no SNI host
        log.info("tray: no StatusNotifierItem host (%s)", error)
        return False


class SniIcon:
    """The icon, its tooltip and its menu as a StatusNotifierItem. ``post(entry)`` hands a
    chosen menu entry to the tray's worker (never run on the D-Bus loop's thread)."""

    HAS_NOTIFICATION = False  # notices go through notify-send (tray._notify)

    def __init__(self, name: str, image: Image.Image, title: str,
                 entries: list[MenuEntry], post: Callable[[MenuEntry], None]) -> None:
        self.name = name
        self._image = image
        self._title = title
        self._entries = entries
        self._post = post
        self._revision = 1
        self._visible = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._item: Any = None
        self._menu: Any = None
        self.registered = threading.Event()  # the watcher accepted the item (tests wait)

    # -- pystray's surface, called from the tray's worker thread ---------------------------
    @property
    def icon(self) -> Image.Image:
        return self._image

    @icon.setter
    def icon(self, image: Image.Image) -> None:
        self._image = image
        self._soon(lambda: self._item.NewIcon())

    @property
    def title(self) -> str:
        return self._title

    @title.setter
    def title(self, title: str) -> None:
        self._title = title
        self._soon(lambda: (self._item.NewTitle(), self._item.NewToolTip()))

    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self._visible = visible
        self._soon(lambda: self._item.NewStatus(self.status))

    @property
    def status(self) -> str:
        return "Active" if self._visible else "Passive"

    def update_menu(self) -> None:
        """The entries' enabled state changed: the host asks the layout again."""
        def bump() -> None:
            self._revision += 1
            self._menu.LayoutUpdated(self._revision, 0)
        self._soon(bump)

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopped.set)

    def _soon(self, change: Callable[[], object]) -> None:
        loop = self._loop
        if loop is None or self._item is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(change)

    # -- the menu as dbusmenu sees it --------------------------------------------------------
    def layout(self) -> list[Any]:
        """``(ia{sv}av)``: the root (id 0) and, as its children, a separator where an entry
        asks for one and each entry (ids from 1, in order)."""
        from dbus_fast import Variant

        children: list[Any] = []
        for number, entry in enumerate(self._entries, 1):
            if entry.separator_before:
                children.append(Variant("(ia{sv}av)", [
                    1000 + number, {"type": Variant("s", "separator")}, []]))
            children.append(Variant("(ia{sv}av)", [number, self.properties(number), []]))
        return [0, {"children-display": Variant("s", "submenu")}, children]

    def properties(self, number: int) -> dict[str, Any]:
        from dbus_fast import Variant

        entry = self._entries[number - 1]
        # dbusmenu's labels take "_" as the mnemonic mark: a literal one is doubled.
        return {"label": Variant("s", entry.label.replace("_", "__")),
                "enabled": Variant("b", bool(entry.enabled())),
                "visible": Variant("b", True)}

    def clicked(self, number: int) -> None:
        if 1 <= number <= len(self._entries):
            self._post(self._entries[number - 1])

    def activate(self) -> None:
        """A left click: the default entry (the page)."""
        for entry in self._entries:
            if entry.default:
                self._post(entry)
                return

    # -- running ------------------------------------------------------------------------------
    def run(self, setup: Callable[[SniIcon], None] | None = None) -> None:
        """Serves the item until `stop()`; ``setup(self)`` runs once it is registered."""
        asyncio.run(self._serve(setup))

    async def _serve(self, setup: Callable[[SniIcon], None] | None) -> None:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus

        from agent.views.tray_sni_interfaces import DbusMenu, StatusNotifierItem

        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        bus = await MessageBus(bus_type=BusType.SESSION).connect()
        try:
            self._item = StatusNotifierItem(self)
            self._menu = DbusMenu(self)
            bus.export(ITEM_PATH, self._item)
            bus.export(MENU_PATH, self._menu)
            service = f"org.kde.StatusNotifierItem-{os.getpid()}-1"
            await bus.request_name(service)

            async def register() -> None:
                reply = await bus.call(Message(
                    destination=WATCHER, path="/StatusNotifierWatcher", interface=WATCHER,
                    member="RegisterStatusNotifierItem", signature="s", body=[service]))
                if reply.message_type is MessageType.ERROR:
                    log.warning("tray: the StatusNotifierWatcher refused the icon: %s",
                                reply.body)
                    return
                self.registered.set()

            pending: set[asyncio.Future[None]] = set()  # kept until done (asyncio's advice)

            def host_changed(message: Message) -> None:
                # The panel restarted: register again with its new watcher.
                if (message.member == "NameOwnerChanged" and message.body
                        and message.body[0] == WATCHER and message.body[2]):
                    again = asyncio.ensure_future(register())
                    pending.add(again)
                    again.add_done_callback(pending.discard)

            bus.add_message_handler(host_changed)
            await bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                body=[f"type='signal',member='NameOwnerChanged',arg0='{WATCHER}'"]))
            await register()
            if setup is not None:
                setup(self)
            await self._stopped.wait()
        finally:
            self._item = None
            bus.disconnect()
