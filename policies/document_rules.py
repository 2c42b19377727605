"""The rules on documents: what a patient or a professional may do with one document.

`decide` has already checked the actor, the mode and the dossier when it calls
`for_patient` or `for_professional`; these look at the document itself (its type, state,
author, visibility) and, for a professional, at the ground they consult on.
"""

from __future__ import annotations

from datetime import datetime

from .decision import Decision, Policy, allow, refuse
from .model import (
    PATIENT_CLASS,
    AccessMode,
    Action,
    Actor,
    ActorKind,
    AuthorizationStatus,
    Document,
    DocumentStatus,
    Dossier,
    ModeCode,
)
from .reasons import ReasonCode


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


def for_patient(
    actor: Actor, action: Action, document: Document, now: datetime, policy: Policy
) -> Decision:
    if action is Action.DEPOSIT:
        problem = _new_document_problem(actor, document, policy)
        if problem:
            return refuse(problem)
        if document.class_code != PATIENT_CLASS:
            return refuse(ReasonCode.PATIENT_CLASS_ONLY)
        if document.invisible_to_patient:
            # Hiding one's own document from oneself makes no sense.
            return refuse(ReasonCode.DOCUMENT_STATE)
        return allow(ReasonCode.ALLOWED_DEPOSIT)

    # The patient cannot act on, nor learn of, a document they may not see yet.
    visible_from = document.patient_visible_from
    if visible_from is not None and now < visible_from:
        return refuse(ReasonCode.INVISIBLE_TO_PATIENT)
    if actor.kind is ActorKind.LEGAL_REPRESENTATIVE and document.invisible_to_legal_representatives:
        return refuse(ReasonCode.INVISIBLE_TO_LEGAL_REPRESENTATIVES)

    if document.status is DocumentStatus.DELETED:
        return refuse(ReasonCode.DOCUMENT_DELETED)
    if action in (Action.READ, Action.SEARCH):
        problem = _listing_problem(action, document)
        return refuse(problem) if problem else allow(ReasonCode.ALLOWED_PATIENT)
    if action in (Action.SET_INVISIBLE, Action.SET_VISIBLE):
        return refuse(ReasonCode.PROFESSIONAL_ONLY)
    if action in (Action.DELETE, Action.REPLACE) and document.author_id != actor.id_nat:
        return refuse(ReasonCode.ONLY_AUTHOR)
    problem = _metadata_problem(action, document, policy)
    if problem:
        return refuse(problem)
    return allow(ReasonCode.ALLOWED_PATIENT)


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


def for_professional(
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
            return refuse(problem)
        if document.class_code == PATIENT_CLASS:
            return refuse(ReasonCode.PATIENT_CLASS_RESERVED)
        if not matrix.can_write(actor.profession, document.type_code):
            return refuse(ReasonCode.PROFESSION_MAY_NOT_WRITE)
        return allow(ReasonCode.ALLOWED_DEPOSIT, notify_patient=not document.invisible_to_patient)

    is_author = document.author_id == actor.id_nat
    if action in (Action.READ, Action.SEARCH):
        ground = (
            ReasonCode.ALLOWED_AUTHOR if is_author else _consultation_ground(actor, dossier, mode)
        )
        if not ground.allows:
            return refuse(ground)
        problem = _listing_problem(action, document)
        if problem:
            return refuse(problem)
        if is_author:
            return allow(ground, notify_patient=mode.is_emergency)
        if document.type_code not in matrix.document_types:
            return refuse(ReasonCode.UNKNOWN_DOCUMENT_TYPE)
        if not matrix.can_read(actor.profession, document.type_code):
            return refuse(ReasonCode.PROFESSION_MAY_NOT_READ)
        # Emergency access sees masked documents only if the patient allowed it.
        emergency_sees_masked = mode.is_emergency and dossier.consents.emergency_sees_masked
        if document.masked and not dossier.is_medecin_traitant and not emergency_sees_masked:
            return refuse(ReasonCode.MASKED)
        return allow(ground, notify_patient=mode.is_emergency)

    # Changes to an existing document: its author's business (the médecin traitant may also
    # lift invisibility after the announcement consultation).
    may_change = is_author or (action is Action.SET_VISIBLE and dossier.is_medecin_traitant)
    if not may_change:
        return refuse(ReasonCode.ONLY_AUTHOR)
    problem = _metadata_problem(action, document, policy)
    if problem:
        return refuse(problem)
    if action is Action.REPLACE and not matrix.can_write(actor.profession, document.type_code):
        return refuse(ReasonCode.PROFESSION_MAY_NOT_WRITE)
    reason = ReasonCode.ALLOWED_AUTHOR if is_author else ReasonCode.ALLOWED_MEDECIN_TRAITANT
    return allow(reason)
