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

from policies import AccessMode, Action
from wire import codes
from wire.mhd import (
    WireError,
    apply_json_patch,
    is_archived,
    parse_json_patch,
    parse_security_labels,
)

from .. import audit
from ..actors import SessionActor
from ..errors import HostError, bad_request
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
        rest["extension"] = [e for e in extensions
                             if not (isinstance(e, dict) and e.get("url") == codes.IS_ARCHIVED_URL)]
    return rest


def find(connection: Any, identifier: str, patient_ins: str | None) -> Any:
    system, sep, value = identifier.partition("|")
    if not sep or not value:
        raise bad_request("invalid-identifier", "identifier=<system>|<value>")
    if system == codes.DOCUMENT_ID_SYSTEM:
        return records.load(connection, value)
    if system == codes.RFC3986:
        if patient_ins is None:
            raise bad_request("patient-required",
                              "Nommez le patient (patient ou patient.identifier) avec un uniqueId "
                              "/ name the patient with a uniqueId identifier")
        row = records.by_unique_id(connection, patient_ins, value)
        if row is None:
            raise HostError(404, "document-not-found", "Document inconnu / no such document",
                            issue_type="not-found")
        return row
    raise bad_request("invalid-identifier", f"identifier system {codes.RFC3986} (uniqueId) or "
                      f"{codes.DOCUMENT_ID_SYSTEM}")


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
        raise bad_request(error.code, error.message) from None
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
        raise bad_request(error.code, f"Patch mal formé / malformed patch: {error.message}"
                          ) from None
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
            raise bad_request(error.code, f"Patch inapplicable / the patch does not apply: "
                              f"{error.message}") from None
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
