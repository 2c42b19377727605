"""Why a decision came out as it did: `ReasonCode`, one member per ground or refusal.

Each member carries a stable code string (for logs and the wire, never renamed) and a sentence
in French and English (for people). docs/policies.md says which rule gives which code.
"""

from __future__ import annotations

from enum import Enum


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
    ALLOWED_CLOSURE_AT_PATIENT_REQUEST = (
        "ALLOWED_CLOSURE_AT_PATIENT_REQUEST",
        "Fermeture du DMP à la demande du patient, enregistrée par un professionnel.",
        "Closing the DMP at the patient's request, recorded by a professional.",
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
