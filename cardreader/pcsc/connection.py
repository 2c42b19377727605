"""PC/SC connections: list readers, connect to a card, implement `Connection` over
`SCardTransmit`, and map PC/SC return codes to the typed errors of `cardreader.errors`.
"""

from __future__ import annotations

import threading
from typing import Any

from smartcard import scard

from ..errors import (
    CardError,
    CardNotAnsweringError,
    CardRemovedError,
    MalformedResponseError,
    NoCardError,
    NoServiceError,
    ReaderError,
    TransportError,
)
from .bounded import COMMAND_TIMEOUT, BoundedCaller, Closed, Overrun

# Codes after which the context is dead and must be re-established (pcsc-lite answers
# SCARD_F_COMM_ERROR, "RPC transport error", when pcscd dies in the middle of a call).
SERVICE_GONE = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_F_COMM_ERROR}
# SCardStatus card states as pcsc-lite numbers them (pyscard does not export these).
SCARD_ABSENT, SCARD_PRESENT = 0x0002, 0x0004
CARD_GONE = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_W_RESET_CARD, scard.SCARD_E_NO_SMARTCARD}
READER_GONE = {scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE}


def error_for(code: int, what: str) -> CardError:
    """The typed error for a PC/SC return code."""
    text = scard.SCardGetErrorMessage(code)
    if code in SERVICE_GONE:
        return NoServiceError(f"{what}: {text}")
    if code == scard.SCARD_E_NO_SMARTCARD:
        return NoCardError(f"no card in the reader ({what})")
    if code in CARD_GONE:
        return CardRemovedError(f"{what}: {text}")
    if code in READER_GONE:
        return ReaderError(f"reader unavailable ({what}): {text}")
    return TransportError(f"{what}: {text} (0x{code & 0xFFFFFFFF:08X})")


def establish_context() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise error_for(hresult, "establish context")
    return int(context)


def release_context(context: int) -> None:
    scard.SCardReleaseContext(context)


def list_readers(context: int | None = None) -> list[str]:
    """The names of the readers pcscd knows now (empty when there are none)."""
    own = context is None
    ctx = establish_context() if context is None else context
    try:
        hresult, readers = scard.SCardListReaders(ctx, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise error_for(hresult, "list readers")
        return list(readers)
    finally:
        if own:
            release_context(ctx)


def wait_for_card(reader: str, *, present: bool = True, timeout: float = 5.0) -> bool:
    """Block until pcscd reports a card in ``reader`` (or none, with ``present=False``).

    Returns False on timeout. Waits on `SCardGetStatusChange`, not by polling.
    """
    context = establish_context()
    try:
        state = scard.SCARD_STATE_UNAWARE
        deadline_ms = int(timeout * 1000)
        while True:
            hresult, states = scard.SCardGetStatusChange(context, deadline_ms, [(reader, state)])
            if hresult == scard.SCARD_E_TIMEOUT:
                return False
            if hresult != scard.SCARD_S_SUCCESS:
                raise error_for(hresult, f"wait for a card in {reader!r}")
            state = states[0][1] & ~scard.SCARD_STATE_CHANGED
            has_card = bool(state & scard.SCARD_STATE_PRESENT)
            if has_card == present:
                return True
    finally:
        release_context(context)


class PcscConnection:
    """A `Connection` to the card in one PC/SC reader (exclusive while a profile works).

    Every PC/SC call waits at most ``timeout`` seconds (`bounded.BoundedCaller`): a card
    that stops answering without leaving the reader gives `CardNotAnsweringError`, at once
    for every later call on this connection.
    """

    def __init__(self, reader: str, *, exclusive: bool = False, context: int | None = None,
                 timeout: float = COMMAND_TIMEOUT):
        self.reader = reader
        self._own_context = context is None
        self._context = establish_context() if context is None else context
        self._card: int | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._calls = BoundedCaller(f"pcsc:{reader}", self._release, timeout)
        share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        try:
            hresult, card, self._protocol = self._call(
                scard.SCardConnect, self._context, reader, share,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            if hresult != scard.SCARD_S_SUCCESS:
                raise error_for(hresult, f"connect to {reader!r}")
            self._card = card
            hresult, _name, _state, _proto, atr = self._call(scard.SCardStatus, card)
            if hresult != scard.SCARD_S_SUCCESS:
                raise error_for(hresult, f"status of {reader!r}")
        except BaseException:
            self.close()
            raise
        self._atr = bytes(atr)

    @property
    def atr(self) -> bytes:
        return self._atr

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return self._calls.call(fn, *args)
        except Overrun:
            raise CardNotAnsweringError(self.reader, self._calls.timeout) from None
        except Closed:
            raise CardRemovedError("connection closed") from None

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        with self._lock:
            if self._closed:
                raise CardRemovedError("connection closed")
            hresult, response = self._call(scard.SCardTransmit, self._card, self._protocol,
                                           list(apdu))
        if hresult != scard.SCARD_S_SUCCESS:
            raise self._failure(hresult, "transmit")
        if len(response) < 2:
            # No status word at all: a real reader reports that as an error, vpcd as an empty
            # answer when the card vanished mid-command. Tell the two apart.
            if self._card_left():
                raise CardRemovedError("no answer to the command")
            raise MalformedResponseError(
                f"truncated card response ({len(response)} byte(s))"
            )
        data = bytes(response[:-2])
        return data, (response[-2] << 8) | response[-1]

    def _card_left(self, wait_ms: int = 1000) -> bool:
        """Whether the card is gone, waiting (on the event, not polling) up to ``wait_ms``."""
        state = scard.SCARD_STATE_PRESENT
        hresult, states = self._call(
            scard.SCardGetStatusChange, self._context, wait_ms, [(self.reader, state)]
        )
        if hresult == scard.SCARD_S_SUCCESS and states:
            event = states[0][1]
            return bool(event & scard.SCARD_STATE_EMPTY) or not event & scard.SCARD_STATE_PRESENT
        return False

    def _failure(self, hresult: int, what: str) -> CardError:
        """Name the cause of a failed exchange: a card pulled out mid-command shows up as a
        generic transaction failure, so ask the reader whether the card is still there."""
        if hresult in CARD_GONE or hresult in SERVICE_GONE or hresult in READER_GONE:
            return error_for(hresult, what)
        status, _name, state, _proto, _atr = self._call(scard.SCardStatus, self._card)
        if status in CARD_GONE or (
            status == scard.SCARD_S_SUCCESS and not state & SCARD_PRESENT
        ):
            return CardRemovedError(what)
        if status != scard.SCARD_S_SUCCESS:
            return error_for(status, what)
        return error_for(hresult, what)

    def _release(self) -> None:
        """On the helper thread, last: after `close`, or once a stuck call has returned."""
        if self._card is not None:
            scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)
        if self._own_context:
            release_context(self._context)

    def close(self) -> None:
        # Never blocks on a stuck call: the lock is only held for a bounded time.
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._calls.close()

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
