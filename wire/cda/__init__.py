"""CDA R2 documents as the French CI-SIS defines them: the contract both the agent and the
host read (docs/cda.md).

- `read(data)`: parse safely (`safe_xml`: no DTD, no entity, no network, size-capped) and read
  the header (`header.CdaHeader`, its volet).
- `deposit_metadata(header)`: the XDS / MHD metadata a deposit derives from the header.
- `build_level_1(...)`: a CDA R2 level 1 document (a PDF/A in a ``nonXMLBody``).
- `validate(document)`: the volet's CI-SIS schematrons (SaxonC), refusing with the failing
  assertion and its XPath.
- `cisis_state()`: whether the CI-SIS files are installed and what the checks do without
  them (`DMP_CDA_CISIS`: "required", the default, refuses every CDA with
  "cisis-data-missing"; "optional" skips the schema and schematrons, logged, said by the
  doctor and the host's start: the test harness and the sandbox choose it when the files are
  absent, never production by default).

Every refusal is a `CdaError` (a `wire.fhir.WireError`) with a stable code.
"""

from __future__ import annotations

import logging
import os
import threading
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
    "CISIS_MODE_VARIABLE",
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
    "cisis_state",
    "deposit_metadata",
    "looks_like_cda",
    "preload",
    "read",
    "validate",
    "volet_of",
]


log = logging.getLogger("wire.cda")

# Where the deployment says what the CDA checks do when the CI-SIS files are absent.
CISIS_MODE_VARIABLE = "DMP_CDA_CISIS"
REQUIRED, OPTIONAL = "required", "optional"
# What `validate` skips in the optional mode without the files (the rest always runs: the
# safe parse, the header, the patient, the metadata and format checks).
SKIPPED_WITHOUT_CISIS = ("cda-xsd", "cda-schematron")
_warned = threading.Event()


@dataclass(frozen=True)
class CisisState:
    """The CI-SIS files and the mode: what a doctor check and a server's start say."""

    mode: str  # "required" or "optional"
    installed: bool
    missing: tuple[str, ...]

    @property
    def skipping(self) -> bool:
        """True when the schema and schematron checks are skipped (optional, files absent)."""
        return self.mode == OPTIONAL and not self.installed

    def describe(self) -> str:
        if self.installed:
            return f"CI-SIS files installed ({schematron.data_dir()}): full CDA checks"
        if self.skipping:
            return (f"CI-SIS files absent, {CISIS_MODE_VARIABLE}=optional: the CDA schema and "
                    "CI-SIS schematron checks are SKIPPED (safe parsing, header, patient and "
                    "metadata checks still run); install them with dmp-cisis-data")
        return (f"CI-SIS files absent ({', '.join(self.missing)[:200]}): every CDA is refused "
                "(cisis-data-missing); install them with dmp-cisis-data")


def cisis_mode() -> str:
    value = os.environ.get(CISIS_MODE_VARIABLE, REQUIRED).strip().lower() or REQUIRED
    if value not in (REQUIRED, OPTIONAL):
        log.error("%s=%r: expected %s or %s; %s applies", CISIS_MODE_VARIABLE, value,
                  REQUIRED, OPTIONAL, REQUIRED)
        return REQUIRED
    return value


def cisis_state() -> CisisState:
    """What the CDA checks will do in this process (`CisisState`)."""
    needed = (xsd.SCHEMA, *schematron.PIPELINE_FILES,
              *dict.fromkeys(name for volet in volets.VOLETS.values()
                             for name in volet.schematrons))
    missing = tuple(name for name in needed if not schematron.available(name))
    return CisisState(cisis_mode(), not missing, missing)


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


_preloaded = threading.Event()


def preload() -> None:
    """Compile every volet's schematrons in a background thread (`schematron.preload`),
    once a process; nothing when the CI-SIS files are absent."""
    if _preloaded.is_set() or not cisis_state().installed:
        return
    _preloaded.set()
    names = tuple(dict.fromkeys(name for volet in volets.VOLETS.values()
                                for name in volet.schematrons))
    schematron.preload(names)


def validate(document: CdaDocument) -> tuple[str, ...]:
    """The CDA R2 schema, then the volet's CI-SIS schematrons; `CdaError` "cda-xsd" or
    "cda-schematron" with the first fault (``rule``, ``location``), "cisis-data-missing"
    when the files are absent. In the optional mode without the files, nothing is checked
    here and the skipped checks are returned (and logged once a process): never a silent
    downgrade."""
    state = cisis_state()
    if state.skipping:
        if not _warned.is_set():
            _warned.set()
            log.warning("%s", state.describe())
        return SKIPPED_WITHOUT_CISIS
    xsd.check(document.root)
    schematron.check(document.root, document.volet.schematrons)
    return ()
