"""A `Connection` straight to an emulator object, without PC/SC: for pure tests of the
profiles and for tests of what is built on a card (sessions, signatures) that are not about
the reader. The real-stack tests go through pcscd + vpcd instead."""

from __future__ import annotations

from ..errors import CardRemovedError
from .vpcd import VirtualCard


class DirectConnection:
    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        card.power_on()  # as a reader does when it connects
        self.exchanges: list[tuple[bytes, bytes]] = []
        self._closed = False

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        if self._closed:
            raise CardRemovedError("connection closed")
        response = self.card.process(apdu)
        if response is None:
            self._closed = True
            raise CardRemovedError("the virtual card vanished")
        self.exchanges.append((apdu, response))
        return response[:-2], int.from_bytes(response[-2:], "big")

    def close(self) -> None:
        self._closed = True
