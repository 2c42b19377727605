"""ISO 7816-4 command and response APDUs, and the protocol object that sends them.

`ApduProtocol` sits on a `Connection` (one method: send bytes, get data and status word) and
does what every card application needs: encode short or extended APDUs, follow ``61xx`` with
GET RESPONSE, resend on ``6Cxx`` with the right Le, and turn any other status word into a
typed error from `cardreader.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .errors import (
    ApduError,
    FileNotFoundOnCardError,
    MalformedResponseError,
    NotSupportedError,
    PinBlockedError,
    SecurityStatusError,
    WrongLengthError,
    WrongParametersError,
    WrongPinError,
)
from .transport import Connection

SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX = 65536
# A chain of 61xx answers longer than this is a misbehaving card, not a long file.
MAX_RESPONSE_CHAIN = 64


class SW(IntEnum):
    """Status words this code reacts to by name."""

    OK = 0x9000
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00
    END_OF_FILE_WARNING = 0x6282


class Ins(IntEnum):
    """Instruction bytes used by the card applications of this project."""

    SELECT = 0xA4
    READ_BINARY = 0xB0
    READ_RECORD = 0xB2
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCB
    VERIFY = 0x20
    RESET_RETRY_COUNTER = 0x2C
    MSE = 0x22
    PSO = 0x2A
    INTERNAL_AUTHENTICATE = 0x88


@dataclass(frozen=True)
class CommandApdu:
    """One command APDU. ``le`` is the number of bytes expected (0 = none, 256 = "all")."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int = 0

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must be a byte, got {value!r}")
        if len(self.data) > EXTENDED_MAX - 1:
            raise ValueError("command data longer than an extended APDU allows")
        if not 0 <= self.le <= EXTENDED_MAX:
            raise ValueError(f"le out of range: {self.le}")

    @property
    def needs_extended(self) -> bool:
        return len(self.data) > SHORT_MAX_LC or self.le > SHORT_MAX_LE

    def encode(self, extended: bool | None = None) -> bytes:
        """Encode as a short APDU when it fits, else extended (or as forced by ``extended``)."""
        use_extended = self.needs_extended if extended is None else extended
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if not use_extended:
            if self.needs_extended:
                raise ValueError("this command does not fit in a short APDU")
            body = bytes((len(self.data),)) + self.data if self.data else b""
            if self.le:
                body += bytes((self.le % 256,))
            return header + body
        body = b""
        if self.data:
            body = b"\x00" + len(self.data).to_bytes(2, "big") + self.data
        if self.le:
            le = (self.le % EXTENDED_MAX).to_bytes(2, "big")
            body += le if self.data else b"\x00" + le
        return header + body


@dataclass(frozen=True)
class ResponseApdu:
    """A response: data and the two status bytes as one integer."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise MalformedResponseError(
                f"truncated card response ({len(raw)} byte(s))"
            )
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF


def error_for_status(sw: int, data: bytes = b"") -> ApduError:
    """The typed error for a status word that is not a success."""
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        tries = sw2 & 0x0F
        return PinBlockedError(sw) if tries == 0 else WrongPinError(sw, tries)
    if sw == SW.AUTH_METHOD_BLOCKED:
        return PinBlockedError(sw)
    if sw in (SW.SECURITY_STATUS_NOT_SATISFIED, SW.CONDITIONS_NOT_SATISFIED):
        return SecurityStatusError(
            sw, f"the card requires the PIN first (status {sw:04X})", data
        )
    if sw in (SW.FILE_NOT_FOUND, SW.RECORD_NOT_FOUND, SW.REFERENCE_NOT_FOUND):
        return FileNotFoundOnCardError(
            sw, f"not found on the card ({sw:04X})"
        )
    if sw == SW.WRONG_LENGTH or sw1 == 0x6C:
        return WrongLengthError(sw, f"The card refused the length of the command ({sw:04X})")
    if sw in (SW.INCORRECT_P1P2, SW.WRONG_P1P2, SW.INCORRECT_DATA):
        return WrongParametersError(sw, f"The card refused the command parameters ({sw:04X})")
    if sw in (SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED, SW.FUNCTION_NOT_SUPPORTED):
        return NotSupportedError(sw, f"The card does not support this command ({sw:04X})")
    return ApduError(sw, None, data)


class ApduProtocol:
    """Sends APDUs over a `Connection`, with the ISO 7816-4 response handling.

    ``extended`` says whether the card accepts extended-length APDUs; when it does not,
    commands that do not fit a short APDU are refused here rather than sent.
    """

    def __init__(self, connection: Connection, *, extended: bool = False) -> None:
        self.connection = connection
        self.extended = extended
        self.apdu_count = 0

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """Send one command, follow 61xx and 6Cxx, and return the final response (any SW)."""
        if command.needs_extended and not self.extended:
            raise ValueError("command needs an extended APDU but the card only takes short ones")
        response = self._exchange(command.encode())
        if response.sw1 == 0x6C:
            # Wrong Le: the card tells the right one; resend once, never loop.
            response = self._exchange(
                CommandApdu(
                    command.cla, command.ins, command.p1, command.p2, command.data,
                    response.sw2 or 256,
                ).encode()
            )
        data = response.data
        chain = 0
        while response.sw1 == 0x61:
            chain += 1
            if chain > MAX_RESPONSE_CHAIN:
                raise MalformedResponseError("The card keeps announcing more data (61xx loop)")
            response = self._exchange(
                CommandApdu(command.cla & 0x0F, Ins.GET_RESPONSE, 0, 0, le=response.sw2 or 256)
                .encode()
            )
            data += response.data
        return ResponseApdu(data, response.sw)

    def send(
        self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int = 0
    ) -> bytes:
        """Send a command and return its data, or raise the typed error of its status word."""
        response = self.transmit(CommandApdu(cla, ins, p1, p2, data, le))
        if response.sw != SW.OK:
            raise error_for_status(response.sw, response.data)
        return response.data

    def _exchange(self, apdu: bytes) -> ResponseApdu:
        self.apdu_count += 1
        data, sw = self.connection.send_and_receive(apdu)
        if not 0 <= sw <= 0xFFFF:
            raise MalformedResponseError(f"status word out of range: {sw!r}")
        return ResponseApdu(bytes(data), sw)
