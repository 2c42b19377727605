"""BER-TLV parsing and the ISO file system of the emulators (pure)."""

from __future__ import annotations

import pytest

from cardreader import tlv
from cardreader.apdu import ApduProtocol
from cardreader.errors import FileNotFoundOnCardError, MalformedResponseError
from cardreader.iso7816 import fcp_size, read_binary, select_path
from cardreader.virtual.direct import DirectConnection as InProcess
from cardreader.virtual.filesystem import (
    DedicatedFile,
    ElementaryFile,
    FileSystemCard,
    parse_command_body,
)


def test_templates_and_padding() -> None:
    data = tlv.encode(0x65, tlv.encode(0x80, b"MARTIN") + tlv.encode(0x81, b"ZOE")) + bytes(20)
    (template,) = tlv.parse_all(data)
    assert template.tag == 0x65 and template.require(0x80) == b"MARTIN"
    assert template.find(0x82) is None
    with pytest.raises(MalformedResponseError):
        template.require(0x82)


def test_two_byte_tags_and_long_lengths() -> None:
    value = bytes(300)
    item, end = tlv.parse_one(tlv.encode(0x5F20, value))
    assert item.tag == 0x5F20 and item.value == value and end == 2 + 3 + 300


@pytest.mark.parametrize(
    "raw",
    ["6505800141", "65848fffffff", "1f", "6580800000", "650380014100ff01", "8002"],
)
def test_malformed_tlv_is_a_typed_error(raw: str) -> None:
    with pytest.raises(MalformedResponseError):
        tlv.parse_all(bytes.fromhex(raw))


def test_primitive_value_has_no_children() -> None:
    (item,) = tlv.parse_all(tlv.encode(0x80, b"x"))
    with pytest.raises(MalformedResponseError):
        item.children()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", (b"", None)),
        ("00", (b"", 256)),
        ("023f00", (b"\x3f\x00", None)),
        ("023f0000", (b"\x3f\x00", 256)),
        ("000100", (b"", 256)),
        ("00000201020000", (b"\x01\x02", 65536)),
    ],
)
def test_command_body_cases(body: str, expected: tuple[bytes, int | None]) -> None:
    assert parse_command_body(bytes.fromhex(body)) == expected


def _card() -> FileSystemCard:
    mf = DedicatedFile(0x3F00)
    app = mf.add(DedicatedFile(0x0001, aid=b"\xe8\x28\xbd"))
    assert isinstance(app, DedicatedFile)
    app.add(ElementaryFile(0x5031, data=bytes(range(256)) * 2))
    mf.add(ElementaryFile(0x0002, data=b"abc", sfi=2))
    return FileSystemCard(mf)


def test_select_by_path_then_read_whole_file_in_chunks() -> None:
    protocol = ApduProtocol(InProcess(_card()))
    size = fcp_size(select_path(protocol, bytes.fromhex("3f0000015031")))
    assert size == 512
    assert read_binary(protocol, size) == bytes(range(256)) * 2
    assert protocol.apdu_count == 1 + 3  # 512 bytes in chunks of 0xE7


def test_read_by_short_file_id_without_select() -> None:
    protocol = ApduProtocol(InProcess(_card()))
    assert read_binary(protocol, sfi=2) == b"abc"
    assert protocol.apdu_count == 1


def test_missing_file_is_file_not_found() -> None:
    protocol = ApduProtocol(InProcess(_card()))
    with pytest.raises(FileNotFoundOnCardError):
        select_path(protocol, bytes.fromhex("3f000001dead"))


def test_emulator_answers_garbage_with_a_status_word_not_an_exception() -> None:
    card = _card()
    for apdu in (b"", b"\x00", b"\x00\xa4\x09\x04\x05\x3f", b"\xff\xa4\x00\x00", bytes(300)):
        response = card.process(apdu)
        assert response is not None and len(response) == 2 and response != b"\x90\x00"
