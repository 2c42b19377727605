"""The core's state as the views receive it: JSON-ready dictionaries, the same for the local
API (docs/agent-local-api.md), the page and the tray."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

from agent.card_words import quality_text
from agent.core.cards_view import as_json
from agent.core.professional import SessionEndedError

if TYPE_CHECKING:
    from agent.core.professional import ProfessionalSession
    from agent.core.state import PatientState
    from cardreader.inspect import SlotReport
    from wire.mhd import DocumentEntry

__all__ = ["EMPTY_PATIENT", "cards_json", "document_json", "patient_json", "session_json"]

EMPTY_PATIENT: dict[str, Any] = {
    "state": "none", "reader": None, "beneficiaries": [], "patient": None, "dmp": None,
    "documents": [], "accessMode": None, "error": "", "errorCode": "", "errorStatus": None,
    "sheet": False, "fetchedAt": None,
    "stale": "", "lastConsultation": None, "identity": None, "candidates": [],
    "source": None}


def person_json(index: int, person: Any) -> dict[str, Any]:
    return {"index": index, "firstName": person.first_name, "lastName": person.last_name,
            "birthName": person.birth_name, "birthDate": str(person.birth_date),
            "quality": quality_text(person)}


def document_json(entry: DocumentEntry, own_id: str | None = None, new: bool = False
                  ) -> dict[str, Any]:
    from policies.matrix import default_matrix  # the policies: at the first document listed

    kind = default_matrix().document_types.get(entry.type_code)
    return {
        "uniqueId": entry.unique_id, "title": entry.title, "typeCode": entry.type_code,
        "typeLabel": kind.label_fr if kind else entry.type_code,
        "classCode": entry.class_code, "created": entry.creation_time.isoformat(),
        "author": f"{entry.author.first_name or ''} {entry.author.last_name or ''}".strip(),
        "authorId": entry.author.id_nat_ps, "mimeType": entry.mime_type, "size": entry.size,
        "masked": entry.masked, "invisibleToPatient": entry.invisible_to_patient,
        "archived": entry.archived, "ownDocument": own_id is not None
        and entry.author.id_nat_ps == own_id, "patientDocument": entry.class_code == "90",
        "new": new,
    }


def cards_json(slots: dict[str, SlotReport], service_up: bool) -> dict[str, Any]:
    out = []
    for report in slots.values():
        item = as_json(report)
        item["kind"] = item.pop("card")
        item["pinTriesLeft"] = report.pin_tries_left
        out.append(item)
    return {"service": "up" if service_up else "down", "slots": out}


def session_json(session: ProfessionalSession | None, report: SlotReport | None, *,
                 state: str, reader: str | None, tries: int | None,
                 error: str) -> dict[str, Any]:
    out: dict[str, Any] = {"state": state, "reader": reader, "professional": None,
                           "situation": None, "notAfter": None, "pinTriesLeft": tries,
                           "error": error}
    who = session.identity if session is not None else (
        report.cps if report is not None else None)
    if who is not None:
        out["professional"] = {
            "idNatPs": who.id_nat_ps, "firstName": who.first_name,
            "lastName": who.last_name, "profession": who.profession_code,
            "specialty": who.specialty_code, "testCard": who.is_test_card}
    # The card's practice situations (known once read behind the PIN: while choosing, and
    # from then on while the card stays known): the page offers the choice before the PIN.
    if report is not None and report.situations:
        out["situations"] = [
            {"index": i, "structureId": s.structure_id, "name": s.structure_name,
             "mode": s.mode, "role": s.role} for i, s in enumerate(report.situations)]
    if session is not None and session.alive:
        situation = session.situation
        if situation is not None:
            out["situation"] = {"structureId": situation.structure_id,
                                "name": situation.structure_name}
        with contextlib.suppress(SessionEndedError):
            out["notAfter"] = session.not_after.isoformat()
            out["accessModes"] = list(session.access_modes)
    return out


def identity_json(p: PatientState) -> dict[str, Any]:
    """The identity's RNIV status (docs/ins.md): the status, the traits the INS service
    returned (None: provisoire, none returned), the document checked, when, and why a
    qualification was lost."""
    from wire.ins import IDENTITY_DOCUMENTS  # with the first patient, not at start

    document = IDENTITY_DOCUMENTS.get(p.identity_document or "")
    parent = IDENTITY_DOCUMENTS.get(p.identity_parent_document or "")
    return {
        "status": p.identity_status,
        "qualified": p.identity_status == "qualifiée",
        "traits": p.identity.as_json() if p.identity is not None else None,
        "document": None if document is None else {
            "type": document.key, "code": document.code, "label": document.label,
            "parent": None if parent is None else {"type": parent.key, "label": parent.label}},
        "validatedAt": None if p.identity_validated is None else dt.datetime.fromtimestamp(
            p.identity_validated, dt.UTC).isoformat(timespec="seconds"),
        "notice": p.identity_notice,
    }


def patient_json(p: PatientState | None, own_id: str | None) -> dict[str, Any]:
    if p is None:
        return dict(EMPTY_PATIENT)
    ctx = p.context
    return {
        "state": p.state, "reader": p.reader,
        "beneficiaries": [] if p.card is None else [
            person_json(i, b) for i, b in enumerate(p.card.beneficiaries, 1)],
        "source": "card" if p.card is not None else "traits",
        "personIndex": p.person_index,
        "patient": None if ctx is None else {
            "ins": ctx.ins, "insOid": ctx.ins_oid, "firstName": ctx.first_name,
            "birthName": ctx.birth_name, "birthDate": ctx.birth_date},
        "dmp": p.dmp,
        "documents": [document_json(e, own_id, p.is_new(e, own_id)) for e in p.documents],
        "accessMode": None if p.mode is None else {
            "code": p.mode.code.value, "justification": p.mode.justification or ""},
        "error": p.error, "sheet": p.sheet is not None,
        # The refusal's code and status (e.g. centre-15-opted-out, 403): a client of the
        # API says it as the core would (the command line beside a running agent).
        "errorCode": p.failure.code if p.failure is not None else "",
        "errorStatus": p.failure.http_status if p.failure is not None else None,
        "fetchedAt": p.fetched_at.isoformat() if p.fetched_at else None, "stale": p.stale,
        "lastConsultation": p.last_visit.isoformat() if p.last_visit else None,
        "identity": identity_json(p),
        # Several identities answered: the user compares their traits and chooses one.
        "candidates": [{"index": i, **c.as_json()} for i, c in enumerate(p.candidates, 1)],
    }
