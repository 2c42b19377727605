"""The values a decision is made of: who acts, on which dossier, doing what, in which mode.

All are small frozen dataclasses and string enums, so a decision is a pure function of them
and a test can build any situation in one line. Codes follow the national tables where one
exists (G15 professions, JDV_J57 classes, TRE_R248 access modes); see docs/policies.md.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class StructureKind(StrEnum):
    """What kind of structure a practice situation is in, as the host's registry of
    structures says (not what the client declares). Only a registered regulation centre
    may use the centre 15 mode; the law keeps the DMP away from occupational health,
    insurers and mutuals (CSP L1111-18)."""

    CARE = "care"
    """Any care structure: practice, pharmacy, shop, health centre, hospital (the default)."""
    REGULATION_CENTRE = "regulation_centre"
    """An emergency regulation centre (centre 15, SAMU)."""
    OCCUPATIONAL_HEALTH = "occupational_health"
    """An occupational health service (service de prévention et de santé au travail)."""
    INSURER = "insurer"
    MUTUAL = "mutual"


class ActorKind(StrEnum):
    """Who is asking."""

    PROFESSIONAL = "professional"
    """A health professional with a CPS (or CPE) card, acting for one practice situation."""
    PATIENT = "patient"
    """The holder of the DMP."""
    LEGAL_REPRESENTATIVE = "legal_representative"
    """A minor's legal representative, acting for the holder."""
    REGULATION_CENTRE = "regulation_centre"
    """A professional of an emergency regulation centre (centre 15, SAMU)."""


@dataclass(frozen=True)
class Actor:
    """The person a decision is about.

    ``id_nat`` is the national identifier: the idNat_PS (``8`` + RPPS, ``0`` + ADELI) of a
    professional, the INS of the patient, the representative's own identifier otherwise. It
    is what `Document.author_id` is compared with. ``profession`` is a G15 code (``"10"``
    médecin, ``"28"`` opticien-lunetier...), ``structure_id`` the identifier of the practice
    situation the session carries (``3`` + FINESS, ``4`` + SIREN, ``5`` + SIRET).
    """

    kind: ActorKind
    id_nat: str
    profession: str | None = None
    specialty: str | None = None
    structure_id: str | None = None
    structure_kind: StructureKind = StructureKind.CARE

    @classmethod
    def professional(
        cls,
        id_nat: str,
        profession: str,
        *,
        specialty: str | None = None,
        structure_id: str | None = None,
        structure_kind: StructureKind = StructureKind.CARE,
    ) -> Actor:
        return cls(ActorKind.PROFESSIONAL, id_nat, profession, specialty, structure_id,
                   structure_kind)

    @classmethod
    def patient(cls, ins: str) -> Actor:
        return cls(ActorKind.PATIENT, ins)

    @classmethod
    def legal_representative(cls, id_nat: str) -> Actor:
        return cls(ActorKind.LEGAL_REPRESENTATIVE, id_nat)

    @classmethod
    def regulation_centre(
        cls,
        id_nat: str,
        profession: str = "10",
        *,
        specialty: str | None = None,
        structure_id: str | None = None,
        structure_kind: StructureKind = StructureKind.REGULATION_CENTRE,
    ) -> Actor:
        """A professional acting in centre 15 mode; ``structure_kind`` is what the registry
        says of their structure (anything but a regulation centre is refused)."""
        return cls(ActorKind.REGULATION_CENTRE, id_nat, profession, specialty, structure_id,
                   structure_kind)

    @property
    def is_professional(self) -> bool:
        """True for anyone who holds a professional card (regulation centres included)."""
        return self.kind in (ActorKind.PROFESSIONAL, ActorKind.REGULATION_CENTRE)

    @property
    def speaks_for_patient(self) -> bool:
        """True for the holder and for their legal representative."""
        return self.kind in (ActorKind.PATIENT, ActorKind.LEGAL_REPRESENTATIVE)


class DossierStatus(StrEnum):
    """The DMP status the existence test returns."""

    OPEN = "open"
    CLOSED = "closed"
    ABSENT = "absent"


class AuthorizationStatus(StrEnum):
    """The acting professional's authorisation on this dossier, as the existence test says."""

    NONE = "none"
    VALID = "valid"
    EXPIRED = "expired"
    FORBIDDEN = "forbidden"
    """The patient blocked this professional: no access at all, authorised or not."""


@dataclass(frozen=True)
class EmergencyConsents:
    """The patient's three emergency-access settings (offered checked at creation)."""

    regulation_centre: bool = True
    break_the_glass: bool = True
    emergency_sees_masked: bool = True


@dataclass(frozen=True)
class Dossier:
    """A patient's DMP as seen by one actor (the existence test's answer plus the settings).

    ``authorization`` and ``is_medecin_traitant`` are about the acting professional.
    ``authorised_structures`` are the structures where at least one professional holds a
    valid authorisation: a professional of such a structure belongs to the care team once
    ``initial_consent`` was collected, and is then deemed authorised.
    """

    status: DossierStatus = DossierStatus.OPEN
    consents: EmergencyConsents = field(default_factory=EmergencyConsents)
    authorization: AuthorizationStatus = AuthorizationStatus.NONE
    is_medecin_traitant: bool = False
    authorised_structures: frozenset[str] = frozenset()
    initial_consent: bool = True


class DocumentStatus(StrEnum):
    """A document's availability (FHIR DocumentReference status and PDSm isArchived)."""

    CURRENT = "current"
    DEPRECATED = "deprecated"
    """Replaced by a newer version (FHIR ``superseded``)."""
    DELETED = "deleted"
    """Logically deleted by its author (nothing is removed physically)."""
    ARCHIVED = "archived"


class Confidentiality(StrEnum):
    """The JDV_J58 level. It does not change DMP access decisions (masking does)."""

    NORMAL = "N"
    RESTRICTED = "R"
    VERY_RESTRICTED = "V"


def one_month_after(moment: datetime) -> datetime:
    """The same day and time one calendar month later (31 January -> 28/29 February)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


PATIENT_CLASS = "90"
"""JDV_J57 class of documents deposited by the patient."""


@dataclass(frozen=True)
class Document:
    """The metadata of one document that decisions look at.

    ``masked`` is MASQUE_PS (hidden from professionals), ``invisible_to_patient`` is
    INVISIBLE_PATIENT (hidden from the patient until an announcement consultation, and
    automatically after ``visible_to_patient_from``, by default one month after deposit),
    ``invisible_to_legal_representatives`` is INVISIBLE_REPRESENTANTS_LEGAUX.
    Datetimes must be timezone-aware.
    """

    class_code: str
    type_code: str
    author_id: str
    deposited_at: datetime
    status: DocumentStatus = DocumentStatus.CURRENT
    masked: bool = False
    invisible_to_patient: bool = False
    visible_to_patient_from: datetime | None = None
    invisible_to_legal_representatives: bool = False
    confidentiality: Confidentiality = Confidentiality.NORMAL

    def __post_init__(self) -> None:
        for name in ("deposited_at", "visible_to_patient_from"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"Document.{name} must be timezone-aware")

    @property
    def patient_visible_from(self) -> datetime | None:
        """When an invisible-to-patient document becomes visible; None if it is visible."""
        if not self.invisible_to_patient:
            return None
        return self.visible_to_patient_from or one_month_after(self.deposited_at)

    @property
    def deposited_by_patient(self) -> bool:
        """Class 90: shown apart from professional documents (DOMAIN.md)."""
        return self.class_code == PATIENT_CLASS


class Action(StrEnum):
    """What the actor wants to do. Document actions take the document concerned."""

    RESOLVE_IDENTITY = "resolve_identity"
    """Look up a patient's INS from their traits (the identity service): no dossier yet."""
    TEST_EXISTENCE = "test_existence"
    """The DMP existence test: status of the dossier and the caller's rights on it."""
    READ = "read"
    """Retrieve a document, or see it in a search that explicitly asks for deprecated or
    archived documents."""
    SEARCH = "search"
    """See the document in a default search result (current documents only)."""
    DEPOSIT = "deposit"
    """Deposit a new document (the document passed is the one to deposit)."""
    REPLACE = "replace"
    """Deposit a new version of the document passed (the new one is checked as DEPOSIT)."""
    MASK = "mask"
    UNMASK = "unmask"
    SET_INVISIBLE = "set_invisible"
    """Make a document invisible to the patient."""
    SET_VISIBLE = "set_visible"
    """Lift invisibility after the announcement consultation."""
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    DELETE = "delete"
    GRANT = "grant"
    """Record an authorisation (a professional records their own, with the patient's consent)."""
    REVOKE = "revoke"
    BLOCK = "block"
    """The patient forbids a professional any access."""
    UNBLOCK = "unblock"
    READ_ACCESS_LOG = "read_access_log"
    CREATE = "create"
    CLOSE = "close"
    CLOSE_AT_PATIENT_REQUEST = "close_at_patient_request"
    """A professional records the closure the patient, present, asks for (TD1.x)."""
    REACTIVATE = "reactivate"


DOCUMENT_ACTIONS = frozenset(
    {
        Action.READ,
        Action.SEARCH,
        Action.DEPOSIT,
        Action.REPLACE,
        Action.MASK,
        Action.UNMASK,
        Action.SET_INVISIBLE,
        Action.SET_VISIBLE,
        Action.ARCHIVE,
        Action.UNARCHIVE,
        Action.DELETE,
    }
)
"""Actions that concern one document and need it passed to `decide`."""


class ModeCode(StrEnum):
    """Access modes (TRE_R248)."""

    NORMAL = "normal"
    BRIS_DE_GLACE = "bris_de_glace"
    CENTRE_15 = "centre_15"


@dataclass(frozen=True)
class AccessMode:
    """The access mode of a request; break-the-glass carries its justification."""

    code: ModeCode = ModeCode.NORMAL
    justification: str | None = None

    @classmethod
    def normal(cls) -> AccessMode:
        return cls(ModeCode.NORMAL)

    @classmethod
    def break_the_glass(cls, justification: str | None) -> AccessMode:
        return cls(ModeCode.BRIS_DE_GLACE, justification)

    @classmethod
    def centre_15(cls) -> AccessMode:
        return cls(ModeCode.CENTRE_15)

    @property
    def is_emergency(self) -> bool:
        return self.code is not ModeCode.NORMAL


NORMAL = AccessMode.normal()
