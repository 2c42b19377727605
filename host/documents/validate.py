"""What a deposit declares, checked before anything is stored: codes against the value sets
and the access matrix, the author against the session, the content against its size and
hashes. Every refusal is a HostError with a stable code (docs/host-documents.md)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from policies import AccessMatrix
from wire import codes
from wire.mhd import Author, DocumentEntry, SubmissionSet

from ..actors import SessionActor
from ..blobs import too_large
from ..errors import HostError, bad_request
from ..text import has_control_characters, refuse_control_characters

_FORMAT = "DocumentReference.content[0].format"


def check_metadata(entry: DocumentEntry, matrix: AccessMatrix) -> None:
    """Class, type, format, confidentiality, facility type and practice setting."""
    what = f"document {entry.unique_id}"
    known = matrix.document_types.get(entry.type_code)
    if known is None or known.system != entry.type_system:
        raise bad_request("unknown-type",
                          f"Type de document inconnu / unknown document type "
                          f"{entry.type_system}|{entry.type_code} ({what})",
                          expression="DocumentReference.type")
    if entry.class_code not in matrix.classes:
        raise bad_request("unknown-class", f"Classe inconnue / unknown class "
                          f"{entry.class_code} ({what})", expression="DocumentReference.category")
    if known.class_code != entry.class_code:
        raise bad_request("class-type-mismatch",
                          f"Le type {entry.type_code} appartient à la classe {known.class_code}, "
                          f"pas {entry.class_code} / type and class disagree ({what})",
                          expression="DocumentReference.category")
    format_code = codes.FORMATS.get(entry.format_code)
    if format_code is None:
        raise bad_request("unknown-format",
                          f"Format inconnu / unknown format code {entry.format_code} ({what})",
                          expression=_FORMAT)
    mime_type = entry.mime_type.split(";")[0].strip().lower()
    if mime_type not in codes.MIME_TYPES_BY_FORMAT.get(format_code.code, frozenset()):
        raise bad_request("format-mime-mismatch",
                          f"Le type MIME {entry.mime_type[:60]!r} ne correspond pas au format "
                          f"{format_code.code} / the MIME type does not match the format code "
                          f"({what})", expression=_FORMAT)
    refuse_control_characters(entry.title, f"le titre / the title ({what})", "invalid-title",
                              expression="DocumentReference.content[0].attachment.title")
    if (format_code.code == codes.SIGNATURE_FORMAT_CODE) != entry.is_signature:
        raise bad_request("unknown-format", f"Le format de signature est réservé au document de "
                          f"signature (E1762) / signature format misused ({what})",
                          expression=_FORMAT)
    if entry.confidentiality not in codes.CONFIDENTIALITY_LEVELS or any(
        label not in codes.VISIBILITY_STATUSES for label in entry.visibility
    ):
        raise bad_request("unknown-confidentiality", f"Code de confidentialité inconnu / "
                          f"unknown confidentiality code ({what})",
                          expression="DocumentReference.securityLabel")
    # The signature document may omit them (it describes no act); any code given is checked.
    optional = entry.is_signature
    if (entry.facility_type is None and not optional) or (
        entry.facility_type is not None and entry.facility_type not in codes.FACILITY_TYPES
    ):
        raise bad_request("unknown-facility-type",
                          f"Secteur d'activité absent ou inconnu / missing or unknown facility "
                          f"type {entry.facility_type} ({what})",
                          expression="DocumentReference.context.facilityType")
    if (entry.practice_setting is None and not optional) or (
        entry.practice_setting is not None and entry.practice_setting not in codes.PRACTICE_SETTINGS
    ):
        raise bad_request("unknown-practice-setting",
                          f"Cadre d'exercice absent ou inconnu / missing or unknown practice "
                          f"setting {entry.practice_setting} ({what})",
                          expression="DocumentReference.context.practiceSetting")


# PDSm 3.1.1 PDSm_ComprehensiveDocumentReference cardinalities of 1.. that the parser, which
# also reads stored and older resources, leaves optional: required of what is deposited.
_PDSM_REQUIRED = (("date",), ("custodian",), ("context", "period", "start"))


def check_pdsm_required(resource: dict[str, Any], unique_id: str) -> None:
    """A deposited DocumentReference has PDSm's ``date``, ``custodian`` and
    ``context.period.start`` (the act's start)."""
    for path in _PDSM_REQUIRED:
        node: Any = resource
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if not node:
            element = "DocumentReference." + ".".join(path)
            raise bad_request("missing-field", f"Élément obligatoire absent (PDSm) / {element} is "
                              f"required (document {unique_id})", expression=element)


def check_author(author: Author, actor: SessionActor) -> None:
    """The author is the session's professional, for the session's practice situation."""
    same = (
        author.id_system == codes.ID_NAT_PS_SYSTEM
        and author.id_nat_ps == actor.id_nat_ps
        and author.profession == actor.profession
        and author.structure_id == actor.structure_id
        and (author.specialty is None or author.specialty == actor.specialty)
    )
    if not same:
        raise HostError(403, "author-mismatch",
                        "L'auteur déclaré n'est pas le professionnel de la session / the declared "
                        "author is not the session's professional (idNat_PS, profession, "
                        "structure)", issue_type="forbidden", expression="DocumentReference.author")


def check_identity_qualified(submission: SubmissionSet) -> None:
    """No document enters a DMP under an INS that is not qualified (RNIV, since 2023): a
    submission set whose patient carries FR Core's identity-reliability extension with any
    other status is refused (422 identity-not-qualified). One without the extension is not
    judged: the standard's own examples carry none (docs/ins.md)."""
    reliability = submission.reliability
    if reliability is not None and not reliability.qualified:
        raise HostError(
            422, "identity-not-qualified",
            f"Identité du patient non qualifiée (statut : {reliability.status}) : aucun "
            "document ne peut être déposé sous cet INS avant le contrôle d'une pièce "
            "d'identité à haut niveau de confiance / the patient's identity is not qualified "
            "(RNIV): check a high-trust identity document, then deposit",
            issue_type="business-rule")


def check_stored_text(resource: Any, what: str) -> None:
    """No control character in any string the host will store and serve to other people
    (host.text: terminal escapes, bidirectional overrides...); line breaks and tabs are
    text in a description or a note. The refusal names the string's FHIRPath."""
    stack: list[tuple[Any, str]] = [(resource, str(resource.get("resourceType", "Resource")))]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((value, f"{path}.{key}") for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{index}]") for index, value in enumerate(node))
        elif isinstance(node, str) and has_control_characters(
            node.replace("\n", " ").replace("\r", " ").replace("\t", " ")
        ):
            refuse_control_characters(node, what, "invalid-characters", expression=path)


def check_declared_size(entry: DocumentEntry, limit: int) -> None:
    if entry.size > limit:
        raise too_large(limit)


def check_content(entry: DocumentEntry, size: int, sha1_b64: str) -> None:
    """The received content is the declared one: Attachment.size and Attachment.hash (base64
    SHA-1, FHIR R4 / MHD; PDSm requires both). The SHA-256 the host stores is computed from
    the bytes, never taken from the bundle."""
    if size != entry.size:
        raise bad_request("size-mismatch",
                          f"Taille déclarée {entry.size}, reçue {size} / declared size differs "
                          f"from the content (document {entry.unique_id})",
                          expression="DocumentReference.content[0].attachment.size")
    if sha1_b64 != entry.sha1_b64:
        raise bad_request("hash-mismatch",
                          f"L'empreinte SHA-1 du contenu ne correspond pas / the content's SHA-1 "
                          f"differs from attachment.hash (document {entry.unique_id})",
                          expression="DocumentReference.content[0].attachment.hash")


def digests(data: bytes) -> tuple[str, str]:
    """(SHA-1 base64, SHA-256 hex) of ``data``."""
    return (base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
            hashlib.sha256(data).hexdigest())
