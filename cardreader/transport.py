"""The one-method transport every card application is written against.

A `Connection` sends a complete command APDU and returns the response data and the status
word. The PC/SC implementation is in `cardreader.pcsc`; tests drive the same protocol code
with recorded exchanges or with a virtual card in-process (`cardreader.virtual`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Connection(Protocol):
    """A connection to one card."""

    @property
    def atr(self) -> bytes:
        """The card's answer to reset."""
        ...

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; return (response data, status word)."""
        ...

    def close(self) -> None:
        """Release the card; further calls fail."""
        ...
