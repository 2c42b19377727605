"""A CDA document checked on arrival, as the agent checked it before sending (wire.cda):
a deposit whose content is XML must be a CI-SIS CDA R2 document that

- parses safely (no DTD, no entity, no network: XML bombs are refused with their own code),
- names in its header the patient the DocumentReference names (INS and its OID),
- declares the type and the format code its header and volet give (ClinicalDocument/code,
  through `wire.cda.metadata.dmp_type`; ASS_A11 / ASS_A12: a level 1 PDF is
  urn:ihe:iti:xds-sd:pdf:2008, a VSM urn:asip:ci-sis:vsm:2012...),
- is deposited under its own id: the DocumentEntry's uniqueId is ClinicalDocument/id
  (urn:oid:<root>; an id with an extension has no such form and is not compared),
- passes the CDA R2 schema and its volet's CI-SIS schematrons (skipped, logged, when the
  deployment says ``DMP_CDA_CISIS=optional`` and the CI-SIS files are absent),
- and, deposited as a new version (``relatesTo`` replaces), names the replaced document in
  ``relatedDocument[@typeCode='RPLC']/parentDocument/id``, keeps its setId and numbers itself
  above it (`wire.cda.replacement`; `check_replacements`, once the replaced row is known).

Format code and MIME type agree the other way too: a document that is not XML may not
declare a format only a CDA carries (a VSM's, a lab report's): `validate.check_metadata`
refuses it ("format-mime-mismatch") before the content is read.

Each refusal is a 400 OperationOutcome whose code is the CDA check's (docs/cda.md); a failed
schematron assertion's XPath is its ``issue.location``. The submission set's signature
document (also XML) is not a CDA and is left to `signing`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool

from wire import cda
from wire.cda import replacement
from wire.cda.errors import CdaError
from wire.cda.replacement import Replaced
from wire.mhd import DocumentEntry

from ..errors import HostError, bad_request

log = logging.getLogger(__name__)
XML_MIME_TYPES = frozenset({"text/xml", "application/xml"})


def is_cda_entry(entry: DocumentEntry) -> bool:
    """Whether the host expects a CDA document behind ``entry``: XML content that is not
    the submission set's signature."""
    return (not entry.is_signature
            and entry.mime_type.split(";")[0].strip().lower() in XML_MIME_TYPES)


def _refusal(error: CdaError, entry: DocumentEntry) -> HostError:
    return bad_request(error.code, f"{error.message} (document {entry.unique_id})",
                       location=error.location)


def check(entry: DocumentEntry, data: bytes, max_bytes: int) -> cda.CdaHeader:
    """Refuse ``data`` unless it is the CDA document ``entry`` describes (see the module);
    its header."""
    try:
        document = cda.read(data, max_bytes=max_bytes)
        metadata = cda.deposit_metadata(document.header)
    except CdaError as error:
        raise _refusal(error, entry) from None
    what = f"(document {entry.unique_id})"
    if metadata.patient != entry.patient:
        raise bad_request("cda-patient-mismatch",
                          "Le document CDA concerne un autre patient que la fiche / the CDA "
                          "header names another patient than the DocumentReference's subject "
                          f"{what}")
    if (metadata.type_code, metadata.type_system) != (entry.type_code, entry.type_system):
        raise bad_request("cda-type-mismatch",
                          f"Type du document CDA {metadata.type_code}, fiche {entry.type_code} / "
                          f"the CDA's type (ClinicalDocument/code) differs from the "
                          f"DocumentReference's {what}")
    if metadata.unique_id is not None and metadata.unique_id != entry.unique_id:
        raise bad_request("cda-unique-id-mismatch",
                          f"Identifiant du document CDA {metadata.unique_id}, fiche "
                          f"{entry.unique_id} / the DocumentEntry's uniqueId must be the CDA's "
                          "ClinicalDocument/id")
    if metadata.format_code != entry.format_code:
        raise bad_request("cda-format-mismatch",
                          f"Format du document CDA ({document.volet.name}) : "
                          f"{metadata.format_code}, fiche : {entry.format_code} / the format "
                          f"code does not match the CDA document {what}")
    try:
        cda.validate(document)
    except CdaError as error:
        raise _refusal(error, entry) from None
    return document.header


def start() -> str:
    """At the server's start: say what the CDA checks will do (the CI-SIS files, the mode)
    and compile the schematrons in the background, so that the first CDA deposit is
    checked in milliseconds rather than after a 10-30 s compilation."""
    state = cda.cisis_state()
    (log.warning if not state.installed else log.info)("CDA checks: %s", state.describe())
    if state.installed:
        cda.preload()
    return f"CDA checks: {state.describe()}"


def _bytes_of(content: Any, blobs: Any) -> bytes:
    if content.data is not None:
        return bytes(content.data)
    return b"".join(blobs.read(content.blob.sha256))


async def check_deposit(documents: Iterable[Any], contents: Iterable[Any], blobs: Any,
                        max_bytes: int) -> list[cda.CdaHeader | None]:
    """`check` every CDA of a deposit (``documents``: the bundle's `ProvidedDocument`s,
    ``contents``: their received bodies), in a worker thread: the schematrons take
    milliseconds a document, but their first compilation in a process takes seconds.
    Each document's header (None: not a CDA)."""
    headers: list[cda.CdaHeader | None] = []
    for provided, content in zip(documents, contents, strict=True):
        entry = provided.entry
        headers.append(await run_in_threadpool(check, entry, _bytes_of(content, blobs),
                                               max_bytes) if is_cda_entry(entry) else None)
    return headers


def replaced_version(old: Any, blobs: Any, max_bytes: int) -> Replaced:
    """The stored row ``old`` as the version a new one replaces: its uniqueId and, when its
    content is XML, its CDA header read from the blob (a header that cannot be read, as a
    bare PDF's absent one, leaves the uniqueId alone to be named)."""
    header = None
    if old.mime_type.split(";")[0].strip().lower() in XML_MIME_TYPES:
        try:
            header = cda.read(b"".join(blobs.read(old.sha256)), max_bytes=max_bytes).header
        except (CdaError, OSError) as error:
            log.warning("replaced document %s: no CDA header read (%s)", old.unique_id, error)
    return Replaced(old.unique_id, header)


def _check_replacement(entry: DocumentEntry, header: cda.CdaHeader, old: Any, blobs: Any,
                       max_bytes: int) -> None:
    try:
        replacement.check(header, replaced_version(old, blobs, max_bytes))
    except CdaError as error:
        raise _refusal(error, entry) from None


async def check_replacements(entries: Iterable[DocumentEntry],
                             headers: Iterable[cda.CdaHeader | None], replaced: dict[int, Any],
                             blobs: Any, max_bytes: int) -> None:
    """Each CDA deposited as a new version names the version it replaces (``replaced``: the
    stored rows by the entry's index), in a worker thread (the old body is read)."""
    for index, (entry, header) in enumerate(zip(entries, headers, strict=True)):
        old = replaced.get(index)
        if old is not None and header is not None:
            await run_in_threadpool(_check_replacement, entry, header, old, blobs, max_bytes)


def check_new(entry: DocumentEntry, header: cda.CdaHeader | None,
              current: Callable[[str], bool]) -> None:
    """A CDA deposited as a new document does not say it replaces a current document of
    this DMP (``current(uniqueId)``): "cda-replacement-undeclared" (`wire.cda.replacement`)."""
    if header is None:
        return
    try:
        replacement.check_new(header, current)
    except CdaError as error:
        raise _refusal(error, entry) from None

