"""PKCS#15 directory files, our CPS data objects and the small CPS parsers: fixed bytes,
round trips, and every malformed input a typed MalformedResponseError."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardreader import cps_data, pkcs15
from cardreader.cps import (
    parse_certificate,
    parse_pin_tries,
    parse_serial_number,
    sha256_finish,
    sha256_partial,
)
from cardreader.errors import MalformedResponseError

# The virtual CPS3's ODF and AODF (fixed bytes, as read from the card in test_cps_recorded).
ODF = bytes.fromhex(
    "A00A300804063F0000017002A40A300804063F0000017004A70A300804063F0000017005"
    "A80A300804063F0000017001" + "00" * 16
)
AODF = bytes.fromhex(
    "302C300E0C0C436F646520706F72746575723003040101A1153013030203080A0101020104020104020104800101"
)


def test_odf_gives_each_directory_file_with_its_path() -> None:
    assert pkcs15.parse_odf(ODF) == (
        pkcs15.OdfRecord("private_keys", bytes.fromhex("3F0000017002")),
        pkcs15.OdfRecord("certificates", bytes.fromhex("3F0000017004")),
        pkcs15.OdfRecord("data_objects", bytes.fromhex("3F0000017005")),
        pkcs15.OdfRecord("auth_objects", bytes.fromhex("3F0000017001")),
    )


def test_aodf_gives_the_pin_reference_and_format() -> None:
    (pin,) = pkcs15.parse_aodf(AODF)
    assert pin == pkcs15.PinInfo(
        "Code porteur", b"\x01", frozenset({"initialized"}), "ascii-numeric", 4, 4, 4, 1
    )


def test_directory_files_round_trip() -> None:
    key = pkcs15.PrivateKeyInfo(
        "CPS_PRIV_SIG", b"\x12", frozenset({"sign", "nonRepudiation"}), 0x82,
        bytes.fromhex("3F000001"), 2048, b"\x01", frozenset({"sensitive", "local"}), (4, 5),
    )
    cert = pkcs15.CertificateInfo("Certificat de Signature CPS", b"\x12", b"\x3f\x00\xa0\x02")
    data = pkcs15.DataObjectInfo("CPS_ACTIVITY_01_PS", "CPS", b"\xd1\x31", b"\x01", True)
    pin = pkcs15.PinInfo(
        "PIN", b"\x01", frozenset({"needs-padding", "local"}), "ascii-numeric", 4, 8, 8, 0x81,
        b"\xff", b"\x3f\x00",
    )
    info = pkcs15.TokenInfo(
        0, b"\x00\x00\x10\x00\x01", "ANS", "CPS", frozenset({"readonly"}),
        (pkcs15.Algorithm(1, pkcs15.CKM_RSA_PKCS, frozenset({"compute-signature"}), 0x02),),
    )
    assert pkcs15.parse_prkdf(pkcs15.encode_prkdf([key], size=200)) == (key,)
    assert pkcs15.parse_cdf(pkcs15.encode_cdf([cert])) == (cert,)
    assert pkcs15.parse_dodf(pkcs15.encode_dodf([data])) == (data,)
    assert pkcs15.parse_aodf(pkcs15.encode_aodf([pin])) == (pin,)
    assert pkcs15.parse_token_info(pkcs15.encode_token_info(info)) == info


PARSERS = [
    pkcs15.parse_odf,
    pkcs15.parse_token_info,
    pkcs15.parse_prkdf,
    pkcs15.parse_cdf,
    pkcs15.parse_aodf,
    pkcs15.parse_dodf,
    cps_data.decode_id_card,
    cps_data.decode_name,
    cps_data.decode_info,
    cps_data.decode_activity,
    parse_serial_number,
    parse_certificate,
    lambda data: parse_pin_tries(data, 1),
]


@pytest.mark.parametrize(
    "data",
    [
        AODF[:-3],  # truncated
        b"\x30\x03\x02\x01",  # length beyond the end
        b"\x31" + AODF[1:],  # SET instead of SEQUENCE
        ODF[:12] + b"\x01" + ODF[13:],  # data after the 00 padding
        b"\x04\x02\xff\xff",  # wrong type entirely
        bytes.fromhex("3006300404023f00"),  # a bare Path where an object is expected
    ],
)
@pytest.mark.parametrize("parse", PARSERS[:6])
def test_malformed_directory_files_are_refused(parse, data: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse(data)


def test_data_objects_round_trip_and_empty_slots() -> None:
    card = cps_data.CardInfo(
        "CPS", True, datetime(2024, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    )
    info = cps_data.HolderInfo("810001234565", "10", "SM54")
    situation = cps_data.PracticeSituation("3750100042", "Centre de santé", "S", "vacataire")
    padded = cps_data.encode_id_card(card) + bytes(40)
    assert cps_data.decode_id_card(padded) == card
    assert cps_data.decode_info(cps_data.encode_info(info)) == info
    no_specialty = cps_data.HolderInfo("810002345675", "21", None)
    assert cps_data.decode_info(cps_data.encode_info(no_specialty)) == no_specialty
    assert cps_data.decode_activity(cps_data.encode_activity(situation)) == situation
    assert cps_data.decode_activity(bytes(64)) is None  # an unused situation slot
    with pytest.raises(MalformedResponseError):
        cps_data.decode_name(bytes(16))
    with pytest.raises(MalformedResponseError):  # another version of our format
        cps_data.decode_id_card(bytes.fromhex("3005020102") + b"")


def test_a_practice_situation_carries_its_activity_sector() -> None:
    pharmacy = cps_data.PracticeSituation("3690001234", "Pharmacie", "L", "titulaire", "SA33")
    assert cps_data.decode_activity(cps_data.encode_activity(pharmacy)) == pharmacy
    # A card written before the sector was added still reads, with no sector.
    older = cps_data.encode_activity(cps_data.PracticeSituation("3690001234", "Pharmacie", "L",
                                                                "titulaire"))
    assert cps_data.decode_activity(older) == cps_data.PracticeSituation(
        "3690001234", "Pharmacie", "L", "titulaire", None)
    # Whatever a card says there must be a TRE_R02 code, not free text.
    odd = cps_data.encode_activity(cps_data.PracticeSituation("3690001234", "P", "L", "t",
                                                              "OFFICINE"))
    with pytest.raises(MalformedResponseError, match="TRE_R02"):
        cps_data.decode_activity(odd)


def test_pin_tries_come_from_the_docp() -> None:
    answer = bytes.fromhex("BF810114A012A1078C0571000000009A01039B0102800104")
    assert parse_pin_tries(answer, 1) == (3, 2)
    assert parse_pin_tries(bytes.fromhex("7018") + answer, 1) == (3, 2)  # inside a 70 template
    with pytest.raises(MalformedResponseError):
        parse_pin_tries(answer, 2)  # another PIN's object
    with pytest.raises(MalformedResponseError):
        parse_pin_tries(bytes.fromhex("BF810105A0039A0103"), 1)  # no 9B counter


def test_serial_number_is_the_end_of_the_pan() -> None:
    assert parse_serial_number(bytes.fromhex("5A0A80250000011234567890")) == "1234567890"


VALID = [
    ODF,
    AODF,
    bytes.fromhex("BF810114A012A1078C0571000000009A01039B0102800104"),
    bytes.fromhex("5A0A80250000011234567890"),
    cps_data.encode_info(cps_data.HolderInfo("810001234565", "10", "SM54")),
    cps_data.encode_activity(cps_data.PracticeSituation("3750100042", "Centre", "S", "r")),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid card file with a few bytes changed, cut or added: closer to real faults."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position:]
        else:
            data.insert(position, draw(st.integers(0, 255)))
    return bytes(data)


@given(st.one_of(st.binary(max_size=200), mutated()))
@settings(max_examples=400, deadline=None)
def test_parsers_return_or_raise_malformed_on_any_bytes(data: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(MalformedResponseError):
            parse(data)


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_the_card_side_finish_of_a_partial_sha256_is_sha256(data: bytes) -> None:
    state, bits, tail = sha256_partial(data)
    assert bits == 8 * (len(data) - len(tail)) and len(tail) < 64
    assert sha256_finish(state, bits, tail) == hashlib.sha256(data).digest()
