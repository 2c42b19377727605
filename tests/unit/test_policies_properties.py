"""Properties of `decide` over generated situations: the guarantees patients rely on hold for
every actor, dossier, document, mode and moment, not only for the examples."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import product

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import (
    DOCUMENT_ACTIONS,
    NORMAL,
    PATIENT_CLASS,
    AccessMode,
    Action,
    Actor,
    ActorKind,
    AuthorizationStatus,
    Decision,
    Document,
    DocumentStatus,
    Dossier,
    DossierStatus,
    EmergencyConsents,
    ModeCode,
    ReasonCode,
    decide,
    default_matrix,
)

MATRIX = default_matrix()
# A small pool of identifiers so that actors are often the author of the document at hand.
IDS = ["810000000001", "810000000002", "810000000003", "1840599123456"]
STRUCTURES = ["3100000001", "3100000002", "5123456789"]
BASE = datetime(2025, 1, 31, 12, tzinfo=UTC)

# Each example is decided for every action (about twenty decisions), so a few hundred
# examples per property make thousands of cases while the file stays within ~20 s.
EXAMPLES = 500
CHECKS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Actors and dossiers are drawn from pools of every combination: one draw per value keeps
# thousands of examples within a few seconds.
ACTORS = [
    Actor(kind, id_nat, profession, None, structure)
    for kind, id_nat, profession, structure in product(
        ActorKind, IDS, [*MATRIX.professions, "99", None], [*STRUCTURES, None]
    )
]
DOSSIERS = [
    Dossier(status, EmergencyConsents(*flags), authorization, traitant, structures, consent)
    for status, flags, authorization, traitant, structures, consent in product(
        DossierStatus,
        product([True, False], repeat=3),
        AuthorizationStatus,
        [True, False],
        [frozenset(), frozenset(STRUCTURES[:1]), frozenset(STRUCTURES[1:])],
        [True, False],
    )
]
# Every type with its own class, and each type once more with every other class.
TYPED = [(code, MATRIX.class_of(code)) for code in MATRIX.document_types]
TYPED += [("00000-0", "10")] + [
    (code, other) for code, own in TYPED for other in MATRIX.classes if other != own
]

actors = st.sampled_from(ACTORS)
professionals = st.sampled_from([a for a in ACTORS if a.is_professional])
patients = st.sampled_from([a for a in ACTORS if a.speaks_for_patient])
dossiers = st.sampled_from(DOSSIERS)
open_dossiers = st.sampled_from([d for d in DOSSIERS if d.status is DossierStatus.OPEN])


def _document(
    typed: tuple[str, str | None],
    author_id: str,
    status: DocumentStatus,
    flags: int,
    minutes: int,
    days: int,
) -> Document:
    type_code, class_code = typed
    deposited_at = BASE + timedelta(minutes=minutes)
    return Document(
        class_code=class_code or "10",
        type_code=type_code,
        author_id=author_id,
        deposited_at=deposited_at,
        status=status,
        masked=bool(flags & 1),
        invisible_to_patient=bool(flags & 2),
        visible_to_patient_from=deposited_at + timedelta(days=days) if flags & 4 else None,
        invisible_to_legal_representatives=bool(flags & 8),
    )


# Half the time a type with its own class, otherwise any pairing (a mismatch to refuse).
_typed = st.one_of(st.sampled_from(TYPED[: len(MATRIX.document_types)]), st.sampled_from(TYPED))
documents = st.builds(
    _document,
    _typed,
    st.sampled_from(IDS),
    st.sampled_from(DocumentStatus),
    st.integers(0, 15),
    st.integers(-60 * 24 * 60, 60 * 24 * 60),
    st.integers(0, 60),
)


JUSTIFIED = AccessMode.break_the_glass("Patient inconscient, suspicion d'AVC")
UNJUSTIFIED = [AccessMode.break_the_glass(blank) for blank in (None, "", "  ")]
# Normal, centre 15 and justified break-the-glass equally often, unjustified ones less.
modes = st.one_of(
    st.sampled_from([AccessMode.normal(), AccessMode.centre_15(), JUSTIFIED]),
    st.sampled_from([AccessMode.normal(), AccessMode.centre_15(), JUSTIFIED]),
    st.sampled_from(UNJUSTIFIED),
)
# Moments around the deposits, so that "one month after" falls on both sides.
moments = st.integers(-90 * 24 * 60, 90 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m))
maybe_documents = st.one_of(st.none(), documents)
CONSULT = (Action.READ, Action.SEARCH)


# The identity lookup names no dossier (decided before the INS is known): its own properties
# are in test_policies_access_matrix.py.
DOSSIER_ACTIONS = tuple(a for a in Action if a is not Action.RESOLVE_IDENTITY)


def shown(decision: Decision, action: Action) -> bool:
    return decision.allowed and action in CONSULT


def all_actions(
    actor: Actor,
    dossier: Dossier,
    mode: AccessMode,
    document: Document | None,
    now: datetime,
    only: Iterable[Action] = DOSSIER_ACTIONS,
) -> Iterator[tuple[Action, Decision]]:
    """Each example is decided for every action: generation is the costly part."""
    for action in only:
        yield action, decide(actor, dossier, action, mode, document, now=now)


@CHECKS
@given(actors, dossiers, modes, maybe_documents, moments)
def test_every_decision_carries_a_reason_that_matches_it(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document | None, now: datetime
) -> None:
    for _, decision in all_actions(actor, dossier, mode, document, now, tuple(Action)):
        assert isinstance(decision.reason, ReasonCode)
        assert decision.allowed == decision.reason.allows
        assert decision.reason.code and decision.reason.fr and decision.reason.en


@CHECKS
@given(professionals, dossiers, modes, maybe_documents, moments)
def test_a_blocked_professional_never_sees_or_changes_anything(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document | None, now: datetime
) -> None:
    blocked = replace(dossier, authorization=AuthorizationStatus.FORBIDDEN)
    for _, decision in all_actions(actor, blocked, mode, document, now):
        assert decision.refused and decision.reason is ReasonCode.BLOCKED


@CHECKS
@given(professionals, open_dossiers, modes, documents, moments)
def test_a_masked_document_is_shown_only_to_its_author_the_medecin_traitant_or_allowed_emergency(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document, now: datetime
) -> None:
    masked = replace(document, masked=True)
    # Every consultation ground and emergency consent, around the generated dossier.
    for authorization, traitant, sees_masked in product(
        [AuthorizationStatus.VALID, AuthorizationStatus.NONE], [False, True], [False, True]
    ):
        variant = replace(
            dossier,
            authorization=authorization,
            is_medecin_traitant=traitant,
            consents=replace(dossier.consents, emergency_sees_masked=sees_masked),
        )
        allowed_emergency = mode.is_emergency and sees_masked
        for action, decision in all_actions(actor, variant, mode, masked, now, CONSULT):
            if shown(decision, action):
                assert masked.author_id == actor.id_nat or traitant or allowed_emergency


@CHECKS
@given(patients, open_dossiers, documents, moments)
def test_a_document_invisible_to_the_patient_is_never_shown_to_them_before_its_date(
    actor: Actor, dossier: Dossier, document: Document, now: datetime
) -> None:
    hidden = replace(document, invisible_to_patient=True)
    visible_from = hidden.patient_visible_from
    assert visible_from is not None
    on_existing = DOCUMENT_ACTIONS - {Action.DEPOSIT}
    for action, decision in all_actions(actor, dossier, NORMAL, hidden, now, on_existing):
        if now < visible_from:
            assert decision.refused, action
        if decision.allowed:
            assert now >= visible_from


@CHECKS
@given(actors, dossiers, modes, documents, moments, st.data())
def test_depositing_never_depends_on_an_authorisation(
    actor: Actor,
    dossier: Dossier,
    mode: AccessMode,
    document: Document,
    now: datetime,
    data: st.DataObject,
) -> None:
    unblocked = [s for s in AuthorizationStatus if s is not AuthorizationStatus.FORBIDDEN]
    base = replace(dossier, authorization=data.draw(st.sampled_from(unblocked)))
    reference = decide(actor, base, Action.DEPOSIT, mode, document, now=now)
    for authorization, traitant, structures, consent in product(
        unblocked, [True, False], [frozenset(), frozenset(STRUCTURES)], [True, False]
    ):
        other = replace(
            base,
            authorization=authorization,
            is_medecin_traitant=traitant,
            authorised_structures=structures,
            initial_consent=consent,
        )
        assert decide(actor, other, Action.DEPOSIT, mode, document, now=now) == reference


@CHECKS
@given(actors, dossiers, modes, documents, moments)
def test_only_the_author_deletes(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document, now: datetime
) -> None:
    decision = decide(actor, dossier, Action.DELETE, mode, document, now=now)
    if decision.allowed:
        assert document.author_id == actor.id_nat


@CHECKS
@given(actors, dossiers, modes, maybe_documents, moments)
def test_a_closed_dossier_accepts_no_deposit_and_allows_only_reactivation(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document | None, now: datetime
) -> None:
    closed = replace(dossier, status=DossierStatus.CLOSED)
    for action, decision in all_actions(actor, closed, mode, document, now):
        if decision.allowed:  # the existence test answers "closed": that is its answer
            assert action in (Action.REACTIVATE, Action.TEST_EXISTENCE)
        if action is Action.DEPOSIT:
            assert decision.refused


@CHECKS
@given(professionals, open_dossiers, modes, maybe_documents, moments)
def test_emergency_modes_honour_the_patients_opt_outs_and_notify_them(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document | None, now: datetime
) -> None:
    opted_out = replace(
        dossier, consents=replace(dossier.consents, regulation_centre=False, break_the_glass=False)
    )
    if mode.is_emergency:
        for action, decision in all_actions(actor, opted_out, mode, document, now):
            assert decision.refused, action
    for action, decision in all_actions(actor, dossier, mode, document, now):
        if mode.code is ModeCode.BRIS_DE_GLACE and decision.allowed:
            assert (mode.justification or "").strip()
        if mode.is_emergency and shown(decision, action):
            assert decision.notify_patient


@CHECKS
@given(professionals, open_dossiers, modes, documents, moments)
def test_the_profession_matrix_bounds_what_a_professional_reads_and_deposits(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document, now: datetime
) -> None:
    for action, decision in all_actions(actor, dossier, mode, document, now):
        if shown(decision, action) and document.author_id != actor.id_nat:
            assert MATRIX.can_read(actor.profession, document.type_code)
        if decision.allowed and action in (Action.DEPOSIT, Action.REPLACE):
            assert MATRIX.can_write(actor.profession, document.type_code)
            assert document.class_code != PATIENT_CLASS


@CHECKS
@given(actors, open_dossiers, modes, documents, moments)
def test_deleted_documents_are_never_shown_and_default_searches_show_current_ones(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document, now: datetime
) -> None:
    for action, decision in all_actions(actor, dossier, mode, document, now, CONSULT):
        if decision.allowed:
            assert document.status is not DocumentStatus.DELETED
            if action is Action.SEARCH:
                assert document.status is DocumentStatus.CURRENT


@CHECKS
@given(patients, open_dossiers, documents, moments)
def test_the_patient_deposits_only_their_own_class_90_documents(
    actor: Actor, dossier: Dossier, document: Document, now: datetime
) -> None:
    decision = decide(actor, dossier, Action.DEPOSIT, NORMAL, document, now=now)
    if decision.allowed:
        assert document.class_code == PATIENT_CLASS
        assert document.author_id == actor.id_nat
