"""A throw-away X desktop for the tray tests: Xvfb, Debian's trayer as the tray host, and
optionally a D-Bus session with dunst as the notification server; plus what the tests look
with (python-xlib, pystray's own dependency): the window tree, screenshots, clicks.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

T = TypeVar("T")

ARTEFACTS = Path(__file__).resolve().parent.parent / "artefacts"


def artefacts() -> Path:
    """tests/artefacts/ (git-ignored), created on first use."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


def _die_with_us() -> None:
    """In the child, before exec: SIGTERM when the test process dies (a killed pytest must
    not leave X servers behind on a shared machine)."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 15.0) -> T:
    """Polls ``predicate`` until it returns a truthy value; fails the test after ``timeout``
    (a generous bound for a loaded CI machine, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Xvfb:
    """Xvfb on a display number it picks itself (``-displayfd``), so parallel runs never
    collide; no TCP listener; no reset when the last client leaves (a test connecting
    during a reset is refused)."""

    def __init__(self, width: int = 480, height: int = 120) -> None:
        self.size = (width, height)
        self.display = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Xvfb:
        read, write = os.pipe()
        self._process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-noreset", "-screen", "0",
             f"{self.size[0]}x{self.size[1]}x24"],
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_us)
        os.close(write)
        number = b""
        try:
            while not number.endswith(b"\n"):
                ready, _, _ = select.select([read], [], [], 15)
                chunk = os.read(read, 16) if ready else b""
                if not chunk:
                    raise RuntimeError("Xvfb did not start")
                number += chunk
        finally:
            os.close(read)
        self.display = f":{number.decode().strip()}"
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


def connect(display: str) -> Any:
    import Xlib.display

    return Xlib.display.Display(display)


def tray_host_present(display: str) -> bool:
    import Xlib.X

    x = connect(display)
    try:
        atom = x.intern_atom(f"_NET_SYSTEM_TRAY_S{x.get_default_screen()}")
        return x.get_selection_owner(atom) != Xlib.X.NONE
    finally:
        x.close()


class Trayer:
    """Debian's trayer (a GTK 2 tray host), as a panel along the top-left of the screen."""

    def __init__(self, display: str) -> None:
        self.display = display
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Trayer:
        self._process = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "left", "--widthtype", "request",
             "--height", "32", "--SetDockType", "false", "--SetPartialStrut", "false",
             "--transparent", "false"],
            env={**os.environ, "DISPLAY": self.display},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_us)
        wait_for(lambda: tray_host_present(self.display), "trayer to own the tray selection")
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
            try:
                wait_for(lambda: not tray_host_present(self.display), "trayer to go")
            except AssertionError as error:
                raise AssertionError(f"{error}; the tray selection's owner: "
                                     f"{self._owner()}") from None

    def _owner(self) -> str:
        """Who owns the tray selection, for the failure message."""
        x = connect(self.display)
        try:
            owner = x.get_selection_owner(
                x.intern_atom(f"_NET_SYSTEM_TRAY_S{x.get_default_screen()}"))
            return f"{owner} {wm_class(owner) if owner else ''}"
        finally:
            x.close()


def windows(x: Any) -> Iterator[Any]:
    """Every window of the screen, depth first."""
    import Xlib.error

    stack = [x.screen().root]
    while stack:
        window = stack.pop()
        yield window
        with contextlib.suppress(Xlib.error.XError):  # gone while we looked
            stack.extend(window.query_tree().children)


def wm_class(window: Any) -> tuple[str, ...]:
    try:
        return tuple(window.get_wm_class() or ())
    except Exception:  # the window went away while we looked
        return ()


def find_window(x: Any, class_name: str) -> Any | None:
    """The first window whose WM_CLASS names ``class_name``."""
    return next((w for w in windows(x) if class_name in wm_class(w)), None)


def docked_in_trayer(x: Any, window: Any) -> bool:
    """Whether ``window`` sits inside trayer's panel (XEMBED reparents it there)."""
    import Xlib.error

    root = x.screen().root.id
    current = window
    try:
        while current.id != root:
            if "trayer" in wm_class(current):
                return True
            current = current.query_tree().parent
    except Xlib.error.XError:  # a window of the chain went away while we looked
        pass
    return False


def screen_box(x: Any, window: Any) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of ``window`` on the screen."""
    geometry = window.get_geometry()
    origin = window.translate_coords(x.screen().root, 0, 0)
    left, top = -origin.x, -origin.y
    return left, top, left + geometry.width, top + geometry.height


def screenshot(x: Any, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """The screen's pixels (or those in ``box``, clipped to the screen), read back from the
    X server."""
    import Xlib.X

    root = x.screen().root
    geometry = root.get_geometry()
    left, top, right, bottom = box or (0, 0, geometry.width, geometry.height)
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, geometry.width), min(bottom, geometry.height)
    if right <= left or bottom <= top:
        return Image.new("RGB", (1, 1))
    raw = root.get_image(left, top, right - left, bottom - top, Xlib.X.ZPixmap, 0xFFFFFFFF)
    return Image.frombytes("RGB", (right - left, bottom - top), raw.data, "raw", "BGRX")


def window_pixels(x: Any, window: Any) -> Image.Image | None:
    """What ``window`` shows on the screen, or None while it moves or goes (trayer embeds a
    docked icon in windows of its own, which it may replace)."""
    import Xlib.error

    try:
        return screenshot(x, screen_box(x, window))
    except Xlib.error.XError:
        return None


def window_name(window: Any) -> str:
    """WM_NAME in one request (python-xlib's get_wm_name reads it in two, and fails when the
    name changes in between), as Latin-1."""
    import Xlib.X
    import Xlib.Xatom

    prop = window.get_property(Xlib.Xatom.WM_NAME, Xlib.X.AnyPropertyType, 0, 4096)
    value = prop.value if prop is not None else b""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def colour_share(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 12) -> float:
    """The share of ``image``'s pixels within ``tolerance`` of ``colour`` (scaling blurs the
    edges of a small icon, so exact pixel values vary)."""
    rgb = image.convert("RGB")
    colours = rgb.getcolors(rgb.width * rgb.height) or []
    near = sum(count for count, pixel in colours
               if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True)))
    return near / (rgb.width * rgb.height)


def click(x: Any, at: tuple[int, int], button: int = 1) -> None:
    """A real pointer click through the XTEST extension."""
    import Xlib.X
    from Xlib.ext import xtest

    xtest.fake_input(x, Xlib.X.MotionNotify, x=at[0], y=at[1])
    xtest.fake_input(x, Xlib.X.ButtonPress, button)
    xtest.fake_input(x, Xlib.X.ButtonRelease, button)
    x.sync()


# -- notifications: a private D-Bus session bus and dunst on the X display -------------------
NOTIFY_TOOLS = ("dbus-daemon", "dbus-send", "dunst", "notify-send")


def notify_tools_missing() -> list[str]:
    return [tool for tool in NOTIFY_TOOLS if shutil.which(tool) is None]


@contextmanager
def notification_server(display: str, workdir: Path) -> Iterator[tuple[str, Path]]:
    """A D-Bus session bus with dunst serving org.freedesktop.Notifications on ``display``.

    Yields the bus address and the file where dunst's rule script writes one line per
    notification it shows: ``app|summary|body|urgency``.
    """
    record = workdir / "notices.log"
    script = workdir / "record.sh"
    script.write_text('#!/bin/sh\nprintf "%s|%s|%s|%s\\n" "$DUNST_APP_NAME" "$DUNST_SUMMARY"'
                      f' "$DUNST_BODY" "$DUNST_URGENCY" >> "{record}"\n')
    script.chmod(0o755)
    config = workdir / "dunstrc"
    config.write_text(f'[global]\n    monitor = 0\n[record]\n    summary = "*"\n'
                      f'    script = {script}\n')
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           preexec_fn=_die_with_us)
    dunst: subprocess.Popen[bytes] | None = None
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().strip()
        env = {**os.environ, "DISPLAY": display, "DBUS_SESSION_BUS_ADDRESS": address}
        dunst = subprocess.Popen(["dunst", "-config", str(config)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 preexec_fn=_die_with_us)

        def served() -> bool:
            answer = subprocess.run(
                ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                 "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                 "string:org.freedesktop.Notifications"],
                env=env, capture_output=True, text=True, check=False)
            return "boolean true" in answer.stdout

        wait_for(served, "dunst to serve org.freedesktop.Notifications")
        yield address, record
    finally:
        for process in (dunst, bus):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
