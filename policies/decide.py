"""The one decision function: may this actor do this action, on this dossier, in this mode?

`decide` is pure and deterministic: everything it looks at is passed in, the clock included.
The host calls it for every request and the agent to pre-check what a user may do, so both
sides apply the same rules. Each answer carries a `ReasonCode` with a stable code string (for
logs and the wire) and a sentence in French and English (for people). The rules and where
each comes from are in docs/policies.md.
"""

from __future__ import annotations

from datetime import datetime

from .decision import (
    EXCLUDED_SPECIALTIES,
    EXCLUDED_STRUCTURE_KINDS,
    Decision,
    Policy,
    allow,
    refuse,
)
from .document_rules import for_patient, for_professional
from .model import (
    DOCUMENT_ACTIONS,
    AccessMode,
    Action,
    Actor,
    ActorKind,
    AuthorizationStatus,
    Document,
    Dossier,
    DossierStatus,
    ModeCode,
    StructureKind,
)
from .reasons import ReasonCode

__all__ = [
    "EXCLUDED_SPECIALTIES",
    "EXCLUDED_STRUCTURE_KINDS",
    "Decision",
    "Policy",
    "ReasonCode",
    "decide",
]


# In emergency modes a professional consults and may deposit; anything else waits for a
# normal session (our assumption: emergency modes exist for consultation).
_EMERGENCY_ACTIONS = frozenset(
    {Action.RESOLVE_IDENTITY, Action.TEST_EXISTENCE, Action.READ, Action.SEARCH, Action.DEPOSIT}
)


def decide(
    actor: Actor,
    dossier: Dossier,
    action: Action,
    mode: AccessMode,
    document: Document | None = None,
    *,
    now: datetime,
    policy: Policy | None = None,
) -> Decision:
    """Decide whether ``actor`` may do ``action`` on ``dossier`` in ``mode``.

    Document actions (`DOCUMENT_ACTIONS`) take the document concerned; for DEPOSIT it is the
    new document, whose ``author_id`` must be the actor. ``now`` (timezone-aware) is the
    moment of the request; ``policy`` defaults to the packaged matrix.
    """
    if now.tzinfo is None:
        raise ValueError("decide: now must be timezone-aware")
    policy = policy or Policy()

    # The law's exclusions come before anything the dossier or the patient could allow.
    if policy.excludes(actor):
        return refuse(ReasonCode.EXCLUDED_PRACTICE)
    if action is Action.RESOLVE_IDENTITY:
        return _identity_lookup(actor, mode, policy)
    # A blocked professional gets nothing, whatever the mode, action or dossier.
    if actor.is_professional and dossier.authorization is AuthorizationStatus.FORBIDDEN:
        return refuse(ReasonCode.BLOCKED)
    refusal = _check_mode(actor, mode, action)
    if refusal:
        return refusal
    if actor.is_professional and actor.profession not in policy.matrix.professions:
        return refuse(ReasonCode.UNKNOWN_PROFESSION)

    if action is Action.TEST_EXISTENCE:
        return _existence_test(dossier, mode)
    lifecycle = _dossier_lifecycle(dossier, action)
    if lifecycle:
        return lifecycle

    if mode.code is ModeCode.BRIS_DE_GLACE and not dossier.consents.break_the_glass:
        return refuse(ReasonCode.BREAK_THE_GLASS_OPTED_OUT)
    if mode.code is ModeCode.CENTRE_15 and not dossier.consents.regulation_centre:
        return refuse(ReasonCode.CENTRE_15_OPTED_OUT)

    if action not in DOCUMENT_ACTIONS:
        return _dossier_action(actor, action)
    if document is None:
        return refuse(ReasonCode.DOCUMENT_REQUIRED)
    if actor.speaks_for_patient:
        return for_patient(actor, action, document, now, policy)
    return for_professional(actor, dossier, action, mode, document, policy)


def _identity_lookup(actor: Actor, mode: AccessMode, policy: Policy) -> Decision:
    """Any professional with a card may look up an INS (before any dossier is named), in
    the modes open to them; the patient has no card to do it with."""
    if not actor.is_professional:
        return refuse(ReasonCode.PROFESSIONAL_ONLY)
    refusal = _check_mode(actor, mode, Action.RESOLVE_IDENTITY)
    if refusal:
        return refusal
    if actor.profession not in policy.matrix.professions:
        return refuse(ReasonCode.UNKNOWN_PROFESSION)
    return allow(ReasonCode.ALLOWED_IDENTITY_LOOKUP)


def _existence_test(dossier: Dossier, mode: AccessMode) -> Decision:
    """Anyone with a card may learn whether a DMP exists and what their rights on it are
    (an absent or closed DMP is the answer itself); an emergency mode keeps its opt-outs and
    tells the patient, since an emergency access starts here."""
    if dossier.status is DossierStatus.OPEN:
        if mode.code is ModeCode.BRIS_DE_GLACE and not dossier.consents.break_the_glass:
            return refuse(ReasonCode.BREAK_THE_GLASS_OPTED_OUT)
        if mode.code is ModeCode.CENTRE_15 and not dossier.consents.regulation_centre:
            return refuse(ReasonCode.CENTRE_15_OPTED_OUT)
    return allow(ReasonCode.ALLOWED_EXISTENCE_TEST,
                notify_patient=mode.is_emergency and dossier.status is DossierStatus.OPEN)


def _dossier_action(actor: Actor, action: Action) -> Decision:
    """Actions on the open dossier itself: authorisations, access log, closure."""
    if actor.speaks_for_patient:
        return allow(ReasonCode.ALLOWED_PATIENT)
    # A professional records the authorisation the patient gives them (an explicit action);
    # managing others' authorisations, reading the log and closing are the patient's.
    if action is Action.GRANT:
        return allow(ReasonCode.ALLOWED_SELF_AUTHORISATION)
    # So is the closure the patient asks for in person: the professional only records it,
    # and the patient is told (an unwanted closure is then known and reversed at once).
    if action is Action.CLOSE_AT_PATIENT_REQUEST and actor.kind is ActorKind.PROFESSIONAL:
        return allow(ReasonCode.ALLOWED_CLOSURE_AT_PATIENT_REQUEST, notify_patient=True)
    return refuse(ReasonCode.PATIENT_ONLY)


def _check_mode(actor: Actor, mode: AccessMode, action: Action) -> Decision | None:
    allowed_modes = {
        ActorKind.PATIENT: {ModeCode.NORMAL},
        ActorKind.LEGAL_REPRESENTATIVE: {ModeCode.NORMAL},
        ActorKind.PROFESSIONAL: {ModeCode.NORMAL, ModeCode.BRIS_DE_GLACE},
        ActorKind.REGULATION_CENTRE: {ModeCode.CENTRE_15},
    }[actor.kind]
    if mode.code not in allowed_modes:
        return refuse(ReasonCode.MODE_NOT_FOR_ACTOR)
    if (actor.kind is ActorKind.REGULATION_CENTRE
            and actor.structure_kind is not StructureKind.REGULATION_CENTRE):
        return refuse(ReasonCode.REGULATION_CENTRE_ONLY)
    if mode.code is ModeCode.BRIS_DE_GLACE and not (mode.justification or "").strip():
        return refuse(ReasonCode.JUSTIFICATION_REQUIRED)
    if mode.is_emergency and action not in _EMERGENCY_ACTIONS:
        return refuse(ReasonCode.ACTION_NOT_IN_EMERGENCY_MODE)
    return None


def _dossier_lifecycle(dossier: Dossier, action: Action) -> Decision | None:
    """Creation, closure and reactivation; None when the dossier is open and the action is
    an ordinary one. Emergency modes never get here with CREATE or REACTIVATE, so these
    happen in normal mode: the patient online, or a professional at the counter with the
    patient's consent."""
    if dossier.status is DossierStatus.ABSENT:
        if action is Action.CREATE:
            return allow(ReasonCode.ALLOWED_DOSSIER_LIFECYCLE)
        return refuse(ReasonCode.DOSSIER_ABSENT)
    if dossier.status is DossierStatus.CLOSED:
        # A closed DMP is kept (10 years) but serves nothing until it is reactivated.
        if action is Action.REACTIVATE:
            return allow(ReasonCode.ALLOWED_DOSSIER_LIFECYCLE)
        return refuse(ReasonCode.DOSSIER_CLOSED)
    if action is Action.CREATE:
        return refuse(ReasonCode.DOSSIER_EXISTS)
    if action is Action.REACTIVATE:
        return refuse(ReasonCode.DOSSIER_NOT_CLOSED)
    return None
