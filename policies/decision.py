"""The answer `decide` gives (`Decision`) and what a deployment may set (`Policy`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .matrix import AccessMatrix, default_matrix
from .model import Actor, StructureKind
from .reasons import ReasonCode


@dataclass(frozen=True)
class Decision:
    """The answer: allowed or not, why, and whether the patient must be notified."""

    allowed: bool
    reason: ReasonCode
    notify_patient: bool = False

    @property
    def refused(self) -> bool:
        return not self.allowed


EXCLUDED_SPECIALTIES = frozenset({"SM25"})
"""TRE_R38 specialties with no DMP access: SM25 "Médecine du travail"."""
EXCLUDED_STRUCTURE_KINDS = frozenset(
    {StructureKind.OCCUPATIONAL_HEALTH, StructureKind.INSURER, StructureKind.MUTUAL}
)


@dataclass(frozen=True)
class Policy:
    """What a deployment may set: the matrix, and whether a document may be both masked and
    invisible to the patient (DOMAIN.md: not unless the host allows it)."""

    matrix: AccessMatrix = field(default_factory=default_matrix)
    allow_masked_and_invisible: bool = False
    excluded_specialties: frozenset[str] = EXCLUDED_SPECIALTIES
    excluded_structure_kinds: frozenset[StructureKind] = EXCLUDED_STRUCTURE_KINDS

    def excludes(self, actor: Actor) -> bool:
        """True for a professional the law keeps away from the DMP (L1111-18): an
        occupational physician, or anyone acting for an occupational health service, an
        insurer or a mutual, whatever the card's profession says."""
        return actor.is_professional and (
            actor.specialty in self.excluded_specialties
            or actor.structure_kind in self.excluded_structure_kinds
        )


def refuse(reason: ReasonCode) -> Decision:
    """A refusal for ``reason``."""
    return Decision(False, reason)


def allow(reason: ReasonCode, notify_patient: bool = False) -> Decision:
    """An allowed answer on the ground ``reason``."""
    return Decision(True, reason, notify_patient)
