"""The one decision function: may this actor do this action, on this dossier, in this mode?

`decide` is pure and deterministic: everything it looks at is passed in, the clock included.
The host calls it for every request and the agent to pre-check what a user may do, so both
sides apply the same rules. Each answer carries a `ReasonCode` with a stable code string (for
logs and the wire) and a sentence in French and English (for people). The rules and where
each comes from are in docs/policies.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from .matrix import AccessMatrix, default_matrix
from .model import (
    DOCUMENT_ACTIONS,
    PATIENT_CLASS,
    AccessMode,
    Action,
    Actor,
    ActorKind,
    AuthorizationStatus,
    Document,
    DocumentStatus,
    Dossier,
    DossierStatus,
    ModeCode,
    StructureKind,
)


class ReasonCode(Enum):
    """Why a decision came out as it did: stable code, French and English sentences."""

    def __init__(self, code: str, fr: str, en: str) -> None:
        self.code = code
        self.fr = fr
        self.en = en

    def __repr__(self) -> str:
        return f"<ReasonCode.{self.name}>"

    def __str__(self) -> str:
        return self.code

    @property
    def message(self) -> str:
        return f"{self.fr} / {self.en}"

    @property
    def allows(self) -> bool:
        return self.code.startswith("ALLOWED")

    # Allowed: the code says on which ground, which the access log records.
    ALLOWED_PATIENT = (
        "ALLOWED_PATIENT",
        "Accès du titulaire ou de son représentant légal.",
        "Access by the holder or their legal representative.",
    )
    ALLOWED_AUTHOR = (
        "ALLOWED_AUTHOR",
        "Accès de l'auteur du document.",
        "Access by the document's author.",
    )
    ALLOWED_MEDECIN_TRAITANT = (
        "ALLOWED_MEDECIN_TRAITANT",
        "Accès du médecin traitant DMP.",
        "Access by the patient's DMP attending doctor.",
    )
    ALLOWED_AUTHORISED = (
        "ALLOWED_AUTHORISED",
        "Accès autorisé par le patient.",
        "Access authorised by the patient.",
    )
    ALLOWED_CARE_TEAM = (
        "ALLOWED_CARE_TEAM",
        "Accès de l'équipe de soins.",
        "Access by a member of the care team.",
    )
    ALLOWED_BREAK_THE_GLASS = (
        "ALLOWED_BREAK_THE_GLASS",
        "Accès en mode bris de glace ; le patient en sera informé.",
        "Break-the-glass access; the patient will be notified.",
    )
    ALLOWED_CENTRE_15 = (
        "ALLOWED_CENTRE_15",
        "Accès par le centre de régulation (centre 15) ; le patient en sera informé.",
        "Access by the emergency regulation centre; the patient will be notified.",
    )
    ALLOWED_DEPOSIT = (
        "ALLOWED_DEPOSIT",
        "Dépôt permis (aucune autorisation n'est requise pour alimenter le DMP).",
        "Deposit allowed (feeding the DMP needs no authorisation).",
    )
    ALLOWED_SELF_AUTHORISATION = (
        "ALLOWED_SELF_AUTHORISATION",
        "Enregistrement de l'autorisation donnée par le patient.",
        "Recording the authorisation the patient gave.",
    )
    ALLOWED_IDENTITY_LOOKUP = (
        "ALLOWED_IDENTITY_LOOKUP",
        "Recherche de l'identité nationale de santé (INS).",
        "Looking up the patient's national health identifier (INS).",
    )
    ALLOWED_EXISTENCE_TEST = (
        "ALLOWED_EXISTENCE_TEST",
        "Test d'existence du DMP.",
        "DMP existence test.",
    )
    ALLOWED_DOSSIER_LIFECYCLE = (
        "ALLOWED_DOSSIER_LIFECYCLE",
        "Création ou réactivation du DMP avec le consentement du patient.",
        "Creating or reactivating the DMP with the patient's consent.",
    )

    # Refused.
    BLOCKED = (
        "BLOCKED",
        "Le patient vous a interdit l'accès à son DMP.",
        "The patient has blocked you from their DMP.",
    )
    EXCLUDED_PRACTICE = (
        "EXCLUDED_PRACTICE",
        "La loi interdit l'accès au DMP dans ce cadre d'exercice (médecine du travail, "
        "assurance, mutuelle).",
        "The law forbids DMP access in this practice context (occupational health, insurer, "
        "mutual).",
    )
    REGULATION_CENTRE_ONLY = (
        "REGULATION_CENTRE_ONLY",
        "Le mode centre 15 est réservé aux structures enregistrées comme centre de régulation.",
        "The centre 15 mode is reserved to structures registered as regulation centres.",
    )
    MODE_NOT_FOR_ACTOR = (
        "MODE_NOT_FOR_ACTOR",
        "Ce mode d'accès n'est pas ouvert à ce type d'utilisateur.",
        "This access mode is not open to this kind of user.",
    )
    JUSTIFICATION_REQUIRED = (
        "JUSTIFICATION_REQUIRED",
        "Le bris de glace exige une justification.",
        "Break-the-glass needs a justification.",
    )
    BREAK_THE_GLASS_OPTED_OUT = (
        "BREAK_THE_GLASS_OPTED_OUT",
        "Le patient a refusé l'accès en mode bris de glace.",
        "The patient opted out of break-the-glass access.",
    )
    CENTRE_15_OPTED_OUT = (
        "CENTRE_15_OPTED_OUT",
        "Le patient a refusé l'accès par le centre de régulation.",
        "The patient opted out of access by the emergency regulation centre.",
    )
    ACTION_NOT_IN_EMERGENCY_MODE = (
        "ACTION_NOT_IN_EMERGENCY_MODE",
        "Cette action n'est pas possible en mode d'urgence.",
        "This action is not available in an emergency access mode.",
    )
    DOSSIER_ABSENT = (
        "DOSSIER_ABSENT",
        "Ce patient n'a pas de DMP.",
        "This patient has no DMP.",
    )
    DOSSIER_CLOSED = (
        "DOSSIER_CLOSED",
        "Le DMP est fermé.",
        "The DMP is closed.",
    )
    DOSSIER_EXISTS = (
        "DOSSIER_EXISTS",
        "Le DMP existe déjà.",
        "The DMP already exists.",
    )
    DOSSIER_NOT_CLOSED = (
        "DOSSIER_NOT_CLOSED",
        "Le DMP n'est pas fermé.",
        "The DMP is not closed.",
    )
    NO_AUTHORISATION = (
        "NO_AUTHORISATION",
        "Vous n'êtes pas autorisé par le patient à consulter son DMP.",
        "The patient has not authorised you to consult their DMP.",
    )
    AUTHORISATION_EXPIRED = (
        "AUTHORISATION_EXPIRED",
        "Votre autorisation d'accès à ce DMP a expiré.",
        "Your authorisation on this DMP has expired.",
    )
    UNKNOWN_PROFESSION = (
        "UNKNOWN_PROFESSION",
        "Profession inconnue de la matrice d'accès.",
        "Profession unknown to the access matrix.",
    )
    PROFESSION_MAY_NOT_READ = (
        "PROFESSION_MAY_NOT_READ",
        "Votre profession n'a pas accès à ce type de document.",
        "Your profession may not read this document type.",
    )
    PROFESSION_MAY_NOT_WRITE = (
        "PROFESSION_MAY_NOT_WRITE",
        "Votre profession ne peut pas déposer ce type de document.",
        "Your profession may not deposit this document type.",
    )
    UNKNOWN_DOCUMENT_TYPE = (
        "UNKNOWN_DOCUMENT_TYPE",
        "Type de document inconnu.",
        "Unknown document type.",
    )
    CLASS_TYPE_MISMATCH = (
        "CLASS_TYPE_MISMATCH",
        "La classe du document ne correspond pas à son type.",
        "The document's class does not match its type.",
    )
    PATIENT_CLASS_RESERVED = (
        "PATIENT_CLASS_RESERVED",
        "Seul le patient dépose des documents de cette classe.",
        "Only the patient deposits documents of this class.",
    )
    PATIENT_CLASS_ONLY = (
        "PATIENT_CLASS_ONLY",
        "Le patient ne dépose que des documents de la classe « documents déposés par le patient ».",
        "The patient deposits only documents of the patient-documents class.",
    )
    AUTHOR_MISMATCH = (
        "AUTHOR_MISMATCH",
        "L'auteur déclaré du document n'est pas l'utilisateur.",
        "The document's declared author is not the user.",
    )
    ONLY_AUTHOR = (
        "ONLY_AUTHOR",
        "Seul l'auteur du document peut faire cela.",
        "Only the document's author may do this.",
    )
    MASKED = (
        "MASKED",
        "Ce document est masqué aux professionnels de santé.",
        "This document is masked from health professionals.",
    )
    INVISIBLE_TO_PATIENT = (
        "INVISIBLE_TO_PATIENT",
        "Ce document n'est pas encore visible par le patient.",
        "This document is not yet visible to the patient.",
    )
    INVISIBLE_TO_LEGAL_REPRESENTATIVES = (
        "INVISIBLE_TO_LEGAL_REPRESENTATIVES",
        "Ce document n'est pas visible par les représentants légaux.",
        "This document is not visible to legal representatives.",
    )
    MASKED_AND_INVISIBLE = (
        "MASKED_AND_INVISIBLE",
        "Un document ne peut pas être à la fois masqué et invisible au patient.",
        "A document may not be both masked and invisible to the patient.",
    )
    DOCUMENT_DELETED = (
        "DOCUMENT_DELETED",
        "Ce document a été supprimé.",
        "This document was deleted.",
    )
    NOT_IN_DEFAULT_SEARCH = (
        "NOT_IN_DEFAULT_SEARCH",
        "Document remplacé ou archivé : absent des recherches par défaut.",
        "Replaced or archived document: not shown in default searches.",
    )
    DOCUMENT_STATE = (
        "DOCUMENT_STATE",
        "L'état du document ne permet pas cette action.",
        "The document's state does not allow this action.",
    )
    DOCUMENT_REQUIRED = (
        "DOCUMENT_REQUIRED",
        "Cette action porte sur un document, qui n'a pas été fourni.",
        "This action concerns a document, and none was given.",
    )
    PATIENT_ONLY = (
        "PATIENT_ONLY",
        "Seul le patient ou son représentant légal peut faire cela.",
        "Only the patient or their legal representative may do this.",
    )
    PROFESSIONAL_ONLY = (
        "PROFESSIONAL_ONLY",
        "Seul un professionnel de santé peut faire cela.",
        "Only a health professional may do this.",
    )


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


def _no(reason: ReasonCode) -> Decision:
    return Decision(False, reason)


def _yes(reason: ReasonCode, notify_patient: bool = False) -> Decision:
    return Decision(True, reason, notify_patient)


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
        return _no(ReasonCode.EXCLUDED_PRACTICE)
    if action is Action.RESOLVE_IDENTITY:
        return _identity_lookup(actor, mode, policy)
    # A blocked professional gets nothing, whatever the mode, action or dossier.
    if actor.is_professional and dossier.authorization is AuthorizationStatus.FORBIDDEN:
        return _no(ReasonCode.BLOCKED)
    refusal = _check_mode(actor, mode, action)
    if refusal:
        return refusal
    if actor.is_professional and actor.profession not in policy.matrix.professions:
        return _no(ReasonCode.UNKNOWN_PROFESSION)

    if action is Action.TEST_EXISTENCE:
        return _existence_test(dossier, mode)
    lifecycle = _dossier_lifecycle(dossier, action)
    if lifecycle:
        return lifecycle

    if mode.code is ModeCode.BRIS_DE_GLACE and not dossier.consents.break_the_glass:
        return _no(ReasonCode.BREAK_THE_GLASS_OPTED_OUT)
    if mode.code is ModeCode.CENTRE_15 and not dossier.consents.regulation_centre:
        return _no(ReasonCode.CENTRE_15_OPTED_OUT)

    if action not in DOCUMENT_ACTIONS:
        return _dossier_action(actor, action)
    if document is None:
        return _no(ReasonCode.DOCUMENT_REQUIRED)
    if actor.speaks_for_patient:
        return _for_patient(actor, action, document, now, policy)
    return _for_professional(actor, dossier, action, mode, document, policy)


def _identity_lookup(actor: Actor, mode: AccessMode, policy: Policy) -> Decision:
    """Any professional with a card may look up an INS (before any dossier is named), in
    the modes open to them; the patient has no card to do it with."""
    if not actor.is_professional:
        return _no(ReasonCode.PROFESSIONAL_ONLY)
    refusal = _check_mode(actor, mode, Action.RESOLVE_IDENTITY)
    if refusal:
        return refusal
    if actor.profession not in policy.matrix.professions:
        return _no(ReasonCode.UNKNOWN_PROFESSION)
    return _yes(ReasonCode.ALLOWED_IDENTITY_LOOKUP)


def _existence_test(dossier: Dossier, mode: AccessMode) -> Decision:
    """Anyone with a card may learn whether a DMP exists and what their rights on it are
    (an absent or closed DMP is the answer itself); an emergency mode keeps its opt-outs and
    tells the patient, since an emergency access starts here."""
    if dossier.status is DossierStatus.OPEN:
        if mode.code is ModeCode.BRIS_DE_GLACE and not dossier.consents.break_the_glass:
            return _no(ReasonCode.BREAK_THE_GLASS_OPTED_OUT)
        if mode.code is ModeCode.CENTRE_15 and not dossier.consents.regulation_centre:
            return _no(ReasonCode.CENTRE_15_OPTED_OUT)
    return _yes(ReasonCode.ALLOWED_EXISTENCE_TEST,
                notify_patient=mode.is_emergency and dossier.status is DossierStatus.OPEN)


def _dossier_action(actor: Actor, action: Action) -> Decision:
    """Actions on the open dossier itself: authorisations, access log, closure."""
    if actor.speaks_for_patient:
        return _yes(ReasonCode.ALLOWED_PATIENT)
    # A professional records the authorisation the patient gives them (an explicit action);
    # managing others' authorisations, reading the log and closing are the patient's.
    if action is Action.GRANT:
        return _yes(ReasonCode.ALLOWED_SELF_AUTHORISATION)
    return _no(ReasonCode.PATIENT_ONLY)


def _check_mode(actor: Actor, mode: AccessMode, action: Action) -> Decision | None:
    allowed_modes = {
        ActorKind.PATIENT: {ModeCode.NORMAL},
        ActorKind.LEGAL_REPRESENTATIVE: {ModeCode.NORMAL},
        ActorKind.PROFESSIONAL: {ModeCode.NORMAL, ModeCode.BRIS_DE_GLACE},
        ActorKind.REGULATION_CENTRE: {ModeCode.CENTRE_15},
    }[actor.kind]
    if mode.code not in allowed_modes:
        return _no(ReasonCode.MODE_NOT_FOR_ACTOR)
    if (actor.kind is ActorKind.REGULATION_CENTRE
            and actor.structure_kind is not StructureKind.REGULATION_CENTRE):
        return _no(ReasonCode.REGULATION_CENTRE_ONLY)
    if mode.code is ModeCode.BRIS_DE_GLACE and not (mode.justification or "").strip():
        return _no(ReasonCode.JUSTIFICATION_REQUIRED)
    if mode.is_emergency and action not in _EMERGENCY_ACTIONS:
        return _no(ReasonCode.ACTION_NOT_IN_EMERGENCY_MODE)
    return None


def _dossier_lifecycle(dossier: Dossier, action: Action) -> Decision | None:
    """Creation, closure and reactivation; None when the dossier is open and the action is
    an ordinary one. Emergency modes never get here with CREATE or REACTIVATE, so these
    happen in normal mode: the patient online, or a professional at the counter with the
    patient's consent."""
    if dossier.status is DossierStatus.ABSENT:
        if action is Action.CREATE:
            return _yes(ReasonCode.ALLOWED_DOSSIER_LIFECYCLE)
        return _no(ReasonCode.DOSSIER_ABSENT)
    if dossier.status is DossierStatus.CLOSED:
        # A closed DMP is kept (10 years) but serves nothing until it is reactivated.
        if action is Action.REACTIVATE:
            return _yes(ReasonCode.ALLOWED_DOSSIER_LIFECYCLE)
        return _no(ReasonCode.DOSSIER_CLOSED)
    if action is Action.CREATE:
        return _no(ReasonCode.DOSSIER_EXISTS)
    if action is Action.REACTIVATE:
        return _no(ReasonCode.DOSSIER_NOT_CLOSED)
    return None


def _document_type_problem(document: Document, policy: Policy) -> ReasonCode | None:
    class_code = policy.matrix.class_of(document.type_code)
    if class_code is None:
        return ReasonCode.UNKNOWN_DOCUMENT_TYPE
    if class_code != document.class_code:
        return ReasonCode.CLASS_TYPE_MISMATCH
    return None


def _new_document_problem(actor: Actor, document: Document, policy: Policy) -> ReasonCode | None:
    """What is wrong with a document offered for deposit, whoever deposits it."""
    if document.author_id != actor.id_nat:
        return ReasonCode.AUTHOR_MISMATCH
    if document.status is not DocumentStatus.CURRENT:
        return ReasonCode.DOCUMENT_STATE
    type_problem = _document_type_problem(document, policy)
    if type_problem:
        return type_problem
    if document.masked and document.invisible_to_patient and not policy.allow_masked_and_invisible:
        return ReasonCode.MASKED_AND_INVISIBLE
    return None


def _listing_problem(action: Action, document: Document) -> ReasonCode | None:
    """Deleted documents are never shown; default searches show current ones only."""
    if document.status is DocumentStatus.DELETED:
        return ReasonCode.DOCUMENT_DELETED
    if action is Action.SEARCH and document.status is not DocumentStatus.CURRENT:
        return ReasonCode.NOT_IN_DEFAULT_SEARCH
    return None


def _metadata_problem(action: Action, document: Document, policy: Policy) -> ReasonCode | None:
    """State checks for changes to an existing document (mask, archive, replace...)."""
    status = document.status
    if status is DocumentStatus.DELETED:
        return ReasonCode.DOCUMENT_DELETED
    if action is Action.REPLACE and status is not DocumentStatus.CURRENT:
        return ReasonCode.DOCUMENT_STATE
    if action is Action.ARCHIVE and status is not DocumentStatus.CURRENT:
        return ReasonCode.DOCUMENT_STATE
    if action is Action.UNARCHIVE and status is not DocumentStatus.ARCHIVED:
        return ReasonCode.DOCUMENT_STATE
    both_forbidden = not policy.allow_masked_and_invisible
    if both_forbidden and action is Action.MASK and document.invisible_to_patient:
        return ReasonCode.MASKED_AND_INVISIBLE
    if both_forbidden and action is Action.SET_INVISIBLE and document.masked:
        return ReasonCode.MASKED_AND_INVISIBLE
    return None


def _for_patient(
    actor: Actor, action: Action, document: Document, now: datetime, policy: Policy
) -> Decision:
    if action is Action.DEPOSIT:
        problem = _new_document_problem(actor, document, policy)
        if problem:
            return _no(problem)
        if document.class_code != PATIENT_CLASS:
            return _no(ReasonCode.PATIENT_CLASS_ONLY)
        if document.invisible_to_patient:
            # Hiding one's own document from oneself makes no sense.
            return _no(ReasonCode.DOCUMENT_STATE)
        return _yes(ReasonCode.ALLOWED_DEPOSIT)

    # The patient cannot act on, nor learn of, a document they may not see yet.
    visible_from = document.patient_visible_from
    if visible_from is not None and now < visible_from:
        return _no(ReasonCode.INVISIBLE_TO_PATIENT)
    if actor.kind is ActorKind.LEGAL_REPRESENTATIVE and document.invisible_to_legal_representatives:
        return _no(ReasonCode.INVISIBLE_TO_LEGAL_REPRESENTATIVES)

    if document.status is DocumentStatus.DELETED:
        return _no(ReasonCode.DOCUMENT_DELETED)
    if action in (Action.READ, Action.SEARCH):
        problem = _listing_problem(action, document)
        return _no(problem) if problem else _yes(ReasonCode.ALLOWED_PATIENT)
    if action in (Action.SET_INVISIBLE, Action.SET_VISIBLE):
        return _no(ReasonCode.PROFESSIONAL_ONLY)
    if action in (Action.DELETE, Action.REPLACE) and document.author_id != actor.id_nat:
        return _no(ReasonCode.ONLY_AUTHOR)
    problem = _metadata_problem(action, document, policy)
    if problem:
        return _no(problem)
    return _yes(ReasonCode.ALLOWED_PATIENT)


def _consultation_ground(actor: Actor, dossier: Dossier, mode: AccessMode) -> ReasonCode:
    """On which ground a professional may consult this dossier (or why not)."""
    if mode.code is ModeCode.BRIS_DE_GLACE:
        return ReasonCode.ALLOWED_BREAK_THE_GLASS
    if mode.code is ModeCode.CENTRE_15:
        return ReasonCode.ALLOWED_CENTRE_15
    if dossier.is_medecin_traitant:
        return ReasonCode.ALLOWED_MEDECIN_TRAITANT
    if dossier.authorization is AuthorizationStatus.VALID:
        return ReasonCode.ALLOWED_AUTHORISED
    if (
        dossier.initial_consent
        and actor.structure_id is not None
        and actor.structure_id in dossier.authorised_structures
    ):
        return ReasonCode.ALLOWED_CARE_TEAM
    if dossier.authorization is AuthorizationStatus.EXPIRED:
        return ReasonCode.AUTHORISATION_EXPIRED
    return ReasonCode.NO_AUTHORISATION


def _for_professional(
    actor: Actor,
    dossier: Dossier,
    action: Action,
    mode: AccessMode,
    document: Document,
    policy: Policy,
) -> Decision:
    matrix = policy.matrix
    if action is Action.DEPOSIT:
        # Feeding the DMP needs no authorisation: the patient is informed instead.
        problem = _new_document_problem(actor, document, policy)
        if problem:
            return _no(problem)
        if document.class_code == PATIENT_CLASS:
            return _no(ReasonCode.PATIENT_CLASS_RESERVED)
        if not matrix.can_write(actor.profession, document.type_code):
            return _no(ReasonCode.PROFESSION_MAY_NOT_WRITE)
        return _yes(ReasonCode.ALLOWED_DEPOSIT, notify_patient=not document.invisible_to_patient)

    is_author = document.author_id == actor.id_nat
    if action in (Action.READ, Action.SEARCH):
        ground = (
            ReasonCode.ALLOWED_AUTHOR if is_author else _consultation_ground(actor, dossier, mode)
        )
        if not ground.allows:
            return _no(ground)
        problem = _listing_problem(action, document)
        if problem:
            return _no(problem)
        if is_author:
            return _yes(ground, notify_patient=mode.is_emergency)
        if document.type_code not in matrix.document_types:
            return _no(ReasonCode.UNKNOWN_DOCUMENT_TYPE)
        if not matrix.can_read(actor.profession, document.type_code):
            return _no(ReasonCode.PROFESSION_MAY_NOT_READ)
        # Emergency access sees masked documents only if the patient allowed it.
        emergency_sees_masked = mode.is_emergency and dossier.consents.emergency_sees_masked
        if document.masked and not dossier.is_medecin_traitant and not emergency_sees_masked:
            return _no(ReasonCode.MASKED)
        return _yes(ground, notify_patient=mode.is_emergency)

    # Changes to an existing document: its author's business (the médecin traitant may also
    # lift invisibility after the announcement consultation).
    may_change = is_author or (action is Action.SET_VISIBLE and dossier.is_medecin_traitant)
    if not may_change:
        return _no(ReasonCode.ONLY_AUTHOR)
    problem = _metadata_problem(action, document, policy)
    if problem:
        return _no(problem)
    if action is Action.REPLACE and not matrix.can_write(actor.profession, document.type_code):
        return _no(ReasonCode.PROFESSION_MAY_NOT_WRITE)
    reason = ReasonCode.ALLOWED_AUTHOR if is_author else ReasonCode.ALLOWED_MEDECIN_TRAITANT
    return _yes(reason)
