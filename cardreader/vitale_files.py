"""The Vitale card's files: their public layout, our extra file, and their pure parsers and
encoders (bytes in, model out, and back).

The public files are those of shared/CARDS.md; the extra file's layout is ours (docs/vitale.md).
The parse functions raise only `MalformedResponseError` on bad input, so they can be fuzzed;
no error message of theirs shows a NIR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import tlv
from .errors import MalformedResponseError
from .vitale_model import (
    MAX_BENEFICIARIES,
    MAX_SERIAL_LENGTH,
    QUALITY_LABELS,
    SERIAL_RE,
    Beneficiary,
    BirthDate,
    VitaleCard,
    VitaleCategory,
    all_digits,
    category_for,
    check_name,
    check_nir,
)

# -- public layout (CARDS.md: cardpeek vitale_2.lua, Rufus lecteurvitale.cpp) -----------------
MF_PATH = b"\x3f\x00"
AID_VITALE = bytes.fromhex("D250000002564954414C45")  # "VITALE" after the RID D250000002
AID_MF_VITALE = bytes.fromhex("D2500000024D465F564954414C45")  # "MF_VITALE" (cardpeek)
IDENTITY_SFI = 2  # in the MF: 65 { 80 last name, 81 first name, 82 birth date }
NIR_SFI = 2  # in the VITALE application: 65 { 93 NIR + key, 90 nationality }
TAG_PERSON = 0x65
TAG_CARD_INFO = 0x66  # 66 { 80 validity start } (cardpeek); not used by the model
TAG_LAST_NAME, TAG_FIRST_NAME, TAG_BIRTH_DATE = 0x80, 0x81, 0x82
TAG_NIR, TAG_NATIONALITY = 0x93, 0x90

# -- our extra file (nothing public: ours, docs/vitale.md) ------------------------------------
EXTRA_FID = 0xDA01
EXTRA_SFI = 0x11  # not 2 (public files) nor 1C (EF.SN.ICC of the CPS)
EXTRA_LAYOUT_VERSION = "1"
TAG_EXTRA_CARD = 0xE1  # exactly one, first
TAG_EXTRA_PERSON = 0xE2  # one per person, same order as the public files
# inside E1
TAG_VERSION, TAG_REGIME, TAG_CAISSE, TAG_CENTRE = 0xC0, 0xC1, 0xC2, 0xC3
TAG_SERIAL, TAG_MARKER = 0xC4, 0xC5
# inside E2
TAG_QUALITY, TAG_RANK, TAG_BIRTH_NAME, TAG_CERTIFIED_NIR = 0xC1, 0xC2, 0xC3, 0xC4
DEMO_MARKER = "D"


# -- the public and the extra files: pure parse functions -----------------------------------
@dataclass(frozen=True)
class IdentityRecord:
    """One template 65 of the MF's short file 2."""

    last_name: str
    first_name: str
    birth_date: BirthDate


@dataclass(frozen=True)
class NirRecord:
    """One template 65 of the VITALE application's short file 2."""

    nir: str = field(repr=False)
    nir_key: str = field(repr=False)
    nationality: str | None = None


@dataclass(frozen=True)
class ExtraPerson:
    quality: int
    birth_rank: int
    birth_name: str
    nir: str | None = field(default=None, repr=False)
    nir_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ExtraData:
    """The content of our extra file."""

    regime: str
    caisse: str
    centre: str
    serial_number: str
    demo: bool
    persons: tuple[ExtraPerson, ...]


def _fields(template: tlv.Tlv, what: str, allowed: set[int] | None) -> dict[int, bytes]:
    """The children of a template as tag -> value; duplicates (and, with ``allowed``, unknown
    tags) are errors: a card file carries each field once."""
    out: dict[int, bytes] = {}
    for child in template.children():
        if child.constructed:
            raise MalformedResponseError(f"{what}: unexpected nested template {child.tag:X}")
        if allowed is not None and child.tag not in allowed:
            raise MalformedResponseError(f"{what}: unexpected tag {child.tag:X}")
        if child.tag in out:
            raise MalformedResponseError(f"{what}: tag {child.tag:X} appears twice")
        out[child.tag] = child.value
    return out


def _require(values: dict[int, bytes], tag: int, what: str) -> bytes:
    if tag not in values:
        raise MalformedResponseError(f"{what}: tag {tag:X} missing")
    return values[tag]


def _text(value: bytes, what: str) -> str:
    # Names are ISO-8859-1 (ASCII on most cards): every byte decodes; trailing blanks are
    # filler. Controls cannot be part of a name.
    text = value.decode("latin-1").strip(" ")
    try:
        check_name(text, what, allow_empty=True)
    except ValueError as exc:
        raise MalformedResponseError(str(exc)) from None
    return text


def _ascii_digits(value: bytes, size: int, what: str) -> str:
    text = value.decode("latin-1")
    if len(text) != size or not all_digits(text):
        raise MalformedResponseError(f"{what}: not {size} ASCII digits")
    return text


def _split_nir(value: bytes, what: str) -> tuple[str, str]:
    text = value.decode("latin-1")
    if len(text) != 15:
        raise MalformedResponseError(f"{what}: not 15 characters (NIR and key)")
    nir, key = text[:13], text[13:]
    try:
        check_nir(nir, key, what)
    except ValueError as exc:
        raise MalformedResponseError(str(exc)) from None
    return nir, key


def _templates(data: bytes, tag: int, what: str, ignore: tuple[int, ...] = ()) -> list[tlv.Tlv]:
    items = tlv.parse_all(data)
    out = []
    for item in items:
        if item.tag in ignore:
            continue
        if item.tag != tag or not item.constructed:
            raise MalformedResponseError(f"{what}: unexpected tag {item.tag:X} (not {tag:X})")
        out.append(item)
    if not out:
        raise MalformedResponseError(f"{what}: no person on the card")
    if len(out) > MAX_BENEFICIARIES:
        raise MalformedResponseError(f"{what}: more than {MAX_BENEFICIARIES} persons")
    return out


def parse_identity_file(data: bytes) -> tuple[IdentityRecord, ...]:
    """Parse the MF's short file 2: one ``65 {80, 81, 82}`` per person, then 00 padding."""
    records = []
    for n, template in enumerate(
        _templates(data, TAG_PERSON, "identity file", ignore=(TAG_CARD_INFO,)), 1
    ):
        what = f"identity file, person {n}"
        values = _fields(template, what, None)
        last = _text(_require(values, TAG_LAST_NAME, what), f"{what}: last name")
        if not last:
            raise MalformedResponseError(f"{what}: last name is empty")
        first = _text(_require(values, TAG_FIRST_NAME, what), f"{what}: first name")
        raw = _require(values, TAG_BIRTH_DATE, what).decode("latin-1")
        try:
            birth = BirthDate.parse(raw)
        except ValueError as exc:
            raise MalformedResponseError(f"{what}: {exc}") from None
        records.append(IdentityRecord(last, first, birth))
    return tuple(records)


def parse_nir_file(data: bytes) -> tuple[NirRecord, ...]:
    """Parse the VITALE application's short file 2: one ``65 {93, 90}`` per person."""
    records = []
    for n, template in enumerate(_templates(data, TAG_PERSON, "NIR file"), 1):
        what = f"NIR file, person {n}"
        values = _fields(template, what, None)
        nir, key = _split_nir(_require(values, TAG_NIR, what), f"{what}: NIR")
        nationality = None
        if TAG_NATIONALITY in values:
            nationality = _text(values[TAG_NATIONALITY], f"{what}: nationality") or None
        records.append(NirRecord(nir, key, nationality))
    return tuple(records)


def parse_extra_file(data: bytes) -> ExtraData:
    """Parse our extra file: ``E1 {C0..C5}`` then one ``E2 {C1..C4}`` per person."""
    items = tlv.parse_all(data)
    if not items or items[0].tag != TAG_EXTRA_CARD or not items[0].constructed:
        raise MalformedResponseError("extra file: does not start with the card template E1")
    card = _fields(
        items[0], "extra file, card",
        {TAG_VERSION, TAG_REGIME, TAG_CAISSE, TAG_CENTRE, TAG_SERIAL, TAG_MARKER},
    )
    version = _require(card, TAG_VERSION, "extra file, card").decode("latin-1")
    if version != EXTRA_LAYOUT_VERSION:
        raise MalformedResponseError("extra file: unknown layout version")
    regime = _ascii_digits(_require(card, TAG_REGIME, "extra file"), 2, "extra file: régime")
    caisse = _ascii_digits(_require(card, TAG_CAISSE, "extra file"), 3, "extra file: caisse")
    centre = _ascii_digits(_require(card, TAG_CENTRE, "extra file"), 4, "extra file: centre")
    serial = _require(card, TAG_SERIAL, "extra file").decode("latin-1")
    if not 1 <= len(serial) <= MAX_SERIAL_LENGTH or not SERIAL_RE.fullmatch(serial):
        raise MalformedResponseError("extra file: serial number is not letters or digits")
    demo = False
    if TAG_MARKER in card:
        if card[TAG_MARKER] != DEMO_MARKER.encode():
            raise MalformedResponseError("extra file: unknown category marker")
        demo = True
    persons = []
    for n, template in enumerate(
        _templates(data[_after_first(data) :], TAG_EXTRA_PERSON, "extra file"), 1
    ):
        what = f"extra file, person {n}"
        values = _fields(
            template, what, {TAG_QUALITY, TAG_RANK, TAG_BIRTH_NAME, TAG_CERTIFIED_NIR}
        )
        quality = int(_ascii_digits(_require(values, TAG_QUALITY, what), 2, f"{what}: quality"))
        if quality not in QUALITY_LABELS:
            raise MalformedResponseError(f"{what}: unknown quality code")
        rank = int(_ascii_digits(_require(values, TAG_RANK, what), 1, f"{what}: birth rank"))
        if rank == 0:
            raise MalformedResponseError(f"{what}: birth rank 0")
        birth_name = _text(_require(values, TAG_BIRTH_NAME, what), f"{what}: birth name")
        if not birth_name:
            raise MalformedResponseError(f"{what}: birth name is empty")
        nir = key = None
        if TAG_CERTIFIED_NIR in values:
            nir, key = _split_nir(values[TAG_CERTIFIED_NIR], f"{what}: certified NIR")
        persons.append(ExtraPerson(quality, rank, birth_name, nir, key))
    return ExtraData(regime, caisse, centre, serial, demo, tuple(persons))


def _after_first(data: bytes) -> int:
    return tlv.parse_one(data)[1]


def parse_card(identity_file: bytes, nir_file: bytes, extra_file: bytes) -> VitaleCard:
    """Build the card from its three files; the persons are matched by position."""
    identities = parse_identity_file(identity_file)
    nirs = parse_nir_file(nir_file)
    extra = parse_extra_file(extra_file)
    if not len(identities) == len(nirs) == len(extra.persons):
        raise MalformedResponseError(
            f"the card files disagree on the number of persons ({len(identities)} in the "
            f"identity file, {len(nirs)} in the NIR file, {len(extra.persons)} in the extra file)"
        )
    insured = nirs[0]
    if any((r.nir, r.nir_key) != (insured.nir, insured.nir_key) for r in nirs[1:]):
        raise MalformedResponseError("NIR file: the persons are not covered by the same insured")
    try:
        beneficiaries = tuple(
            Beneficiary(
                last_name=i.last_name,
                birth_name=e.birth_name,
                first_name=i.first_name,
                birth_date=i.birth_date,
                birth_rank=e.birth_rank,
                quality=e.quality,
                nir=e.nir,
                nir_key=e.nir_key,
                nationality=r.nationality,
            )
            for i, r, e in zip(identities, nirs, extra.persons, strict=True)
        )
        category = category_for(extra.regime, extra.caisse, extra.centre, demo_marker=extra.demo)
        return VitaleCard(
            nir=insured.nir,
            nir_key=insured.nir_key,
            regime=extra.regime,
            caisse=extra.caisse,
            centre=extra.centre,
            category=category,
            beneficiaries=beneficiaries,
            serial_number=extra.serial_number,
        )
    except ValueError as exc:  # the model's own checks; their messages carry no NIR
        raise MalformedResponseError(f"Vitale card: {exc}") from None


# -- encoding (the emulator and the tests build card files with these) ----------------------
def _latin1(text: str) -> bytes:
    return text.encode("latin-1")


def encode_identity_file(card: VitaleCard) -> bytes:
    return b"".join(
        tlv.encode(
            TAG_PERSON,
            tlv.encode(TAG_LAST_NAME, _latin1(b.last_name))
            + tlv.encode(TAG_FIRST_NAME, _latin1(b.first_name))
            + tlv.encode(TAG_BIRTH_DATE, b.birth_date.raw.encode("ascii")),
        )
        for b in card.beneficiaries
    )


def encode_nir_file(card: VitaleCard) -> bytes:
    out = b""
    for b in card.beneficiaries:
        body = tlv.encode(TAG_NIR, card.nir_with_key.encode("ascii"))
        if b.nationality is not None:
            body += tlv.encode(TAG_NATIONALITY, _latin1(b.nationality))
        out += tlv.encode(TAG_PERSON, body)
    return out


def encode_extra_file(card: VitaleCard) -> bytes:
    body = (
        tlv.encode(TAG_VERSION, EXTRA_LAYOUT_VERSION.encode("ascii"))
        + tlv.encode(TAG_REGIME, card.regime.encode("ascii"))
        + tlv.encode(TAG_CAISSE, card.caisse.encode("ascii"))
        + tlv.encode(TAG_CENTRE, card.centre.encode("ascii"))
        + tlv.encode(TAG_SERIAL, card.serial_number.encode("ascii"))
    )
    if card.category is VitaleCategory.DEMO:
        body += tlv.encode(TAG_MARKER, DEMO_MARKER.encode("ascii"))
    out = tlv.encode(TAG_EXTRA_CARD, body)
    for b in card.beneficiaries:
        person = (
            tlv.encode(TAG_QUALITY, f"{b.quality:02d}".encode("ascii"))
            + tlv.encode(TAG_RANK, str(b.birth_rank).encode("ascii"))
            + tlv.encode(TAG_BIRTH_NAME, _latin1(b.birth_name))
        )
        if b.nir_with_key is not None:
            person += tlv.encode(TAG_CERTIFIED_NIR, b.nir_with_key.encode("ascii"))
        out += tlv.encode(TAG_EXTRA_PERSON, person)
    return out
