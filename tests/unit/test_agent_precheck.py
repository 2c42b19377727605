"""The agent offers only what the host would allow (issue 14): its pre-checks, run over the
whole matrix against the host's decision (`policies.decide`, the one the host's guard
calls), find no disagreement. Where the agent is stricter on purpose, the test says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.client.dmp import deposit_types
from agent.core.patient import MIN_JUSTIFICATION
from policies import AccessMode, Action, ModeCode, decide, default_matrix
from policies.model import Actor, AuthorizationStatus, Document, Dossier, DossierStatus
from wire import codes

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
MATRIX = default_matrix()
OPEN = Dossier(DossierStatus.OPEN, authorization=AuthorizationStatus.VALID)
ID_NAT = "810001234565"


def host_allows_deposit(profession: str, type_code: str) -> bool:
    actor = Actor.professional(ID_NAT, profession, structure_id="3100000001")
    kind = MATRIX.document_types[type_code]
    document = Document(kind.class_code, type_code, ID_NAT, NOW - timedelta(seconds=1))
    return decide(actor, OPEN, Action.DEPOSIT, AccessMode.normal(), document, now=NOW).allowed


@pytest.mark.parametrize("profession", sorted(MATRIX.professions))
def test_the_deposit_types_offered_are_exactly_those_the_host_accepts(profession: str) -> None:
    offered = {code for code, _class, _label in deposit_types(profession)}
    accepted = {code for code in MATRIX.document_types
                if host_allows_deposit(profession, code)}
    # The submission set's signature is written by the agent itself, never offered.
    internal = {code for code in accepted if code == codes.SIGNATURE_TYPE_CODE
                or MATRIX.document_types[code].class_code == codes.SIGNATURE_CLASS_CODE}
    assert offered == accepted - internal


@pytest.mark.parametrize("justification", ["", " ", "urgence", "x" * (MIN_JUSTIFICATION - 1),
                                           "x" * MIN_JUSTIFICATION, "Patient inconscient"])
def test_break_the_glass_is_offered_only_where_the_host_accepts_it(justification: str) -> None:
    # The agent asks for ten characters (a reason someone can read later); the host only
    # refuses a blank one: the agent is stricter, never looser.
    agent_sends = len(justification.strip()) >= MIN_JUSTIFICATION
    actor = Actor.professional(ID_NAT, "10", structure_id="3100000001")
    report = Document("10", "11488-4", "810009999999", NOW - timedelta(days=1))
    host = decide(actor, Dossier(DossierStatus.OPEN), Action.READ,
                  AccessMode(ModeCode.BRIS_DE_GLACE, justification), report, now=NOW)
    assert not agent_sends or host.allowed
