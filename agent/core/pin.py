"""Asking the professional for the CPS PIN: a small pluggable prompt.

The agent never keeps a PIN: a prompt returns it, the caller presents it once to the card
(`CpsCard.verify_pin` copies it into a bytearray that is wiped right after the VERIFY) and
drops its reference. Nothing here logs, prints or stores what was typed.
"""

from __future__ import annotations

import getpass
import sys
from typing import Protocol, TextIO

__all__ = ["FixedPrompt", "PinPrompt", "TerminalPrompt"]


class PinPrompt(Protocol):
    """Asks for the PIN of ``holder``'s card; ``tries_left`` is what the card still allows.

    Returns the PIN typed, or None when the professional cancels.
    """

    def ask(self, holder: str, tries_left: int) -> str | None: ...


class TerminalPrompt:
    """The PIN typed on the terminal, never echoed (getpass); French first."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def ask(self, holder: str, tries_left: int) -> str | None:
        stream = self._stream or sys.stderr
        if tries_left == 1:
            stream.write("Attention : dernier essai avant blocage de la carte / "
                         "last try before the card is blocked\n")
        prompt = (f"Code porteur de la carte CPS de {holder} ({tries_left} essai(s) "
                  f"restant(s)) / CPS PIN ({tries_left} tries left), vide pour annuler / "
                  "empty to cancel: ")
        try:
            pin = getpass.getpass(prompt, stream=stream)
        except (EOFError, KeyboardInterrupt):
            stream.write("\n")
            return None
        return pin or None


class FixedPrompt:
    """A prompt that answers a PIN known in advance (the sandbox and the tests).

    It never presents a PIN the card has refused: asked again with fewer tries left than at
    its previous answer, its PIN was wrong, and from then on it cancels instead of burning
    the card's remaining tries.
    """

    def __init__(self, pin: str) -> None:
        self._pin = pin
        self._last_tries: int | None = None
        self._refused = False

    def ask(self, holder: str, tries_left: int) -> str | None:
        if self._last_tries is not None and tries_left < self._last_tries:
            self._refused = True
        if self._refused:
            return None
        self._last_tries = tries_left
        return self._pin

    def __repr__(self) -> str:
        return "FixedPrompt(****)"  # never show the PIN in a log or a traceback
