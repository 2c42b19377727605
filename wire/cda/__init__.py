"""CDA R2 documents as the French CI-SIS defines them: the contract both the agent and the
host read (docs/cda.md).

- `read(data)`: parse safely (`safe_xml`: no DTD, no entity, no network, size-capped) and read
  the header (`header.CdaHeader`, its volet).
- `deposit_metadata(header)`: the XDS / MHD metadata a deposit derives from the header.
- `build_level_1(...)`: a CDA R2 level 1 document (a PDF/A in a ``nonXMLBody``).
- `validate(document)`: the volet's CI-SIS schematrons (SaxonC), refusing with the failing
  assertion and its XPath.

Every refusal is a `CdaError` (a `wire.fhir.WireError`) with a stable code.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from . import schematron, volets, xsd
from .errors import CdaError
from .header import BodyKind, CdaHeader, Code, Organization, PatientIdentity, Person, read_header
from .level1 import Level1Header, build_level_1
from .metadata import CDA_MIME_TYPE, CdaMetadata, deposit_metadata
from .safe_xml import MAX_XML_BYTES, parse
from .volets import Volet, volet_of

__all__ = [
    "CDA_MIME_TYPE",
    "MAX_XML_BYTES",
    "BodyKind",
    "CdaDocument",
    "CdaError",
    "CdaHeader",
    "CdaMetadata",
    "Code",
    "Level1Header",
    "Organization",
    "PatientIdentity",
    "Person",
    "Volet",
    "build_level_1",
    "deposit_metadata",
    "looks_like_cda",
    "preload",
    "read",
    "validate",
    "volet_of",
]


@dataclass(frozen=True)
class CdaDocument:
    root: etree._Element
    header: CdaHeader
    volet: Volet


def looks_like_cda(data: bytes) -> bool:
    """Whether ``data`` starts like an XML document whose root is a CDA ClinicalDocument (a
    cheap test, before a full `read`)."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and b"ClinicalDocument" in head


def read(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> CdaDocument:
    """Parse ``data`` safely and read its header and volet; `CdaError` otherwise."""
    root = parse(data, max_bytes=max_bytes)
    header = read_header(root)
    return CdaDocument(root, header, volet_of(header))


def preload() -> None:
    """Compile every volet's schematrons in a background thread (`schematron.preload`)."""
    names = tuple(dict.fromkeys(name for volet in volets.VOLETS.values()
                                for name in volet.schematrons))
    schematron.preload(names)


def validate(document: CdaDocument) -> None:
    """The CDA R2 schema, then the volet's CI-SIS schematrons; `CdaError` "cda-xsd" or
    "cda-schematron" with the first fault (``rule``, ``location``)."""
    xsd.check(document.root)
    schematron.check(document.root, document.volet.schematrons)
