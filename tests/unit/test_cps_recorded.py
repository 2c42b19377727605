"""The CPS profile checked against fixed bytes: exchanges recorded once from the emulator
(cardreader.virtual.cps, profile "gp") and replayed by a connection that insists on receiving
exactly the recorded commands, plus hand-made answers for what the emulator never says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cardreader import pkcs15
from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsIdentity, CpsKey, PracticeSituation
from cardreader.errors import (
    InvalidPinFormatError,
    MalformedResponseError,
    PinBlockedError,
    PukBlockedError,
    WrongPinError,
    WrongPukError,
)

Exchanges = list[tuple[str, str]]
CPS3_ATR = bytes.fromhex("3BAC00402A001225006480000310009000")


class Replay:
    """A `Connection` that answers the recorded responses, in order, to the recorded
    commands only (anything else fails the test)."""

    atr = CPS3_ATR

    def __init__(self, exchanges: Exchanges) -> None:
        self.exchanges = [(c, "".join(r) if isinstance(r, tuple) else r) for c, r in exchanges]
        self.position = 0

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        assert self.position < len(self.exchanges), f"unexpected command {apdu.hex().upper()}"
        command, response = self.exchanges[self.position]
        assert apdu.hex().upper() == command, f"exchange {self.position}"
        self.position += 1
        raw = bytes.fromhex(response)
        return raw[:-2], int.from_bytes(raw[-2:], "big")

    def close(self) -> None:
        pass

    @property
    def done(self) -> bool:
        return self.position == len(self.exchanges)


def _card(exchanges: Exchanges) -> tuple[CpsCard, Replay]:
    replay = Replay(exchanges)
    return CpsCard(ApduProtocol(replay)), replay


# -- recorded from the emulator -----------------------------------------------------------------

IDENTITY: Exchanges = [
    ("00B09C000C", "5A0A802500000100001000019000"),
    ("00A40904063F000001503100", "621580020040820101830250318A0105A1058C0303FF009000"),
    (
        "00B0000040",
        (
            "A00A300804063F0000017002A40A300804063F0000017004A70A300804063F0000017005A80A30080406"
            "3F0000017001000000000000000000000000000000009000"
        ),
    ),
    ("00A40904063F000001700500", "6215800200D0820101830270058A0105A1058C0303FF009000"),
    (
        "00B00000D0",
        (
            "3022300D0C0B4350535F49445F4341524430050C03435053A10A300804063F000001D1213022300D0C0B"
            "4350535F4E414D455F505330050C03435053A10A300804063F000001D1223022300D0C0B4350535F494E"
            "464F5F505330050C03435053A10A300804063F000001D1233030301B0C124350535F4143544956495459"
            "5F30315F50530302078004010130050C03435053A10A300804063F000001D1313030301B0C124350535F"
            "41435449564954595F30325F50530302078004010130050C03435053A10A300804063F000001D1329000"
        ),
    ),
    ("00A40904063F000001D12100", "62158002002F8201018302D1218A0105A1058C0303FF009000"),
    (
        "00B000002F",
        (
            "302D0201010C034350530101FF180F32303235313132373030303030305A180F32303239313132363030"
            "303030305A9000"
        ),
    ),
    ("00A40904063F000001D12200", "6215800200128201018302D1228A0105A1058C0303FF009000"),
    ("00B0000012", "30100C064D415254494E0C06436C616972659000"),
    ("00A40904063F000001D12300", "62158002001A8201018302D1238A0105A1058C0303FF009000"),
    ("00B000001A", "3018130C383130303031323334353635130231308004534D35349000"),
]

PIN_AND_SITUATIONS: Exchanges = [
    ("00A40904063F000001503100", "621580020040820101830250318A0105A1058C0303FF009000"),
    (
        "00B0000040",
        (
            "A00A300804063F0000017002A40A300804063F0000017004A70A300804063F0000017005A80A30080406"
            "3F0000017001000000000000000000000000000000009000"
        ),
    ),
    ("00A40904063F000001700100", "62158002002E820101830270018A0105A1058C0303FF009000"),
    (
        "00B000002E",
        (
            "302C300E0C0C436F646520706F72746575723003040101A1153013030203080A01010201040201040201"
            "048001019000"
        ),
    ),
    (
        "00CB3FFF0A4D087006BF810102A08000",
        "BF810114A012A1078C0571000000009A01039B01038001049000",
    ),
    ("002000010430303030", "63C2"),
    ("002000010431323334", "9000"),
    ("00A40904063F000001700500", "6215800200D0820101830270058A0105A1058C0303FF009000"),
    (
        "00B00000D0",
        (
            "3022300D0C0B4350535F49445F4341524430050C03435053A10A300804063F000001D1213022300D0C0B"
            "4350535F4E414D455F505330050C03435053A10A300804063F000001D1223022300D0C0B4350535F494E"
            "464F5F505330050C03435053A10A300804063F000001D1233030301B0C124350535F4143544956495459"
            "5F30315F50530302078004010130050C03435053A10A300804063F000001D1313030301B0C124350535F"
            "41435449564954595F30325F50530302078004010130050C03435053A10A300804063F000001D1329000"
        ),
    ),
    ("00A40904063F000001D13100", "62158002003B8201018302D1318A0105A1058C0303FF129000"),
    (
        "00B000003B",
        (
            "3039130F3538313233343536373830303031350C18436162696E6574206DC3A9646963616C2064752050"
            "6172630C014C0C09746974756C616972659000"
        ),
    ),
    ("00A40904063F000001D13200", "62158002004C8201018302D1328A0105A1058C0303FF129000"),
    (
        "00B000004C",
        (
            "304A130A333735303130303034320C2543656E7472652064652073616E74C3A9206D756E69636970616C"
            "2042656C6C6576696C6C650C01530C126DC3A9646563696E207661636174616972659000"
        ),
    ),
]

SIGNATURES: Exchanges = [
    ("00A40904063F000001503100", "621580020040820101830250318A0105A1058C0303FF009000"),
    (
        "00B0000040",
        (
            "A00A300804063F0000017002A40A300804063F0000017004A70A300804063F0000017005A80A30080406"
            "3F0000017001000000000000000000000000000000009000"
        ),
    ),
    ("00A40904063F000001700100", "62158002002E820101830270018A0105A1058C0303FF009000"),
    (
        "00B000002E",
        (
            "302C300E0C0C436F646520706F72746575723003040101A1153013030203080A01010201040201040201"
            "048001019000"
        ),
    ),
    ("002000010431323334", "9000"),
    ("00A40904063F000001700200", "621580020075820101830270028A0105A1058C0303FF009000"),
    (
        "00B0000075",
        (
            "303830150C0C4350535F505249565F41555403020780040101300F04011103020520030203B802020081"
            "A10E300C300604043F00000102020800303930150C0C4350535F505249565F5349470302078004010130"
            "100401120303062040030203B802020082A10E300C300604043F000001020208009000"
        ),
    ),
    ("002241A406800102840181", "9000"),
    (
        (
            "00880000333031300D0609608648016503040201050004202DD00BD77E0222CED882665481A9C1D9F907"
            "309D16E05ED007A1EA63928477A900"
        ),
        (
            "94272C1506558C4470E8C23E1E0B8C2B6EC967F75C2F2934090C29BB8FF5726AF7426881C1F0781DE58B"
            "9AB38DE96BCEC0065A5BC68259176C1931E771890B265FCDF9E87F211B2E3C11E49993C8E43519352D11"
            "DF18486B0EDF074A7EBAC25DC3533EFEF808BACD3C635F0E27DDE5E3980576EEDF1616E22E947E26BA65"
            "E076CF0E6B51D4DDC42554C3B436EB18F6F2960A6B0C8A4080147AABC04C73AA379EDB7C22E913D690D6"
            "56F94F2E056FFBFFA6250C10732915B64E388214422F47C1396B03C9C5BEAF4F7A786F07B3CD97EDE948"
            "D71D5CF6DD44C3A471F50042A9ADBFC1301A707A77DD9DC171A9572D3874215E5A3F5D242E4D9FD9148B"
            "B178DE7E9000"
        ),
    ),
    ("002241AA03800140", "9000"),
    (
        (
            "002A90A0509028FC99A2DF88F42A7A7BB9D18033CDC6A20256755F9D5B9A5044A9CC315ABE84A7000000"
            "00000002008024404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606162"
            "63"
        ),
        "9000",
    ),
    ("002241B606800142840182", "9000"),
    (
        "002A9E9A00",
        (
            "1B99F7682C0F59C337D0532190C57E7EF700967E2C117D7AC6CEE754D9B5C7B50F52D5196774E1E09A9D"
            "6CC305F76BD335F03DBE784D677ACA7795768639E9D62D99600AE4806F303DD819CEEDE4573FF0ACB852"
            "44C4C13CEA98C1021944A3D049CD07CBE293213CDACAB4C299DDA5D3B7A8F606F7407159DBA08BFA7587"
            "FF6559530611A2243E57B2BF849E3F69A6389C95F8075B4DEC89B5F4B25034FCC4CEDD550C4E1D6CCFFC"
            "5F8A57ACDF5652B1F549BD8FF470EC4AD9B3D3A3CFDB5ACFC2AFCE730A8BEE0C0FFA4CBA552A62E386E1"
            "FC4975E4F5CCA21C013E45CCC212D32F6D220B58FB436BDBD213E587F54A8EAD6BCE1A976A7D409DF8C3"
            "AA81E7DC9000"
        ),
    ),
]

# What reading the ODF and the AODF costs (the start of every PIN operation).
PIN_PREFIX = PIN_AND_SITUATIONS[:4]


def test_identity_is_read_in_eleven_apdus_and_never_twice() -> None:
    card, replay = _card(IDENTITY)
    identity = card.read_identity()
    assert identity == CpsIdentity(
        id_nat_ps="810001234565",
        last_name="MARTIN",
        first_name="Claire",
        profession_code="10",
        specialty_code="SM54",
        category_code="CPS",
        is_test_card=True,
        not_before=datetime(2025, 11, 27, tzinfo=UTC),
        not_after=datetime(2029, 11, 26, tzinfo=UTC),
        serial_number="0000100001",
    )
    assert replay.done and card.apdu_count == 11
    assert card.read_identity() == identity  # from the files already read: no APDU
    assert card.apdu_count == 11


def test_pin_tries_wrong_pin_then_situations() -> None:
    card, replay = _card(PIN_AND_SITUATIONS)
    assert card.pin_tries_left() == 3
    with pytest.raises(WrongPinError) as wrong:
        card.verify_pin("0000")
    assert wrong.value.tries_left == 2
    card.verify_pin("1234")
    assert card.read_situations() == (
        PracticeSituation("581234567800015", "Cabinet médical du Parc", "L", "titulaire"),
        PracticeSituation(
            "3750100042", "Centre de santé municipal Belleville", "S", "médecin vacataire"
        ),
    )
    assert replay.done


def test_signature_commands_and_results_are_the_recorded_ones() -> None:
    card, replay = _card(SIGNATURES)
    card.verify_pin("1234")
    responses = {c[:4]: r for c, r in replay.exchanges}
    # Authentication key: MSE AT then INTERNAL AUTHENTICATE with the SHA-256 DigestInfo.
    assert card.sign(CpsKey.AUTHENTICATION, b"challenge") == bytes.fromhex(responses["0088"])[:-2]
    # Signature key: MSE HT, PSO HASH with the partial state of the whole 64-byte block and
    # the 36-byte tail, MSE DST, PSO CDS; the replay checks every command byte.
    signature = card.sign(CpsKey.SIGNATURE, bytes(range(100)))
    assert signature == bytes.fromhex(replay.exchanges[-1][1])[:-2]
    assert replay.done


def test_a_pin_of_the_wrong_format_is_never_sent() -> None:
    for pin in ("123", "12345", "12a4", "１２３４", ""):
        card, replay = _card(PIN_PREFIX)
        with pytest.raises(InvalidPinFormatError):
            card.verify_pin(pin)
        assert replay.done  # ODF and AODF read, no VERIFY


def test_tries_left_falls_back_on_the_empty_verify() -> None:
    card, replay = _card([*PIN_PREFIX, ("00CB3FFF0A4D087006BF810102A08000", "6D00"),
                          ("00200001", "63C2")])
    assert card.pin_tries_left() == 2
    assert replay.done


@pytest.mark.parametrize(
    "answers",
    [
        [("00CB3FFF0A4D087006BF810102A08000", "BF81010BA0099A01039B0100800104" "9000")],
        [("00CB3FFF0A4D087006BF810102A08000", "6A81"), ("00200001", "6983")],
    ],
)
def test_a_blocked_pin_shows_zero_tries(answers: Exchanges) -> None:
    card, _ = _card([*PIN_PREFIX, *answers])
    assert card.pin_tries_left() == 0


@pytest.mark.parametrize("status", ["63C0", "6983"])
def test_a_blocked_card_says_so(status: str) -> None:
    card, _ = _card([*PIN_PREFIX, ("002000010431323334", status)])
    with pytest.raises(PinBlockedError):
        card.verify_pin("1234")


# RESET RETRY COUNTER recorded from the emulator (gp, PIN blocked): a wrong PUK (8765 4321,
# 9 of its 10 tries left), then the right one (1234 5678) with the new PIN 4321.
UNBLOCK_WRONG = ("002C00010C383736353433323134333231", "63C9")
UNBLOCK_RIGHT = ("002C00010C313233343536373834333231", "9000")


def test_unblock_sends_the_puk_then_the_new_pin_in_one_command() -> None:
    card, replay = _card([*PIN_PREFIX, UNBLOCK_WRONG, UNBLOCK_RIGHT,
                          ("002000010434333231", "9000")])
    with pytest.raises(WrongPukError) as wrong:
        card.unblock_pin("87654321", "4321")
    assert wrong.value.tries_left == 9 and not isinstance(wrong.value, WrongPinError)
    card.unblock_pin("12345678", "4321")
    card.verify_pin("4321")
    assert replay.done


@pytest.mark.parametrize("status", ["63C0", "6983"])
def test_a_blocked_puk_is_not_a_blocked_pin(status: str) -> None:
    card, replay = _card([*PIN_PREFIX, (UNBLOCK_RIGHT[0], status)])
    with pytest.raises(PukBlockedError, match="issuer") as blocked:
        card.unblock_pin("12345678", "4321")
    assert not isinstance(blocked.value, PinBlockedError)
    assert replay.done


@pytest.mark.parametrize(("puk", "new_pin", "sent"), [
    ("1234567", "4321", []), ("123456789", "4321", []), ("1234567a", "4321", []),
    ("１２３４５６７８", "4321", []), ("12345678", "432", PIN_PREFIX),
    ("12345678", "43210", PIN_PREFIX), ("12345678", "43a1", PIN_PREFIX),
])
def test_codes_of_the_wrong_format_are_never_sent(puk: str, new_pin: str,
                                                  sent: Exchanges) -> None:
    card, replay = _card(list(sent))
    with pytest.raises(InvalidPinFormatError) as error:
        card.unblock_pin(puk, new_pin)
    assert replay.done  # at most the ODF and the AODF (the new PIN's format): no 2C
    assert puk not in str(error.value) + repr(error.value)
    assert new_pin not in str(error.value) + repr(error.value)


def test_the_codes_are_in_no_error() -> None:
    card, _ = _card([*PIN_PREFIX, UNBLOCK_WRONG])
    with pytest.raises(WrongPukError) as wrong:
        card.unblock_pin("87654321", "4321")
    said = f"{wrong.value} {wrong.value!r} {wrong.value.args} {wrong.value.data!r}"
    assert "87654321" not in said and "4321" not in said


def test_the_application_is_found_through_ef_dir_when_not_at_its_usual_path() -> None:
    odf = pkcs15.encode_odf([pkcs15.OdfRecord("auth_objects", bytes.fromhex("3F0050007001"))])
    aodf = bytes.fromhex(PIN_AND_SITUATIONS[3][1])[:-2]
    record = "61154F0DE828BD080F8025000001FF00105104" "3F005000" "9000"
    fcp = "62048002{:04X}9000"
    card, replay = _card(
        [
            ("00A40904063F000001503100", "6A82"),
            ("00A4090C043F002F00", "9000"),
            ("00B2010400", record),
            ("00A40904063F005000503100", fcp.format(len(odf))),
            (f"00B00000{len(odf):02X}", odf.hex().upper() + "9000"),
            ("00A40904063F005000700100", fcp.format(len(aodf))),
            (f"00B00000{len(aodf):02X}", aodf.hex().upper() + "9000"),
            ("00CB3FFF0A4D087006BF810102A08000", "BF81010BA0099A01039B0101800104" "9000"),
        ]
    )
    assert card.pin_tries_left() == 1
    assert replay.done


@pytest.mark.parametrize(
    ("index", "response"),
    [
        (0, "5A0A992500000100001000019000"),  # a PAN that is not a CPS one
        (0, "5A0C8025000001000010000190009000"),  # wrong length
        (8, "30100C064D415254494E0C0643" "9000"),  # CPS_NAME_PS truncated
        (10, "3018130C383130303031323334353635130231308004534D353441" "9000"),  # trailing byte
        (4, "3022300D0C0B4350535F49445F434152443005" "9000"),  # DODF truncated
    ],
)
def test_malformed_answers_raise_malformed_response(index: int, response: str) -> None:
    exchanges = list(IDENTITY)
    command = exchanges[index][0]
    if index in (4, 8, 10):  # keep the FCP size consistent with the new content
        length = len(response) // 2 - 2
        exchanges[index - 1] = (
            exchanges[index - 1][0],
            exchanges[index - 1][1][:8] + f"{length:04X}" + exchanges[index - 1][1][12:],
        )
        command = command[:-2] + f"{length:02X}"
    exchanges[index] = (command, response)
    card, _ = _card(exchanges)
    with pytest.raises(MalformedResponseError):
        card.read_identity()
