"""The care-team access rules of the DMP: the access matrix as data, one pure decision function.

    from policies import Action, Actor, Dossier, NORMAL, decide
    decision = decide(Actor.professional("810001234567", "28"), Dossier(), Action.DEPOSIT,
                      NORMAL, document, now=now)
    decision.allowed, decision.reason.code, decision.reason.message

Imports nothing else of ours; the host enforces it, the agent pre-checks with it.
"""

from .decide import Decision, Policy, ReasonCode, decide
from .matrix import (
    AccessMatrix,
    DocumentClass,
    DocumentType,
    MatrixError,
    Profession,
    default_matrix,
    load_matrix,
)
from .model import (
    DOCUMENT_ACTIONS,
    NORMAL,
    PATIENT_CLASS,
    AccessMode,
    Action,
    Actor,
    ActorKind,
    AuthorizationStatus,
    Confidentiality,
    Document,
    DocumentStatus,
    Dossier,
    DossierStatus,
    EmergencyConsents,
    ModeCode,
    StructureKind,
    one_month_after,
)

__all__ = [
    "DOCUMENT_ACTIONS",
    "NORMAL",
    "PATIENT_CLASS",
    "AccessMatrix",
    "AccessMode",
    "Action",
    "Actor",
    "ActorKind",
    "AuthorizationStatus",
    "Confidentiality",
    "Decision",
    "Document",
    "DocumentClass",
    "DocumentStatus",
    "DocumentType",
    "Dossier",
    "DossierStatus",
    "EmergencyConsents",
    "MatrixError",
    "ModeCode",
    "Policy",
    "Profession",
    "ReasonCode",
    "StructureKind",
    "decide",
    "default_matrix",
    "load_matrix",
    "one_month_after",
]
