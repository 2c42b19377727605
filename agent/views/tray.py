"""The tray icon (pystray): a view over the running agent's state, like the page.

The icon shows one of six states (``TrayState``) with its own colour and glyph, its tooltip
says what the agent is doing in French, its menu opens the local page at the right section
or locks the session, and the service's ``notice`` events become desktop notifications.
Everything it does goes through the *state source* (``StateSource``, which
``agent.core.service.AgentService`` implements): the tray holds no state of its own.

pystray's X11 backend opens the display when it is imported and raises without one, so
pystray is imported only by ``Tray.run``, and only when a display exists: this module imports
fine on a headless machine. See docs/agent-tray.md.

Threads: pystray's loop runs on the caller's thread (the main thread of ``dmp-agent run``);
one worker thread of ours does everything else, in order: it applies the service's events
to the icon, runs the menu's actions (so that a slow ``lock_session`` never freezes the
icon) and finally stops the icon. On X11 the worker never uses pystray's X connection
(``tray_backends.X11Driver`` says why), and works around two bugs of pystray 0.19.5's X11
backend: clicks never reach it, and each image change re-docks the icon, which trayer shrinks
to a sliver. What the icon shows is computed in ``tray_state``; the backends are driven from
``tray_backends``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import shutil
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.errors import AgentError
from agent.i18n import _
from agent.views.tray_backends import (
    Driver,
    TrayUnavailable,
    display_available,
    driver_for,
    import_pystray,
    is_x11,
    listen_for_clicks,
    x11_title,
)
from agent.views.tray_sni import sni_host_present
from agent.views.tray_state import (
    APP_NAME,
    LOOKS,
    MASK,
    TOOLTIP_MAX,
    Look,
    TrayState,
    icon_image,
    notice_text,
    pending_count,
    professional_name,
    scrub,
    session_is_open,
    tray_state,
    tray_tooltip,
)

__all__ = [
    "APP_NAME",
    "LOOKS",
    "MASK",
    "TOOLTIP_MAX",
    "Look",
    "MenuEntry",
    "StateSource",
    "Tray",
    "TrayState",
    "TrayUnavailable",
    "display_available",
    "icon_image",
    "notice_text",
    "pending_count",
    "professional_name",
    "run_tray",
    "scrub",
    "stop",
    "tray_state",
    "tray_tooltip",
    "x11_title",
]

log = logging.getLogger(__name__)


class StateSource(Protocol):
    """What the tray needs from the agent (``agent.core.service.AgentService`` offers it)."""

    def snapshot(self) -> dict[str, Any]:
        """The whole state, as ``GET /api/status`` answers it (docs/agent-local-api.md)."""
        ...

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
        """Calls ``callback(kind, data)`` on every event; returns the unsubscribe function."""
        ...

    def lock_session(self) -> None:
        """Ends the professional's session; the CPS stays in the reader, locked."""
        ...

    def page_url(self, fragment: str = "") -> str:
        """The local page's URL with the user's token, at ``#fragment`` when given."""
        ...


# -- the menu -------------------------------------------------------------------------------
def _always() -> bool:
    return True


@dataclass(frozen=True)
class MenuEntry:
    """One menu entry, independent of pystray (so that it is testable without a display).

    Calling it runs the action only while ``enabled()`` holds: a stale menu can never lock
    a session that is not open.
    """

    label: str
    action: Callable[[], None]
    enabled: Callable[[], bool] = _always
    default: bool = False
    separator_before: bool = False

    def __call__(self) -> None:
        if self.enabled():
            self.action()


# -- the tray --------------------------------------------------------------------------------
_STOP = object()
_REFRESH = object()
_TRAY_HOST = object()  # a tray host appeared: dock


class Tray:
    """The tray icon over ``source``. ``run()`` blocks in pystray's loop until ``stop()``
    (from any thread, or the Quit entry, which calls ``quit`` first).

    ``open_url`` opens the page in the browser (``webbrowser.open``; tests give their own);
    ``dock_retry`` is how often, in seconds, the X11 backend looks for a tray host to dock in
    when it cannot wait for the host's MANAGER announcement instead.
    """

    def __init__(self, source: StateSource, quit: Callable[[], None], *,
                 open_url: Callable[[str], object] = webbrowser.open,
                 name: str = "dmp-agent", dock_retry: float = 2.0) -> None:
        self._source = source
        self._quit = quit
        self._open_url = open_url
        self._name = name
        self._dock_retry = dock_retry
        self._events: queue.Queue[object] = queue.Queue()
        self._snapshot: dict[str, Any] = {}
        self._shown: tuple[TrayState, int, str] | None = None
        self._loop_ended = threading.Event()
        self._stop_requested = threading.Event()
        self._worker: threading.Thread | None = None
        self._x11 = False
        self.icon: Any = None  # the pystray.Icon while running (tests look at it)

    # -- state ---------------------------------------------------------------------------
    @property
    def snapshot(self) -> dict[str, Any]:
        """The last snapshot the tray read from its source."""
        return self._snapshot

    def read(self) -> tuple[TrayState, int, str]:
        """Reads the source's snapshot; returns the (state, pending count, tooltip) to show."""
        self._snapshot = self._source.snapshot()
        return (tray_state(self._snapshot), pending_count(self._snapshot),
                tray_tooltip(self._snapshot))

    def session_open(self) -> bool:
        return session_is_open(self._snapshot)

    # -- menu ----------------------------------------------------------------------------
    def menu_entries(self) -> list[MenuEntry]:
        return [
            MenuEntry(_("Open the page"), lambda: self.open_page(""), default=True),
            MenuEntry(_("Deposit a document…"), lambda: self.open_page("deposit")),
            MenuEntry(_("Log in with e-CPS…"), self._ecps_login,
                      enabled=lambda: not self.session_open()),
            MenuEntry(_("Lock the session"), self._source.lock_session,
                      enabled=self.session_open),
            MenuEntry(_("Diagnostics"), lambda: self.open_page("diagnostics")),
            MenuEntry(_("Settings"), lambda: self.open_page("settings")),
            MenuEntry(_("Quit"), self._quit_chosen, separator_before=True),
        ]

    def _ecps_login(self) -> None:
        """Start the e-CPS login for the professional last logged in with it here, and
        show the page where the binding message and the countdown are (or where the
        national id is asked, when none is known yet: docs/psc.md)."""
        start = getattr(self._source, "login_ecps", None)
        if start is not None:
            try:
                start()
            except AgentError as error:  # not configured, no id known yet: the page says it
                log.info("tray: e-CPS login not started (%s)", error.code)
        self.open_page("session")

    def open_page(self, fragment: str = "") -> None:
        # The URL carries the user's token: it is never logged.
        try:
            opened = self._open_url(self._source.page_url(fragment))
        except Exception:
            log.warning("tray: opening the page failed (#%s)", fragment, exc_info=True)
            return
        if opened is False:
            log.warning("tray: no browser could open the page (#%s)", fragment)

    def _quit_chosen(self) -> None:
        try:
            self._quit()
        finally:
            self.stop()

    def _pystray_menu(self, pystray: Any) -> Any:
        items: list[Any] = []
        for entry in self.menu_entries():
            if entry.separator_before:
                items.append(pystray.Menu.SEPARATOR)
            items.append(pystray.MenuItem(
                entry.label, self._posting(entry), default=entry.default,
                enabled=lambda _item, entry=entry: entry.enabled()))
        return pystray.Menu(*items)

    def _posting(self, entry: MenuEntry) -> Callable[[Any, Any], None]:
        # pystray calls menu actions on its loop thread: hand them to the worker.
        def action(_icon: Any, _item: Any) -> None:
            self._events.put(entry)
        return action

    # -- running -------------------------------------------------------------------------
    def run(self) -> None:
        """Shows the icon and blocks in pystray's loop until ``stop()``.

        Raises ``TrayUnavailable`` when there is no display or pystray cannot start.
        """
        # A desktop with a StatusNotifierItem host gets the icon with its menu there
        # (tray_sni); any other, pystray's backend (on X11: no menu, a click opens the page).
        sni = sys.platform == "linux" and sni_host_present()
        pystray = None if sni else import_pystray()
        if self._stop_requested.is_set():
            return
        unsubscribe = self._source.subscribe(self._on_event)
        try:
            self._shown = state, count, tooltip = self.read()
            if pystray is None:
                from agent.views.tray_sni import SniIcon

                self.icon = SniIcon(self._name, icon_image(state, count), tooltip,
                                    self.menu_entries(), self._events.put)
                log.info("tray: started (StatusNotifierItem)")
            else:
                self._x11 = is_x11(pystray.Icon)
                try:
                    self.icon = pystray.Icon(self._name, icon_image(state, count),
                                             self._title(tooltip),
                                             menu=self._pystray_menu(pystray))
                except Exception as error:
                    raise TrayUnavailable(f"pystray : {error}") from error
                if self._x11:
                    listen_for_clicks(self.icon)
                log.info("tray: started (%s backend)",
                         type(self.icon).__module__.rsplit(".")[-1])
            self.icon.run(setup=self._start_worker)
        finally:
            self._loop_ended.set()
            if self._x11 and self.icon is not None:
                # The loop is over: pystray's __del__ must not ask it to stop (it would wait
                # for an answer forever).
                self.icon._running = False
            self._events.put(_STOP)
            unsubscribe()
            if self._worker is not None:
                self._worker.join(timeout=5)
                if self._worker.is_alive():
                    log.warning("tray: the worker did not end with the icon")
            log.info("tray: stopped")

    def stop(self) -> None:
        """Removes the icon and ends ``run()``; returns at once (safe from any thread and
        from a signal handler)."""
        self._stop_requested.set()
        self._events.put(_STOP)

    def refresh(self) -> None:
        """Re-reads the source's snapshot and updates the icon (it also does so by itself
        on every event of the source)."""
        if self.icon is None:
            self.read()
        else:
            self._events.put(_REFRESH)

    def _title(self, tooltip: str) -> str:
        return x11_title(tooltip) if self._x11 else tooltip

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        # Called on a service thread: only queue it.
        self._events.put((kind, data))

    def _start_worker(self, icon: Any) -> None:
        self._worker = threading.Thread(target=self._work, args=(icon,), name="tray",
                                        daemon=True)
        self._worker.start()

    def _work(self, icon: Any) -> None:
        try:
            driver = driver_for(icon, self._dock_retry,
                                 functools.partial(self._events.put, _TRAY_HOST))
        except Exception:
            log.exception("tray: cannot drive the icon; the tray stops, the agent carries on")
            icon.stop()
            return
        try:
            driver.show()
            while True:
                try:
                    first = self._events.get(timeout=driver.poll)
                except queue.Empty:
                    driver.tick()
                    continue
                batch = [first]
                while True:
                    try:
                        batch.append(self._events.get_nowait())
                    except queue.Empty:
                        break
                if self._handle(icon, driver, batch):
                    break
        except Exception:
            log.exception("tray: the worker failed; the tray stops, the agent carries on")
        finally:
            if not self._loop_ended.is_set():
                driver.stop()
            with contextlib.suppress(Exception):  # the X server may be gone (logout)
                driver.close()

    def _handle(self, icon: Any, driver: Driver, batch: list[object]) -> bool:
        """Applies a batch of queued items in order; True when the tray must stop."""
        stale = False
        for item in batch:
            if item is _STOP:
                return True
            if item is _REFRESH:
                stale = True
            elif item is _TRAY_HOST:
                driver.tick()
            elif isinstance(item, MenuEntry):
                if stale:  # the entry's enabled() must see the newest state
                    self._apply(driver)
                    stale = False
                try:
                    item()
                except Exception:  # e.g. the session ended just before Lock was chosen
                    log.warning("tray: %s failed", item.label, exc_info=True)
            elif isinstance(item, tuple) and item[0] == "notice":
                self._notify(icon, item[1] if isinstance(item[1], Mapping) else {})
            else:
                stale = True
        if stale:
            self._apply(driver)
        return False

    def _apply(self, driver: Driver) -> None:
        was_open = self.session_open()
        state, count, tooltip = self.read()
        shown = self._shown
        if shown is None or shown[:2] != (state, count):
            driver.set_image(icon_image(state, count))
        if shown is None or shown[2] != tooltip:
            driver.set_title(self._title(tooltip))
        self._shown = (state, count, tooltip)
        if was_open != self.session_open():
            driver.update_menu()

    def _notify(self, icon: Any, data: Mapping[str, Any]) -> None:
        title, text = notice_text(data, self._snapshot)
        if getattr(icon, "HAS_NOTIFICATION", False):
            try:
                icon.notify(text, title)
                return
            except Exception:
                log.warning("tray: the backend's notification failed", exc_info=True)
        notify_send = shutil.which("notify-send")
        if notify_send:
            urgency = {"error": "critical", "warning": "normal"}.get(
                str(data.get("level")), "low")
            try:
                subprocess.run([notify_send, f"--app-name={APP_NAME}", f"--urgency={urgency}",
                                "--", title, text], check=True, timeout=10,
                               capture_output=True)
                return
            except (OSError, subprocess.SubprocessError) as error:
                # No notification server (a bare window manager): the log keeps the notice.
                log.info("tray: notify-send failed: %s", error)
        log.info("notification: %s — %s", title, text)


# -- for dmp-agent run -----------------------------------------------------------------------
_current: Tray | None = None
_stop_pending = False
_current_lock = threading.Lock()


def run_tray(service: StateSource, quit: Callable[[], None], **options: Any) -> None:
    """Runs the tray over ``service`` on this thread until ``stop()`` or its Quit entry.

    Raises ``TrayUnavailable`` (at once) without a display: the caller carries on headless.
    """
    global _current, _stop_pending
    tray = Tray(service, quit, **options)
    with _current_lock:
        _current = tray
        if _stop_pending:  # stop() came first (a signal while the agent was starting)
            _stop_pending = False
            tray.stop()
    try:
        tray.run()
    finally:
        with _current_lock:
            if _current is tray:
                _current = None


def stop() -> None:
    """Stops the tray ``run_tray`` runs; called before ``run_tray``, it makes it return at
    once."""
    global _stop_pending
    with _current_lock:
        if _current is None:
            _stop_pending = True
        else:
            _current.stop()
