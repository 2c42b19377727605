"""Plugging a virtual card into the real pcscd through the vpcd virtual reader driver.

vpcd (Debian `vsmartcard-vpcd`) is a pcscd reader driver that listens on a TCP port per slot
(35963 for the first, 35964 for the second). A virtual card connects to that port: pcscd then
sees a card inserted, and a closed connection is a card removed. Each message either way is a
2-byte big-endian length followed by the payload; a 1-byte payload from vpcd is a control
code (0 power off, 1 power on, 2 reset, 4 get ATR), anything longer is a command APDU.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
FIRST_SLOT_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def slot_port(slot: int, base: int = FIRST_SLOT_PORT) -> int:
    """The vpcd TCP port of slot ``slot`` (0 or 1 with Debian's default configuration)."""
    if slot < 0:
        raise ValueError("slot numbers start at 0")
    return base + slot


class VirtualCard(Protocol):
    """What a card emulator implements: an ATR, a reset, and one APDU in, one response out."""

    atr: bytes

    def power_on(self) -> None:
        """Cold or warm reset: volatile state (selected file, PIN verified) is cleared."""
        ...

    def process(self, apdu: bytes) -> bytes | None:
        """Answer one command APDU with response data followed by the two status bytes.

        None makes the card vanish from the reader without answering (faulty-card tests).
        """
        ...


class VpcdLink:
    """One virtual card inserted in one vpcd slot, served on a background thread.

    ``start()`` inserts the card (connects to vpcd), ``stop()`` removes it (closes the socket).
    ``on_apdu`` is called with each (command, response) pair: the tests and benchmarks count
    APDUs with it. ``delay`` slows every answer down (a slow card). With ``stay_inserted``
    the card reconnects when vpcd goes away (pcscd restarted), as a card left in a physical
    reader is seen again by the new pcscd.
    """

    def __init__(
        self,
        card: VirtualCard,
        port: int = FIRST_SLOT_PORT,
        host: str = DEFAULT_HOST,
        *,
        delay: float = 0.0,
        on_apdu: Callable[[bytes, bytes | None], None] | None = None,
        stay_inserted: bool = False,
    ) -> None:
        self.card = card
        self.port = port
        self.host = host
        self.delay = delay
        self.on_apdu = on_apdu
        self.stay_inserted = stay_inserted
        self.apdu_count = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.stopped = threading.Event()

    # -- life cycle -------------------------------------------------------------------------
    def _connect(self, timeout: float | None) -> socket.socket | None:
        """Connect to vpcd, retrying while pcscd starts; None when stopped meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopping.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2.0)
            except OSError as exc:
                if deadline is not None and time.monotonic() > deadline:
                    raise ConnectionError(
                        f"vpcd is not listening on {self.host}:{self.port} "
                        f"(is pcscd running with the vpcd driver?): {exc}"
                    ) from None
                self._stopping.wait(0.05)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        return None

    def start(self, timeout: float = 10.0) -> VpcdLink:
        """Connect to vpcd (retrying while pcscd starts) and serve the card until stopped."""
        self._stopping.clear()
        self._sock = self._connect(timeout)
        self.stopped.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"vpcd-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Remove the card: close the connection; pcscd sees the card gone."""
        self._stopping.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.stopped.set()

    @property
    def inserted(self) -> bool:
        return self._sock is not None and not self.stopped.is_set()

    def __enter__(self) -> VpcdLink:
        return self.start() if self._sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol ---------------------------------------------------------------------------
    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            # vpcd writes the length and the APDU in two sends without TCP_NODELAY: unless we
            # acknowledge at once, Nagle holds the APDU back for our delayed ACK (~40 ms).
            if QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("vpcd closed the connection")
            buf += chunk
        return bytes(buf)

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        sock.sendall(struct.pack(">H", len(payload)) + payload)

    def _serve(self) -> None:
        while True:
            vanished = self._serve_connection()
            if vanished or not self.stay_inserted or self._stopping.is_set():
                break
            sock = self._connect(None)  # pcscd went away: wait for the next one
            if sock is None:
                break
            self._sock = sock
        if not self._stopping.is_set():
            self._stopping.set()
            self._sock = None
            self.stopped.set()

    def _serve_connection(self) -> bool:
        """Serve until the connection ends; True when the card chose to vanish."""
        sock = self._sock
        if sock is None:
            return False
        try:
            while not self._stopping.is_set():
                (length,) = struct.unpack(">H", self._recv_exact(sock, 2))
                message = self._recv_exact(sock, length)
                if length == 1:
                    self._control(sock, message[0])
                    continue
                self.apdu_count += 1
                if self.delay:
                    time.sleep(self.delay)
                response = self.card.process(message)
                if self.on_apdu is not None:
                    self.on_apdu(message, response)
                if response is None:  # a card that vanishes instead of answering
                    sock.close()
                    return True
                self._send(sock, response)
        except (OSError, ConnectionError, struct.error) as exc:
            if not self._stopping.is_set():
                log.debug("vpcd link on port %s ended: %s", self.port, exc)
        with contextlib.suppress(OSError):
            sock.close()
        return False

    def _control(self, sock: socket.socket, code: int) -> None:
        if code in (CTRL_ON, CTRL_RESET):
            self.card.power_on()
        elif code == CTRL_ATR:
            self._send(sock, self.card.atr)
        # CTRL_OFF needs no answer; the card keeps its persistent state.
