"""The access rules, one situation at a time, and the matrix loader (pure, no host)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from policies import (
    NORMAL,
    AccessMatrix,
    AccessMode,
    Action,
    Actor,
    AuthorizationStatus,
    Decision,
    Document,
    DocumentStatus,
    Dossier,
    DossierStatus,
    EmergencyConsents,
    MatrixError,
    Policy,
    ReasonCode,
    decide,
    default_matrix,
    load_matrix,
    one_month_after,
)

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
DEPOSITED = NOW - timedelta(days=3)
A_YEAR_LATER = NOW + timedelta(days=365)  # past any invisibility date

GP = Actor.professional("810000000001", "10", specialty="SM54", structure_id="3100000001")
OTHER_DOCTOR = Actor.professional("810000000002", "10", structure_id="3100000002")
OPTICIAN = Actor.professional("810000000028", "28", structure_id="5123456789")
ORTHOPTIST = Actor.professional("810000000092", "92")
PHARMACIST = Actor.professional("810000000021", "21")
NURSE = Actor.professional("810000000060", "60")
SAMU = Actor.regulation_centre("810000000015")
PATIENT = Actor.patient("1840599123456")
PARENT = Actor.legal_representative("PARENT-1")

AUTHORISED = Dossier(authorization=AuthorizationStatus.VALID)
UNAUTHORISED = Dossier()
BLOCKED = Dossier(authorization=AuthorizationStatus.FORBIDDEN)
BTG = AccessMode.break_the_glass("Patient inconscient, suspicion d'AVC")


def report(author: Actor = GP, **changes: Any) -> Document:
    """A consultation report by ``author`` (class 10)."""
    fields: dict[str, Any] = {
        "class_code": "10",
        "type_code": "11488-4",
        "author_id": author.id_nat,
        "deposited_at": DEPOSITED,
    }
    fields.update(changes)
    return Document(**fields)


def eye_test(author: Actor = OPTICIAN, **changes: Any) -> Document:
    return report(author, **{"type_code": "34810-2", **changes})


def patient_note(**changes: Any) -> Document:
    return report(PATIENT, class_code="90", type_code="51855-5", **changes)


def check(
    actor: Actor,
    dossier: Dossier,
    action: Action,
    document: Document | None = None,
    mode: AccessMode = NORMAL,
    now: datetime = NOW,
    policy: Policy | None = None,
) -> Decision:
    return decide(actor, dossier, action, mode, document, now=now, policy=policy)


def refused_because(decision: Decision, reason: ReasonCode) -> bool:
    return not decision.allowed and decision.reason is reason


# --- the packaged matrix -------------------------------------------------------------------


def test_packaged_matrix_has_the_national_classes_and_professions() -> None:
    matrix = default_matrix()
    assert {"10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95"} <= set(matrix.classes)
    assert {"10", "21", "26", "28", "40", "50", "60", "70", "91", "92", "96"} <= set(
        matrix.professions
    )
    assert matrix.classes["90"].label_fr.startswith("Autres documents déposés par le patient")
    assert matrix.metadata["status"] == "unverified"


def test_packaged_matrix_lets_opticians_and_orthoptists_deposit_their_reports() -> None:
    matrix = default_matrix()
    assert matrix.can_write("28", "34810-2")  # eye test / refraction
    assert matrix.can_write("92", "BILAN-ORTHOPTIQUE")
    assert not matrix.can_write("28", "57833-6")  # an optician does not prescribe drugs


def test_packaged_matrix_doctors_read_everything_but_residence_certificates() -> None:
    matrix = default_matrix()
    unreadable = [code for code in matrix.document_types if not matrix.can_read("10", code)]
    assert unreadable == ["CERTIFICAT-RESIDENCE"]


def test_packaged_matrix_restricts_pharmacists_and_nurses() -> None:
    matrix = default_matrix()
    for profession in ("21", "60", "40"):
        assert not all(matrix.can_read(profession, code) for code in matrix.document_types)
    assert matrix.can_read("21", "57833-6") and not matrix.can_read("21", "11488-4")


def test_matrix_is_read_only() -> None:
    matrix = default_matrix()
    with pytest.raises(TypeError):
        matrix.grid["28"]["57833-6"] = "RW"  # type: ignore[index]


# --- replacing the matrix ----------------------------------------------------------------


def packaged_data() -> dict[str, Any]:
    path = Path(__file__).parents[2] / "policies" / "matrix.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_a_valid_replacement_file_is_loaded_and_changes_decisions(tmp_path: Path) -> None:
    data = packaged_data()
    data["grid"]["28"]["34810-2"] = "R"
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    policy = Policy(matrix=load_matrix(path))

    assert check(OPTICIAN, UNAUTHORISED, Action.DEPOSIT, eye_test()).allowed
    refused = check(OPTICIAN, UNAUTHORISED, Action.DEPOSIT, eye_test(), policy=policy)
    assert refused_because(refused, ReasonCode.PROFESSION_MAY_NOT_WRITE)


def _drop_cell(data: dict[str, Any]) -> None:
    del data["grid"]["21"]["60593-1"]


def _drop_row(data: dict[str, Any]) -> None:
    del data["grid"]["92"]


def _bad_cell(data: dict[str, Any]) -> None:
    data["grid"]["10"]["11488-4"] = "yes"


def _unknown_class(data: dict[str, Any]) -> None:
    data["document_types"]["11488-4"]["class"] = "77"


def _undeclared_profession(data: dict[str, Any]) -> None:
    data["grid"]["81"] = dict(data["grid"]["10"])


def _undeclared_type(data: dict[str, Any]) -> None:
    data["grid"]["10"]["00000-0"] = "R"


def _professional_writes_patient_class(data: dict[str, Any]) -> None:
    data["grid"]["10"]["DOC-PATIENT"] = "RW"


def _wrong_format(data: dict[str, Any]) -> None:
    data["format"] = "something-else"


def _wrong_version(data: dict[str, Any]) -> None:
    data["version"] = 2


def _long_class_code(data: dict[str, Any]) -> None:
    data["classes"]["100"] = {"label_fr": "x", "label_en": "x"}


def _missing_label(data: dict[str, Any]) -> None:
    del data["professions"]["28"]["label_fr"]


def _no_types(data: dict[str, Any]) -> None:
    data["document_types"] = {}


def _types_as_list(data: dict[str, Any]) -> None:
    data["document_types"] = list(data["document_types"])


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (_drop_cell, "$.grid['21']['60593-1']"),
        (_drop_row, "$.grid['92']"),
        (_bad_cell, "$.grid['10']['11488-4']"),
        (_unknown_class, "$.document_types['11488-4'].class"),
        (_undeclared_profession, "$.grid['81']"),
        (_undeclared_type, "$.grid['10']['00000-0']"),
        (_professional_writes_patient_class, "$.grid['10']['DOC-PATIENT']"),
        (_wrong_format, "$.format"),
        (_wrong_version, "$.version"),
        (_long_class_code, "$.classes['100']"),
        (_missing_label, "$.professions['28'].label_fr"),
        (_no_types, "$.document_types"),
        (_types_as_list, "$.document_types"),
    ],
)
def test_a_malformed_replacement_is_refused_with_its_place(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], where: str
) -> None:
    data = packaged_data()
    mutate(data)
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(MatrixError) as raised:
        load_matrix(path)

    assert raised.value.where == where
    assert str(path) in str(raised.value) and where in str(raised.value)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"matrix"', b"\xff\xfe{"])
def test_text_that_is_not_a_matrix_object_is_refused(text: str | bytes) -> None:
    with pytest.raises(MatrixError):
        AccessMatrix.from_json(text)


def test_a_missing_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="cannot be read"):
        load_matrix(tmp_path / "absent.json")


# --- blocked professionals ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "document", "mode"),
    [
        (Action.READ, report(OTHER_DOCTOR), NORMAL),
        (Action.READ, report(OTHER_DOCTOR), BTG),
        (Action.READ, report(GP), NORMAL),  # even their own document
        (Action.DEPOSIT, report(GP), NORMAL),  # even a deposit, which needs no authorisation
        (Action.DELETE, report(GP), NORMAL),
        (Action.GRANT, None, NORMAL),
    ],
)
def test_a_blocked_professional_gets_nothing(
    action: Action, document: Document | None, mode: AccessMode
) -> None:
    dossier = Dossier(authorization=AuthorizationStatus.FORBIDDEN, is_medecin_traitant=True)
    decision = check(GP, dossier, action, document, mode)
    assert refused_because(decision, ReasonCode.BLOCKED)


def test_a_blocked_regulation_centre_gets_nothing() -> None:
    decision = check(SAMU, BLOCKED, Action.READ, report(), AccessMode.centre_15())
    assert refused_because(decision, ReasonCode.BLOCKED)


# --- consultation grounds ----------------------------------------------------------------


def test_reading_needs_an_authorisation() -> None:
    assert refused_because(
        check(OTHER_DOCTOR, UNAUTHORISED, Action.READ, report()), ReasonCode.NO_AUTHORISATION
    )
    expired = Dossier(authorization=AuthorizationStatus.EXPIRED)
    assert refused_because(
        check(OTHER_DOCTOR, expired, Action.READ, report()), ReasonCode.AUTHORISATION_EXPIRED
    )
    allowed = check(OTHER_DOCTOR, AUTHORISED, Action.READ, report())
    assert allowed.allowed and allowed.reason is ReasonCode.ALLOWED_AUTHORISED
    assert not allowed.notify_patient


def test_care_team_is_deemed_authorised_once_initial_consent_was_given() -> None:
    team = Dossier(authorised_structures=frozenset({OTHER_DOCTOR.structure_id or ""}))
    decision = check(OTHER_DOCTOR, team, Action.READ, report())
    assert decision.allowed and decision.reason is ReasonCode.ALLOWED_CARE_TEAM

    no_consent = Dossier(authorised_structures=team.authorised_structures, initial_consent=False)
    assert refused_because(
        check(OTHER_DOCTOR, no_consent, Action.READ, report()), ReasonCode.NO_AUTHORISATION
    )
    assert check(GP, team, Action.READ, report(OTHER_DOCTOR)).refused  # other structure


def test_medecin_traitant_reads_without_a_separate_authorisation() -> None:
    decision = check(OTHER_DOCTOR, Dossier(is_medecin_traitant=True), Action.READ, report())
    assert decision.allowed and decision.reason is ReasonCode.ALLOWED_MEDECIN_TRAITANT


def test_the_author_reads_their_own_document() -> None:
    decision = check(OPTICIAN, UNAUTHORISED, Action.READ, eye_test())
    assert decision.allowed and decision.reason is ReasonCode.ALLOWED_AUTHOR


def test_profession_matrix_applies_to_reads() -> None:
    assert refused_because(
        check(PHARMACIST, AUTHORISED, Action.READ, report()), ReasonCode.PROFESSION_MAY_NOT_READ
    )
    certificate = report(OTHER_DOCTOR, class_code="52", type_code="CERTIFICAT-RESIDENCE")
    assert refused_because(
        check(GP, AUTHORISED, Action.READ, certificate), ReasonCode.PROFESSION_MAY_NOT_READ
    )
    assert check(OPTICIAN, AUTHORISED, Action.READ, report(ORTHOPTIST, type_code="34807-8")).allowed


def test_unknown_profession_and_unknown_type_are_refused() -> None:
    stranger = Actor.professional("810000000099", "99")
    assert refused_because(
        check(stranger, AUTHORISED, Action.READ, report()), ReasonCode.UNKNOWN_PROFESSION
    )
    odd = report(OTHER_DOCTOR, type_code="00000-0")
    assert refused_because(
        check(GP, AUTHORISED, Action.READ, odd), ReasonCode.UNKNOWN_DOCUMENT_TYPE
    )


# --- masked documents --------------------------------------------------------------------


def test_a_masked_document_is_hidden_from_authorised_professionals() -> None:
    masked = report(OTHER_DOCTOR, masked=True)
    assert refused_because(check(GP, AUTHORISED, Action.READ, masked), ReasonCode.MASKED)
    assert refused_because(check(GP, AUTHORISED, Action.SEARCH, masked), ReasonCode.MASKED)


def test_a_masked_document_is_shown_to_its_author_and_the_medecin_traitant() -> None:
    masked = report(OTHER_DOCTOR, masked=True)
    assert check(OTHER_DOCTOR, UNAUTHORISED, Action.READ, masked).allowed
    assert check(GP, Dossier(is_medecin_traitant=True), Action.READ, masked).allowed


def test_emergency_access_sees_masked_documents_only_if_the_patient_allowed_it() -> None:
    masked = report(OTHER_DOCTOR, masked=True)
    allowing = Dossier(consents=EmergencyConsents(emergency_sees_masked=True))
    refusing = Dossier(consents=EmergencyConsents(emergency_sees_masked=False))
    samu = AccessMode.centre_15()

    assert check(GP, allowing, Action.READ, masked, BTG).allowed
    assert check(SAMU, allowing, Action.READ, masked, samu).allowed
    assert refused_because(check(GP, refusing, Action.READ, masked, BTG), ReasonCode.MASKED)
    assert refused_because(check(SAMU, refusing, Action.READ, masked, samu), ReasonCode.MASKED)


# --- documents invisible to the patient --------------------------------------------------


def test_an_invisible_document_is_hidden_from_the_patient_until_one_month_after_deposit() -> None:
    hidden = report(invisible_to_patient=True, deposited_at=datetime(2025, 1, 31, 12, tzinfo=UTC))
    assert hidden.patient_visible_from == datetime(2025, 2, 28, 12, tzinfo=UTC)

    before = datetime(2025, 2, 28, 11, 59, tzinfo=UTC)
    for action in (Action.READ, Action.SEARCH, Action.MASK, Action.ARCHIVE):
        decision = check(PATIENT, UNAUTHORISED, action, hidden, now=before)
        assert refused_because(decision, ReasonCode.INVISIBLE_TO_PATIENT), action
    assert check(
        PATIENT, UNAUTHORISED, Action.READ, hidden, now=hidden.patient_visible_from
    ).allowed


def test_an_explicit_visibility_date_overrides_the_default_month() -> None:
    hidden = report(invisible_to_patient=True, visible_to_patient_from=NOW + timedelta(days=1))
    assert check(PATIENT, UNAUTHORISED, Action.READ, hidden).refused
    assert check(PATIENT, UNAUTHORISED, Action.READ, hidden, now=NOW + timedelta(days=1)).allowed


def test_invisibility_to_the_patient_does_not_hide_from_professionals() -> None:
    hidden = report(OTHER_DOCTOR, invisible_to_patient=True)
    assert check(GP, AUTHORISED, Action.READ, hidden).allowed


def test_one_month_after_handles_month_ends_and_year_end() -> None:
    assert one_month_after(datetime(2024, 1, 31, tzinfo=UTC)) == datetime(2024, 2, 29, tzinfo=UTC)
    assert one_month_after(datetime(2024, 12, 15, tzinfo=UTC)) == datetime(2025, 1, 15, tzinfo=UTC)
    assert one_month_after(datetime(2024, 3, 31, tzinfo=UTC)) == datetime(2024, 4, 30, tzinfo=UTC)


def test_a_legal_representative_does_not_see_documents_hidden_from_representatives() -> None:
    secret = report(invisible_to_legal_representatives=True)
    assert refused_because(
        check(PARENT, UNAUTHORISED, Action.READ, secret),
        ReasonCode.INVISIBLE_TO_LEGAL_REPRESENTATIVES,
    )
    assert check(PATIENT, UNAUTHORISED, Action.READ, secret).allowed
    assert check(PARENT, UNAUTHORISED, Action.READ, report()).allowed


def test_a_document_is_not_both_masked_and_invisible_unless_the_host_allows_it() -> None:
    both = report(masked=True, invisible_to_patient=True)
    assert refused_because(
        check(GP, UNAUTHORISED, Action.DEPOSIT, both), ReasonCode.MASKED_AND_INVISIBLE
    )
    lenient = Policy(allow_masked_and_invisible=True)
    assert check(GP, UNAUTHORISED, Action.DEPOSIT, both, policy=lenient).allowed
    assert refused_because(
        check(
            PATIENT,
            UNAUTHORISED,
            Action.MASK,
            report(invisible_to_patient=True),
            now=A_YEAR_LATER,
        ),
        ReasonCode.MASKED_AND_INVISIBLE,
    )


# --- deposits ----------------------------------------------------------------------------


def test_depositing_needs_no_authorisation_and_informs_the_patient() -> None:
    decision = check(OPTICIAN, UNAUTHORISED, Action.DEPOSIT, eye_test())
    assert decision.allowed and decision.reason is ReasonCode.ALLOWED_DEPOSIT
    assert decision.notify_patient
    orthoptic = report(ORTHOPTIST, type_code="BILAN-ORTHOPTIQUE")
    assert check(ORTHOPTIST, UNAUTHORISED, Action.DEPOSIT, orthoptic).allowed


def test_an_invisible_deposit_is_not_announced_to_the_patient() -> None:
    decision = check(GP, UNAUTHORISED, Action.DEPOSIT, report(invisible_to_patient=True))
    assert decision.allowed and not decision.notify_patient


@pytest.mark.parametrize(
    ("actor", "document", "reason"),
    [
        (OPTICIAN, eye_test(OTHER_DOCTOR), ReasonCode.AUTHOR_MISMATCH),
        (OPTICIAN, eye_test(class_code="11"), ReasonCode.CLASS_TYPE_MISMATCH),
        (OPTICIAN, eye_test(type_code="00000-0"), ReasonCode.UNKNOWN_DOCUMENT_TYPE),
        (
            OPTICIAN,
            report(OPTICIAN, class_code="42", type_code="57833-6"),
            ReasonCode.PROFESSION_MAY_NOT_WRITE,
        ),
        (
            GP,
            report(GP, class_code="90", type_code="DOC-PATIENT"),
            ReasonCode.PATIENT_CLASS_RESERVED,
        ),
        (GP, report(status=DocumentStatus.DEPRECATED), ReasonCode.DOCUMENT_STATE),
        (PATIENT, report(PATIENT), ReasonCode.PATIENT_CLASS_ONLY),
        (PATIENT, patient_note(invisible_to_patient=True), ReasonCode.DOCUMENT_STATE),
    ],
)
def test_a_bad_deposit_is_refused(actor: Actor, document: Document, reason: ReasonCode) -> None:
    assert refused_because(check(actor, UNAUTHORISED, Action.DEPOSIT, document), reason)


def test_the_patient_deposits_documents_of_class_90() -> None:
    decision = check(PATIENT, UNAUTHORISED, Action.DEPOSIT, patient_note())
    assert decision.allowed
    assert patient_note().deposited_by_patient and not report().deposited_by_patient


# --- deletion, replacement and other changes ---------------------------------------------


def test_only_the_author_deletes() -> None:
    assert check(GP, UNAUTHORISED, Action.DELETE, report(GP)).allowed
    assert refused_because(
        check(OTHER_DOCTOR, AUTHORISED, Action.DELETE, report(GP)), ReasonCode.ONLY_AUTHOR
    )
    assert refused_because(
        check(GP, Dossier(is_medecin_traitant=True), Action.DELETE, report(OTHER_DOCTOR)),
        ReasonCode.ONLY_AUTHOR,
    )
    assert refused_because(
        check(PATIENT, UNAUTHORISED, Action.DELETE, report(GP)), ReasonCode.ONLY_AUTHOR
    )
    assert check(PATIENT, UNAUTHORISED, Action.DELETE, patient_note()).allowed


def test_a_deleted_document_is_gone_for_everyone() -> None:
    gone = report(GP, status=DocumentStatus.DELETED)
    for actor in (GP, PATIENT):
        for action in (Action.READ, Action.SEARCH, Action.DELETE, Action.MASK):
            decision = check(actor, AUTHORISED, action, gone)
            assert refused_because(decision, ReasonCode.DOCUMENT_DELETED), (actor, action)


def test_replaced_and_archived_documents_leave_default_searches_but_stay_readable() -> None:
    for status in (DocumentStatus.DEPRECATED, DocumentStatus.ARCHIVED):
        old = report(OTHER_DOCTOR, status=status)
        assert refused_because(
            check(GP, AUTHORISED, Action.SEARCH, old), ReasonCode.NOT_IN_DEFAULT_SEARCH
        )
        assert check(GP, AUTHORISED, Action.READ, old).allowed
        assert check(PATIENT, UNAUTHORISED, Action.READ, old).allowed


def test_only_the_author_replaces_a_current_document() -> None:
    assert check(GP, UNAUTHORISED, Action.REPLACE, report(GP)).allowed
    assert refused_because(
        check(OTHER_DOCTOR, AUTHORISED, Action.REPLACE, report(GP)), ReasonCode.ONLY_AUTHOR
    )
    old = report(GP, status=DocumentStatus.DEPRECATED)
    assert refused_because(check(GP, UNAUTHORISED, Action.REPLACE, old), ReasonCode.DOCUMENT_STATE)


def test_archiving_follows_the_document_state() -> None:
    assert check(GP, UNAUTHORISED, Action.ARCHIVE, report(GP)).allowed
    archived = report(GP, status=DocumentStatus.ARCHIVED)
    assert refused_because(
        check(GP, UNAUTHORISED, Action.ARCHIVE, archived), ReasonCode.DOCUMENT_STATE
    )
    assert check(PATIENT, UNAUTHORISED, Action.UNARCHIVE, archived).allowed
    assert refused_because(
        check(PATIENT, UNAUTHORISED, Action.UNARCHIVE, report()), ReasonCode.DOCUMENT_STATE
    )


def test_the_patient_masks_any_document_a_professional_only_their_own() -> None:
    assert check(PATIENT, UNAUTHORISED, Action.MASK, report(OTHER_DOCTOR)).allowed
    assert check(OTHER_DOCTOR, UNAUTHORISED, Action.UNMASK, report(OTHER_DOCTOR)).allowed
    assert refused_because(
        check(GP, AUTHORISED, Action.MASK, report(OTHER_DOCTOR)), ReasonCode.ONLY_AUTHOR
    )


def test_invisibility_is_lifted_by_the_author_or_the_medecin_traitant() -> None:
    hidden = report(OTHER_DOCTOR, invisible_to_patient=True)
    assert check(OTHER_DOCTOR, UNAUTHORISED, Action.SET_VISIBLE, hidden).allowed
    assert check(GP, Dossier(is_medecin_traitant=True), Action.SET_VISIBLE, hidden).allowed
    assert refused_because(
        check(GP, AUTHORISED, Action.SET_VISIBLE, hidden), ReasonCode.ONLY_AUTHOR
    )
    assert refused_because(
        check(PATIENT, UNAUTHORISED, Action.SET_VISIBLE, hidden, now=A_YEAR_LATER),
        ReasonCode.PROFESSIONAL_ONLY,
    )


def test_a_document_action_without_its_document_is_refused() -> None:
    assert refused_because(check(GP, AUTHORISED, Action.READ), ReasonCode.DOCUMENT_REQUIRED)


# --- dossier status ----------------------------------------------------------------------


def test_a_closed_dossier_accepts_no_deposit_and_serves_nothing_until_reactivated() -> None:
    closed = Dossier(status=DossierStatus.CLOSED, authorization=AuthorizationStatus.VALID)
    for actor, action, document in [
        (OPTICIAN, Action.DEPOSIT, eye_test()),
        (PATIENT, Action.DEPOSIT, patient_note()),
        (GP, Action.READ, report(OTHER_DOCTOR)),
        (PATIENT, Action.READ, report()),
        (PATIENT, Action.READ_ACCESS_LOG, None),
    ]:
        decision = check(actor, closed, action, document)
        assert refused_because(decision, ReasonCode.DOSSIER_CLOSED), (actor, action)
    assert check(PATIENT, closed, Action.REACTIVATE).allowed
    assert check(PHARMACIST, closed, Action.REACTIVATE).allowed


def test_an_absent_dossier_can_only_be_created() -> None:
    absent = Dossier(status=DossierStatus.ABSENT)
    assert check(PHARMACIST, absent, Action.CREATE).allowed
    assert check(PATIENT, absent, Action.CREATE).allowed
    assert refused_because(check(GP, absent, Action.DEPOSIT, report()), ReasonCode.DOSSIER_ABSENT)
    assert refused_because(
        check(PHARMACIST, UNAUTHORISED, Action.CREATE), ReasonCode.DOSSIER_EXISTS
    )
    assert refused_because(
        check(PATIENT, UNAUTHORISED, Action.REACTIVATE), ReasonCode.DOSSIER_NOT_CLOSED
    )


# --- emergency modes ---------------------------------------------------------------------


def test_break_the_glass_needs_a_justification() -> None:
    for justification in (None, "", "   "):
        mode = AccessMode.break_the_glass(justification)
        assert refused_because(
            check(GP, UNAUTHORISED, Action.READ, report(OTHER_DOCTOR), mode),
            ReasonCode.JUSTIFICATION_REQUIRED,
        )


def test_break_the_glass_skips_the_authorisation_and_notifies_the_patient() -> None:
    decision = check(GP, UNAUTHORISED, Action.READ, report(OTHER_DOCTOR), BTG)
    assert decision.allowed and decision.reason is ReasonCode.ALLOWED_BREAK_THE_GLASS
    assert decision.notify_patient


def test_break_the_glass_is_refused_if_the_patient_opted_out() -> None:
    opted_out = Dossier(consents=EmergencyConsents(break_the_glass=False))
    assert refused_because(
        check(GP, opted_out, Action.READ, report(OTHER_DOCTOR), BTG),
        ReasonCode.BREAK_THE_GLASS_OPTED_OUT,
    )


def test_break_the_glass_still_applies_the_profession_matrix() -> None:
    assert refused_because(
        check(PHARMACIST, UNAUTHORISED, Action.READ, report(), BTG),
        ReasonCode.PROFESSION_MAY_NOT_READ,
    )


def test_centre_15_skips_the_authorisation_unless_the_patient_opted_out() -> None:
    samu = AccessMode.centre_15()
    decision = check(SAMU, UNAUTHORISED, Action.READ, report(), samu)
    assert decision.allowed and decision.reason is ReasonCode.ALLOWED_CENTRE_15
    assert decision.notify_patient
    opted_out = Dossier(consents=EmergencyConsents(regulation_centre=False))
    assert refused_because(
        check(SAMU, opted_out, Action.READ, report(), samu), ReasonCode.CENTRE_15_OPTED_OUT
    )


@pytest.mark.parametrize(
    ("actor", "mode"),
    [
        (GP, AccessMode.centre_15()),
        (SAMU, NORMAL),
        (SAMU, BTG),
        (PATIENT, BTG),
        (PARENT, AccessMode.centre_15()),
    ],
)
def test_each_mode_belongs_to_its_kind_of_user(actor: Actor, mode: AccessMode) -> None:
    decision = check(actor, AUTHORISED, Action.READ, report(), mode)
    assert refused_because(decision, ReasonCode.MODE_NOT_FOR_ACTOR)


def test_emergency_modes_are_for_consulting_and_depositing_only() -> None:
    assert refused_because(
        check(GP, UNAUTHORISED, Action.DELETE, report(GP), BTG),
        ReasonCode.ACTION_NOT_IN_EMERGENCY_MODE,
    )
    assert check(GP, UNAUTHORISED, Action.DEPOSIT, report(GP), BTG).allowed


# --- authorisations and the access log ---------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        Action.GRANT,
        Action.REVOKE,
        Action.BLOCK,
        Action.UNBLOCK,
        Action.READ_ACCESS_LOG,
        Action.CLOSE,
    ],
)
def test_the_patient_manages_authorisations_reads_the_log_and_closes(action: Action) -> None:
    assert check(PATIENT, UNAUTHORISED, action).allowed
    assert check(PARENT, UNAUTHORISED, action).allowed


@pytest.mark.parametrize(
    "action", [Action.REVOKE, Action.BLOCK, Action.UNBLOCK, Action.READ_ACCESS_LOG, Action.CLOSE]
)
def test_a_professional_may_not_do_the_patients_part(action: Action) -> None:
    assert refused_because(check(GP, AUTHORISED, action), ReasonCode.PATIENT_ONLY)


def test_a_professional_records_the_closure_the_patient_asks_for_and_the_patient_is_told(
) -> None:
    decision = check(GP, UNAUTHORISED, Action.CLOSE_AT_PATIENT_REQUEST)
    assert decision.allowed and decision.notify_patient
    assert decision.reason is ReasonCode.ALLOWED_CLOSURE_AT_PATIENT_REQUEST
    assert refused_because(check(GP, BLOCKED, Action.CLOSE_AT_PATIENT_REQUEST),
                           ReasonCode.BLOCKED)
    assert refused_because(check(SAMU, UNAUTHORISED, Action.CLOSE_AT_PATIENT_REQUEST,
                                 mode=AccessMode.centre_15()),
                           ReasonCode.ACTION_NOT_IN_EMERGENCY_MODE)
    closed = Dossier(status=DossierStatus.CLOSED)
    assert refused_because(check(GP, closed, Action.CLOSE_AT_PATIENT_REQUEST),
                           ReasonCode.DOSSIER_CLOSED)


def test_a_professional_records_the_authorisation_the_patient_gives() -> None:
    decision = check(GP, UNAUTHORISED, Action.GRANT)
    assert decision.allowed and decision.reason is ReasonCode.ALLOWED_SELF_AUTHORISATION


# --- inputs and reason codes -------------------------------------------------------------


def test_naive_datetimes_are_refused_as_programming_errors() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(GP, AUTHORISED, Action.READ, report(), now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        report(deposited_at=datetime(2025, 1, 1))


def test_reason_codes_are_stable_strings_with_both_languages() -> None:
    codes = [reason.code for reason in ReasonCode]
    assert len(codes) == len(set(codes))
    for reason in ReasonCode:
        assert reason.code == reason.name and str(reason) == reason.code
        assert reason.fr.strip() and reason.en.strip() and reason.fr != reason.en
        assert reason.message == f"{reason.fr} / {reason.en}"
