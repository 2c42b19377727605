"""Asking the professional for the CPS PIN: a small pluggable prompt; and, for a blocked CPS,
its PUK and a new PIN (`ask_unblock_codes`, `check_unblock_codes`, `reset_pin`).

The agent never keeps a PIN or a PUK: a prompt returns it, the caller presents it once to the
card (`CpsCard.verify_pin` and `unblock_pin` copy it into a bytearray that is wiped right
after the command) and drops its reference. Nothing here logs, prints or stores what was typed.
"""

from __future__ import annotations

import getpass
import sys
from typing import Protocol, TextIO

from agent.errors import AgentError
from agent.i18n import _

__all__ = ["FixedPrompt", "PinPrompt", "TerminalPrompt", "UnblockCodes", "ask_unblock_codes",
           "check_unblock_codes", "reset_pin"]

PUK_LENGTH = 8  # a CPS's code de déblocage (docs/cps.md)
NEW_PIN_LENGTHS = range(4, 9)  # what the agent accepts; the card's AODF may ask fewer (4)


class PinPrompt(Protocol):
    """Asks for the PIN of ``holder``'s card; ``tries_left`` is what the card still allows.

    Returns the PIN typed, or None when the professional cancels.
    """

    def ask(self, holder: str, tries_left: int) -> str | None: ...


class TerminalPrompt:
    """The PIN typed on the terminal, never echoed (getpass); in the agent's language."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def ask(self, holder: str, tries_left: int) -> str | None:
        stream = self._stream or sys.stderr
        if tries_left == 1:
            stream.write(_("Warning: last try before the card is blocked") + "\n")
        prompt = _("PIN of {holder}'s CPS card ({tries} tries left), empty to cancel: ").format(
            holder=holder, tries=tries_left)
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


class UnblockCodes:
    """The PUK and the new PIN typed for one unblock; never shown (repr masked)."""

    __slots__ = ("new_pin", "puk")

    def __init__(self, puk: str, new_pin: str) -> None:
        self.puk = puk
        self.new_pin = new_pin

    def __repr__(self) -> str:
        return "UnblockCodes(****)"


def _bad_format(message: str) -> AgentError:
    return AgentError(message, code="bad-pin-format", status=400)


def check_unblock_codes(puk: str, new_pin: str, confirmation: str | None = None) -> None:
    """The shapes every view checks before the card is asked (no PUK try used): the PUK 8
    digits, the new PIN 4 to 8 digits (and typed twice alike, when ``confirmation``)."""
    if not (isinstance(puk, str) and puk.isascii() and puk.isdigit()
            and len(puk) == PUK_LENGTH):
        raise _bad_format(_("The unblocking code (PUK) has {count} digits").format(
            count=PUK_LENGTH))
    if not (isinstance(new_pin, str) and new_pin.isascii() and new_pin.isdigit()
            and len(new_pin) in NEW_PIN_LENGTHS):
        raise _bad_format(_("New PIN: 4 to 8 digits"))
    if confirmation is not None and confirmation != new_pin:
        raise _bad_format(_("The two entries of the new PIN differ"))


def ask_unblock_codes(holder: str, *, stdin: bool = False,
                      stream: TextIO | None = None) -> UnblockCodes | None:
    """The PUK and the new PIN: typed at the terminal without echo (the new PIN twice), or
    two lines of standard input with ``stdin`` (the PUK, then the new PIN). None when the
    professional cancels (an empty answer, Ctrl-D, Ctrl-C)."""
    out = stream or sys.stderr
    if stdin:
        puk, new_pin = sys.stdin.readline().rstrip("\r\n"), sys.stdin.readline().rstrip("\r\n")
        if not puk or not new_pin:
            return None
        check_unblock_codes(puk, new_pin)
        return UnblockCodes(puk, new_pin)
    out.write(_("Unblocking {holder}'s CPS card").format(holder=holder) + "\n")
    questions = (_("Unblocking code (PUK, 8 digits): "), _("New PIN (4 to 8 digits): "),
                 _("New PIN, again: "))
    answers: list[str] = []
    try:
        for question in questions:
            answer = getpass.getpass(question, stream=out)
            if not answer:
                return None
            answers.append(answer)
    except (EOFError, KeyboardInterrupt):
        out.write("\n")
        return None
    check_unblock_codes(*answers)
    return UnblockCodes(answers[0], answers[1])


def reset_pin(reader: str, puk: str, new_pin: str) -> None:
    """Unblock the CPS in ``reader``: its PIN must be blocked (else ``not-blocked``, nothing
    sent: no PUK try is spent on a card that needs none), then RESET RETRY COUNTER with the
    PUK and the new PIN. Raises the card layer's errors (WrongPukError, PukBlockedError,
    InvalidPinFormatError, NoCardError...)."""
    from cardreader.apdu import ApduProtocol  # the CPS parsers: on the caller's thread
    from cardreader.cps import CpsCard
    from cardreader.pcsc import PcscConnection

    with PcscConnection(reader) as connection:
        card = CpsCard(ApduProtocol(connection))
        left = card.pin_tries_left()
        if left > 0:
            raise AgentError(_("The CPS card is not blocked ({tries} PIN tries left): nothing "
                               "to unblock").format(tries=left), code="not-blocked",
                             status=409, pinTriesLeft=left)
        card.unblock_pin(puk, new_pin)
