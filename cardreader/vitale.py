"""The Vitale card (patient card): data model, file encodings and the Vitale 2 profile.

Only part of a Vitale 2 card is publicly documented (shared/CARDS.md): the persons' names and
birth dates in short file 2 of the MF, and their NIRs in short file 2 of the "VITALE"
application, read with plain ISO 7816 commands. Everything else the reading library knows
(régime, caisse, centre, quality, birth rank, birth name, certified NIR, category, serial
number) sits behind protected files whose layout is not public; this project keeps it in an
extra file of its own layout in the VITALE application (`EXTRA_FID` / `EXTRA_SFI`, described
in docs/vitale.md). `VitaleReader` is the interface the agent uses, so a licensed
SESAM-Vitale reading library can replace `Vitale2Profile` without touching the callers.

NIRs are personal data: no error message, ``repr`` or log line of this module shows one.
The parse functions are pure (bytes in, model out) and raise only
`MalformedResponseError` on bad input, so they can be fuzzed.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.fr import nir as stdnum_nir

from . import tlv
from .apdu import SW, ApduProtocol, CommandApdu, Ins, error_for_status
from .errors import FileNotFoundOnCardError, MalformedResponseError
from .iso7816 import MAX_FILE_SIZE

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

READ_LE = 256  # the largest short READ BINARY: one APDU per file on every card seen
MAX_NAME_LENGTH = 64
MAX_SERIAL_LENGTH = 32
MAX_BENEFICIARIES = 16

_DIGITS = frozenset("0123456789")
_NIR_RE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}")
_SERIAL_RE = re.compile(r"[0-9A-Za-z-]+")


def _digits(text: str) -> bool:
    # str.isdigit() accepts "²" and other Latin-1 digits that int() refuses.
    return bool(text) and all(c in _DIGITS for c in text)


class VitaleCategory(Enum):
    PRODUCTION = "production"
    TEST = "test"
    DEMO = "demo"


class Sex(Enum):
    MALE = "M"
    FEMALE = "F"


# Qualité du bénéficiaire, codes of the SESAM-Vitale reading library (MedinTux field names).
QUALITY_LABELS: dict[int, str] = {
    0: "assuré (ouvrant droit)",
    1: "ascendant, descendant, collatéral",
    2: "conjoint",
    3: "conjoint divorcé",
    4: "concubin",
    5: "conjoint séparé",
    6: "enfant",
    7: "bénéficiaire hors article 313",
    8: "conjoint veuf",
    9: "autre ayant droit",
}
QUALITY_INSURED, QUALITY_SPOUSE, QUALITY_CHILD = 0, 2, 6


def category_for(regime: str, caisse: str, centre: str, *, demo_marker: bool) -> VitaleCategory:
    """The card category: demo when our marker is present; test for the public test ranges.

    Test cards: caisse 349 or centre 0349 (CNDA), régime 01 with caisse 999 (GIE
    SESAM-Vitale). Demo cards have no public marker: ours (`DEMO_MARKER` in the extra file)
    and it wins over the codes. Everything else is a production card.
    """
    if demo_marker:
        return VitaleCategory.DEMO
    if caisse == "349" or centre == "0349" or (regime == "01" and caisse == "999"):
        return VitaleCategory.TEST
    return VitaleCategory.PRODUCTION


def check_nir(nir: str, key: str, what: str) -> None:
    """Check a NIR (13 characters) and its key (2 digits), Corsica 2A/2B included.

    Raises ValueError naming ``what`` and the problem, never the NIR itself.
    """
    if not isinstance(nir, str) or not _NIR_RE.fullmatch(nir):
        raise ValueError(f"{what}: the NIR is not 13 digits (2A/2B allowed for Corsica)")
    if not isinstance(key, str) or len(key) != 2 or not _digits(key):
        raise ValueError(f"{what}: the NIR key is not 2 digits")
    try:
        stdnum_nir.validate(nir + key)
    except StdnumValidationError:
        raise ValueError(f"{what}: the NIR key does not match the NIR") from None


def nir_key(nir: str) -> str:
    """The 2-digit key of a 13-character NIR (97 - NIR mod 97; 2A as 19, 2B as 18)."""
    if not _NIR_RE.fullmatch(nir):
        raise ValueError("the NIR is not 13 digits (2A/2B allowed for Corsica)")
    return stdnum_nir.calc_check_digits(nir)


def _check_name(value: str, what: str, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not text")
    if not value and not allow_empty:
        raise ValueError(f"{what} is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if value != value.strip(" "):
        raise ValueError(f"{what} has leading or trailing spaces")
    for c in value:
        code = ord(c)
        if code > 0xFF:
            raise ValueError(f"{what} has a character outside ISO-8859-1")
        if code < 0x20 or 0x7F <= code < 0xA0:
            raise ValueError(f"{what} has a control character")


@dataclass(frozen=True)
class BirthDate:
    """A birth date exactly as the card holds it.

    ``raw`` is the card's text: ``YYYYMMDD`` or, on some cards, ``YYMMDD`` without the
    century. Month or day may be 00 ("lunar" dates: not a calendar date); such a date is kept
    as is, never "corrected".
    """

    raw: str
    year: int
    month: int
    day: int

    def __post_init__(self) -> None:
        if not isinstance(self.raw, str) or len(self.raw) not in (6, 8) or not _digits(self.raw):
            raise ValueError("birth date: not 8 digits YYYYMMDD (or 6 digits YYMMDD)")
        n = len(self.raw) - 4
        expected = (int(self.raw[:n]), int(self.raw[n : n + 2]), int(self.raw[n + 2 :]))
        if (self.year, self.month, self.day) != expected:
            raise ValueError("birth date: year, month and day differ from the raw text")
        if self.month > 12 or self.day > 31:
            raise ValueError("birth date: month above 12 or day above 31")

    @classmethod
    def parse(cls, raw: str) -> BirthDate:
        """``"20150300"`` -> BirthDate(raw, 2015, 3, 0); ValueError when it is not a date text."""
        if not isinstance(raw, str) or len(raw) not in (6, 8) or not _digits(raw):
            raise ValueError("birth date: not 8 digits YYYYMMDD (or 6 digits YYMMDD)")
        n = len(raw) - 4
        return cls(raw, int(raw[:n]), int(raw[n : n + 2]), int(raw[n + 2 :]))

    @property
    def has_century(self) -> bool:
        return len(self.raw) == 8

    @property
    def is_calendar_date(self) -> bool:
        """True for a real date of the calendar with its century (not lunar)."""
        return self.as_date() is not None

    def as_date(self) -> datetime.date | None:
        if not self.has_century:
            return None
        try:
            return datetime.date(self.year, self.month, self.day)
        except ValueError:
            return None

    def __str__(self) -> str:
        # As on French forms: DD/MM/YYYY, zeros kept for lunar parts, 2-digit year as read.
        year = f"{self.year:04d}" if self.has_century else f"{self.year:02d}"
        return f"{self.day:02d}/{self.month:02d}/{year}"


@dataclass(frozen=True)
class Beneficiary:
    """One person on the card (the holder is the first).

    ``nir``/``nir_key`` are the person's own certified NIR, None when the card carries only
    the insured's NIR for this person (often a child). Not shown by ``repr``.
    """

    last_name: str  # usual name
    birth_name: str
    first_name: str
    birth_date: BirthDate
    birth_rank: int = 1
    quality: int = QUALITY_INSURED
    nir: str | None = field(default=None, repr=False)
    nir_key: str | None = field(default=None, repr=False)
    nationality: str | None = None  # public tag 90, format not public: kept as read

    def __post_init__(self) -> None:
        _check_name(self.last_name, "last name")
        _check_name(self.birth_name, "birth name")
        _check_name(self.first_name, "first name", allow_empty=True)
        if not isinstance(self.birth_date, BirthDate):
            raise ValueError("birth date: not a BirthDate")
        if not isinstance(self.birth_rank, int) or not 1 <= self.birth_rank <= 9:
            raise ValueError("birth rank: not 1 to 9")
        if not isinstance(self.quality, int) or self.quality not in QUALITY_LABELS:
            raise ValueError("quality: not a known code (0 to 9)")
        if (self.nir is None) != (self.nir_key is None):
            raise ValueError("certified NIR: NIR and key go together")
        if self.nir is not None:
            check_nir(self.nir, self.nir_key or "", "certified NIR")
        if self.nationality is not None:
            _check_name(self.nationality, "nationality")

    @property
    def quality_label(self) -> str:
        return QUALITY_LABELS[self.quality]

    @property
    def nir_with_key(self) -> str | None:
        return None if self.nir is None else f"{self.nir}{self.nir_key}"

    @property
    def sex(self) -> Sex | None:
        """From the first digit of the certified NIR (1/3/7 male, 2/4/8 female), else None."""
        if self.nir is None:
            return None
        if self.nir[0] in "137":
            return Sex.MALE
        if self.nir[0] in "248":
            return Sex.FEMALE
        return None


@dataclass(frozen=True)
class VitaleCard:
    """What a Vitale card says: the insured (ouvrant droit), the fund, the persons covered.

    ``nir``/``nir_key`` are the insured's NIR, under which every person of the card is
    covered (not shown by ``repr``). ``category`` follows `category_for`.
    """

    nir: str = field(repr=False)
    nir_key: str = field(repr=False)
    regime: str
    caisse: str
    centre: str
    category: VitaleCategory
    beneficiaries: tuple[Beneficiary, ...]
    serial_number: str

    def __post_init__(self) -> None:
        check_nir(self.nir, self.nir_key, "insured's NIR")
        for value, size, what in (
            (self.regime, 2, "régime"),
            (self.caisse, 3, "caisse"),
            (self.centre, 4, "centre"),
        ):
            if not isinstance(value, str) or len(value) != size or not _digits(value):
                raise ValueError(f"{what}: not {size} digits")
        if not isinstance(self.category, VitaleCategory):
            raise ValueError("category: not a VitaleCategory")
        expected = category_for(
            self.regime, self.caisse, self.centre,
            demo_marker=self.category is VitaleCategory.DEMO,
        )
        if self.category is not expected:
            raise ValueError(
                f"category {self.category.value} contradicts the codes (they say {expected.value})"
            )
        if not isinstance(self.beneficiaries, tuple) or not self.beneficiaries:
            raise ValueError("a card carries at least one person (the holder)")
        if len(self.beneficiaries) > MAX_BENEFICIARIES:
            raise ValueError(f"more than {MAX_BENEFICIARIES} persons on one card")
        if not all(isinstance(b, Beneficiary) for b in self.beneficiaries):
            raise ValueError("beneficiaries: not Beneficiary values")
        if (
            not isinstance(self.serial_number, str)
            or not 1 <= len(self.serial_number) <= MAX_SERIAL_LENGTH
            or not _SERIAL_RE.fullmatch(self.serial_number)
        ):
            raise ValueError(f"serial number: not 1 to {MAX_SERIAL_LENGTH} letters or digits")

    @property
    def holder(self) -> Beneficiary:
        return self.beneficiaries[0]

    @property
    def nir_with_key(self) -> str:
        return f"{self.nir}{self.nir_key}"


class VitaleReader(Protocol):
    """Reads a whole Vitale card: ours (`Vitale2Profile`) or a licensed reading library."""

    def read(self) -> VitaleCard: ...


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
        _check_name(text, what, allow_empty=True)
    except ValueError as exc:
        raise MalformedResponseError(str(exc)) from None
    return text


def _ascii_digits(value: bytes, size: int, what: str) -> str:
    text = value.decode("latin-1")
    if len(text) != size or not _digits(text):
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
    if not 1 <= len(serial) <= MAX_SERIAL_LENGTH or not _SERIAL_RE.fullmatch(serial):
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


# -- the profile ----------------------------------------------------------------------------
def _complete(data: bytes) -> bool:
    """Whether ``data`` holds whole TLVs followed by padding: then the rest of the file is
    filler and need not be read. At an exact TLV boundary nothing tells, so read on."""
    offset = 0
    while offset < len(data):
        if data[offset] in (0x00, 0xFF):
            return True
        try:
            offset = tlv.parse_one(data, offset)[1]
        except MalformedResponseError:
            return False  # truncated by the read, or malformed: more data settles it
    return False


class Vitale2Profile(VitaleReader):
    """Reads a Vitale 2 card: the public files, then our extra file (5 APDUs in all).

    A real card has no extra file: `read` then raises `FileNotFoundOnCardError`, and the
    licensed reading library is needed (it implements `VitaleReader` too).
    """

    def __init__(self, protocol: ApduProtocol) -> None:
        self.protocol = protocol

    def read(self) -> VitaleCard:
        p = self.protocol
        p.send(0x00, Ins.SELECT, 0x00, 0x00, MF_PATH)
        identity = self._read_sfi(IDENTITY_SFI)
        p.send(0x00, Ins.SELECT, 0x04, 0x00, AID_VITALE)
        nirs = self._read_sfi(NIR_SFI)
        try:
            extra = self._read_sfi(EXTRA_SFI)
        except FileNotFoundOnCardError as exc:
            raise FileNotFoundOnCardError(
                exc.sw,
                "Carte Vitale sans le fichier complémentaire de ce projet: une vraie carte se lit "
                "avec la bibliothèque SESAM-Vitale / this Vitale card has no extra file of this "
                "project: a real card needs the licensed reading library",
            ) from None
        return parse_card(identity, nirs, extra)

    def _read_sfi(self, sfi: int) -> bytes:
        """Read an EF by short id with the largest reads, stopping at the padding."""
        out = bytearray()
        while True:
            offset = len(out)
            if offset == 0:
                p1, p2 = 0x80 | sfi, 0x00  # `00 B0 8x 00 00`, as the public readers do
            else:
                if offset > MAX_FILE_SIZE:
                    raise MalformedResponseError("card file larger than READ BINARY addresses")
                p1, p2 = offset >> 8, offset & 0xFF
            response = self.protocol.transmit(
                CommandApdu(0x00, Ins.READ_BINARY, p1, p2, le=READ_LE)
            )
            if response.sw == SW.WRONG_P1P2 and offset:
                break  # the file ended exactly at the previous read
            if response.sw not in (SW.OK, SW.END_OF_FILE_WARNING):
                raise error_for_status(response.sw, response.data)
            data = response.data
            if len(data) > READ_LE:
                raise MalformedResponseError("the card returned more bytes than asked for")
            out += data
            short = response.sw == SW.END_OF_FILE_WARNING or len(data) < READ_LE
            if short or _complete(bytes(out)):
                break
        return bytes(out)


def read_vitale(protocol: ApduProtocol) -> VitaleCard:
    """Shorthand: read the card with our profile."""
    return Vitale2Profile(protocol).read()


__all__ = [
    "AID_VITALE",
    "QUALITY_LABELS",
    "Beneficiary",
    "BirthDate",
    "Sex",
    "Vitale2Profile",
    "VitaleCard",
    "VitaleCategory",
    "VitaleReader",
    "category_for",
    "check_nir",
    "encode_extra_file",
    "encode_identity_file",
    "encode_nir_file",
    "nir_key",
    "parse_card",
    "parse_extra_file",
    "parse_identity_file",
    "parse_nir_file",
    "read_vitale",
]
