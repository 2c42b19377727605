"""A new version of a CDA document (replacement, RPLC): what its header must say of the version
it replaces, one rule the agent and the host both apply (docs/cda.md "Replacing a document").

CDA R2 and the CI-SIS header: the new version has its own ``id``, names the replaced one in
``relatedDocument[@typeCode='RPLC']/parentDocument/id``, keeps the ``setId`` of the versions
before it and numbers itself above them (``versionNumber``). On the DMP the replaced version is
the DocumentReference the deposit's ``relatesTo`` (replaces) names: its uniqueId is its CDA
``id`` (`wire.cda.metadata.unique_id`); a document deposited before the agent made CDA (a bare
PDF) has no header, only that uniqueId.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import CdaError
from .header import CdaHeader
from .metadata import unique_id


@dataclass(frozen=True)
class Replaced:
    """The version being replaced: its uniqueId on the DMP and, when it is a CDA, its header."""

    unique_id: str
    header: CdaHeader | None = None

    @property
    def document_id(self) -> str:
        """What the new version's parentDocument/id names: the CDA's id, else the root its
        uniqueId carries (``urn:oid:<root>``, ``urn:uuid:<root>``)."""
        if self.header is not None:
            return self.header.document_id
        for prefix in ("urn:oid:", "urn:uuid:"):
            if self.unique_id.lower().startswith(prefix):
                return self.unique_id[len(prefix):]
        return self.unique_id

    @property
    def set_id(self) -> str:
        """The set the new version joins: the replaced CDA's setId; a document without a
        header started the set, so its id names it."""
        if self.header is not None and self.header.set_id:
            return self.header.set_id
        return self.document_id

    @property
    def next_version(self) -> int:
        version = self.header.version if self.header is not None else None
        return (version or 1) + 1


def _same(parent: str, replaced: Replaced) -> bool:
    if parent == replaced.document_id:
        return True
    wire_id = unique_id(parent)
    return wire_id is not None and wire_id.lower() == replaced.unique_id.lower()


def check(new: CdaHeader, replaced: Replaced) -> None:
    """Refuse ``new`` unless its header declares that it replaces ``replaced`` (CdaError):
    "cda-replacement-parent" (no relatedDocument RPLC, or it names another document),
    "cda-replacement-set-id" (not the replaced CDA's setId), "cda-replacement-version" (a
    versionNumber not above the replaced CDA's)."""
    if new.replaces is None or not _same(new.replaces, replaced):
        named = f"names {new.replaces[:80]}" if new.replaces else "is absent"
        raise CdaError("cda-replacement-parent",
                       "Le document CDA doit désigner la version remplacée "
                       f"(relatedDocument typeCode=RPLC, parentDocument/id "
                       f"{replaced.document_id[:80]}) / a replacement CDA must name the "
                       f"replaced version: its relatedDocument/parentDocument/id {named}")
    old = replaced.header
    if old is None:
        return
    if old.set_id and new.set_id != old.set_id:
        raise CdaError("cda-replacement-set-id",
                       f"setId {(new.set_id or '')[:80]!r} : la version remplacée a le setId "
                       f"{old.set_id[:80]!r} / a new version keeps the setId of the version "
                       "it replaces")
    if old.version is not None and (new.version is None or new.version <= old.version):
        raise CdaError("cda-replacement-version",
                       f"versionNumber {new.version} : la version remplacée est la "
                       f"{old.version} / a new version's versionNumber must be above the "
                       "replaced one's")



def check_new(new: CdaHeader, current: Callable[[str], bool]) -> None:
    """Refuse ``new`` deposited as a new document when its header says it replaces a current
    document of the same DMP (``current(uniqueId)``): stored as new, that version would stay
    current beside it, two versions of one report listed as two documents
    ("cda-replacement-undeclared"). A version the DMP does not hold (sent elsewhere before,
    or named by an id the wire cannot carry) leaves nothing to supersede: accepted."""
    if new.replaces is None:
        return
    wire_id = unique_id(new.replaces)
    if wire_id is not None and current(wire_id):
        raise CdaError("cda-replacement-undeclared",
                       f"Le document CDA remplace {new.replaces[:80]} (relatedDocument "
                       "typeCode=RPLC), présent dans ce DMP : déposez-le comme nouvelle "
                       "version de ce document / the CDA replaces a document of this DMP: "
                       "deposit it as its new version (relatesTo replaces)")
