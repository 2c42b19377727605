"""The professional's session opened with the e-CPS through Pro Santé Connect (docs/psc.md).

No card: the agent asks the host for a challenge, makes the session key, starts a CIBA
request at Pro Santé Connect whose nonce binds the ID token to both, polls while the
professional reads the binding message on the phone and approves, lets them pick the
practice situation among the token's, and opens the host session with the token
(`HostSession.open_ecps`). From then on it is the card's session (`ProfessionalSession`):
the same calls, logout, keep-alive and revocation, with three differences:

- no card removal ends it: logout, the agent's end or its expiry do;
- it is not renewed silently (nothing can sign without the professional): it ends when the
  host's certificate expires ("expired"), and the professional logs in again (a new
  approval on the phone);
- its deposits are signed by the workstation's establishment certificate (`wire.dsg`
  ``signer="establishment"``), the DMP's rule for deposits without a card signature.

`EcpsPart` is the core's: one login at a time, its progress in the session JSON (``ecps``:
phase, binding message, seconds left), cancel, and each failure with its own message.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.core.professional import ProfessionalSession, SessionEndedError
from agent.core.sessions import SessionPart, pin_failure, preset_situation
from agent.errors import AgentError
from agent.i18n import _
from cardreader.cps import CpsIdentity
from cardreader.cps_data import PracticeSituation

if TYPE_CHECKING:
    from agent.client.psc import PscClient
    from agent.client.session import HostSession

__all__ = ["EcpsLogin", "EcpsPart", "EcpsSession"]

log = logging.getLogger("agent.core")

SLOW_DOWN = 5  # seconds CIBA's slow_down adds to the interval
LATE_MARGIN = 5.0  # seconds past the expiry after which the agent stops polling by itself
ECPS_READER = ""  # an e-CPS session is in no reader: never ended by a card event
LAST_ID_FILE = "ecps-last-idnat"  # the idNat_PS of the last e-CPS login (no secret)


def binding_message(code: str) -> str:
    """What the phone and the screen both show: "Poste <name> code NNNN" (printable ASCII,
    at most 64 characters as the provider requires)."""
    name = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0])[:24] or "DMP"
    return f"Poste {name} code {code}"


def identity_of(claims: dict[str, Any]) -> CpsIdentity:
    """The professional as the (unverified) ID token says: the fields a card would give,
    no card serial. The host reads the same claims from the token it verifies."""
    try:
        exercice = claims["SubjectRefPro"]["exercices"][0]
        return CpsIdentity(
            id_nat_ps=str(claims["SubjectNameID"]), last_name=str(claims["family_name"]),
            first_name=str(claims["given_name"]),
            profession_code=str(exercice["codeProfession"]),
            specialty_code=str(exercice.get("codeSavoirFaire") or "") or None,
            category_code="", is_test_card=False,
            not_before=dt.datetime.fromtimestamp(int(claims["iat"]), dt.UTC),
            not_after=dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC),
            serial_number="")
    except (KeyError, IndexError, TypeError, ValueError):
        raise AgentError(_("The Pro Santé Connect token does not name the professional"),
                         code="psc-refused", status=502) from None


def situations_of(claims: dict[str, Any]) -> tuple[PracticeSituation, ...]:
    """The practice situations of the token (``SubjectRefPro.exercices[].activities[]``)."""
    out = []
    for exercice in claims.get("SubjectRefPro", {}).get("exercices", []):
        for activity in exercice.get("activities", []):
            structure = activity.get("ancienIdentifiantDeLaStructure")
            if isinstance(structure, str) and structure:
                out.append(PracticeSituation(
                    structure, str(activity.get("raisonSocialeSite") or structure),
                    str(activity.get("codeModeExercice") or ""),
                    str(activity.get("codeRole") or "")))
    return tuple(out)


@dataclass
class EcpsLogin:
    """One e-CPS login as the views see it, and its cancellation."""

    id_nat_ps: str
    code: str = field(default_factory=lambda: f"{secrets.randbelow(10000):04d}")
    phase: str = "starting"  # starting, waiting (the phone), choosing, opening
    deadline: float | None = None  # time.monotonic() when the phone's answer expires
    expires_at: dt.datetime | None = None
    situations: tuple[PracticeSituation, ...] = ()
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def binding_message(self) -> str:
        return binding_message(self.code)

    def seconds_left(self) -> int | None:
        if self.deadline is None:
            return None
        return max(0, round(self.deadline - time.monotonic()))

    def as_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "idNatPs": self.id_nat_ps,
                "bindingMessage": self.binding_message, "secondsLeft": self.seconds_left(),
                "expiresAt": self.expires_at.isoformat() if self.expires_at else None}

    def check(self) -> None:
        if self.cancelled.is_set():
            raise AgentError(_("e-CPS login cancelled"), code="cancelled", status=409)


def wait_for_approval(psc: PscClient, login: EcpsLogin, nonce: str, expiry: int,
                      changed: Callable[[], None]) -> str:
    """The CIBA request and its polls, until the phone answers: the ID token, or an
    `AgentError` (denied, expired, cancelled, the provider unreachable...)."""
    from agent.client.psc import PscError, SlowDown

    login.check()
    request = psc.start(login.id_nat_ps, login.binding_message, nonce, expiry)
    login.deadline = time.monotonic() + request.expires_in
    login.expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=request.expires_in)
    login.phase = "waiting"
    changed()
    interval = max(1, request.interval)
    while True:
        if login.cancelled.wait(interval):
            login.check()
        if time.monotonic() > login.deadline + LATE_MARGIN:
            # The provider should have said expired_token: the agent stops anyway.
            raise PscError(_("No answer on the phone in time: the e-CPS login expired"),
                           code="ecps-expired", status=408)
        try:
            token = psc.poll(request)
        except SlowDown:
            interval += SLOW_DOWN
            continue
        if token is not None:
            return token


class EcpsSession(ProfessionalSession):
    """A professional's session opened with the e-CPS (module docstring)."""

    card_bound = False

    def __init__(self, workstation: Any, host_url: str, *,
                 approve: Callable[[str], str],
                 choose_situation: Callable[[Sequence[PracticeSituation]], PracticeSituation],
                 **options: Any) -> None:
        super().__init__(ECPS_READER, workstation, host_url, _NoPin(),
                         choose_situation=choose_situation, watch_card=False, **options)
        self._approve = approve

    def _open(self) -> None:
        self._install(self._open_host())
        self._renewer = threading.Thread(target=self._renew_loop, name="ecps-expiry",
                                         daemon=True)
        self._renewer.start()

    def _open_host(self) -> HostSession:
        from agent.client.psc import token_claims
        from agent.client.session import HostSession

        def authenticate(nonce: str) -> tuple[str, str]:
            id_token = self._approve(nonce)
            claims = token_claims(id_token)
            self.identity = identity_of(claims)
            situations = situations_of(claims)
            if not situations:
                raise AgentError(_("Pro Santé Connect names no practice situation for this "
                                   "professional"), code="no-situation", status=409)
            self.situation = self._choose(situations)
            return id_token, self.situation.structure_id

        opening, self._opening = self._opening or self._new_opening(), None
        return HostSession.open_ecps(self.host_url, self.workstation,
                                     authenticate=authenticate, timeout=self._timeout,
                                     opening=opening)

    def _renew_loop(self) -> None:
        """No silent renewal without a card: the session ends when its certificate does."""
        try:
            not_after = self.not_after
        except SessionEndedError:
            return
        if not self._stop.wait(max((not_after - dt.datetime.now(dt.UTC)).total_seconds(),
                                   0.0)):
            self._end("expired")

    signed_by = "establishment"  # its deposits' signature: the workstation's certificate

    def sign_document(self, data: bytes) -> bytes:
        """Sign with the workstation's establishment key (no card: docs/psc.md)."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        if not self.alive:
            raise SessionEndedError(self._ended or "closed")
        key = serialization.load_pem_private_key(self.workstation.key_pem,
                                                 password=self.workstation.key_password)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise AgentError(_("The workstation's key cannot sign deposits (RSA expected)"),
                             code="workstation-key", status=409)
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    @property
    def signature_certificate_der(self) -> bytes:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_pem_x509_certificate(
            self.workstation.certificate_pem).public_bytes(Encoding.DER)


class _NoPin:
    """An e-CPS session asks no PIN."""

    def ask(self, holder: str, tries_left: int) -> str | None:
        return None


class EcpsPart(SessionPart):
    _ecps: EcpsLogin | None = None  # the login in progress
    _ecps_error: dict[str, Any] | None = None  # how the last one failed (code, message)

    def login_ecps(self, id_nat_ps: str | None = None, situation: int | str | None = None,
                   *, ask: bool = True) -> dict[str, Any]:
        """Start an e-CPS login (on its own thread) and return the session JSON at once;
        its progress goes to the views as ``session`` changes. ``id_nat_ps``: the
        professional's (default: the last one logged in with the e-CPS here)."""
        from agent.client.psc import PscClient

        psc = PscClient.from_config(self.config)  # not configured, no secret: said now
        wanted = (id_nat_ps or self._last_id_nat_ps() or "").strip()
        if not re.fullmatch(r"[0-9A-Za-z]{1,64}", wanted):
            raise AgentError(_("Give the professional's national id (idNat_PS, RPPS) for "
                               "the e-CPS login"), code="bad-idnat", status=400, usage=True)
        with self._lock:
            if self._session is not None and self._session.alive:
                raise AgentError(_("A session is already open"), code="session-open",
                                 status=409)
            if self._workstation is None:
                raise AgentError(self._problem or _("Workstation not enrolled"),
                                 code="not-enrolled", status=409)
            if self._ecps is not None or self._session_state in ("opening", "choosing"):
                raise AgentError(_("An e-CPS login is already waiting: answer it on the "
                                   "phone or cancel it"), code="ecps-busy", status=409)
            login = self._ecps = EcpsLogin(wanted)
            self._ecps_error = None
            self._session_state, self._session_error = "opening", ""
        self._publish("session")
        threading.Thread(target=self._run_ecps, args=(login, psc, situation, ask),
                         name="ecps-login", daemon=True).start()
        return self._session_json()

    @property
    def ecps_pending(self) -> bool:
        """An e-CPS login is in progress (the phone asked, or the situation chosen)."""
        return self._ecps is not None

    def wait_ecps(self, timeout: float | None = None) -> None:
        """Wait for the login in progress to end (the command line); raise its failure."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._ecps is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._changed.wait(left if left is not None else 1.0)
            error = self._ecps_error
        if error is not None:
            raise AgentError(error["message"], code=error["code"], status=error["status"],
                             **error.get("extra", {}))

    def cancel_ecps(self) -> dict[str, Any]:
        with self._lock:
            login = self._ecps
            if login is None:
                raise AgentError(_("No e-CPS login in progress"), code="no-ecps-login",
                                 status=409)
            login.cancelled.set()
            choice = self._choice
            if choice is not None and choice.reader == ECPS_READER:
                choice.cancelled = True
                choice.answered.set()
        return self._session_json()

    def lock_session(self) -> None:
        with self._lock:
            pending = self._ecps is not None and self._session is None
        if pending:
            self.cancel_ecps()
            return
        super().lock_session()

    def _run_ecps(self, login: EcpsLogin, psc: PscClient, situation: int | str | None,
                  ask: bool) -> None:
        def changed() -> None:
            self._publish("session")

        def choose(held: Sequence[PracticeSituation]) -> PracticeSituation:
            login.check()
            login.situations = tuple(held)
            given = preset_situation(
                held, situation, ask,
                out_of_range=_("situation {number}: Pro Santé Connect names {count}"),
                not_held=_("situation {number}: not among the professional's ({named})"))
            if given is not None:
                return given
            login.phase = "choosing"
            # The host's challenge must still be valid when the token goes to it.
            index = self._wait_for_situation(ECPS_READER, len(held),
                                             present=lambda: not login.cancelled.is_set(),
                                             timeout=max(login.seconds_left() or 0, 15))
            login.phase = "opening"
            return held[index]

        def approve(nonce: str) -> str:
            token = wait_for_approval(psc, login, nonce, int(self.config.psc_expiry),
                                      changed)
            login.phase = "opening"
            changed()
            return token

        assert self._workstation is not None
        session = EcpsSession(self._workstation, self.config.host_url, approve=approve,
                              choose_situation=choose, timeout=self.config.host_timeout,
                              revocations=self._revocations)
        try:
            session._open()
        except BaseException as error:
            session.close()
            failure = pin_failure(error, None)  # the host's refusal, the network's, ours
            with self._lock:
                self._ecps = None
                self._ecps_error = {"code": failure.code, "message": str(failure),
                                    "status": failure.http_status, "extra": failure.extra}
                self._session_state = "locked" if self._cps_reader() else "none"
                self._session_error = "" if failure.code == "cancelled" else str(failure)
            log.info("e-CPS login failed: %s", failure.code)
            self._publish("session")
            return
        self._remember_id_nat_ps(login.id_nat_ps)
        with self._lock:
            self._ecps = None
            self._session = session
            self._session_state, self._session_error = "open", ""
            self._session_tries = None
        self._session_installed(session)

    def _ecps_json(self, out: dict[str, Any]) -> dict[str, Any]:
        """The session JSON with the e-CPS login's progress and the session's means."""
        session, login = self._session, self._ecps
        out["authMeans"] = None if session is None else (
            "card" if getattr(session, "card_bound", True) else "e-cps")
        out["ecps"] = None if login is None else login.as_json()
        if login is not None and login.phase == "choosing" and login.situations:
            out["situations"] = [
                {"index": i, "structureId": s.structure_id, "name": s.structure_name,
                 "mode": s.mode, "role": s.role} for i, s in enumerate(login.situations)]
        if self._ecps_error is not None and login is None and session is None:
            out["ecpsError"] = {"code": self._ecps_error["code"],
                                "message": self._ecps_error["message"]}
        return out

    def _last_id_nat_ps(self) -> str | None:
        try:
            return (self.config.data_dir / LAST_ID_FILE).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def _remember_id_nat_ps(self, id_nat_ps: str) -> None:
        try:
            self.config.data_dir.mkdir(parents=True, exist_ok=True)
            (self.config.data_dir / LAST_ID_FILE).write_text(id_nat_ps, encoding="ascii")
        except OSError as error:  # only a convenience for the next login
            log.warning("e-CPS: cannot remember the idNat_PS: %s", error)
