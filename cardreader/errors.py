"""The typed errors of the card layer.

Every failure that crosses the card layer is one of these, so a caller (the agent, the CLI)
can turn each into one clear sentence without looking at status words or pyscard exceptions.
"""

from __future__ import annotations


class CardError(Exception):
    """Base of every error raised by the card layer."""


class ReaderError(CardError):
    """The reader or the PC/SC service cannot be used (pcscd stopped, reader unplugged)."""


class NoServiceError(ReaderError):
    """The PC/SC service (pcscd) is not running or went away."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "the smart-card service (pcscd) is not running" + (f": {detail}" if detail else "")
        )


class CardRemovedError(CardError):
    """The card was removed (or reset) while it was being used."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "the card was removed" + (f": {detail}" if detail else "")
        )


class NoCardError(CardError):
    """No card is present in the reader."""


class TransportError(CardError):
    """The exchange with the card failed below the APDU level (timeout, I/O error)."""


class CardNotAnsweringError(TransportError):
    """The card (or its reader) did not answer a command in time: it is frozen, and only
    taking it out helps. The connection it came from is unusable from then on."""

    def __init__(self, reader: str = "", seconds: float | None = None) -> None:
        self.reader = reader
        where = f" ({reader})" if reader else ""
        during = f" for {seconds:g} s" if seconds is not None else ""
        super().__init__(
            f"the card stopped answering{during}{where}: take it out, wait two seconds and "
            "insert it again; if it happens again, try another reader"
        )


class MalformedResponseError(CardError):
    """The card answered something that does not parse: truncated, wrong tags, bad lengths."""


class UnknownCardError(CardError):
    """The card is not one this application knows (ATR or application not recognised)."""


class ApduError(CardError):
    """The card refused a command with a status word that is not 9000."""

    def __init__(self, sw: int, message: str | None = None, data: bytes = b"") -> None:
        self.sw = sw
        self.data = data
        super().__init__(message or f"The card refused the command (status {sw:04X})")


class WrongPinError(ApduError):
    """The PIN was wrong; ``tries_left`` more presentations are allowed before blocking."""

    def __init__(self, sw: int, tries_left: int) -> None:
        self.tries_left = tries_left
        super().__init__(
            sw,
            f"wrong PIN, {tries_left} tries left",
        )


class PinBlockedError(ApduError):
    """The PIN is blocked: it must be unblocked with the PUK; nothing retries on its own."""

    def __init__(self, sw: int = 0x6983) -> None:
        super().__init__(sw, "the card's PIN is blocked")


class WrongPukError(ApduError):
    """The PUK (code de déblocage) was wrong; ``tries_left`` more presentations of the PUK
    are allowed before it blocks in turn. The PIN stays blocked."""

    def __init__(self, sw: int, tries_left: int) -> None:
        self.tries_left = tries_left
        super().__init__(
            sw,
            f"wrong PUK, {tries_left} tries left",
        )


class PukBlockedError(ApduError):
    """The PUK is blocked too (all its tries used): only the card's issuer can help now."""

    def __init__(self, sw: int = 0x6983) -> None:
        super().__init__(
            sw,
            "the PUK is blocked: only the card's issuer (ANS) can unblock or replace the card "
            "now",
        )


class SecurityStatusError(ApduError):
    """The command needs a PIN verification (or another condition) that is not satisfied."""


class FileNotFoundOnCardError(ApduError):
    """The file or application selected does not exist on this card."""


class WrongLengthError(ApduError):
    """The card rejected the command length (Lc or Le)."""


class WrongParametersError(ApduError):
    """P1/P2 or the command data were refused (incorrect parameters or data)."""


class NotSupportedError(ApduError):
    """The card does not support this instruction or class."""


class CardExpiredError(CardError):
    """The card's certificates are outside their validity period."""


class TestCardError(CardError):
    """A test card was presented where a production card is required (or the reverse)."""

    __test__ = False  # not a pytest test class


class InvalidPinFormatError(CardError, ValueError):
    """The PIN typed does not have the format the card expects (e.g. 4 digits)."""


# What to do with a blocked CPS, in the card layer's own (developer's) English; the agent says
# it in the user's language by the report's status (agent.card_words.blocked_cps_text).
BLOCKED_CPS = ("the CPS is blocked (wrong PIN too many times): unblock it with its PUK and a new "
               "PIN (the agent's page, Session tab, or dmp-agent unblock); without the PUK, ask "
               "the card's issuer (ANS) to unblock or replace it")
