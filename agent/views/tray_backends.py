"""pystray's backends: whether a tray can start here, and how the tray's worker drives each.

``Driver`` changes the icon through pystray's public API (Windows, macOS, GTK, AppIndicator);
``X11Driver`` works around pystray 0.19.5's X11 backend (see its docstring). pystray and Xlib
are imported only inside these functions, so that importing this module needs no display.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image

# The tray's one logger, whichever of its modules logs (docs/agent-tray.md).
log = logging.getLogger("agent.views.tray")


class TrayUnavailable(RuntimeError):
    """No tray here: no display, or pystray could not start. The agent runs on without it."""


def display_available(environ: Mapping[str, str] | None = None,
                      platform: str | None = None) -> bool:
    """Whether a desktop may show a tray: always on Windows and macOS, on Linux when
    ``DISPLAY`` (X11, XWayland) or ``WAYLAND_DISPLAY`` is set."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform in ("win32", "darwin"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def import_pystray() -> Any:
    if not display_available():
        raise TrayUnavailable("no display (DISPLAY is not set)")  # for the log only
    try:
        import pystray
    except Exception as error:  # Xlib raises its own errors for a display it cannot open
        raise TrayUnavailable(f"pystray : {error}") from error
    return pystray


class Driver:
    """Changes the icon through pystray's public API, for the backends whose setters may be
    called from another thread (Windows, macOS, GTK, AppIndicator)."""

    poll: float | None = None  # how often ``tick`` runs (None: never)

    def __init__(self, icon: Any) -> None:
        self.icon = icon

    def show(self) -> None:
        self.icon.visible = True

    def set_image(self, image: Image.Image) -> None:
        self.icon.icon = image

    def set_title(self, title: str) -> None:
        self.icon.title = title

    def update_menu(self) -> None:
        self.icon.update_menu()

    def tick(self) -> None:
        pass

    def stop(self) -> None:
        self.icon.stop()

    def close(self) -> None:
        pass


class X11Driver(Driver):
    """Changes pystray's X11 icon (0.19.5) without touching its X connection from our thread.

    pystray's X11 setters, called from another thread, write to the connection its loop is
    reading, and python-xlib can then lose a reply: the loop hangs in ``get_geometry`` while
    the caller waits for the loop (seen here about one run in five). So the worker sets the
    icon's image or title attribute, then asks pystray's loop to apply it with the very
    ClientMessage pystray's own setters send (atoms ``_PYSTRAY__UPDATE_ICON``, ...), but over
    a connection of its own, and waits for the loop's answer on pystray's result queue.

    It also docks the icon whenever a tray host (the ``_NET_SYSTEM_TRAY_Sn`` selection owner)
    is there: pystray docks only when shown and when its tray host goes away, so an agent
    started at login before the panel, or a panel restarted, would stay invisible.
    """

    ANSWER_TIMEOUT = 10.0

    def __init__(self, icon: Any, poll: float, wake: Callable[[], None] | None = None) -> None:
        import Xlib.display  # pystray's dependency on Linux; imported only under X11
        import Xlib.X

        super().__init__(icon)
        self._display = Xlib.display.Display()
        screen = self._display.get_default_screen()
        self._selection = self._display.intern_atom(f"_NET_SYSTEM_TRAY_S{screen}")
        self._window = self._display.create_resource_object("window", icon._window.id)
        self._shown = False
        self._watch: Any = None
        # A tray host that starts announces itself with a MANAGER message on the root window
        # (freedesktop System Tray spec): wait for it instead of looking every few seconds,
        # so that an idle agent does not wake up. Polling stays as the fallback.
        self.poll = poll
        if wake is not None:
            try:
                self._watch = Xlib.display.Display()
                self._watch.screen().root.change_attributes(
                    event_mask=Xlib.X.StructureNotifyMask)
                self._watch.flush()
                # Not a bound method: the thread must not keep the icon alive (pystray's
                # __del__ would then run late, on a closed display).
                threading.Thread(target=_watch_tray_hosts,
                                 args=(self._watch, self._selection, wake), daemon=True,
                                 name="tray-host-watch").start()
                self.poll = None
            except Exception:
                log.warning("tray: cannot watch for tray hosts; looking every %.0f s", poll,
                            exc_info=True)


    def _call(self, method: str) -> None:
        import Xlib.protocol.event
        import Xlib.X

        message = Xlib.protocol.event.ClientMessage(
            window=self._window,
            client_type=self._display.intern_atom(f"_PYSTRAY_{method.upper()}"),
            data=(32, (Xlib.X.CurrentTime, 0, 0, 0, 0)))
        self._window.send_event(message, event_mask=Xlib.X.NoEventMask)
        self._display.flush()
        try:
            answer = self.icon._queue.get(timeout=self.ANSWER_TIMEOUT)
        except queue.Empty:
            log.warning("tray: the icon's loop did not answer %s", method)
            return
        if answer is not True:
            log.warning("tray: %s failed", method, exc_info=answer[1])

    def host_present(self) -> bool:
        import Xlib.X

        return bool(self._display.get_selection_owner(self._selection) != Xlib.X.NONE)

    def show(self) -> None:
        if self.host_present():  # else pystray would log a traceback; tick() shows it later
            self._call("_update_icon")  # docks, then draws
            self._shown = True

    def set_image(self, image: Image.Image) -> None:
        # Not pystray's _update_icon: it sends the tray host a new dock request each time,
        # and trayer, re-embedding the icon again and again, shrinks it to one pixel wide.
        # Drop pystray's scaled copy and have the X server send the loop an Expose event:
        # the loop redraws from the new image.
        self.icon._icon = image
        self.icon._icon_data = None
        self._window.clear_area(exposures=True)
        self._display.flush()

    def set_title(self, title: str) -> None:
        self.icon._title = title
        self._call("_update_title")

    def update_menu(self) -> None:
        pass  # no menu on X11

    def tick(self) -> None:
        if not self.host_present():
            return
        if not self._shown:
            log.info("tray: a tray host appeared; showing the icon")
            self.show()
        elif self.icon._systray_manager is None:
            log.info("tray: docking again in the new tray host")
            self._call("_update_icon")

    def stop(self) -> None:
        self._call("_stop")

    def close(self) -> None:
        if self._watch is not None:
            with contextlib.suppress(Exception):
                self._watch.close()
        self._display.close()


def is_x11(icon: Any) -> bool:
    """Whether ``icon`` (an instance or the class) is pystray's X11 backend."""
    kind = icon if isinstance(icon, type) else type(icon)
    return kind.__module__.endswith("._xorg")


def _watch_tray_hosts(watch: Any, selection: int, wake: Callable[[], None]) -> None:
    """Calls ``wake()`` each time a tray host announces itself (MANAGER on the root)."""
    import Xlib.X

    manager = watch.intern_atom("MANAGER")
    try:
        while True:
            event = watch.next_event()
            if (event.type == Xlib.X.ClientMessage and event.client_type == manager
                    and event.data[1][1] == selection):
                wake()
    except Exception:  # the connection closed: the tray is stopping
        return


def driver_for(icon: Any, poll: float, wake: Callable[[], None] | None = None) -> Driver:
    return X11Driver(icon, poll, wake) if is_x11(icon) else Driver(icon)


def listen_for_clicks(icon: Any) -> None:
    """X11 only, on the thread that then runs pystray's loop: let clicks reach pystray.

    pystray 0.19.5's X11 icon window asks for exposure and structure events only, so its
    handler of a left click (the default action) never runs (moses-palmer/pystray#151). An
    event mask belongs to the X client that sets it: it must be set on pystray's connection.
    """
    import Xlib.X

    icon._window.change_attributes(
        event_mask=Xlib.X.ExposureMask | Xlib.X.StructureNotifyMask | Xlib.X.ButtonPressMask)
    icon._display.flush()


_LATIN1 = str.maketrans({"—": "-", "–": "-", "…": "...", "’": "'", "œ": "oe", "Œ": "OE"})


def x11_title(text: str) -> str:
    """``text`` as the X11 icon window's name can carry it: python-xlib writes WM_NAME as
    Latin-1 and raises on anything else (an em dash, an ellipsis)."""
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")
