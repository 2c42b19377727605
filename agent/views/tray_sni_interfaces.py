# ruff: noqa: F722, F821
"""The two D-Bus interfaces of the tray's StatusNotifierItem (agent/views/tray_sni.py).

dbus-fast reads each method's D-Bus signature from its annotations, written as the D-Bus
type strings ("s", "a(iiay)"): this module therefore does not postpone annotations (no
``from __future__ import annotations``), and mypy and ruff do not read them as Python types.
The members' CamelCase names are the protocols'. Everything here runs on the tray's D-Bus
loop; a chosen entry is only handed to the tray's worker (`SniIcon.clicked`).
"""

from typing import Any

from dbus_fast import PropertyAccess, Variant
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

from agent.views.tray_sni import MENU_PATH, pixmap


class StatusNotifierItem(ServiceInterface):
    """``org.kde.StatusNotifierItem`` (freedesktop's StatusNotifierItem draft)."""

    def __init__(self, icon: Any) -> None:
        super().__init__("org.kde.StatusNotifierItem")
        self._icon = icon

    @dbus_property(access=PropertyAccess.READ)
    def Category(self) -> "s":
        return "ApplicationStatus"

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> "s":
        return self._icon.name

    @dbus_property(access=PropertyAccess.READ)
    def Title(self) -> "s":
        return self._icon.title

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":
        return self._icon.status

    @dbus_property(access=PropertyAccess.READ)
    def WindowId(self) -> "i":
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def IconName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def IconPixmap(self) -> "a(iiay)":
        return pixmap(self._icon.icon)

    @dbus_property(access=PropertyAccess.READ)
    def ToolTip(self) -> "(sa(iiay)ss)":
        return ["", [], self._icon.title, ""]

    @dbus_property(access=PropertyAccess.READ)
    def ItemIsMenu(self) -> "b":
        return False  # a left click opens the page; the menu is on the right click

    @dbus_property(access=PropertyAccess.READ)
    def Menu(self) -> "o":
        return MENU_PATH

    @method()
    def Activate(self, x: "i", y: "i") -> None:
        self._icon.activate()

    @method()
    def SecondaryActivate(self, x: "i", y: "i") -> None:
        self._icon.activate()

    @method()
    def ContextMenu(self, x: "i", y: "i") -> None:
        pass  # the host draws the menu from /MenuBar

    @method()
    def Scroll(self, delta: "i", orientation: "s") -> None:
        pass

    @signal()
    def NewTitle(self) -> None:
        pass

    @signal()
    def NewIcon(self) -> None:
        pass

    @signal()
    def NewToolTip(self) -> None:
        pass

    @signal()
    def NewStatus(self, status: "s") -> "s":
        return status


class DbusMenu(ServiceInterface):
    """``com.canonical.dbusmenu`` (version 3): one flat menu of the tray's entries."""

    def __init__(self, icon: Any) -> None:
        super().__init__("com.canonical.dbusmenu")
        self._icon = icon

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> "u":
        return 3

    @dbus_property(access=PropertyAccess.READ)
    def TextDirection(self) -> "s":
        return "ltr"

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":
        return "normal"

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> "as":
        return []

    @method()
    def GetLayout(self, parent_id: "i", recursion_depth: "i",
                  property_names: "as") -> "u(ia{sv}av)":
        return [self._icon._revision, self._icon.layout()]

    @method()
    def GetGroupProperties(self, ids: "ai", property_names: "as") -> "a(ia{sv})":
        count = len(self._icon._entries)
        wanted = ids or list(range(1, count + 1))
        return [[number, self._icon.properties(number)] for number in wanted
                if 1 <= number <= count]

    @method()
    def GetProperty(self, id: "i", name: "s") -> "v":
        found = self._icon.properties(id) if 1 <= id <= len(self._icon._entries) else {}
        return found.get(name, Variant("s", ""))

    @method()
    def Event(self, id: "i", event_id: "s", data: "v", timestamp: "u") -> None:
        if event_id == "clicked":
            self._icon.clicked(id)

    @method()
    def EventGroup(self, events: "a(isvu)") -> "ai":
        for id, event_id, _data, _timestamp in events:
            if event_id == "clicked":
                self._icon.clicked(id)
        return []

    @method()
    def AboutToShow(self, id: "i") -> "b":
        return False

    @method()
    def AboutToShowGroup(self, ids: "ai") -> "aiai":
        return [[], []]

    @signal()
    def LayoutUpdated(self, revision: "u", parent: "i") -> "ui":
        return [revision, parent]

    @signal()
    def ItemsPropertiesUpdated(self, updated: "a(ia{sv})",
                               removed: "a(ias)") -> "a(ia{sv})a(ias)":
        return [updated, removed]
