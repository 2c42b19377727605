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
(``_X11Driver`` says why), and works around two bugs of pystray 0.19.5's X11 backend: clicks
never reach it, and each image change re-docks the icon, which trayer shrinks to a sliver.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from agent.logs import _IDENTIFIER
from agent.views.tray_icons import Colour, draw_icon

log = logging.getLogger(__name__)

APP_NAME = "Agent DMP"
# Windows keeps 127 characters of a tooltip (NOTIFYICONDATA.szTip); keep every platform alike.
TOOLTIP_MAX = 127
MASK = "[masqué]"


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


class TrayState(enum.Enum):
    """What the icon shows, from the most to the least urgent (see ``tray_state``)."""

    ERROR = "error"
    DEPOSITS_PENDING = "deposits-pending"
    PATIENT_LOADED = "patient-loaded"
    SESSION_OPEN = "session-open"
    CPS_LOCKED = "cps-locked"
    NO_CARD = "no-card"


@dataclass(frozen=True)
class Look:
    colour: Colour
    glyph: str


LOOKS: dict[TrayState, Look] = {
    TrayState.ERROR: Look((200, 30, 30), "exclamation"),
    TrayState.DEPOSITS_PENDING: Look((120, 70, 190), "arrow-up"),
    TrayState.PATIENT_LOADED: Look((25, 100, 200), "person"),
    TrayState.SESSION_OPEN: Look((30, 140, 60), "check"),
    TrayState.CPS_LOCKED: Look((230, 145, 0), "padlock"),
    TrayState.NO_CARD: Look((110, 118, 129), "card"),
}


# -- the state, the tooltip and the notices: pure functions of the snapshot ------------------
def _part(snapshot: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = snapshot.get(key)
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def pending_count(snapshot: Mapping[str, Any]) -> int:
    """Deposits waiting to be sent, the one being sent included."""
    outbox = _part(snapshot, "outbox")
    pending = _int(outbox.get("pending"))
    return max(pending, 1) if outbox.get("sending") else pending


def _error_text(snapshot: Mapping[str, Any]) -> str:
    """The one sentence the ERROR state shows, or "" when nothing needs the user."""
    problem = snapshot.get("problem")
    if isinstance(problem, str) and problem.strip():
        return problem.strip()
    cards = _part(snapshot, "cards")
    if cards.get("service") == "down":
        return "Service des cartes arrêté (pcscd)"
    slots = cards.get("slots")
    for slot in slots if isinstance(slots, list) else []:
        if not isinstance(slot, Mapping):
            continue
        status = slot.get("status")
        if status == "reader-error":
            return f"Lecteur en erreur : {slot.get('reader') or '?'}"
        if slot.get("kind") == "cps" and status == "blocked":
            return "CPS bloquée : débloquez-la avec son code PUK"
        if slot.get("kind") == "cps" and status == "expired":
            return "CPS expirée : demandez son renouvellement"
    failed = _int(_part(snapshot, "outbox").get("failed"))
    if failed:
        return _refused(failed)
    return ""


def tray_state(snapshot: Mapping[str, Any]) -> TrayState:
    """The icon's state. Precedence, most urgent first:

    1. ERROR: ``problem`` is set, the card service is down, a reader is in error, the CPS is
       blocked or expired, or a deposit was refused (the user must act);
    2. DEPOSITS_PENDING: a deposit waits or is being sent; it shows over the session and
       patient states, and over "no card", since the deposits leave only while a session is
       open: the user must not believe they are gone;
    3. PATIENT_LOADED: a session is open and the patient's dossier is ready;
    4. SESSION_OPEN;
    5. CPS_LOCKED: a CPS is in a reader without a session (PIN to type, or being checked);
    6. NO_CARD.
    """
    if _error_text(snapshot):
        return TrayState.ERROR
    if pending_count(snapshot):
        return TrayState.DEPOSITS_PENDING
    session = _part(snapshot, "session").get("state")
    if session == "open":
        if _part(snapshot, "patient").get("state") == "ready":
            return TrayState.PATIENT_LOADED
        return TrayState.SESSION_OPEN
    if session in ("locked", "opening"):
        return TrayState.CPS_LOCKED
    return TrayState.NO_CARD


def _deposits(count: int) -> str:
    return f"{count} dépôt{'s' if count > 1 else ''}"


# G15 profession codes whose holders are addressed as "Dr": physicians and dentists.
_DOCTOR_PROFESSIONS = {"10", "40"}


def professional_name(professional: Mapping[str, Any]) -> str:
    """ "Dr Claire MARTIN" for a physician, "Paul DURAND" for a pharmacist."""
    name = " ".join(str(professional.get(k) or "").strip() for k in ("firstName", "lastName"))
    name = name.strip()
    profession = str(professional.get("profession") or "").strip().lower()
    if name and (profession in _DOCTOR_PROFESSIONS or profession.startswith("médecin")):
        return f"Dr {name}"
    return name


def _patient_names(snapshot: Mapping[str, Any]) -> list[str]:
    """Every name of the patient and of the card's beneficiaries, to keep out of texts."""
    patient = _part(snapshot, "patient")
    people: list[Mapping[str, Any]] = [_part(patient, "patient")]
    beneficiaries = patient.get("beneficiaries")
    people += [b for b in beneficiaries if isinstance(b, Mapping)] if isinstance(
        beneficiaries, list) else []
    names: set[str] = set()
    for person in people:
        for key in ("firstName", "lastName", "birthName", "usedName"):
            value = person.get(key)
            if isinstance(value, str):
                names.update(part for part in re.split(r"[\s,]+", value) if len(part) >= 2)
    return sorted(names, key=len, reverse=True)


# A NIR written in groups, as on the Vitale card: "2 85 01 75 123 456 78".
_SPACED_NIR = re.compile(
    r"(?<![0-9])[1-478] [0-9]{2} [0-9]{2} (?:[0-9]{2}|2[ABab]) [0-9]{3} [0-9]{3}(?: [0-9]{2})?"
    r"(?![0-9])")


def scrub(text: str, snapshot: Mapping[str, Any]) -> str:
    """``text`` without NIR/INS-shaped numbers nor the current patient's names.

    The service's texts are meant to be free of them already: this is a second line of
    defence, because a tooltip or a notification is read over the user's shoulder.
    """
    text = _SPACED_NIR.sub(MASK, _IDENTIFIER.sub(MASK, text))
    for name in _patient_names(snapshot):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", MASK, text, flags=re.IGNORECASE)
    return text


def _clip(text: str) -> str:
    return text if len(text) <= TOOLTIP_MAX else text[: TOOLTIP_MAX - 1].rstrip() + "…"


def tray_tooltip(snapshot: Mapping[str, Any]) -> str:
    """The icon's tooltip, in French (short: Windows keeps 127 characters).

    First line: "Agent DMP — " and the error if there is one, else the session; then the
    patient's step (never their name), the pending deposits and the refused ones. The texts
    that come from the service (``problem``, ``session.error``) go through ``scrub``; the
    professional's name is shown on purpose.
    """
    session = _part(snapshot, "session")
    state = session.get("state")
    if state == "open":
        who = professional_name(_part(session, "professional"))
        headline = f"session ouverte : {who}" if who else "session ouverte"
    elif state == "opening":
        headline = "ouverture de la session…"
    elif state == "locked":
        headline = "CPS verrouillée : saisissez le code"
    else:
        headline = "insérez votre carte CPS"
    error = scrub(_error_text(snapshot), snapshot)
    lines = [f"{APP_NAME} — {error or headline}"]
    if error:
        lines.append(headline[0].upper() + headline[1:])
    session_error = session.get("error")
    if isinstance(session_error, str) and session_error.strip() and state != "open":
        lines.append(scrub(session_error.strip(), snapshot))
    if state == "open":
        patient = _part(snapshot, "patient")
        step = {
            "ready": "Dossier patient ouvert",
            "loading": "Lecture de la carte Vitale…",
            "choosing": "Choisissez le bénéficiaire dans la page",
            "error": "Carte Vitale : voir la page",
        }.get(str(patient.get("state")))
        mode = _part(patient, "accessMode").get("code")
        if step and mode:
            step += " (bris de glace)" if mode == "BRIS_DE_GLACE" else " (centre 15)"
        if step:
            lines.append(step)
    pending = pending_count(snapshot)
    if pending:
        lines.append(f"{_deposits(pending)} en attente")
    failed = _int(_part(snapshot, "outbox").get("failed"))
    if failed and error != _refused(failed):
        lines.append(_refused(failed))
    return _clip("\n".join(lines))


def _refused(failed: int) -> str:
    return f"{_deposits(failed)} {'refusés' if failed > 1 else 'refusé'} : voir la page"


def notice_text(data: Mapping[str, Any], snapshot: Mapping[str, Any]) -> tuple[str, str]:
    """(title, text) of a ``notice`` event for the desktop, scrubbed."""
    title = str(data.get("title") or APP_NAME)
    text = str(data.get("text") or "")
    return scrub(title, snapshot), scrub(text, snapshot)


@functools.lru_cache(maxsize=32)
def icon_image(state: TrayState, count: int = 0) -> Image.Image:
    """The 64x64 image of ``state``; DEPOSITS_PENDING carries ``count`` in a badge."""
    look = LOOKS[state]
    badge = min(count, 10) if state is TrayState.DEPOSITS_PENDING else 0
    return draw_icon(look.colour, look.glyph, badge)


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


def _import_pystray() -> Any:
    if not display_available():
        raise TrayUnavailable("pas d'affichage / no display (DISPLAY is not set)")
    try:
        import pystray
    except Exception as error:  # Xlib raises its own errors for a display it cannot open
        raise TrayUnavailable(f"pystray : {error}") from error
    return pystray


class _Driver:
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


class _X11Driver(_Driver):
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

        return self._display.get_selection_owner(self._selection) != Xlib.X.NONE

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


def _is_x11(icon: Any) -> bool:
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


def _driver_for(icon: Any, poll: float, wake: Callable[[], None] | None = None) -> _Driver:
    return _X11Driver(icon, poll, wake) if _is_x11(icon) else _Driver(icon)


def _listen_for_clicks(icon: Any) -> None:
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
        return _part(self._snapshot, "session").get("state") == "open"

    # -- menu ----------------------------------------------------------------------------
    def menu_entries(self) -> list[MenuEntry]:
        return [
            MenuEntry("Ouvrir la page / Open the page", lambda: self.open_page(""),
                      default=True),
            MenuEntry("Déposer un document… / Deposit a document…",
                      lambda: self.open_page("deposit")),
            MenuEntry("Verrouiller la session / Lock the session", self._source.lock_session,
                      enabled=self.session_open),
            MenuEntry("Diagnostic / Diagnostics", lambda: self.open_page("diagnostics")),
            MenuEntry("Paramètres / Settings", lambda: self.open_page("settings")),
            MenuEntry("Quitter / Quit", self._quit_chosen, separator_before=True),
        ]

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
        pystray = _import_pystray()
        if self._stop_requested.is_set():
            return
        unsubscribe = self._source.subscribe(self._on_event)
        try:
            self._shown = state, count, tooltip = self.read()
            self._x11 = _is_x11(pystray.Icon)
            try:
                self.icon = pystray.Icon(self._name, icon_image(state, count),
                                         self._title(tooltip),
                                         menu=self._pystray_menu(pystray))
            except Exception as error:
                raise TrayUnavailable(f"pystray : {error}") from error
            if self._x11:
                _listen_for_clicks(self.icon)
            log.info("tray: started (%s backend)", type(self.icon).__module__.rsplit(".")[-1])
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
            driver = _driver_for(icon, self._dock_retry,
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

    def _handle(self, icon: Any, driver: _Driver, batch: list[object]) -> bool:
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

    def _apply(self, driver: _Driver) -> None:
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
