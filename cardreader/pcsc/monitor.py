"""Reader and card events from `SCardGetStatusChange`, with recovery from a pcscd restart.

One thread blocks in `SCardGetStatusChange` with an infinite timeout on every reader plus
pcsc-lite's plug-and-play pseudo-reader, so an idle agent wakes up only when something
happens. `stop()` wakes it with `SCardCancel`. When pcscd goes away the monitor reports the
service lost, then the cards and readers gone (the cause before its effects), then tries to
re-establish a context with a growing delay (there is no event to wait for while the service
itself is down), and reports the readers and cards again once it is back: the process never
needs a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from smartcard import scard

from ..atr import CardKind, identify
from .connection import SERVICE_GONE

log = logging.getLogger(__name__)

PNP_READER = "\\\\?PnP?\\Notification"
RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)  # seconds between reconnections to a stopped pcscd


class EventKind(StrEnum):
    SERVICE_LOST = "service-lost"
    SERVICE_BACK = "service-back"
    READER_ADDED = "reader-added"
    READER_REMOVED = "reader-removed"
    CARD_INSERTED = "card-inserted"
    CARD_REMOVED = "card-removed"
    CARD_MUTE = "card-mute"  # present but not answering to reset


@dataclass(frozen=True)
class SlotEvent:
    """Something happened in a reader (or to the PC/SC service when ``reader`` is empty)."""

    kind: EventKind
    reader: str = ""
    atr: bytes = b""
    card: CardKind | None = None
    label: str = ""

    def describe(self) -> str:
        where = f"[{self.reader}] " if self.reader else ""
        if self.kind is EventKind.CARD_INSERTED:
            return f"{where}card inserted: {self.label} (ATR {self.atr.hex(' ')})"
        return f"{where}{self.kind.value}"


Listener = Callable[[SlotEvent], None]


class Monitor:
    """Watches all readers on a background thread and calls ``listener`` with each event.

    The listener runs on the monitor thread: it should hand long work (reading a card) to
    another thread, or accept that events queue up meanwhile.
    """

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._stop = threading.Event()
        self._context: int | None = None
        self._context_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._present: dict[str, bytes | None] = {}  # reader -> ATR of the card, None if empty
        self.wakeups = 0  # returns from SCardGetStatusChange: the idle cost, for benchmarks
        self.ready = threading.Event()  # set once the first reader scan is done

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._run, name="card-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        # A cancel sent while the thread is between two waits is lost: repeat it until the
        # thread has seen the stop flag.
        while self._thread is not None and self._thread.is_alive():
            with self._context_lock:
                if self._context is not None:
                    scard.SCardCancel(self._context)
            self._thread.join(timeout=0.1)

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def readers(self) -> dict[str, bytes | None]:
        """The readers known now, each with the ATR of its card (None when empty)."""
        return dict(self._present)

    # -- loop -------------------------------------------------------------------------------
    def _emit(self, event: SlotEvent) -> None:
        log.debug("card event: %s", event.kind.value)
        try:
            self._listener(event)
        except Exception:  # a faulty listener must not stop the monitoring
            log.exception("card event listener failed")

    def _run(self) -> None:
        attempt = 0
        service_was_lost = False
        while not self._stop.is_set():
            hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hresult != scard.SCARD_S_SUCCESS:
                if not service_was_lost:
                    service_was_lost = True
                    self._service_lost()
                    self.ready.set()
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                self._stop.wait(delay)
                continue
            attempt = 0
            with self._context_lock:
                self._context = context
            if service_was_lost:
                service_was_lost = False
                self._emit(SlotEvent(EventKind.SERVICE_BACK))
            try:
                lost = self._watch(context)
            finally:
                with self._context_lock:
                    self._context = None
                scard.SCardReleaseContext(context)
            if lost and not self._stop.is_set():
                service_was_lost = True
                self._service_lost()

    def _service_lost(self) -> None:
        """The cause first, then its effects: a listener that ends a session on a card
        removal already knows the card did not leave, the service did."""
        self._emit(SlotEvent(EventKind.SERVICE_LOST))
        for reader, atr in list(self._present.items()):
            if atr is not None:
                self._emit(SlotEvent(EventKind.CARD_REMOVED, reader))
            self._emit(SlotEvent(EventKind.READER_REMOVED, reader))
        self._present.clear()

    def _watch(self, context: int) -> bool:
        """Follow events on this context; return True when the service was lost."""
        states: dict[str, int] = {}
        while not self._stop.is_set():
            hresult, readers = scard.SCardListReaders(context, [])
            if hresult in SERVICE_GONE:
                return True
            readers = list(readers) if hresult == scard.SCARD_S_SUCCESS else []
            for gone in [r for r in self._present if r not in readers]:
                if self._present.pop(gone) is not None:
                    self._emit(SlotEvent(EventKind.CARD_REMOVED, gone))
                self._emit(SlotEvent(EventKind.READER_REMOVED, gone))
                states.pop(gone, None)
            for new in [r for r in readers if r not in self._present]:
                self._present[new] = None
                states[new] = scard.SCARD_STATE_UNAWARE
                self._emit(SlotEvent(EventKind.READER_ADDED, new))
            # UNAWARE states make the first call return at once with the current state.
            request = [(r, states[r]) for r in readers]
            request.append((PNP_READER, states.get(PNP_READER, scard.SCARD_STATE_UNAWARE)))
            while not self._stop.is_set():
                hresult, result = scard.SCardGetStatusChange(context, scard.INFINITE, request)
                self.wakeups += 1
                if hresult == scard.SCARD_E_CANCELLED or self._stop.is_set():
                    return False
                if hresult in SERVICE_GONE:
                    return True
                if hresult in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_TIMEOUT):
                    break  # a reader vanished between listing and waiting: list again
                if hresult != scard.SCARD_S_SUCCESS:
                    log.warning("SCardGetStatusChange: %s", scard.SCardGetErrorMessage(hresult))
                    self._stop.wait(0.5)
                    break
                readers_changed = False
                for reader, event_state, atr in result:
                    if reader == PNP_READER:
                        if event_state & scard.SCARD_STATE_CHANGED:
                            readers_changed = True
                        states[PNP_READER] = event_state & ~scard.SCARD_STATE_CHANGED
                        continue
                    previous = states.get(reader, scard.SCARD_STATE_UNAWARE)
                    states[reader] = event_state & ~scard.SCARD_STATE_CHANGED
                    if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                        readers_changed = True
                        continue
                    self._card_state(reader, previous, event_state, bytes(atr))
                self.ready.set()
                if readers_changed:
                    break
                request = [(r, states[r]) for r, _s in request]
        return False

    def _card_state(self, reader: str, previous: int, state: int, atr: bytes) -> None:
        present = bool(state & scard.SCARD_STATE_PRESENT)
        had = self._present.get(reader)
        # The high 16 bits count card events: a different count with a card present means the
        # card was swapped between two wake-ups, so report a removal before the insertion.
        swapped = (
            had is not None
            and present
            and previous != scard.SCARD_STATE_UNAWARE
            and (state >> 16) != (previous >> 16)
        )
        if had is not None and (not present or swapped):
            self._present[reader] = None
            self._emit(SlotEvent(EventKind.CARD_REMOVED, reader))
            had = None
        if present and had is None:
            if state & scard.SCARD_STATE_MUTE or not atr:
                self._emit(SlotEvent(EventKind.CARD_MUTE, reader))
                return
            self._present[reader] = atr
            kind, label = identify(atr)
            self._emit(SlotEvent(EventKind.CARD_INSERTED, reader, atr, kind, label))
