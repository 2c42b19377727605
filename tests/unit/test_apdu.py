"""The APDU layer: encoding, ISO 7816-4 response handling, typed errors (pure, no card)."""

from __future__ import annotations

import pytest

from cardreader.apdu import ApduProtocol, CommandApdu, ResponseApdu, error_for_status
from cardreader.errors import (
    ApduError,
    FileNotFoundOnCardError,
    MalformedResponseError,
    NotSupportedError,
    PinBlockedError,
    SecurityStatusError,
    WrongLengthError,
    WrongPinError,
)


class Script:
    """A Connection that checks each command against a script and plays the answers."""

    atr = b"\x3b\x00"

    def __init__(self, *exchanges: tuple[str, str]) -> None:
        self.exchanges = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in exchanges]
        self.sent: list[bytes] = []

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        expected, response = self.exchanges[len(self.sent) - 1]
        assert apdu == expected, f"sent {apdu.hex()} expected {expected.hex()}"
        return response[:-2], int.from_bytes(response[-2:], "big")

    def close(self) -> None:
        pass


def test_short_apdu_cases() -> None:
    assert CommandApdu(0, 0xA4, 0, 0x0C, b"\x3f\x00").encode().hex() == "00a4000c023f00"
    assert CommandApdu(0, 0xB0, 0x82, 0, le=256).encode().hex() == "00b0820000"
    assert CommandApdu(0, 0xB0, 0, 0, le=0xE7).encode().hex() == "00b00000e7"
    assert CommandApdu(0, 0x20, 0, 1).encode().hex() == "00200001"
    assert CommandApdu(0, 0x88, 0, 0, b"\x01\x02", 256).encode().hex() == "0088000002010200"


def test_extended_apdu_cases() -> None:
    data = bytes(300)
    encoded = CommandApdu(0, 0x2A, 0x9E, 0x9A, data, 512).encode()
    assert encoded[:7].hex() == "002a9e9a00012c" and encoded[-2:].hex() == "0200"
    assert CommandApdu(0, 0xB0, 0, 0, le=65536).encode().hex() == "00b00000000000"
    assert CommandApdu(0, 0xB0, 0, 0, le=1000).encode(extended=True).hex() == "00b000000003e8"
    with pytest.raises(ValueError):
        CommandApdu(0, 0xB0, 0, 0, le=1000).encode(extended=False)
    with pytest.raises(ValueError):
        CommandApdu(0x100, 0, 0, 0)


def test_short_only_card_refuses_long_command_before_sending() -> None:
    link = Script()
    with pytest.raises(ValueError):
        ApduProtocol(link).send(0, 0x2A, 0x9E, 0x9A, bytes(300))
    assert link.sent == []


def test_61xx_is_followed_by_get_response_and_data_concatenated() -> None:
    link = Script(("00b0000000", "01026110"), ("00c0000010", "0304" + "9000"))
    assert ApduProtocol(link).send(0, 0xB0, 0, 0, le=256) == b"\x01\x02\x03\x04"


def test_6cxx_resends_once_with_the_right_le() -> None:
    link = Script(("00b0000010", "6c05"), ("00b0000005", "0102030405" + "9000"))
    assert ApduProtocol(link).send(0, 0xB0, 0, 0, le=16) == bytes(range(1, 6))
    assert len(link.sent) == 2


def test_endless_61xx_chain_is_a_malformed_response() -> None:
    class Endless(Script):
        def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
            return b"\x00", 0x6101

    with pytest.raises(MalformedResponseError):
        ApduProtocol(Endless()).send(0, 0xB0, 0, 0, le=1)


@pytest.mark.parametrize(
    ("sw", "error", "attrs"),
    [
        (0x63C2, WrongPinError, {"tries_left": 2}),
        (0x63C1, WrongPinError, {"tries_left": 1}),
        (0x63C0, PinBlockedError, {}),
        (0x6983, PinBlockedError, {}),
        (0x6982, SecurityStatusError, {}),
        (0x6A82, FileNotFoundOnCardError, {}),
        (0x6700, WrongLengthError, {}),
        (0x6D00, NotSupportedError, {}),
        (0x6F00, ApduError, {"sw": 0x6F00}),
    ],
)
def test_status_words_become_typed_errors(sw: int, error: type, attrs: dict) -> None:
    exc = error_for_status(sw)
    assert type(exc) is error
    assert exc.sw == sw
    for name, value in attrs.items():
        assert getattr(exc, name) == value
    assert str(exc)  # a sentence for the user, never empty


def test_wrong_pin_message_says_tries_left() -> None:
    assert "2" in str(error_for_status(0x63C2))


def test_response_shorter_than_a_status_word_is_malformed() -> None:
    with pytest.raises(MalformedResponseError):
        ResponseApdu.parse(b"\x90")
    assert ResponseApdu.parse(b"\x01\x90\x00") == ResponseApdu(b"\x01", 0x9000)
