"""The Vitale card's data model: the card, its persons, their birth dates and NIR checks.

Pure values that check themselves on construction (ValueError naming the field, never a NIR);
`cardreader.vitale_files` builds them from the card's files, `cardreader.vitale` reads those.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from enum import Enum

from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.fr import nir as stdnum_nir

MAX_NAME_LENGTH = 64
MAX_SERIAL_LENGTH = 32
MAX_BENEFICIARIES = 16

_DIGITS = frozenset("0123456789")
_NIR_RE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}")
SERIAL_RE = re.compile(r"[0-9A-Za-z-]+")


def all_digits(text: str) -> bool:
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
    if not isinstance(key, str) or len(key) != 2 or not all_digits(key):
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


def check_name(value: str, what: str, *, allow_empty: bool = False) -> None:
    """ValueError naming ``what`` unless ``value`` is a name a card can hold (ISO-8859-1,
    no control character, no outer space, at most `MAX_NAME_LENGTH` characters)."""
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
        if not isinstance(self.raw, str) or len(self.raw) not in (6, 8) or not all_digits(self.raw):
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
        if not isinstance(raw, str) or len(raw) not in (6, 8) or not all_digits(raw):
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
        check_name(self.last_name, "last name")
        check_name(self.birth_name, "birth name")
        check_name(self.first_name, "first name", allow_empty=True)
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
            check_name(self.nationality, "nationality")

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
            if not isinstance(value, str) or len(value) != size or not all_digits(value):
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
            or not SERIAL_RE.fullmatch(self.serial_number)
        ):
            raise ValueError(f"serial number: not 1 to {MAX_SERIAL_LENGTH} letters or digits")

    @property
    def holder(self) -> Beneficiary:
        return self.beneficiaries[0]

    @property
    def nir_with_key(self) -> str:
        return f"{self.nir}{self.nir_key}"
