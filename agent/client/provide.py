"""What a deposit says about its document (`DepositMetadata`) and the signed ITI-65 bundle
built from it (`signed_bundle`): the one deposit path's metadata, whoever deposits.

The card signs uniqueId and SHA-256 (an IHE DSG detached signature, through a `Signer`: the CPS
signature key of an open `ProfessionalSession`), not where the bytes are, so a bundle whose
content is uploaded later keeps a valid signature whatever Binary id the host answers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.errors import AgentError
from agent.i18n import _
from policies import default_matrix
from wire import codes
from wire.ins import IdentityReliability, InsIdentity
from wire.mhd import Author, DocumentEntry, SubmissionSet, build_provide_bundle
from wire.signature import sign_submission

if TYPE_CHECKING:
    from wire.cda import CdaMetadata

__all__ = ["FORMAT_CODES", "SOURCE_ID", "CardSigner", "CareSetting", "DepositMetadata", "Digest",
           "Signer", "signed_bundle"]

SOURCE_ID = "urn:oid:1.2.250.1.999.1.1"  # ours: the agent's source id (no OID assigned yet)

# The document formats a deposit may carry: MIME type → XDS formatCode. A CDA (text/xml)
# has the format its volet or its level 1 body gives (`wire.cda.deposit_metadata`).
FORMAT_CODES = {"application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
                "text/plain": "urn:ihe:iti:xds-sd:text:2008"}
CDA_MIME_TYPES = frozenset({"text/xml", "application/xml"})


@dataclass(frozen=True)
class DepositMetadata:
    """What the professional says of a document they deposit. ``replaces`` names the
    uniqueId of the version it supersedes (RPLC). ``cda``: the metadata read from the CDA
    document deposited (`agent.core.cda_documents`): the DocumentEntry's uniqueId, type,
    format, title, times and care setting then come from its header, one source."""

    type_code: str
    title: str
    mime_type: str = "application/pdf"
    masked: bool = False
    invisible_to_patient: bool = False
    replaces: str | None = None
    cda: CdaMetadata | None = None

    def __post_init__(self) -> None:
        if self.mime_type not in FORMAT_CODES and self.mime_type not in CDA_MIME_TYPES:
            raise AgentError(_("A PDF, text file or CDA document is expected (here {mime})"
                               ).format(mime=self.mime_type), code="bad-format", status=415,
                             usage=True)

    @property
    def format_code(self) -> str:
        if self.cda is not None:
            return self.cda.format_code
        if self.mime_type not in FORMAT_CODES:
            raise AgentError(_("A CDA document is deposited once checked"), code="bad-format",
                             status=415)
        return FORMAT_CODES[self.mime_type]

    @classmethod
    def replacing(cls, old: DocumentEntry, *, title: str = "",
                  mime_type: str | None = None) -> DepositMetadata:
        """A new version of ``old``: its type and visibility, its title unless given."""
        return cls(old.type_code, title.strip() or old.title, mime_type or old.mime_type,
                   masked=old.masked, invisible_to_patient=old.invisible_to_patient,
                   replaces=old.unique_id)


# TRE_A01 practice setting by TRE_R02 activity sector: a hospital's sectors are care in an
# establishment, a regulation structure SAMU/SMUR, a screening centre and the health insurance
# their own; every other sector (a practice, a pharmacy, a centre de santé, a shop) ambulatory.
_SETTING_BY_SECTOR = {
    **dict.fromkeys(("SA01", "SA02", "SA03", "SA04", "SA30", "SA34", "SA36", "SA40"),
                    "ETABLISSEMENT"),
    "SA50": "SAMU_SMUR", "SA54": "DEPISTAGE", "SA24": "AMO",
}


@dataclass(frozen=True)
class CareSetting:
    """Where the document was made: the deposit's ``context.facilityType`` (TRE_R02) and
    ``context.practiceSetting`` (TRE_A01), from the session's practice situation."""

    facility_type: str
    practice_setting: str

    @classmethod
    def of_sector(cls, sector: str | None) -> CareSetting:
        """From the practice situation's activity sector; a card without one (or with a code
        the table lacks) says "Secteur non défini" rather than a guess."""
        if sector is None or sector not in codes.FACILITY_TYPES:
            sector = codes.NO_SECTOR
        return cls(sector, _SETTING_BY_SECTOR.get(sector, "AMBULATOIRE"))


class Signer(Protocol):
    """The card's signature key: `ProfessionalSession` is one."""

    def sign_document(self, data: bytes) -> bytes: ...

    @property
    def signature_certificate_der(self) -> bytes: ...


@dataclass(frozen=True)
class CardSigner:
    """A `Signer` from a signing function and its certificate (tests, benches)."""

    sign: Callable[[bytes], bytes]
    certificate_der: bytes

    def sign_document(self, data: bytes) -> bytes:
        return self.sign(data)

    @property
    def signature_certificate_der(self) -> bytes:
        return self.certificate_der


@dataclass(frozen=True)
class Digest:
    """The content's size and hashes, computed while it was copied."""

    size: int
    sha256: str
    sha1_b64: str


def signed_bundle(patient: Any, content: bytes | str, digest: Digest, metadata: DepositMetadata,
                  *, author: Author, setting: CareSetting, signer: Signer,
                  identity: tuple[InsIdentity, IdentityReliability] | None = None
                  ) -> tuple[str, dict[str, Any]]:
    """The signed ITI-65 bundle of one document for ``patient`` (a `PatientContext`):
    (its uniqueId, the Bundle). ``content`` is the bytes (inline) or an uploaded Binary id;
    ``author`` and ``setting`` come from the session's professional and practice situation.
    ``identity``: the patient's traits from the INS service and the identity's RNIV status,
    carried by the submission set (a contained FR Core Patient; docs/ins.md)."""
    kind = default_matrix().document_types.get(metadata.type_code)
    if kind is None:
        raise AgentError(_("unknown document type: {type}").format(type=metadata.type_code),
                         code="unknown-type", status=400)
    now = dt.datetime.now(dt.UTC)
    header = metadata.cda
    visibility = set()
    if metadata.masked:
        visibility.add(codes.MASQUE_PS)
    if metadata.invisible_to_patient:
        visibility.add(codes.INVISIBLE_PATIENT)
    if header is None:
        entry = DocumentEntry(
            unique_id=f"urn:uuid:{uuid.uuid4()}", patient=patient.patient,
            class_code=kind.class_code, type_code=metadata.type_code, type_system=kind.system,
            format_code=metadata.format_code, mime_type=metadata.mime_type,
            title=metadata.title, author=author, creation_time=now, size=digest.size,
            sha1_b64=digest.sha1_b64, sha256=digest.sha256, visibility=frozenset(visibility),
            facility_type=setting.facility_type, practice_setting=setting.practice_setting,
            replaces=metadata.replaces,
        )
    else:  # a CDA: what its header says (the card signs what the document says)
        entry = DocumentEntry(
            unique_id=header.unique_id or f"urn:uuid:{uuid.uuid4()}", patient=patient.patient,
            class_code=kind.class_code, type_code=header.type_code,
            type_system=header.type_system, format_code=header.format_code,
            mime_type=header.mime_type, title=header.title, author=author,
            creation_time=header.creation_time, size=digest.size, sha1_b64=digest.sha1_b64,
            sha256=digest.sha256, confidentiality=header.confidentiality,
            visibility=frozenset(visibility),
            facility_type=header.facility_type or setting.facility_type,
            practice_setting=header.practice_setting or setting.practice_setting,
            service_start=header.service_start, service_stop=header.service_stop,
            language=header.language, replaces=metadata.replaces,
        )
    submission = SubmissionSet(
        unique_id=f"urn:uuid:{uuid.uuid4()}", source_id=SOURCE_ID, patient=patient.patient,
        submission_time=now, author=author, content_type_code=setting.facility_type,
        identity=identity[0] if identity else None,
        reliability=identity[1] if identity else None,
    )
    # The card signs the IHE DSG signature document's SignedInfo (wire.dsg): one card call.
    # Under e-CPS the workstation's establishment key signs, and the signature says so.
    signature, signature_xml = sign_submission(submission, [entry], signer.sign_document,
                                               signer.signature_certificate_der,
                                               unique_id=f"urn:uuid:{uuid.uuid4()}",
                                               signer=getattr(signer, "signed_by", "card"))
    return entry.unique_id, build_provide_bundle(submission, [(entry, content),
                                                              (signature, signature_xml)])
