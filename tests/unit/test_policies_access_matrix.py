"""The access matrix of issue 16 as properties (Hypothesis): for every profession, specialty,
structure kind, mode, dossier and document, a regulation mode is only ever allowed to a
registered regulation centre, the excluded practices never get an allowed decision, and a
professional's structure that is not the care team's grants nothing on its own.

``POLICY_MATRIX_EXAMPLES`` sets the examples per property (bench/policies_matrix.py runs many
more); each example is decided for every action."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from itertools import product

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import (
    AccessMode,
    Action,
    Actor,
    ActorKind,
    AuthorizationStatus,
    Document,
    DocumentStatus,
    Dossier,
    DossierStatus,
    EmergencyConsents,
    ModeCode,
    Policy,
    ReasonCode,
    StructureKind,
    decide,
    default_matrix,
)

MATRIX = default_matrix()
POLICY = Policy(matrix=MATRIX)
EXAMPLES = int(os.environ.get("POLICY_MATRIX_EXAMPLES", "300"))
CHECKS = settings(max_examples=EXAMPLES, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
SPECIALTIES = [None, "SM54", "SM25", "SM26"]
MODES = [AccessMode.normal(), AccessMode.break_the_glass("patient inconscient"),
         AccessMode.centre_15()]
STRUCTURES = ["3750712184", "581234567800015"]

actors = st.builds(
    lambda kind, profession, specialty, structure, structure_kind: Actor(
        kind, "810001234565", profession, specialty, structure, structure_kind),
    st.sampled_from([ActorKind.PROFESSIONAL, ActorKind.REGULATION_CENTRE]),
    st.sampled_from([*MATRIX.professions, "99"]),
    st.sampled_from(SPECIALTIES),
    st.sampled_from(STRUCTURES),
    st.sampled_from(list(StructureKind)),
)
dossiers = st.builds(
    lambda status, flags, authorization, traitant, structures, consent: Dossier(
        status, EmergencyConsents(*flags), authorization, traitant, structures, consent),
    st.sampled_from(list(DossierStatus)),
    st.tuples(st.booleans(), st.booleans(), st.booleans()),
    st.sampled_from(list(AuthorizationStatus)),
    st.booleans(),
    st.sampled_from([frozenset(), frozenset(STRUCTURES[:1]), frozenset(STRUCTURES)]),
    st.booleans(),
)
TYPED = [(code, MATRIX.class_of(code)) for code in MATRIX.document_types]
documents = st.builds(
    lambda typed, author, status, masked: Document(
        typed[1] or "10", typed[0], author, NOW - timedelta(days=3), status, masked),
    st.sampled_from(TYPED),
    st.sampled_from(["810001234565", "810009999999"]),
    st.sampled_from(list(DocumentStatus)),
    st.booleans(),
)
ALL = list(Action)


def decisions(actor: Actor, dossier: Dossier, mode: AccessMode, document: Document):
    for action in ALL:
        yield action, decide(actor, dossier, action, mode, document, now=NOW, policy=POLICY)


@CHECKS
@given(actors, dossiers, st.sampled_from(MODES), documents)
def test_centre_15_is_only_ever_allowed_to_a_registered_regulation_centre(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document
) -> None:
    for action, decision in decisions(actor, dossier, mode, document):
        if decision.allowed and mode.code is ModeCode.CENTRE_15:
            assert actor.structure_kind is StructureKind.REGULATION_CENTRE, action
            assert actor.kind is ActorKind.REGULATION_CENTRE, action


@CHECKS
@given(actors, dossiers, st.sampled_from(MODES), documents)
def test_excluded_practices_never_get_an_allowed_decision(
    actor: Actor, dossier: Dossier, mode: AccessMode, document: Document
) -> None:
    excluded = actor.specialty == "SM25" or actor.structure_kind in (
        StructureKind.OCCUPATIONAL_HEALTH, StructureKind.INSURER, StructureKind.MUTUAL)
    for action, decision in decisions(actor, dossier, mode, document):
        if excluded:
            assert decision.refused and decision.reason is ReasonCode.EXCLUDED_PRACTICE, action
        else:
            assert decision.reason is not ReasonCode.EXCLUDED_PRACTICE, action


@CHECKS
@given(actors, dossiers, documents)
def test_a_structure_outside_the_care_team_grants_no_consultation(
    actor: Actor, dossier: Dossier, document: Document
) -> None:
    # No personal ground (authorisation, médecin traitant, authorship): only the care team.
    personal = (dossier.authorization is AuthorizationStatus.VALID or dossier.is_medecin_traitant
                or document.author_id == actor.id_nat)
    if personal or actor.structure_id in dossier.authorised_structures:
        return
    for action in (Action.READ, Action.SEARCH):
        assert decide(actor, dossier, action, AccessMode.normal(), document, now=NOW,
                      policy=POLICY).refused


def test_the_matrix_covers_every_combination_once() -> None:
    """The exhaustive grid (no sampling): profession × specialty × structure kind × mode on an
    open dossier with a valid authorisation; counts what the long run multiplies."""
    dossier = Dossier(DossierStatus.OPEN, authorization=AuthorizationStatus.VALID)
    document = Document("10", "34810-2", "810009999999", NOW - timedelta(days=1))
    cases = 0
    for profession, specialty, kind, mode in product(
        MATRIX.professions, SPECIALTIES, StructureKind, MODES
    ):
        for actor_kind in (ActorKind.PROFESSIONAL, ActorKind.REGULATION_CENTRE):
            actor = Actor(actor_kind, "810001234565", profession, specialty, STRUCTURES[0], kind)
            for action in ALL:
                decision = decide(actor, dossier, action, mode, document, now=NOW,
                                  policy=POLICY)
                cases += 1
                if decision.allowed and mode.code is ModeCode.CENTRE_15:
                    assert kind is StructureKind.REGULATION_CENTRE
                if specialty == "SM25":
                    assert decision.reason is ReasonCode.EXCLUDED_PRACTICE
    assert cases == len(MATRIX.professions) * len(SPECIALTIES) * len(StructureKind) * len(
        MODES) * 2 * len(ALL)
