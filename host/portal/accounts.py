"""Signing in to the patient portal: a secret, then a one-time code by email, then a session.

The secret is the code of the secrets sheet the first time (the sheet says it serves once)
and, from then on, the password the patient chose at that first sign-in. Either way a
one-time code is then sent to the address given at the DMP's creation: two factors, one
known, one received. A session goes through stage "code" (secret accepted, code sent),
"password" (first sign-in only: a password must be chosen before anything else) and
"active". The browser holds a random token; the store holds its SHA-256.

Rate limits: a wrong secret counts against the account (`MAX_FAILURES` in a row lock it
for `LOCK_TIME`), a one-time code allows `MAX_CODE_ATTEMPTS` tries, at most
`MAX_CODES_PER_HOUR` codes are sent for one patient in an hour. Every sign-in, and every
refused attempt on a real dossier, lands in the patient's access history.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from .. import audit, notify_events
from ..dossiers.lifecycle import access_code_digest
from ..errors import HostError
from ..guard import holder_name, trace_patient
from ..identities import valid_ins
from ..store.schema import dossiers, portal_accounts, portal_sessions

SESSION_IDLE = dt.timedelta(minutes=15)
SESSION_MAX = dt.timedelta(hours=2)
CODE_LIFETIME = dt.timedelta(minutes=10)
MAX_CODE_ATTEMPTS = 5
MAX_CODES_PER_HOUR = 5
MAX_FAILURES = 5
LOCK_TIME = dt.timedelta(minutes=15)
MIN_PASSWORD = 12
MAX_PASSWORD = 200
# scrypt as OWASP suggests for interactive logins (N=2^15, r=8, p=1: 32 MiB, ~50 ms).
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def _refused(code: str, message: str, status: int = 401) -> HostError:
    return HostError(status, code, message, issue_type="security")


BAD_SECRET = ("bad-credentials", "Identifiant ou code incorrect. Vérifiez les 15 caractères de "
              "votre identifiant (INS) et le code de votre fiche, ou votre mot de passe.")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=_SCRYPT_MAXMEM, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def password_matches(stored: str, password: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        mine = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                              p=int(p), maxmem=_SCRYPT_MAXMEM)
    except ValueError:
        return False
    return hmac.compare_digest(mine.hex(), digest)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _code_digest(session_id: str, code: str) -> str:
    # Salted with the session: a code is worth nothing outside the browser it was sent for.
    return _sha256(f"{session_id}:{code}")


def normalised_ins(text: str) -> str | None:
    plain = "".join(text.split()).upper()
    return plain if valid_ins(plain) else None


@dataclass(frozen=True)
class Session:
    """A portal session as a request sees it (``token`` only right after it changed)."""

    id_sha256: str
    ins: str
    stage: str
    csrf: str
    name: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class CodeToSend:
    address: str
    code: str
    name: str | None


class Accounts:
    """The portal's sign-in state on the host's store, at the host's clock."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]) -> None:
        self.engine, self.clock = engine, clock

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        # Signing in is the portal's decision on who the patient is: its reads of the
        # dossier, contact and session rows are the guard's own (host/audit.py).
        with audit.guard_internal(), self.engine.begin() as connection:
            yield connection

    # -- the secret -------------------------------------------------------------------------
    def check_secret(self, ins_text: str, secret: str) -> str:
        """The INS when ``secret`` is right for it; HostError bad-credentials or locked.
        Nothing says whether a DMP exists for an INS."""
        ins = normalised_ins(ins_text)
        now = self.clock()
        with self._transaction() as connection:
            dossier = None if ins is None else connection.execute(
                select(dossiers.c.secret_sha256).where(dossiers.c.ins == ins)).one_or_none()
            if ins is None or dossier is None:
                hash_password(secret)  # the same time as a real check: no INS oracle
                raise _refused(*BAD_SECRET)
            account = self._account(connection, ins, now)
            if account.locked_until is not None and account.locked_until > now:
                self._trace(ins, "portal_sign_in", False, "ACCOUNT_LOCKED")
                raise _refused("locked", "Trop d'essais incorrects : la connexion est bloquée "
                               f"jusqu'à {_hour(account.locked_until)}.", status=429)
            if account.password_hash is not None:
                right = password_matches(account.password_hash, secret)
            else:
                hash_password(secret)  # as long as a password check: no "has a password" oracle
                right = hmac.compare_digest(access_code_digest(secret), dossier.secret_sha256)
            if right:
                connection.execute(update(portal_accounts).where(portal_accounts.c.ins == ins)
                                   .values(failures=0, locked_until=None, updated_at=now))
                return ins
            failures = account.failures + 1
            locked = now + LOCK_TIME if failures >= MAX_FAILURES else None
            connection.execute(update(portal_accounts).where(portal_accounts.c.ins == ins)
                               .values(failures=0 if locked else failures, locked_until=locked,
                                       updated_at=now))
        self._trace(ins, "portal_sign_in", False, "BAD_CREDENTIALS")
        if account.password_hash is None:
            raise _refused(*BAD_SECRET)
        raise _refused("bad-credentials", "Identifiant ou mot de passe incorrect. Votre fiche "
                       "ne sert plus : vous avez choisi un mot de passe à la première connexion.")

    def _account(self, connection: Any, ins: str, now: dt.datetime) -> Any:
        row = connection.execute(select(portal_accounts).where(portal_accounts.c.ins == ins)
                                 ).one_or_none()
        if row is None:
            connection.execute(insert(portal_accounts).values(ins=ins, failures=0,
                                                              updated_at=now))
            row = connection.execute(select(portal_accounts).where(
                portal_accounts.c.ins == ins)).one()
        return row

    # -- the one-time code ------------------------------------------------------------------
    def start(self, ins: str) -> tuple[str, CodeToSend]:
        """A new session at stage "code" and the code to send; (token, what to send)."""
        now = self.clock()
        token = secrets.token_urlsafe(32)
        session_id = _sha256(token)
        with self._transaction() as connection:
            # Old sessions of this patient go (the store keeps no dead ones).
            connection.execute(delete(portal_sessions).where(
                portal_sessions.c.ins == ins, portal_sessions.c.expires_at < now))
            self._check_code_quota(connection, ins, now)
            connection.execute(insert(portal_sessions).values(
                id_sha256=session_id, ins=ins, stage="code", csrf=secrets.token_urlsafe(32),
                created_at=now, last_seen_at=now, expires_at=now + SESSION_MAX,
                otp_attempts=0, otp_sent=0))
            send = self._new_code(connection, session_id, ins, now)
        return token, send

    def resend(self, session: Session) -> CodeToSend:
        if session.stage != "code":
            raise _refused("no-code-expected", "Aucun code n'est attendu : reconnectez-vous.")
        now = self.clock()
        with self._transaction() as connection:
            self._check_code_quota(connection, session.ins, now)
            return self._new_code(connection, session.id_sha256, session.ins, now)

    def _check_code_quota(self, connection: Any, ins: str, now: dt.datetime) -> None:
        sent = connection.execute(select(func.coalesce(func.sum(portal_sessions.c.otp_sent), 0))
                                  .where(portal_sessions.c.ins == ins,
                                         portal_sessions.c.created_at > now - dt.timedelta(
                                             hours=1))).scalar_one()
        if sent >= MAX_CODES_PER_HOUR:
            raise _refused("too-many-codes", f"{MAX_CODES_PER_HOUR} codes ont été envoyés en "
                           "une heure : attendez avant d'en demander un autre.", status=429)

    def _new_code(self, connection: Any, session_id: str, ins: str,
                  now: dt.datetime) -> CodeToSend:
        contact = notify_events.contact(connection, ins)
        if contact is None or not contact.email:
            raise _refused("no-contact", "Aucune adresse de messagerie n'est enregistrée pour "
                           "votre DMP : le code ne peut pas vous être envoyé. Un professionnel "
                           "de santé peut vous aider.", status=409)
        code = f"{secrets.randbelow(10**6):06d}"
        connection.execute(update(portal_sessions).where(
            portal_sessions.c.id_sha256 == session_id).values(
            otp_sha256=_code_digest(session_id, code), otp_expires_at=now + CODE_LIFETIME,
            otp_attempts=0, otp_sent=portal_sessions.c.otp_sent + 1))
        return CodeToSend(contact.email, code, holder_name(connection, ins))

    def check_code(self, session: Session, code: str) -> Session:
        """The session moved on (new token) when ``code`` is right; HostError otherwise."""
        if session.stage != "code":
            raise _refused("no-code-expected", "Aucun code n'est attendu : reconnectez-vous.")
        now = self.clock()
        code = "".join(code.split())
        with self._transaction() as connection:
            row = connection.execute(select(portal_sessions).where(
                portal_sessions.c.id_sha256 == session.id_sha256).with_for_update()).one()
            if row.otp_sha256 is None or row.otp_attempts >= MAX_CODE_ATTEMPTS:
                raise _refused("code-used-up", "Ce code a été trop souvent mal saisi : "
                               "demandez-en un nouveau.", status=429)
            if row.otp_expires_at <= now:
                raise _refused("code-expired", "Ce code a expiré (valable "
                               f"{CODE_LIFETIME.seconds // 60} minutes) : demandez-en un "
                               "nouveau.")
            if not hmac.compare_digest(_code_digest(session.id_sha256, code), row.otp_sha256):
                attempts = row.otp_attempts + 1
                connection.execute(update(portal_sessions).where(
                    portal_sessions.c.id_sha256 == session.id_sha256).values(
                    otp_attempts=attempts,
                    otp_sha256=None if attempts >= MAX_CODE_ATTEMPTS else row.otp_sha256))
                wrong = True
            else:
                wrong = False
                account = self._account(connection, session.ins, now)
                stage = "active" if account.password_hash is not None else "password"
                # A new token once the second factor is in (no fixation of a half session).
                token = secrets.token_urlsafe(32)
                connection.execute(update(portal_sessions).where(
                    portal_sessions.c.id_sha256 == session.id_sha256).values(
                    id_sha256=_sha256(token), stage=stage, otp_sha256=None,
                    otp_expires_at=None, last_seen_at=now, csrf=secrets.token_urlsafe(32)))
        if wrong:
            self._trace(session.ins, "portal_code", False, "BAD_CODE")
            left = MAX_CODE_ATTEMPTS - attempts
            raise _refused("bad-code", "Code incorrect." + (
                f" Encore {left} essai{'s' if left > 1 else ''}." if left else
                " Demandez un nouveau code."))
        self._trace(session.ins, "portal_sign_in", True, "ALLOWED_PATIENT")
        loaded = self.load(token)
        assert loaded is not None
        return Session(**{**loaded.__dict__, "token": token})

    # -- the password -----------------------------------------------------------------------
    def set_password(self, session: Session, password: str, again: str) -> None:
        if session.stage not in ("password", "active"):
            raise _refused("not-signed-in", "Connectez-vous d'abord.")
        if password != again:
            raise HostError(400, "password-mismatch", "Les deux mots de passe diffèrent.")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise HostError(400, "password-length", f"Le mot de passe doit compter au moins "
                            f"{MIN_PASSWORD} caractères.")
        if normalised_ins(password) == session.ins or len(set(password)) < 5:
            raise HostError(400, "password-weak", "Ce mot de passe est trop facile à deviner.")
        now = self.clock()
        with self._transaction() as connection:
            first = self._account(connection, session.ins, now).password_hash is None
            connection.execute(update(portal_accounts).where(
                portal_accounts.c.ins == session.ins).values(
                password_hash=hash_password(password), updated_at=now,
                activated_at=now if first else portal_accounts.c.activated_at))
            connection.execute(update(portal_sessions).where(
                portal_sessions.c.id_sha256 == session.id_sha256).values(stage="active"))
        self._trace(session.ins, "portal_set_password", True, "ALLOWED_PATIENT")

    # -- sessions ---------------------------------------------------------------------------
    def load(self, token: str | None) -> Session | None:
        """The live session of this cookie (its idle time restarted), or None."""
        if not token or len(token) > 100:
            return None
        now = self.clock()
        with self._transaction() as connection:
            row = connection.execute(select(portal_sessions).where(
                portal_sessions.c.id_sha256 == _sha256(token))).one_or_none()
            if row is None or row.stage == "ended":
                return None
            if row.expires_at <= now or row.last_seen_at + SESSION_IDLE <= now:
                connection.execute(delete(portal_sessions).where(
                    portal_sessions.c.id_sha256 == row.id_sha256))
                return None
            connection.execute(update(portal_sessions).where(
                portal_sessions.c.id_sha256 == row.id_sha256).values(last_seen_at=now))
            name = holder_name(connection, row.ins)
        return Session(row.id_sha256, row.ins, row.stage, row.csrf, name)

    def end(self, session: Session) -> None:
        with self._transaction() as connection:
            connection.execute(delete(portal_sessions).where(
                portal_sessions.c.id_sha256 == session.id_sha256))
        if session.stage == "active":
            self._trace(session.ins, "portal_sign_out", True, "ALLOWED_PATIENT")

    def _trace(self, ins: str, action: str, allowed: bool, reason: str) -> None:
        trace_patient(self.engine, ins, self.clock(), action, allowed=allowed, reason=reason)


def _hour(moment: dt.datetime) -> str:
    from .render import local_time

    return local_time(moment, "%H h %M")
