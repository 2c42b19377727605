"""The deposit path the agent really uses: queue a signed deposit whose content stays a file,
send it later by streaming the content (docs/agent-deposit.md).

`queue_deposit` first checks that the disk has room for it (else "disque plein : 5 Mo
nécessaires, 2 Mo libres", before anything is written), copies the document into the outbox
directory (``outbox/contents/``, sealed with the outbox key) while hashing it in 1 MiB
chunks, has the card sign the manifest (uniqueId, SHA-256, size: not the content's URL),
gives the copy its final name with a label naming its item (fsync then rename), and adds to
the outbox the signed ITI-65 bundle in which the document's ``attachment.url`` is a
placeholder, ``Binary/pending-upload``. The card is needed only here.

`as_cda` comes first, for every deposit a professional makes (command line, local API,
page: `WorkPart.deposit`): a PDF becomes a PDF/A in a CDA R2 level 1 document, a text file a
level 1 document with a text body, both with the header built from the card, the practice
situation and the patient's INS traits; a structured CDA (text/xml) is checked as it is
(the session's patient, its volet's schematrons). What is queued is that CDA, with the
metadata read from its header (docs/cda.md).

`make_sender` gives the outbox's ``send``: a document up to `INLINE_MAX` (2 MiB) goes inside
the bundle as a Binary entry (one round trip); a larger one is streamed first with ``POST
/fhir/Binary`` (decrypted chunk by chunk, each authenticated before it leaves: constant
memory) and the answered ``Binary/<id>`` takes the placeholder's place; then the bundle is
posted and the answer mapped to a `SendResult`. It needs only a host session, never the
card; with no session (card removed, not yet re-inserted) the item is retried later.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.client.session import outcome_of
from agent.errors import AgentError
from agent.i18n import _
from agent.outbox import (
    CONTENT_KEY,
    CONTENT_SUFFIX,
    CONTENTS,
    Cause,
    Description,
    Item,
    ItemState,
    Outbox,
    OutboxDamagedError,
    OutboxError,
    Progress,
    SendResult,
)
from agent.outbox.recovery import describe
from agent.outbox.sealed import SealedWriter, sealed_size
from agent.outbox.storage import storage_error

# httpx, the DMP client, the bundle builder and wire load when a deposit is queued or sent,
# not at start: `dmp-agent run` only needs `make_sender` and `recover_contents` (issue 11).
if TYPE_CHECKING:
    import httpx

    from agent.client.dmp import PatientContext
    from agent.client.provide import CareSetting, DepositMetadata, Signer
    from agent.core.cda_documents import CdaDeposit
    from wire.cda.replacement import Replaced
    from wire.ins import IdentityReliability, InsIdentity
    from wire.mhd import Author, Patient

__all__ = [
    "CONTENTS",
    "PLACEHOLDER",
    "DepositSender",
    "HttpFactory",
    "as_cda",
    "make_sender",
    "queue_deposit",
    "recover_contents",
]

log = logging.getLogger(__name__)

PLACEHOLDER = "pending-upload"  # the Binary id in the queued bundle, replaced at send time
KIND = "deposit-by-reference"  # metadata["kind"] of the items queued here
CHUNK = 1 << 20
# Documents up to this size travel inside the bundle (one round trip, base64 in memory:
# about 2.8 MB); larger ones are streamed first with POST /fhir/Binary (two round trips).
INLINE_MAX = 2 << 20
BUNDLE_ROOM = 256 << 10  # the signed bundle beside its document: certificate, signature...
# Host answers that say "try again", not "this document is wrong": a deposit of the same
# document still running on the host (a killed agent's request), or an upload that vanished.
_TRANSIENT_CODES = {"concurrent-deposit", "unknown-binary"}

HttpFactory = Callable[[], "httpx.Client | AbstractContextManager[httpx.Client]"]


def contents_dir(outbox: Outbox) -> Path:
    return outbox.contents


def _size_of(source: bytes | os.PathLike[str] | str) -> int:
    return len(source) if isinstance(source, bytes) else os.stat(source).st_size


def _copy_in(out: SealedWriter, source: bytes | os.PathLike[str] | str,
             directory: Path) -> str:
    """Copy the document into ``out`` by chunks (a 50 MB document is never held whole);
    the SHA-1 (base64) of the plaintext. OSError reading the source is raised as is (the
    user's file); writing, as `OutboxStorageError` (this workstation's disk)."""
    sha1 = hashlib.sha1()
    with contextlib.ExitStack() as stack:
        chunks: Iterator[bytes]
        if isinstance(source, bytes):
            chunks = (source[i:i + CHUNK] for i in range(0, len(source), CHUNK))
        else:
            reader = stack.enter_context(open(source, "rb"))
            chunks = iter(lambda: reader.read(CHUNK), b"")
        for chunk in chunks:
            try:
                out.write(chunk)
            except OSError as error:
                raise storage_error(error, directory) from None
            sha1.update(chunk)
    return base64.b64encode(sha1.digest()).decode()


def queue_deposit(
    outbox: Outbox,
    patient: PatientContext,
    content: bytes | os.PathLike[str] | str,
    metadata: DepositMetadata,
    *,
    author: Author,
    setting: CareSetting,
    signer: Signer,
    identity: tuple[InsIdentity, IdentityReliability] | None = None,
) -> int:
    """Sign a deposit with the card (``signer``: an open `ProfessionalSession`) and make
    it durable in ``outbox``; returns the item id. ``content`` is the document's bytes or a
    path to it; a file is copied (fsync + rename) so the user may delete the original once
    this returns. ``identity``: the patient's identity as the INS service returned it and
    its RNIV status, carried by the submission set (docs/ins.md). Raises `OutboxFullError`
    when the disk has no room for it (nothing written), `AgentError` (unknown type),
    `OutboxError`, OSError on the source, or whatever ``signer`` raises
    (SessionEndedError: the card was removed, nothing was queued).
    """
    from agent.client.provide import Digest, signed_bundle  # at the first deposit, not at start

    outbox.ensure_room(sealed_size(_size_of(content)) + BUNDLE_ROOM)
    contents = contents_dir(outbox)
    try:
        writer = outbox.files.create(contents, CONTENT_SUFFIX)
    except OSError as error:
        raise storage_error(error, contents) from None
    with writer as out:
        sha1_b64 = _copy_in(out, content, contents)
        # The card signs uniqueId, SHA-256 and size: the URL rewritten at send time is not
        # covered, so the signature stays valid whatever Binary id the host answers.
        unique_id, bundle = signed_bundle(
            patient, PLACEHOLDER, Digest(out.size, out.sha256, sha1_b64), metadata,
            author=author, setting=setting, signer=signer, identity=identity)
        # Named only now, with its item: until then it is a temporary file, removed if
        # anything fails (or by the next opening, after a crash).
        label = Description("content", unique_id, patient.ins, out.size, out.sha256,
                            time.time())
        try:
            path = out.install(label.to_bytes())
        except OSError as error:
            raise storage_error(error, contents) from None
    try:
        row = {"kind": KIND, CONTENT_KEY: path.name, "content_size": out.size,
               "content_sha256": out.sha256, "mime_type": metadata.mime_type,
               "title": metadata.title, "type_code": metadata.type_code,
               # whose deposit it is: the views list a professional's own deposits only
               "author": author.id_nat_ps,
               # for which establishment: the DMP's pace is per structure (outbox throttle)
               "structure": author.structure_id}
        return outbox.add(unique_id, patient.ins,
                          json.dumps(bundle, separators=(",", ":")).encode(), row)
    except BaseException:
        # Nothing was queued (add did not return): the copy goes. A crash here instead
        # leaves a copy that no item names, which the next opening puts in quarantine.
        path.unlink(missing_ok=True)
        raise


def read_upload(content: bytes | os.PathLike[str] | str, limit: int) -> bytes:
    """The bytes of a deposit's ``content`` (bytes, or a file read once), at most ``limit``
    ("document-too-large" beyond)."""
    if isinstance(content, bytes):
        data = content
    else:
        with open(content, "rb") as reader:
            data = reader.read(limit + 1)
    if len(data) > limit:
        raise AgentError(_("Document too large ({size} MB at most)").format(
            size=limit // (1024 * 1024)), code="document-too-large", status=413)
    return data


def as_cda(content: bytes | os.PathLike[str] | str, metadata: DepositMetadata, *,
           author: Author, structure_name: str, setting: CareSetting,
           identity: InsIdentity, replaced: Replaced | None = None
           ) -> tuple[CdaDeposit, DepositMetadata]:
    """The CDA document a deposit carries and its metadata read from it (see the module):
    (the checked document, ``metadata`` with its type, title and ``cda`` from the header).
    ``replaced``: the version a replacement supersedes (`cda_documents.replaced_version`):
    a wrapped file's header names it, a structured CDA must (docs/cda.md "Replacing a
    document"). Refused before anything is queued: a PDF that cannot become a PDF/A
    ("pdf-*", "pdfa-*"), a CDA failing a check (its code; ``rule`` and ``location`` for a
    schematron assertion), a CDA about another patient ("cda-patient-mismatch"), a
    structured replacement that does not name the replaced version ("cda-replacement-*")."""
    from dataclasses import replace

    from agent.core import cda_documents, pdfa
    from wire import cda

    if metadata.mime_type in ("text/xml", "application/xml"):
        data = read_upload(content, cda.MAX_XML_BYTES)
        deposit = cda_documents.check_structured(data, _patient_of(identity), replaced)
    else:
        data = read_upload(content, pdfa.MAX_PDF_BYTES)
        header = cda_documents.header_for(
            author=author, structure_name=structure_name, setting=setting, identity=identity,
            type_code=metadata.type_code, title=metadata.title)
        if replaced is not None:
            header = cda_documents.new_version(header, replaced)
        wrap = (cda_documents.wrap_pdf if metadata.mime_type == "application/pdf"
                else cda_documents.wrap_text)
        deposit = wrap(data, header)
    found = deposit.metadata
    return deposit, replace(metadata, type_code=found.type_code, title=found.title,
                            mime_type=found.mime_type, cda=found)


def _patient_of(identity: InsIdentity) -> Patient:
    from wire.mhd import Patient

    return Patient(identity.ins, identity.oid)


def recover_contents(outbox: Outbox) -> int:
    """Account for what a crash left in ``contents/`` (`Outbox.sweep_contents`): temporary
    files and copies of acknowledged items are removed, copies no item names are put in
    quarantine, never deleted. Call it right after opening the outbox, before queueing.
    Returns how many files left ``contents/``."""
    return outbox.sweep_contents()


def _hashing(chunks: Iterator[bytes], digest: Any, item_id: int) -> Iterator[bytes]:
    # Each chunk was authenticated before it gets here: a damaged copy stops the upload
    # (the host discards a body cut short) and fails the item, it is never sent as is.
    try:
        for chunk in chunks:
            digest.update(chunk)
            yield chunk
    except OutboxDamagedError as error:
        raise OutboxDamagedError(f"item {item_id}: document copy {error}") from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isascii() and value.isdigit() else None


class DepositSender:
    """``send(item) -> SendResult`` for the outbox's `Sender` / `OutboxWorker`.

    Pass `on_progress` to the sender (or call it from yours) so that a document's copy is
    removed as soon as its item is done; otherwise it goes at the next send or the next
    `recover_contents`.
    """

    def __init__(self, http_factory: HttpFactory, outbox: Outbox | None = None,
                 current_author: Callable[[], str | None] | None = None) -> None:
        self._factory = http_factory
        self._outbox = outbox
        self._current_author = current_author
        self._acknowledged: list[tuple[int, Path]] = []  # copies to remove once done commits

    def _content_path(self, item: Item) -> Path:
        if item.payload_path is None:
            raise OutboxError(f"item {item.id} was acknowledged")
        # contents/ is the sibling of the outbox's bundles/ directory.
        return item.payload_path.parent.parent / CONTENTS / str(item.metadata[CONTENT_KEY])

    def on_progress(self, progress: Progress) -> None:
        if progress.kind == "done" and progress.item.metadata.get("kind") == KIND:
            directory = (self._outbox.directory if self._outbox is not None else None)
            if directory is not None:
                (directory / CONTENTS / str(progress.item.metadata[CONTENT_KEY])).unlink(
                    missing_ok=True)
            self._acknowledged = [a for a in self._acknowledged if a[0] != progress.item.id]

    def _sweep(self) -> None:
        if self._outbox is None:
            return
        still: list[tuple[int, Path]] = []
        for item_id, path in self._acknowledged:
            try:
                state = self._outbox.get(item_id).state
            except OutboxError:
                continue
            if state is ItemState.DONE:
                path.unlink(missing_ok=True)
            else:
                still.append((item_id, path))
        self._acknowledged = still

    @contextlib.contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        import httpx  # at the first send, not at start

        made = self._factory()
        if isinstance(made, httpx.Client):
            yield made  # not entered: leaving would close the session's client
        else:
            with made as client:
                yield client

    def _someone_else(self, item: Item) -> SendResult | None:
        """An item signed by another professional waits for its author's session: the
        host would refuse it under this one, for good, though it is valid."""
        author = item.metadata.get("author")
        current = self._current_author() if self._current_author is not None else None
        if author and current is not None and current != author:
            return SendResult.retry(_("waits for its author's card"), cause=Cause.NO_SESSION)
        return None

    def __call__(self, item: Item) -> SendResult:
        import httpx  # at the first send, not at start

        from agent.client.dmp import FHIR_JSON

        self._sweep()
        if (waiting := self._someone_else(item)) is not None:
            return waiting
        if item.metadata.get("kind") != KIND:
            return self._send_bundle(item, item.read_payload())
        path = self._content_path(item)
        size = int(item.metadata["content_size"])
        if not path.exists() or item.files is None:
            raise OutboxError(f"item {item.id}: document copy missing")
        found = describe(item.files, path)
        said = found.description
        if said is None:
            raise OutboxDamagedError(f"item {item.id}: document copy {found.problem}")
        if (said.unique_id, said.size, said.sha256) != (
                item.unique_id, size, item.metadata["content_sha256"]):
            raise OutboxDamagedError(f"item {item.id}: document copy damaged (it is not "
                                     "this item's)")
        bundle = json.loads(item.read_payload())
        try:
            with self._client() as http:
                digest = hashlib.sha256()
                inline = size <= INLINE_MAX  # one round trip: the bytes in the bundle
                with contextlib.closing(item.files.read(path)) as chunks:
                    if inline:
                        data = b"".join(_hashing(chunks, digest, item.id))
                    else:
                        response = http.post(
                            "/fhir/Binary", content=_hashing(chunks, digest, item.id),
                            headers={"content-type": str(item.metadata["mime_type"]),
                                     "content-length": str(size)})
                        if response.status_code != 201:
                            return self._classify(response)
                if digest.hexdigest() != item.metadata["content_sha256"]:
                    # Changed on disk since it was signed: the host would refuse it anyway.
                    raise OutboxError(f"item {item.id}: document copy damaged (SHA-256)")
                if inline:
                    _inline(bundle, data, str(item.metadata["mime_type"]))
                else:
                    _point_to(bundle, f"Binary/{response.json()['id']}")
                body = json.dumps(bundle, separators=(",", ":")).encode()
                response = http.post("/fhir", content=body, headers=FHIR_JSON)
                result = self._classify(response)
        except OutboxError:
            raise
        except (httpx.HTTPError, OSError) as error:
            return _unreachable(error)
        except Exception as error:  # no session (card removed): later, with a new one
            return _no_session(error)
        if result.acknowledged:
            self._acknowledged.append((item.id, path))
        return result

    def _send_bundle(self, item: Item, body: bytes) -> SendResult:
        """An item queued with its content inline (the command line did so before it ran the
        core: such items may still wait in an outbox)."""
        import httpx  # at the first send, not at start

        from agent.client.dmp import FHIR_JSON

        try:
            with self._client() as http:
                return self._classify(http.post("/fhir", content=body, headers=FHIR_JSON))
        except httpx.HTTPError as error:
            return _unreachable(error)
        except Exception as error:
            return _no_session(error)

    @staticmethod
    def _classify(response: httpx.Response) -> SendResult:
        from wire.mhd import WireError, parse_transaction_response  # at the first send

        status = response.status_code
        if status == 200:
            try:
                entries = parse_transaction_response(response.content)
            except WireError:
                return SendResult.stored(status=status)
            replayed = any(e.status.startswith("200") for e in entries)
            return SendResult.from_status(status, already_stored=replayed)
        if 200 <= status < 300:
            return SendResult.stored(status=status)
        code, text = outcome_of(response)
        if code in _TRANSIENT_CODES:
            return SendResult.retry(f"{code}: {text}", status, _retry_after(response))
        return SendResult.from_status(status, f"{code}: {text}",
                                      retry_after=_retry_after(response))


def _unreachable(error: BaseException) -> SendResult:
    """No answer, or an answer cut short: the network (the host may have stored it, a resend
    is answered "already stored")."""
    return SendResult.retry(f"{type(error).__name__}: {error}", cause=Cause.NETWORK)


def _no_session(error: BaseException) -> SendResult:
    return SendResult.retry(f"no session: {type(error).__name__}: {error}",
                            cause=Cause.NO_SESSION)


def _point_to(bundle: dict[str, Any], url: str) -> None:
    """Put ``url`` where the queued bundle holds the placeholder."""
    found = 0
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "DocumentReference":
            continue
        for content in resource.get("content", []):
            attachment = content.get("attachment", {})
            if attachment.get("url") == f"Binary/{PLACEHOLDER}":
                attachment["url"] = url
                found += 1
    if found != 1:
        raise OutboxError(f"queued bundle holds {found} placeholders, 1 expected")


def _inline(bundle: dict[str, Any], data: bytes, mime_type: str) -> None:
    """The document's bytes as a Binary entry of the bundle, in place of the placeholder.
    The signature covers uniqueId, SHA-256 and size, not where the bytes travel."""
    url = f"urn:uuid:{uuid.uuid4()}"
    _point_to(bundle, url)
    bundle.setdefault("entry", []).append({
        "fullUrl": url,
        "resource": {"resourceType": "Binary", "contentType": mime_type,
                     "data": base64.b64encode(data).decode("ascii")},
        "request": {"method": "POST", "url": "Binary"},
    })


def make_sender(http_factory: HttpFactory, outbox: Outbox | None = None,
                current_author: Callable[[], str | None] | None = None) -> DepositSender:
    """The outbox's ``send`` for deposits. ``http_factory`` returns the current session's
    client (an `httpx.Client`, or a context manager such as `ProfessionalSession.calls`) or
    raises when there is none; ``outbox`` lets the sender remove sent documents' copies;
    ``current_author`` names the session's professional (idNat_PS), whose items only are
    sent: another's wait for their author's card."""
    return DepositSender(http_factory, outbox, current_author)
