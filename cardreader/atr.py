"""Recognising a card from its ATR (answer to reset), before sending it any command.

ATRs and masks are the public ones gathered in shared/CARDS.md: the ANS library compares the
CPS3 ATR exactly, upstream OpenSC with a mask; Vitale 2 ATRs vary in one byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CardKind(StrEnum):
    CPS = "cps"  # professional card (CPS3, IAS-ECC)
    CPS4 = "cps4"  # CPS4 (ChipDoc applet): recognised, not read yet
    VITALE = "vitale"  # Vitale 2
    VITALE1 = "vitale1"  # Vitale 1: command set not public, recognised only
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AtrPattern:
    kind: CardKind
    value: bytes
    mask: bytes
    label: str

    def matches(self, atr: bytes) -> bool:
        if len(atr) != len(self.value):
            return False
        return all(a & m == v & m for a, v, m in zip(atr, self.value, self.mask, strict=True))


CPS3_ATR = bytes.fromhex("3BAC00402A001225006480000310009000")
VITALE2_ATR = bytes.fromhex("3B751300004509EA9000")  # byte 5 varies (43..4C seen)
VITALE2_MASK = bytes.fromhex("FFFFFFFFFF00FFFFFFFF")

PATTERNS: tuple[AtrPattern, ...] = (
    # Upstream OpenSC's "IAS/ECC CPx" mask: FF 00 00 00 00 FF FF FF FF FF FF 00 00 00 FF FF FF
    AtrPattern(
        CardKind.CPS,
        CPS3_ATR,
        bytes.fromhex("FF00000000FFFFFFFFFFFF000000FFFFFF"),
        "CPS3 (IAS-ECC)",
    ),
    AtrPattern(
        CardKind.CPS4,
        bytes.fromhex("3B9B188001001225006480"),
        bytes.fromhex("FFFFFFFFFFFFFFFFFFFFFF"),
        "CPS4 (ChipDoc)",
    ),
    AtrPattern(CardKind.VITALE, VITALE2_ATR, VITALE2_MASK, "Vitale 2"),
)


def identify(atr: bytes) -> tuple[CardKind, str]:
    """The kind of card for this ATR, with a human label."""
    for pattern in PATTERNS:
        if pattern.kind is CardKind.CPS4:
            if atr[: len(pattern.value)] == pattern.value:
                return pattern.kind, pattern.label
            continue
        if pattern.matches(atr):
            return pattern.kind, pattern.label
    if atr[:3] == bytes.fromhex("3F6525"):
        return CardKind.VITALE1, "Vitale 1"
    return CardKind.UNKNOWN, "unknown card"
