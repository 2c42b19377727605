"""The Vitale profile and data model, without pcscd: recorded exchanges and pure parsers."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardreader import tlv
from cardreader.apdu import ApduProtocol
from cardreader.atr import CardKind, identify
from cardreader.errors import CardError, FileNotFoundOnCardError, MalformedResponseError
from cardreader.virtual.direct import DirectConnection as InProcess
from cardreader.virtual.vitale import VirtualVitale
from cardreader.virtual.vitale_profiles import PROFILES
from cardreader.vitale import (
    QUALITY_LABELS,
    Beneficiary,
    BirthDate,
    Sex,
    Vitale2Profile,
    VitaleCard,
    VitaleCategory,
    category_for,
    check_nir,
    encode_extra_file,
    encode_identity_file,
    encode_nir_file,
    nir_key,
    parse_card,
    parse_extra_file,
    parse_identity_file,
    parse_nir_file,
)


class Replay:
    """A Connection that plays back recorded (command hex, response hex) pairs in order and
    fails on any command that differs from the recording."""

    atr = bytes.fromhex("3B751300004709EA9000")

    def __init__(self, exchanges: list[tuple[str, str]]) -> None:
        self.exchanges = list(exchanges)
        self.sent: list[str] = []

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        assert self.exchanges, f"unexpected extra command {apdu.hex().upper()}"
        command, response = self.exchanges.pop(0)
        assert apdu.hex().upper() == command
        self.sent.append(command)
        raw = bytes.fromhex(response)
        return raw[:-2], int.from_bytes(raw[-2:], "big")

    def close(self) -> None:
        pass




# Recorded once from VirtualVitale.from_profile(...) with Vitale2Profile.
SELECT_MF = ("00A40000023F00", "621782013883023F00840ED2500000024D465F564954414C459000")
SELECT_VITALE = (
    "00A404000BD250000002564954414C45",
    "621482013883021000840BD250000002564954414C459000",
)
SINGLE = [
    SELECT_MF,
    ("00B0820000", "651A80064D415254494E8106434C4149524582083139383430353137000000009000"),
    SELECT_VITALE,
    ("00B0820000", "6511930F323834303537353131343032333936000000000000000000000000009000"),
    (
        "00B0910000",
        "E11FC00131C1023031C203373531C30430353231C40B3230323430303030313031E220C1023030C2"
        "0131C3064D415254494EC40F32383430353735313134303233393600000000000000000000000000"
        "000000000000000000000000000000009000",
    ),
]
FAMILY = [
    SELECT_MF,
    (
        "00B0820000",
        "651A8006445552414E44810654484F4D415382083139373931313032651A8006445552414E448106"
        "534F504849458208313938313033323265178006445552414E4481034CC941820832303135303030"
        "300000000000000000000000000000009000",
    ),
    SELECT_VITALE,
    (
        "00B0820000",
        "6516930F31373931313639313233303435363690034652416511930F313739313136393132333034"
        "3536366511930F31373931313639313233303435363600009000",
    ),
    (
        "00B0910000",
        "E11FC00131C1023031C203363931C30430363431C40B3230323430303030323032E220C1023030C2"
        "0131C306445552414E44C40F313739313136393132333034353636E222C1023032C20131C3084C45"
        "464542565245C40F323831303335393335303031323733E20FC1023036C20131C306445552414E44"
        "00000000000000009000",
    ),
]


def _data(exchange: tuple[str, str]) -> bytes:
    return bytes.fromhex(exchange[1])[:-2]


FAMILY_IDENTITY, FAMILY_NIRS, FAMILY_EXTRA = (_data(FAMILY[i]) for i in (1, 3, 4))


# -- the profile over recorded exchanges ----------------------------------------------------
@pytest.mark.parametrize(("name", "exchanges"), [("single", SINGLE), ("family", FAMILY)])
def test_recorded_card_reads_back_as_its_model_in_five_apdus(
    name: str, exchanges: list[tuple[str, str]]
) -> None:
    connection = Replay(exchanges)
    protocol = ApduProtocol(connection)
    card = Vitale2Profile(protocol).read()
    assert card == PROFILES[name]
    assert protocol.apdu_count == 5 and not connection.exchanges


def test_family_card_content() -> None:
    card = Vitale2Profile(ApduProtocol(Replay(FAMILY))).read()
    holder, spouse, child = card.beneficiaries
    assert card.holder is holder and holder.first_name == "THOMAS"
    assert (card.regime, card.caisse, card.centre) == ("01", "691", "0641")
    assert card.category is VitaleCategory.PRODUCTION
    assert holder.nir_with_key == card.nir_with_key  # the insured holds the card
    assert (holder.quality, holder.quality_label) == (0, "assuré (ouvrant droit)")
    assert (spouse.quality, spouse.birth_name, spouse.last_name) == (2, "LEFEBVRE", "DURAND")
    assert child.first_name == "LÉA"  # ISO-8859-1 on the card
    assert child.quality_label == "enfant"
    assert child.nir is None and child.sex is None  # covered under the father's NIR only
    assert not child.birth_date.is_calendar_date and str(child.birth_date) == "00/00/2015"
    assert (holder.sex, spouse.sex) == (Sex.MALE, Sex.FEMALE)
    assert holder.nationality == "FRA" and spouse.nationality is None


def test_a_real_card_without_our_extra_file_says_so() -> None:
    exchanges = [*FAMILY[:4], ("00B0910000", "6A82")]
    with pytest.raises(FileNotFoundOnCardError, match="extra file"):
        Vitale2Profile(ApduProtocol(Replay(exchanges))).read()


def test_selects_answered_with_61xx_are_followed_by_get_response() -> None:
    # A T=0 card answers a SELECT with data through 61xx: the profile must not care.
    mf_fcp = SELECT_MF[1][:-4]
    exchanges = [
        ("00A40000023F00", "61" + f"{len(mf_fcp) // 2:02X}"),
        ("00C0000019", mf_fcp + "9000"),
        *FAMILY[1:],
    ]
    assert Vitale2Profile(ApduProtocol(Replay(exchanges))).read() == PROFILES["family"]


def _many(n: int) -> VitaleCard:
    base = PROFILES["family"]
    kids = tuple(
        dataclasses.replace(base.beneficiaries[2], first_name=f"ENFANT{i}", birth_rank=1 + i % 9)
        for i in range(n - 1)
    )
    return dataclasses.replace(base, beneficiaries=(base.beneficiaries[0], *kids))


def test_files_longer_than_one_read_are_read_on_without_rereading() -> None:
    card = _many(14)
    assert len(encode_extra_file(card)) > 256  # the case under test
    connection = InProcess(VirtualVitale(card))
    protocol = ApduProtocol(connection)
    assert Vitale2Profile(protocol).read() == card
    # Each file holds 257 to 511 bytes: two reads each, the second from offset 256.
    for encode in (encode_identity_file, encode_nir_file, encode_extra_file):
        assert 256 < len(encode(card)) < 512
    assert [c.hex().upper() for c, _ in connection.exchanges] == [
        SELECT_MF[0], "00B0820000", "00B0010000",
        SELECT_VITALE[0], "00B0820000", "00B0010000",
        "00B0910000", "00B0010000",
    ]
    assert protocol.apdu_count == 8


def test_a_read_stops_at_the_padding_of_a_long_file() -> None:
    # A card whose files are bigger than 256 bytes but whose data end early: one read each.
    emulator = VirtualVitale(PROFILES["single"])
    for node in emulator.mf.walk():
        if hasattr(node, "data"):
            node.data = node.data + bytes(600)
    protocol = ApduProtocol(InProcess(emulator))
    assert Vitale2Profile(protocol).read() == PROFILES["single"]
    assert protocol.apdu_count == 5


def test_emulator_atr_is_a_vitale_2_atr_and_profiles_are_named() -> None:
    assert identify(VirtualVitale.from_profile("single").atr)[0] is CardKind.VITALE
    with pytest.raises(KeyError, match="family"):
        VirtualVitale.from_profile("nobody")


# -- NIR -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "full", ["295109912611193", "253072B07300470", "253072A07300443", "286032A00401137"]
)
def test_valid_nirs_including_corsica(full: str) -> None:
    check_nir(full[:13], full[13:], "test")
    assert nir_key(full[:13]) == full[13:]


def test_corsica_departments_are_read_as_19_and_18_for_the_key() -> None:
    assert nir_key("253072A073004") == f"{97 - int('2530719073004') % 97:02d}"
    assert nir_key("253072B073004") == f"{97 - int('2530718073004') % 97:02d}"
    assert nir_key("253072A073004") != nir_key("253072B073004")


@pytest.mark.parametrize(
    ("nir", "key", "problem"),
    [
        ("2951099126111", "94", "key does not match"),
        ("253072A073004", "70", "key does not match"),  # the 2B key on a 2A NIR
        ("253072C073004", "43", "not 13 digits"),
        ("253072a073004", "43", "not 13 digits"),
        ("29510991261 1", "93", "not 13 digits"),
        ("295109912611", "93", "not 1[35] (digits|characters)"),
        ("2951099126111", "9A", "key is not 2 digits"),
        ("2951099126111", "²3", "key is not 2 digits"),
    ],
)
def test_bad_nirs_are_named_without_showing_the_nir(nir: str, key: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        check_nir(nir, key, "insured")
    assert nir[:5] not in str(info.value)
    body = tlv.encode(0x65, tlv.encode(0x93, (nir + key).encode("latin-1")))
    with pytest.raises(MalformedResponseError, match=problem) as parsed:
        parse_nir_file(body)
    assert nir[:5] not in str(parsed.value)


def test_a_wrong_key_on_the_card_is_a_malformed_response_without_the_nir() -> None:
    bad = FAMILY_NIRS.replace(b"179116912304566", b"179116912304567")
    with pytest.raises(MalformedResponseError, match="key does not match") as info:
        parse_card(FAMILY_IDENTITY, bad, FAMILY_EXTRA)
    assert "1791169" not in str(info.value)
    bad_certified = FAMILY_EXTRA.replace(b"281035935001273", b"281035935001274")
    with pytest.raises(MalformedResponseError, match="certified NIR"):
        parse_extra_file(bad_certified)


def test_repr_never_shows_a_nir() -> None:
    card = PROFILES["family"]
    text = repr(card)
    assert card.nir not in text and card.beneficiaries[1].nir not in text  # type: ignore[operator]
    assert "THOMAS" in text  # the rest is there for debugging


# -- birth dates -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "ymd", "calendar", "shown"),
    [
        ("19791102", (1979, 11, 2), True, "02/11/1979"),
        ("20150000", (2015, 0, 0), False, "00/00/2015"),
        ("20150300", (2015, 3, 0), False, "00/03/2015"),
        ("19860229", (1986, 2, 29), False, "29/02/1986"),  # not a leap year: kept as read
        ("19840229", (1984, 2, 29), True, "29/02/1984"),
        ("150312", (15, 3, 12), False, "12/03/15"),  # no century: never guessed
    ],
)
def test_birth_dates_are_kept_as_on_the_card(
    raw: str, ymd: tuple[int, int, int], calendar: bool, shown: str
) -> None:
    date = BirthDate.parse(raw)
    assert (date.raw, date.year, date.month, date.day) == (raw, *ymd)
    assert date.is_calendar_date is calendar
    assert (date.as_date() is not None) is calendar
    assert str(date) == shown


@pytest.mark.parametrize("raw", ["2015130", "20151301", "20150132", "2015-3-1", "", "1979110²"])
def test_birth_dates_that_are_not_card_dates_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        BirthDate.parse(raw)
    body = tlv.encode(
        0x65,
        tlv.encode(0x80, b"NOM") + tlv.encode(0x81, b"P") + tlv.encode(0x82, raw.encode("latin-1")),
    )
    with pytest.raises(MalformedResponseError, match="birth date"):
        parse_identity_file(body)


def test_birth_date_fields_must_agree_with_the_raw_text() -> None:
    with pytest.raises(ValueError, match="differ"):
        BirthDate("20150000", 2015, 1, 1)


# -- category ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("regime", "caisse", "centre", "demo", "expected"),
    [
        ("01", "751", "0521", False, VitaleCategory.PRODUCTION),
        ("01", "349", "0521", False, VitaleCategory.TEST),  # CNDA caisse
        ("02", "131", "0349", False, VitaleCategory.TEST),  # CNDA centre
        ("01", "999", "0001", False, VitaleCategory.TEST),  # GIE SESAM-Vitale
        ("02", "999", "0001", False, VitaleCategory.PRODUCTION),  # 999 is a test only in 01
        ("01", "751", "0349", True, VitaleCategory.DEMO),  # our marker wins
        ("01", "751", "0521", True, VitaleCategory.DEMO),
    ],
)
def test_category_rule(
    regime: str, caisse: str, centre: str, demo: bool, expected: VitaleCategory
) -> None:
    assert category_for(regime, caisse, centre, demo_marker=demo) is expected


def test_ready_profiles_have_the_category_their_name_says() -> None:
    assert {name: card.category for name, card in PROFILES.items()} == {
        "single": VitaleCategory.PRODUCTION,
        "family": VitaleCategory.PRODUCTION,
        "test": VitaleCategory.TEST,
        "demo": VitaleCategory.DEMO,
        "corsica": VitaleCategory.PRODUCTION,
        "homonym": VitaleCategory.PRODUCTION,
        "corrected": VitaleCategory.PRODUCTION,
    }
    assert PROFILES["corsica"].nir[5:7] == "2A"


def test_a_category_contradicting_the_codes_is_refused() -> None:
    single = PROFILES["single"]
    with pytest.raises(ValueError, match="contradicts"):
        dataclasses.replace(single, category=VitaleCategory.TEST)
    with pytest.raises(ValueError, match="contradicts"):
        dataclasses.replace(single, caisse="349")


def test_demo_marker_and_test_codes_survive_the_card_files() -> None:
    for name in ("test", "demo"):
        card = PROFILES[name]
        parsed = parse_card(
            encode_identity_file(card), encode_nir_file(card), encode_extra_file(card)
        )
        assert parsed.category is card.category


# -- malformed files -----------------------------------------------------------------------
def _expect_malformed(match: str, identity: bytes = FAMILY_IDENTITY, nirs: bytes = FAMILY_NIRS,
                      extra: bytes = FAMILY_EXTRA) -> None:
    with pytest.raises(MalformedResponseError, match=match):
        parse_card(identity, nirs, extra)


def test_the_recorded_files_parse() -> None:
    assert parse_card(FAMILY_IDENTITY, FAMILY_NIRS, FAMILY_EXTRA) == PROFILES["family"]


def test_truncated_template() -> None:
    _expect_malformed("malformed TLV", identity=FAMILY_IDENTITY.rstrip(b"\0")[:-5])
    _expect_malformed("malformed TLV", extra=FAMILY_EXTRA[:40])


def test_wrong_template_tag() -> None:
    _expect_malformed("unexpected tag 64", identity=b"\x64" + FAMILY_IDENTITY[1:])
    _expect_malformed("does not start", extra=b"\xe3" + FAMILY_EXTRA[1:])


def test_missing_field() -> None:
    no_first_name = tlv.encode(0x65, tlv.encode(0x80, b"NOM") + tlv.encode(0x82, b"19790101"))
    with pytest.raises(MalformedResponseError, match="tag 81 missing"):
        parse_identity_file(no_first_name)
    with pytest.raises(MalformedResponseError, match="tag 93 missing"):
        parse_nir_file(tlv.encode(0x65, tlv.encode(0x90, b"FRA")))


def test_duplicate_field() -> None:
    twice = tlv.encode(0x65, tlv.encode(0x93, b"179116912304566") * 2)
    with pytest.raises(MalformedResponseError, match="twice"):
        parse_nir_file(twice)


def test_non_digit_nir() -> None:
    _expect_malformed("not 13 digits", nirs=FAMILY_NIRS.replace(b"1791169123", b"17911691X3"))


def test_count_mismatch_between_the_files() -> None:
    two_nirs = b"".join(
        tlv.encode(0x65, tlv.encode(0x93, b"179116912304566")) for _ in range(2)
    )
    _expect_malformed(r"number of persons \(3 in the identity file, 2 in the NIR", nirs=two_nirs)
    extra_two = FAMILY_EXTRA.rstrip(b"\0")
    extra_two = extra_two[: extra_two.rindex(b"\xe2\x0f")]
    _expect_malformed("2 in the extra file", extra=extra_two)


def test_persons_covered_by_different_insured_nirs() -> None:
    other = b"".join(
        tlv.encode(0x65, tlv.encode(0x93, nir))
        for nir in (b"179116912304566", b"179116912304566", b"281035935001273")
    )
    _expect_malformed("same insured", nirs=other)


def test_control_characters_in_a_name() -> None:
    bad = FAMILY_IDENTITY.replace(b"THOMAS", b"THO\x07AS")
    _expect_malformed("control character", identity=bad)


def test_empty_file_and_only_padding() -> None:
    for data in (b"", bytes(64)):
        with pytest.raises(MalformedResponseError, match="no person"):
            parse_identity_file(data)


def test_extra_file_version_marker_and_codes() -> None:
    with pytest.raises(MalformedResponseError, match="layout version"):
        parse_extra_file(FAMILY_EXTRA.replace(b"\xc0\x01\x31", b"\xc0\x01\x32"))
    demo = encode_extra_file(PROFILES["demo"])
    with pytest.raises(MalformedResponseError, match="marker"):
        parse_extra_file(demo.replace(b"\xc5\x01D", b"\xc5\x01X"))
    with pytest.raises(MalformedResponseError, match="caisse"):
        parse_extra_file(FAMILY_EXTRA.replace(b"\xc2\x03691", b"\xc2\x0369A"))
    with pytest.raises(MalformedResponseError, match="quality"):
        parse_extra_file(FAMILY_EXTRA.replace(b"\xc1\x0202", b"\xc1\x0242"))
    with pytest.raises(MalformedResponseError, match="unexpected tag C9"):
        parse_extra_file(FAMILY_EXTRA.replace(b"\xc1\x0202", b"\xc9\x0202"))


def test_data_after_padding() -> None:
    _expect_malformed("after the padding", identity=FAMILY_IDENTITY + b"\x65")


# -- short fuzz runs over the parsers --------------------------------------------------------
PARSERS = (parse_identity_file, parse_nir_file, parse_extra_file)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_typed_errors(data: bytes) -> None:
    for parser in PARSERS:
        with contextlib.suppress(CardError):
            parser(data)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(range(3)),
    st.data(),
)
def test_mutated_card_files_parse_or_raise_typed_errors(which: int, data: st.DataObject) -> None:
    files = [bytearray(FAMILY_IDENTITY), bytearray(FAMILY_NIRS), bytearray(FAMILY_EXTRA)]
    target = files[which]
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(target) - 1))
        target[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(target)))
    files[which] = target[:cut]
    try:
        card = parse_card(*(bytes(f) for f in files))
    except MalformedResponseError:
        return
    assert isinstance(card, VitaleCard)


_names = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_categories=("Cc",)),
    min_size=1,
    max_size=20,
).map(lambda s: s.strip(" ")).filter(bool)


@st.composite
def _nirs(draw: st.DrawFn) -> str:
    dept = draw(st.sampled_from(["75", "69", "2A", "2B", "99"]))
    return f"{draw(st.sampled_from('12'))}{draw(st.integers(0, 99)):02d}" \
        f"{draw(st.integers(1, 12)):02d}{dept}{draw(st.integers(1, 999)):03d}" \
        f"{draw(st.integers(1, 999)):03d}"


@st.composite
def _beneficiaries(draw: st.DrawFn) -> Beneficiary:
    own = draw(st.one_of(st.none(), _nirs()))
    raw = draw(st.sampled_from(["%04d%02d%02d", "%02d%02d%02d"])) % (
        draw(st.integers(0, 99)), draw(st.integers(0, 12)), draw(st.integers(0, 31)))
    return Beneficiary(
        last_name=draw(_names),
        birth_name=draw(_names),
        first_name=draw(_names),
        birth_date=BirthDate.parse(raw),
        birth_rank=draw(st.integers(1, 9)),
        quality=draw(st.sampled_from(sorted(QUALITY_LABELS))),
        nir=own,
        nir_key=None if own is None else nir_key(own),
        nationality=draw(st.one_of(st.none(), _names)),
    )


@st.composite
def _cards(draw: st.DrawFn) -> VitaleCard:
    insured = draw(_nirs())
    regime = draw(st.sampled_from(["01", "02", "03"]))
    caisse = draw(st.sampled_from(["751", "349", "999", "201"]))
    centre = draw(st.sampled_from(["0521", "0349", "0001"]))
    demo = draw(st.booleans())
    return VitaleCard(
        nir=insured,
        nir_key=nir_key(insured),
        regime=regime,
        caisse=caisse,
        centre=centre,
        category=category_for(regime, caisse, centre, demo_marker=demo),
        beneficiaries=tuple(draw(st.lists(_beneficiaries(), min_size=1, max_size=5))),
        serial_number=draw(st.from_regex(r"[0-9A-Z]{1,32}", fullmatch=True)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cards())
def test_any_card_survives_the_emulator_and_the_profile(card: VitaleCard) -> None:
    protocol = ApduProtocol(InProcess(VirtualVitale(card)))
    assert Vitale2Profile(protocol).read() == card
    assert protocol.apdu_count == 5
