"""Who is calling: every request is mapped from its TLS client certificate to an actor.

Two kinds of client certificates reach the host (both checked by the TLS layer against their
CA and CRL): a workstation's establishment certificate, which may only ask for a challenge
and open a session, and a session certificate, which must belong to an active session in the
`sessions` table (not revoked, not expired) and maps to the professional of that session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine, String, bindparam, select, update
from starlette.requests import Request

from policies import AccessMode, Actor, ModeCode, StructureKind

from .errors import HostError, bad_request
from .revocation import Revocations
from .store.schema import sessions, structures
from .text import refuse_control_characters

MODE_HEADER = "x-dmp-access-mode"
JUSTIFICATION_HEADER = "x-dmp-justification"  # percent-encoded UTF-8
MAX_JUSTIFICATION = 2000
CARD, ECPS = "card", "e-cps"  # the means a session was opened with (sessions.auth_means)


@dataclass(frozen=True)
class SessionActor:
    """The professional behind an active session, for one practice situation."""

    session_id: str
    id_nat_ps: str
    last_name: str
    first_name: str
    profession: str
    specialty: str | None
    structure_id: str
    not_after: dt.datetime
    structure_kind: StructureKind = StructureKind.CARE
    """What the host's registry says of the session's structure (never the client)."""
    auth_means: str = CARD
    """How the session was opened: `CARD` (CPS) or `ECPS` (e-CPS through Pro Santé
    Connect); every access-log line says it (docs/psc.md)."""
    workstation_sha256: str = ""
    """SHA-256 (hex) of the workstation certificate that opened the session: under e-CPS
    the only establishment certificate that may sign its deposits (docs/psc.md)."""

    def policy_actor(self, mode: AccessMode | None = None) -> Actor:
        """The actor the rules see. In centre 15 mode it is a regulation-centre actor
        carrying the registry's kind of its structure: `policies` refuses the mode to any
        structure not registered as a regulation centre."""
        factory = (Actor.regulation_centre if mode is not None
                   and mode.code is ModeCode.CENTRE_15 else Actor.professional)
        return factory(
            self.id_nat_ps, self.profession, specialty=self.specialty,
            structure_id=self.structure_id, structure_kind=self.structure_kind,
        )

    @property
    def allowed_modes(self) -> list[str]:
        return modes_for(self.structure_kind)

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


def modes_for(kind: StructureKind) -> list[str]:
    """The access modes a session of a structure of this kind may use (what an agent offers
    its user): centre 15 only for a registered regulation centre."""
    modes = [ModeCode.NORMAL.value, ModeCode.BRIS_DE_GLACE.value]
    if kind is StructureKind.REGULATION_CENTRE:
        modes.append(ModeCode.CENTRE_15.value)
    return modes


class Authenticator(Protocol):
    def workstation(self, request: Request) -> str:
        """The SHA-256 (hex) of the caller's workstation certificate, or HostError 401/403."""
        ...

    def session(self, request: Request) -> SessionActor:
        """The actor of the caller's active session, or HostError 401."""
        ...


def unauthenticated(message: str) -> HostError:
    return HostError(401, "no-session", message, issue_type="login")


def peer_certificate(request: Request) -> x509.Certificate:
    """The client certificate of this connection, from the ASGI TLS extension."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        raise unauthenticated(
            "Certificat client absent / no client certificate on this connection"
        )
    return x509.load_pem_x509_certificate(chain[0].encode("ascii"))


def fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def workstation_revoked() -> HostError:
    return HostError(403, "workstation-revoked",
                     "Le certificat de ce poste a été révoqué / this workstation's certificate "
                     "has been revoked: ask your administrator for a new one",
                     issue_type="security")


class TlsAuthenticator:
    """Maps the TLS client certificate to a workstation or an active session."""

    def __init__(
        self, engine: Engine, establishment_ca: x509.Name, clock: Callable[[], dt.datetime],
        revocations: Revocations | None = None,
    ) -> None:
        self.engine = engine
        self.establishment_ca = establishment_ca
        self.clock = clock
        self.revocations = revocations

    def workstation_certificate(self, request: Request) -> x509.Certificate:
        """The caller's workstation certificate, checked against the current CRL."""
        certificate = peer_certificate(request)
        if certificate.issuer != self.establishment_ca:
            raise HostError(
                403, "not-a-workstation",
                "Ce certificat n'est pas un certificat de poste / this is not a workstation "
                "certificate: open the session with the establishment certificate",
                issue_type="security",
            )
        if self.revocations and self.revocations.workstation_revoked(certificate.serial_number):
            raise workstation_revoked()
        return certificate

    def workstation(self, request: Request) -> str:
        return fingerprint(self.workstation_certificate(request))

    def session(self, request: Request) -> SessionActor:
        return session_for_fingerprint(
            self.engine, fingerprint(peer_certificate(request)), self.clock(),
            self.revocations,
        )


def _revoked_now(revocations: Revocations | None, row: object) -> str | None:
    """Why the session must end now: its card or workstation was revoked since it opened."""
    if revocations is None:
        return None
    card, workstation = getattr(row, "card_serial", None), getattr(row, "workstation_serial", None)
    if card and revocations.card_revoked(int(card, 16)):
        return "card-revoked"
    if workstation and revocations.workstation_revoked(int(workstation, 16)):
        return "workstation-revoked"
    return None


# Every request's first statement, built once (the certificate's fingerprint bound).
_SESSION_OF = (
    select(sessions, structures.c.kind.label("structure_kind"))
    .outerjoin(structures, structures.c.id == sessions.c.structure_id)
    .where(sessions.c.cert_sha256 == bindparam("cert_sha256", type_=String))
)


def session_for_fingerprint(
    engine: Engine, cert_sha256: str, now: dt.datetime, revocations: Revocations | None = None
) -> SessionActor:
    with engine.connect() as connection:
        row = connection.execute(_SESSION_OF, {"cert_sha256": cert_sha256}).one_or_none()
    if row is None:
        raise unauthenticated(
            "Aucune session pour ce certificat / no session for this certificate: insert "
            "the CPS card and open a session"
        )
    if row.revoked_at is not None:
        raise HostError(401, "session-revoked",
                        "Session fermée / this session was closed (card removed or logout)",
                        issue_type="login")
    if row.not_after <= now:
        raise HostError(401, "session-expired", "Session expirée / this session has expired",
                        issue_type="login")
    revoked = _revoked_now(revocations, row)
    if revoked is not None:
        with engine.begin() as connection:
            connection.execute(update(sessions).where(sessions.c.id == row.id)
                               .values(revoked_at=now, revoked_reason=revoked))
        raise HostError(401, revoked,
                        "Session fermée : la carte ou le poste a été révoqué / session ended: "
                        "the card or the workstation has been revoked", issue_type="login")
    return SessionActor(
        row.id, row.id_nat_ps, row.last_name, row.first_name, row.profession, row.specialty,
        row.structure_id, row.not_after,
        StructureKind(row.structure_kind) if row.structure_kind else StructureKind.CARE,
        row.auth_means or CARD, row.workstation_sha256 or "",
    )


def access_mode(request: Request) -> AccessMode:
    """The access mode this request is made in (header), normal by default."""
    raw = request.headers.get(MODE_HEADER, ModeCode.NORMAL.value)
    try:
        code = ModeCode(raw)
    except ValueError:
        raise bad_request(
            "bad-access-mode",
            f"Mode d'accès inconnu / unknown access mode {raw[:40]!r}: normal, bris_de_glace "
            "or centre_15",
        ) from None
    justification = request.headers.get(JUSTIFICATION_HEADER)
    if justification is not None:
        try:
            justification = urllib.parse.unquote(justification, errors="strict").strip()
        except UnicodeDecodeError:
            raise bad_request("bad-justification",
                              "Justification illisible / the justification is not UTF-8") from None
        if len(justification) > MAX_JUSTIFICATION:
            raise bad_request("justification-too-long",
                              f"Justification trop longue (max {MAX_JUSTIFICATION} caractères)")
        refuse_control_characters(justification, "justification", "bad-justification")
    return AccessMode(code, justification or None)
