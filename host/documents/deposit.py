"""ITI-65 deposit: a transaction Bundle in, a transaction-response Bundle out, all or nothing.

Order: read the body (size-capped) and parse it; check every document's metadata, author,
declared size, content and hashes, then the submission-set signature; answer a replay of an
already stored submission set (same uniqueIds, same hashes) without storing anything twice;
ask the guard about every document (DEPOSIT, and REPLACE on a replaced one); only then write
the inline bodies to the blob store and every row in one transaction; trace the decisions
(access log, new-document notification) once the rows are committed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from policies import AccessMode, Action, Document, DocumentStatus, one_month_after
from wire.mhd import (
    DocumentEntry,
    ProvideBundle,
    ProvidedDocument,
    ResponseEntry,
    WireError,
    parse_provide_bundle,
    stored_document_reference,
    transaction_response_json,
)

from .. import audit
from ..actors import SessionActor
from ..blobs import BlobStore, StoredBlob, too_large
from ..bodies import read_body
from ..errors import HostError, bad_request, wire_refusal
from ..store.schema import documents, submission_sets
from . import cda_check, decisions, records, signing, validate
from .uploads import Uploads

# Inline bodies are base64 (4/3) inside JSON; anything larger goes through POST /fhir/Binary.
BUNDLE_OVERHEAD = 4 * 1024 * 1024


def conflict(code: str, message: str) -> HostError:
    return HostError(409, code, message, issue_type="duplicate")


@dataclasses.dataclass
class Content:
    """A document's body: inline bytes (not yet stored) or an upload already in the store."""

    data: bytes | None
    blob: StoredBlob


def _contents(bundle: ProvideBundle, uploads: Uploads, actor: SessionActor,
              limit: int, now: dt.datetime) -> list[Content]:
    out = []
    for provided in bundle.documents:
        entry = provided.entry
        validate.check_declared_size(entry, limit)
        if provided.data is not None:
            if len(provided.data) > limit:
                raise too_large(limit)
            sha1, sha256 = validate.digests(provided.data)
            blob = StoredBlob(sha256, sha1, len(provided.data))
            out.append(Content(provided.data, blob))
        else:
            assert provided.binary_id is not None
            upload = uploads.claim(provided.binary_id, actor.id_nat_ps, now)
            if upload.content_type != entry.mime_type:
                raise bad_request("content-type-mismatch",
                                  f"Binary/{provided.binary_id}: contentType differs from the "
                                  "DocumentReference's")
            out.append(Content(None, upload.blob))
        validate.check_content(entry, out[-1].blob.size, out[-1].blob.sha1_b64)
    return out


def _received(bundle: ProvideBundle, contents: list[Content]) -> list[DocumentEntry]:
    """The entries with the SHA-256 of the bytes received: the only one the host stores or
    signs against (a declared one, from agents before PDSm 3.1.1, is never trusted)."""
    return [dataclasses.replace(provided.entry, sha256=content.blob.sha256)
            for provided, content in zip(bundle.documents, contents, strict=True)]


def _signature_bytes(bundle: ProvideBundle, contents: list[Content], blobs: BlobStore) -> bytes:
    found = [i for i, provided in enumerate(bundle.documents) if provided.entry.is_signature]
    if len(found) != 1:
        raise bad_request("signature-missing",
                          "Le lot doit contenir un document de signature (E1762) / the "
                          "submission set needs exactly one signature document (E1762)")
    content = contents[found[0]]
    if content.data is not None:
        return content.data  # signing.check_signature caps its size
    if content.blob.size > signing.MAX_SIGNATURE_BYTES:
        raise signing.too_large()  # never read back a body that would be refused anyway
    return b"".join(blobs.read(content.blob.sha256))


def _replay(connection: Any, bundle: ProvideBundle, entries: list[DocumentEntry], ins: str
            ) -> list[ResponseEntry] | None:
    """The stored answer when this submission set is already stored; None when it is new."""
    stored_set = connection.execute(select(submission_sets).where(
        submission_sets.c.ins == ins,
        submission_sets.c.unique_id == bundle.submission_set.unique_id,
    )).one_or_none()
    rows = {}
    for provided in bundle.documents:
        row = records.by_unique_id(connection, ins, provided.entry.unique_id)
        if row is not None:
            rows[provided.entry.unique_id] = row
    if stored_set is None:
        if rows:
            raise conflict("duplicate-unique-id",
                           f"Document déjà déposé dans un autre lot / a document with uniqueId "
                           f"{next(iter(rows))} is already stored in another submission set")
        return None
    same = len(rows) == len(bundle.documents) and all(
        row.submission_set_id == stored_set.id and row.sha256 == entry.sha256
        for entry in entries
        for row in [rows[entry.unique_id]]
    )
    if not same:
        raise conflict("submission-set-conflict",
                       "Ce lot de soumission existe déjà avec un autre contenu / this submission "
                       "set uniqueId is already stored with other documents")
    return _answer(bundle, stored_set.id, [rows[p.entry.unique_id] for p in bundle.documents],
                   "200 OK")


def _answer(bundle: ProvideBundle, set_id: str, rows: list[Any], status: str
            ) -> list[ResponseEntry]:
    # Patient, Practitioner... entries are not created here (made contained): 200, no location.
    by_index: dict[int, ResponseEntry] = {
        index: ResponseEntry("200 OK", None) for index in range(len(bundle.kinds))}
    by_index[bundle.submission_set_index] = ResponseEntry(status, f"List/{set_id}")
    for provided, row in zip(bundle.documents, rows, strict=True):
        doc_id, version = row.id, row.version_id
        assert provided.reference_index is not None
        by_index[provided.reference_index] = ResponseEntry(
            status, f"DocumentReference/{doc_id}/_history/{version}", records.etag(version))
        if provided.binary_index is not None:
            by_index[provided.binary_index] = ResponseEntry(status, f"Binary/{doc_id}")
    return [by_index[i] for i in range(len(bundle.kinds))]


def _new_document(entry: DocumentEntry, actor: SessionActor, now: dt.datetime) -> Document:
    return Document(
        class_code=entry.class_code, type_code=entry.type_code,
        author_id=entry.author.id_nat_ps, deposited_at=now, status=DocumentStatus.CURRENT,
        masked=entry.masked, invisible_to_patient=entry.invisible_to_patient,
        invisible_to_legal_representatives=entry.invisible_to_legal_representatives,
    )


async def deposit(request: Request, state: Any, actor: SessionActor, mode: AccessMode
                  ) -> tuple[int, dict[str, Any]]:
    """Run one ITI-65 deposit; (HTTP status, transaction-response Bundle)."""
    settings, guard, blobs = state.settings, state.guard, state.blobs
    limit = settings.max_document_size
    # Bounded while read; JSON nested too deeply is a 400 through the app's RecursionError
    # handler (a bundle can be tens of MiB: no second pass over it).
    body = await read_body(request, limit * 4 // 3 + BUNDLE_OVERHEAD)
    try:
        bundle = parse_provide_bundle(body)
    except WireError as error:
        raise wire_refusal(error) from None
    now = state.clock()
    ins = bundle.submission_set.patient.ins
    audit.names_patient(ins, actor, mode, Action.DEPOSIT.value)
    validate.check_author(bundle.submission_set.author, actor)
    validate.check_identity_qualified(bundle.submission_set)
    for provided in bundle.documents:
        validate.check_metadata(provided.entry, guard.policy.matrix)
        validate.check_author(provided.entry.author, actor)
        validate.check_pdsm_required(provided.resource, provided.entry.unique_id)
        validate.check_stored_text(provided.resource,
                                   f"la fiche / the DocumentReference {provided.entry.unique_id}")
    validate.check_stored_text(bundle.submission_set_resource,
                               "le lot de soumission / the submission set")
    contents = _contents(bundle, Uploads(blobs), actor, limit, now)
    entries = _received(bundle, contents)
    signing.check_signature(
        _signature_bytes(bundle, contents, blobs), bundle.submission_set,
        [(p.entry.unique_id, c.blob.sha256)
         for p, c in zip(bundle.documents, contents, strict=True) if not p.entry.is_signature],
        settings.pki_dir, actor, now)
    # After the signature (cheap refusals first): the schematrons are the costly check.
    headers = await cda_check.check_deposit(bundle.documents, contents, blobs, limit)

    doc_ids = [records.new_id(ins) for _ in entries]
    pending: list[decisions.Pending] = []
    replaced: dict[int, Any] = {}
    with guard.engine.connect() as connection:
        for entry, doc_id in zip(entries, doc_ids, strict=True):
            decision = decisions.check(
                guard, connection, ins=ins, actor=actor, action=Action.DEPOSIT, mode=mode,
                document=_new_document(entry, actor, now), document_id=doc_id)
            pending.append(decisions.Pending(Action.DEPOSIT, decision, doc_id,
                                             notify=not entry.is_signature))
        replay = _replay(connection, bundle, entries, ins)
        for index, entry in enumerate(entries):
            if replay is not None:
                continue
            if entry.replaces is None and entry.replaces_id is None:
                cda_check.check_new(entry, headers[index],
                                    lambda unique_id: _is_current(connection, ins, unique_id))
                continue
            old = _replaced(connection, ins, entry)
            if old is None:
                raise HostError(404, "replaced-document-not-found",
                                f"Document à remplacer inconnu / the replaced document "
                                f"{entry.replaces or entry.replaces_id} is not in this DMP",
                                issue_type="not-found")
            if any(other.id == old.id for other in replaced.values()):
                raise bad_request("invalid-replacement", "one document replaced twice")
            decision = decisions.check(
                guard, connection, ins=ins, actor=actor, action=Action.REPLACE, mode=mode,
                document=records.policy_document(old), document_id=old.id)
            pending.append(decisions.Pending(Action.REPLACE, decision, old.id))
            replaced[index] = old
    if replay is not None:
        audit.settle()  # a replay stores nothing: the first deposit was traced
        return 200, transaction_response_json(
            replay, note="Lot déjà enregistré, rien n'a été stocké de nouveau / this submission "
                         "set was already stored: nothing was stored again")
    # A new version's CDA names the one it replaces (RPLC, setId): known only now.
    await cda_check.check_replacements(entries, headers, replaced, blobs, limit)

    for content in contents:
        if content.data is not None:
            blobs.put_bytes(content.data, limit)
    set_id = records.new_id(ins)
    rows = []
    try:
        with guard.engine.begin() as connection:
            signature = next(c for p, c in zip(bundle.documents, contents, strict=True)
                             if p.entry.is_signature)
            connection.execute(insert(submission_sets).values(
                ins=ins, id=set_id, unique_id=bundle.submission_set.unique_id,
                source_id=bundle.submission_set.source_id, submitted_at=now,
                author_id=actor.id_nat_ps, structure_id=actor.structure_id,
                signature_sha256=signature.blob.sha256,
                resource=_stored_list(bundle, set_id, doc_ids),
            ))
            for index, (provided, entry, content, doc_id) in enumerate(
                zip(bundle.documents, entries, contents, doc_ids, strict=True)
            ):
                old = replaced.get(index)
                rows.append(_insert_document(connection, provided, entry, content, doc_id,
                                             set_id, old.id if old is not None else None, now))
                if old is not None:
                    _supersede(connection, old, now)
    except IntegrityError:
        raise conflict("concurrent-deposit",
                       "Dépôt concurrent du même document / the same document was deposited "
                       "concurrently: retry to get the stored answer") from None
    decisions.trace_all(guard, ins, actor, mode, pending)
    return 200, transaction_response_json(_answer(bundle, set_id, rows, "201 Created"))


@dataclasses.dataclass(frozen=True)
class _Row:
    id: str
    version_id: int


def _is_current(connection: Any, ins: str, unique_id: str) -> bool:
    row = records.by_unique_id(connection, ins, unique_id)
    return row is not None and row.status == "current"


def _replaced(connection: Any, ins: str, entry: DocumentEntry) -> Any:
    """The row relatesTo names: by uniqueId (target.identifier) or by id (target.reference
    DocumentReference/<id>), in this patient's dossier only."""
    if entry.replaces is not None:
        return records.by_unique_id(connection, ins, entry.replaces)
    assert entry.replaces_id is not None
    if records.ins_of(entry.replaces_id) != ins:
        return None
    try:
        return records.load(connection, entry.replaces_id)
    except HostError:
        return None


def _stored_list(bundle: ProvideBundle, set_id: str, doc_ids: list[str]) -> dict[str, Any]:
    """The submission set as sent (sanitised, references made contained) with the host's id
    and its entries pointing at the stored DocumentReferences."""
    resource = {**bundle.submission_set_resource, "id": set_id}
    sent = resource.get("entry") or []
    resource["entry"] = [
        {**(sent[i] if i < len(sent) and isinstance(sent[i], dict) else {}),
         "item": {"reference": f"DocumentReference/{doc_id}"}}
        for i, doc_id in enumerate(doc_ids)]
    return resource


def _insert_document(connection: Any, provided: ProvidedDocument, received: DocumentEntry,
                     content: Content, doc_id: str, set_id: str, replaces_id: str | None,
                     now: dt.datetime) -> _Row:
    entry = dataclasses.replace(received, id=doc_id, version_id=1, status="current",
                                date=received.date or now, content_url=f"Binary/{doc_id}",
                                size=content.blob.size, sha1_b64=content.blob.sha1_b64)
    connection.execute(insert(documents).values(
        ins=entry.patient.ins, id=doc_id, unique_id=entry.unique_id, version_id=1,
        status="current", class_code=entry.class_code, type_code=entry.type_code,
        format_code=entry.format_code, mime_type=entry.mime_type, title=entry.title,
        language=entry.language, confidentiality=entry.confidentiality,
        masked=entry.masked, invisible_to_patient=entry.invisible_to_patient,
        visible_to_patient_from=one_month_after(now) if entry.invisible_to_patient else None,
        invisible_to_legal_reps=entry.invisible_to_legal_representatives, archived=False,
        facility_type=entry.facility_type, practice_setting=entry.practice_setting,
        author_id=entry.author.id_nat_ps, author_profession=entry.author.profession,
        author_specialty=entry.author.specialty, author_structure=entry.author.structure_id,
        created_at=entry.creation_time, service_start=entry.service_start,
        service_stop=entry.service_stop, deposited_at=now, size=content.blob.size,
        sha256=content.blob.sha256, sha1_b64=content.blob.sha1_b64,
        submission_set_id=set_id, replaces_id=replaces_id,
        resource=stored_document_reference(provided.resource, entry, last_updated=now),
    ))
    return _Row(doc_id, 1)


def _supersede(connection: Any, old: Any, now: dt.datetime) -> None:
    """The replaced document leaves the current set, in the deposit's transaction."""
    entry = dataclasses.replace(records.stored_entry(old), status="superseded",
                                version_id=old.version_id + 1)
    result = connection.execute(update(documents).where(
        documents.c.ins == old.ins, documents.c.id == old.id,
        documents.c.version_id == old.version_id, documents.c.status == "current",
    ).values(status="superseded", version_id=old.version_id + 1,
             resource=stored_document_reference(old.resource, entry, last_updated=now)))
    if result.rowcount != 1:
        raise conflict("concurrent-change",
                       "Le document remplacé a changé entre-temps / the replaced document "
                       "changed meanwhile: retry")
