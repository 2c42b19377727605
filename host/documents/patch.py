"""Metadata changes: conditional PATCH of a DocumentReference with a JSON Patch (PDSm).

The caller must first be allowed to READ the document: a patch that changes nothing is
answered (and traced) as a read, and a failing ``test`` op is no oracle for someone who may not
see the document. Only ``status``, ``securityLabel`` and the PDSm isArchived extension may
change (anything else: 405). The patched resource is compared with the stored one and the
differences become rule actions: MASQUE_PS added/removed = MASK/UNMASK, INVISIBLE_PATIENT
added/removed = SET_INVISIBLE/SET_VISIBLE, isArchived true/false = ARCHIVE/UNARCHIVE, status
entered-in-error = DELETE (logical). Every action is decided by the guard before anything is
written; the change is one new version (meta.versionId, `versions.write_version`) written in
one statement that also checks the version it started from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from policies import AccessMode, Action
from wire import codes
from wire.mhd import (
    WireError,
    apply_json_patch,
    is_archived,
    is_archived_extension,
    parse_json_patch,
    parse_security_labels,
)

from .. import audit
from ..actors import SessionActor
from ..errors import HostError, bad_request, wire_refusal
from ..store.schema import documents
from . import decisions, records, versions

MODIFIABLE = ("status", "securityLabel")


def not_modifiable(what: str) -> HostError:
    return HostError(405, "not-modifiable",
                     f"Seuls status, securityLabel et l'extension isArchived sont modifiables / "
                     f"only status, securityLabel and isArchived may change ({what})",
                     issue_type="not-supported")


def _rest(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without what may change (and without meta, which the host sets)."""
    rest = {k: v for k, v in resource.items() if k not in (*MODIFIABLE, "meta")}
    extensions = rest.get("extension")
    if isinstance(extensions, list):
        rest["extension"] = [e for e in extensions if not is_archived_extension(e)]
    return rest


def find(connection: Any, identifier: str, patient_ins: str | None) -> Any:
    """The document ``identifier`` names: ``urn:dmp:host:document-id|<id>`` (the id names its
    patient), ``urn:ietf:rfc:3986|<uniqueId>`` or a bare ``<uniqueId>`` (FHIR token: any
    system). Without a patient, the uniqueId is first looked up alone
    (ix_documents_unique_id) to find its patient, then read by (patient, uniqueId) as
    always; two patients holding it is a 412 (FHIR conditional update: not selective)."""
    system, sep, value = identifier.partition("|")
    if not sep:  # a bare value: a uniqueId is a URN, a document id never is
        system, value = (codes.RFC3986 if identifier.startswith("urn:")
                         else codes.DOCUMENT_ID_SYSTEM), identifier
    if not value:
        raise bad_request("invalid-identifier", "identifier=<system>|<value>")
    if system == codes.DOCUMENT_ID_SYSTEM:
        return records.load(connection, value)
    if system != codes.RFC3986:
        raise bad_request("invalid-identifier", f"identifier system {codes.RFC3986} (uniqueId) "
                          f"or {codes.DOCUMENT_ID_SYSTEM}")
    holders = [patient_ins] if patient_ins is not None else _holders(connection, value)
    if len(holders) > 1:
        raise HostError(412, "identifier-not-selective",
                        "Plusieurs patients ont un document de ce uniqueId : nommez le patient "
                        "(patient ou patient.identifier) / more than one patient holds this "
                        "uniqueId: name the patient", issue_type="multiple-matches")
    row = records.by_unique_id(connection, holders[0], value) if holders else None
    if row is None:
        raise HostError(404, "document-not-found", "Document inconnu / no such document",
                        issue_type="not-found")
    return row


def _holders(connection: Any, unique_id: str) -> list[str]:
    """The patients (at most two: one more than decides) with a document ``unique_id``."""
    return list(connection.execute(select(documents.c.ins).where(
        documents.c.unique_id == unique_id).limit(2)).scalars())


def _actions(old: dict[str, Any], new: dict[str, Any]) -> list[Action]:
    if _rest(old) != _rest(new):
        changed = sorted(k for k in set(old) | set(new)
                         if k not in (*MODIFIABLE, "meta") and old.get(k) != new.get(k))
        raise not_modifiable(", ".join(changed) or "extension")
    if old.get("meta") != new.get("meta"):
        raise not_modifiable("meta")
    try:
        old_level, old_labels = parse_security_labels(old.get("securityLabel"), "securityLabel")
        new_level, new_labels = parse_security_labels(new.get("securityLabel"), "securityLabel")
        was_archived, now_archived = is_archived(old, "old"), is_archived(new, "new")
    except WireError as error:
        raise wire_refusal(error) from None
    if new_level != old_level:
        raise not_modifiable("confidentiality level N/R/V")
    actions: list[Action] = []
    if old.get("status") != new.get("status"):
        if (old.get("status"), new.get("status")) != ("current", "entered-in-error"):
            raise bad_request("invalid-status-change",
                              "Seule la suppression (current -> entered-in-error) est permise / "
                              "only current -> entered-in-error (deletion) is allowed")
        actions.append(Action.DELETE)
    for label, added, removed in (
        (codes.MASQUE_PS, Action.MASK, Action.UNMASK),
        (codes.INVISIBLE_PATIENT, Action.SET_INVISIBLE, Action.SET_VISIBLE),
    ):
        if label in new_labels and label not in old_labels:
            actions.append(added)
        elif label in old_labels and label not in new_labels:
            actions.append(removed)
    if (codes.INVISIBLE_REPRESENTANTS_LEGAUX in old_labels) != (
        codes.INVISIBLE_REPRESENTANTS_LEGAUX in new_labels
    ):
        raise not_modifiable(codes.INVISIBLE_REPRESENTANTS_LEGAUX)
    if now_archived != was_archived:
        actions.append(Action.ARCHIVE if now_archived else Action.UNARCHIVE)
    return actions


def patch(state: Any, actor: SessionActor, mode: AccessMode, *, identifier: str,
          patient_ins: str | None, body: bytes, if_match: str | None) -> dict[str, Any]:
    """Apply the JSON Patch ``body``; the new DocumentReference."""
    guard = state.guard
    if patient_ins is not None:
        audit.names_patient(patient_ins, actor, mode, "update_metadata")
    try:
        ops = parse_json_patch(body)
    except WireError as error:
        raise wire_refusal(error) from None
    with guard.engine.connect() as connection:
        row = guard.load(lambda: find(connection, identifier, patient_ins))
        audit.names_patient(row.ins, actor, mode, "update_metadata", row.id)
        # Nothing is said about a document (not even that a patch would change nothing, or
        # that a `test` op fails) to someone who may not see it.
        decisions.check(guard, connection, ins=row.ins, actor=actor, action=Action.READ,
                        mode=mode, document=records.policy_document(row), document_id=row.id)
        records.check_if_match(if_match, row.version_id)
        try:
            patched = apply_json_patch(row.resource, ops)
        except WireError as error:
            raise wire_refusal(error) from None
        actions = _actions(row.resource, patched)
        if not actions:
            return row.resource  # type: ignore[no-any-return]  # traced as the READ it was
        pending = []
        for action in actions:
            decision = decisions.check(guard, connection, ins=row.ins, actor=actor,
                                       action=action, mode=mode,
                                       document=records.policy_document(row),
                                       document_id=row.id)
            pending.append(decisions.Pending(action, decision, row.id))
    labels = parse_security_labels(patched["securityLabel"], "securityLabel")[1]
    with guard.engine.begin() as connection:
        resource = versions.write_version(
            connection, row, visibility=labels, status=patched["status"],
            archived=is_archived(patched, "DocumentReference"), now=state.clock())
    decisions.trace_all(guard, row.ins, actor, mode, pending)
    return resource
