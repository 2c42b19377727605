"""The notification sender: the ``notifications`` rows, in order, by SMTP to the patient.

Each row goes pending -> sending -> sent. SMTP cannot be exactly-once, so the sender chooses
"at most once": it claims a row (status "sending", a random token, committed) *before* the
SMTP transaction and marks it sent after. A row found "sending" when a sender starts was
claimed by a sender that died mid-way: it may or may not have reached the server, so it is
never sent again; it becomes "uncertain", logged and counted by ``dmp-host notify status``.
A crash thus leaves at most one notification unsent and reported, never one sent twice.

Failures before the message was handed over (connection refused, a 4xx to MAIL, RCPT or
DATA) put the row back to pending with an exponential backoff (attempts and next attempt on
the row); a 5xx, or too many attempts, make it "failed". A patient without an address or who
chose channel "none" gets nothing: the row becomes "skipped".

The message says who (name, profession, structure), when (Europe/Paris) and what kind of
access; never medical content: no document title or type, and not the justification of an
emergency access (the professional's own words, which may be clinical).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import logging
import secrets
import smtplib
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, or_, select, update

from .settings import NotifySettings
from .store.schema import notifications, patient_contacts, structures
from .text import escape_controls

log = logging.getLogger("host.notify")
PARIS = ZoneInfo("Europe/Paris")
STATUSES = ("pending", "sending", "sent", "skipped", "failed", "uncertain")

# G15 profession codes (the card's) as the patient reads them.
PROFESSIONS = {
    "10": "médecin", "21": "pharmacien", "26": "audioprothésiste", "28": "opticien-lunetier",
    "40": "chirurgien-dentiste", "50": "sage-femme", "60": "infirmier",
    "70": "masseur-kinésithérapeute", "80": "pédicure-podologue", "81": "orthoprothésiste",
    "91": "orthophoniste", "92": "orthoptiste", "94": "ergothérapeute",
    "95": "psychomotricien", "96": "manipulateur d'électroradiologie médicale",
}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- the text -------------------------------------------------------------------------------
SUBJECTS = {
    "dossier-created": "Votre DMP a été créé",
    "first-access": "Un nouveau professionnel a accédé à votre DMP",
    "emergency-access": "Accès en urgence à votre DMP",
    "new-document": "Un document a été ajouté à votre DMP",
    "dossier-closed": "Votre DMP a été fermé",
    "dossier-reactivated": "Votre DMP a été réactivé",
    "access": "Accès à votre DMP",
}


def _when(moment: dt.datetime) -> str:
    local = moment.astimezone(PARIS)
    return f"le {local:%d/%m/%Y} à {local:%H:%M} (heure de Paris)"


def _who(payload: dict[str, Any], structure_name: str | None) -> str:
    name = escape_controls(str(payload.get("actor") or "un professionnel de santé"))
    profession = PROFESSIONS.get(str(payload.get("profession") or ""))
    structure = structure_name or payload.get("structure")
    parts = [name + (f" ({profession})" if profession else "")]
    if structure:
        parts.append(escape_controls(str(structure)))
    return ", ".join(parts)


def render(kind: str, payload: dict[str, Any], created_at: dt.datetime,
           structure_name: str | None = None) -> tuple[str, str]:
    """(subject, body) of a notification: who, when, what kind of access; nothing medical.
    Only whitelisted payload fields are read (actor, profession, structure, mode, by, flags);
    ``document``, ``justification`` and anything else never reach the text."""
    who, when = _who(payload, structure_name), _when(created_at)
    mode = payload.get("mode")
    first = payload.get("firstAccess") is True
    by_patient = payload.get("by") == "patient"
    lines: list[str]
    if kind == "dossier-created":
        lines = [f"Votre dossier médical partagé (DMP) a été créé {when} par {who}, avec "
                 "votre consentement.",
                 "English: your shared medical record (DMP) was created."]
    elif kind == "first-access":
        lines = [f"{who} a accédé à votre DMP pour la première fois {when} (accès normal).",
                 "English: a health professional accessed your DMP for the first time."]
    elif kind == "emergency-access":
        how = ("par un centre de régulation médicale (SAMU – centre 15)"
               if mode == "centre_15" else "en urgence (« bris de glace »)")
        lines = [f"{who} a accédé à votre DMP {how} {when}.",
                 "Motif enregistré, consultable dans votre historique.",
                 "English: an emergency access to your DMP was recorded "
                 + ("(regulation centre)." if mode == "centre_15" else "(break-the-glass).")]
    elif kind == "new-document":
        lines = [f"{who} a ajouté un document à votre DMP {when}."]
        if payload.get("newAuthor") is True:
            lines.append("C'est le premier document de ce professionnel dans votre dossier.")
        lines.append("English: a document was added to your DMP.")
    elif kind == "dossier-closed":
        by = "à votre demande" if by_patient else f"à votre demande, par {who},"
        lines = [f"Votre DMP a été fermé {by} {when}. Il est conservé dix ans et peut être "
                 "réactivé pendant ce temps.",
                 "English: your DMP was closed; it is kept ten years and can be reactivated."]
    elif kind == "dossier-reactivated":
        by = "à votre demande" if by_patient else f"par {who}, avec votre consentement,"
        lines = [f"Votre DMP a été réactivé {by} {when}.",
                 "English: your DMP was reactivated."]
    else:
        lines = [f"{who} a accédé à votre DMP {when}.",
                 "English: a health professional accessed your DMP."]
    if first and kind not in ("first-access", "dossier-created"):
        lines.insert(1, "C'était son premier accès à votre dossier.")
    body = "\n".join([
        "Bonjour,", "", *lines, "",
        "Le détail de chaque accès (qui, quand, dans quel mode) est dans l'historique de votre "
        "DMP. Vous pouvez y choisir de ne plus recevoir ces messages.",
        "Ce message est automatique : merci de ne pas y répondre.", "",
    ])
    return SUBJECTS.get(kind, SUBJECTS["access"]), body


def message_id(notification_id: str, sender: str) -> str:
    """The same Message-ID for every attempt of one notification (a relay or the patient's
    mailbox can then recognise a duplicate, should one ever be sent)."""
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "dmp.localhost"
    return f"<notification.{notification_id}@{domain}>"


def build_message(row: Any, address: str, settings: NotifySettings,
                  structure_name: str | None) -> EmailMessage:
    subject, body = render(row.kind, row.payload or {}, row.created_at, structure_name)
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = address
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(row.created_at)
    message["Message-ID"] = message_id(row.id, settings.sender)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


# -- SMTP -------------------------------------------------------------------------------------
class Retry(Exception):
    """Not handed over: try again later."""


class Permanent(Exception):
    """Refused for good (5xx)."""


class Uncertain(Exception):
    """Lost during DATA: the server may have accepted it."""


@dataclasses.dataclass(frozen=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urllib.parse.urlsplit(url)
        defaults = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
        if parts.scheme not in defaults or not parts.hostname:
            raise ValueError("SMTP URL: smtp://host:port, smtp+starttls://... or smtps://...")
        unquote = urllib.parse.unquote
        return cls(parts.scheme, parts.hostname, parts.port or defaults[parts.scheme],
                   None if parts.username is None else unquote(parts.username),
                   None if parts.password is None else unquote(parts.password))

    def __str__(self) -> str:  # never the password
        return f"{self.scheme}://{self.host}:{self.port}"


class SmtpTransport:
    """One SMTP connection, opened when needed and kept across a batch."""

    def __init__(self, target: SmtpTarget, timeout: float) -> None:
        self.target, self.timeout = target, timeout
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        target = self.target
        try:
            if target.scheme == "smtps":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    target.host, target.port, timeout=self.timeout,
                    context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(target.host, target.port, timeout=self.timeout)
                if target.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
            client.ehlo_or_helo_if_needed()
            if target.user is not None:
                client.login(target.user, target.password or "")
        except (OSError, smtplib.SMTPException) as error:
            raise Retry(f"connect {target}: {type(error).__name__}") from error
        return client

    def send(self, sender: str, recipient: str, message: EmailMessage) -> None:
        """Hand one message over; Retry, Permanent or Uncertain when it was not accepted."""
        if self.client is None:
            self.client = self._connect()
        client = self.client
        try:
            code, reply = client.mail(email.utils.parseaddr(sender)[1])
            if code == 250:
                code, reply = client.rcpt(recipient)
            if code not in (250, 251):
                client.rset()
                raise (Permanent if code >= 500 else Retry)(f"{code} {reply!r}"[:200])
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self.close()
            raise Retry(f"{type(error).__name__} before DATA") from error
        try:
            code, reply = client.data(message.as_bytes())
        except smtplib.SMTPDataError as error:  # the server answered the DATA command
            self.close()
            raise (Permanent if error.smtp_code >= 500 else Retry)(
                f"{error.smtp_code} to DATA") from error
        except (OSError, smtplib.SMTPException) as error:  # lost while handing it over
            self.close()
            raise Uncertain(f"{type(error).__name__} during DATA") from error
        if code != 250:
            raise (Permanent if code >= 500 else Retry)(f"{code} {reply!r}"[:200])

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                self.client.close()
            self.client = None


# -- the queue --------------------------------------------------------------------------------
@dataclasses.dataclass
class Counts:
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0


class Sender:
    def __init__(self, engine: Engine, settings: NotifySettings,
                 clock: Callable[[], dt.datetime] = utc_now,
                 transport: SmtpTransport | None = None) -> None:
        if transport is None and not settings.smtp_url:
            raise ValueError("no SMTP URL: nothing to send through")
        self.engine, self.settings, self.clock = engine, settings, clock
        self.transport = transport or SmtpTransport(
            SmtpTarget.parse(settings.smtp_url or ""), settings.timeout)

    def recover(self) -> int:
        """Rows a dead sender left "sending" become "uncertain" (never sent again)."""
        with self.engine.begin() as connection:
            count = connection.execute(
                update(notifications).where(notifications.c.status == "sending")
                .values(status="uncertain", last_error="sender stopped during the send"),
            ).rowcount
        if count:
            log.warning("notify: %d notification(s) left 'sending' by a stopped sender: "
                        "marked uncertain, not sent again (dmp-host notify status)", count)
        return int(count)

    def _due(self, now: dt.datetime) -> list[Any]:
        table = notifications
        with self.engine.connect() as connection:
            return list(connection.execute(
                select(table).where(
                    table.c.status == "pending",
                    or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= now))
                .order_by(table.c.created_at, table.c.id).limit(self.settings.batch)).all())

    def _set(self, row: Any, *, where_status: str | None = None, token: str | None = None,
             **values: Any) -> int:
        table = notifications
        condition = [table.c.ins == row.ins, table.c.id == row.id]
        if where_status is not None:
            condition.append(table.c.status == where_status)
        if token is not None:
            condition.append(table.c.claim_token == token)
        with self.engine.begin() as connection:
            return int(connection.execute(update(table).where(*condition).values(**values))
                       .rowcount)

    def _backoff(self, attempts: int) -> dt.timedelta:
        return min(self.settings.backoff_cap, self.settings.backoff * 2 ** max(attempts - 1, 0))

    def send_one(self, row: Any, counts: Counts) -> bool:
        """Process one due row; False when the SMTP server is unreachable (stop the pass)."""
        with self.engine.connect() as connection:
            contact = connection.execute(
                select(patient_contacts.c.email, patient_contacts.c.channel)
                .where(patient_contacts.c.ins == row.ins)).one_or_none()
            structure_id = (row.payload or {}).get("structure")
            structure_name = None if not structure_id else connection.execute(
                select(structures.c.name).where(structures.c.id == structure_id)
            ).scalar_one_or_none()
        if contact is None or not contact.email or contact.channel != "email":
            why = "channel none" if contact is not None and contact.channel == "none" else (
                "no address")
            counts.skipped += self._set(row, where_status="pending", status="skipped",
                                        last_error=why)
            return True
        message = build_message(row, contact.email, self.settings, structure_name)
        token = secrets.token_hex(16)
        attempts = row.attempts + 1
        # The claim is committed before anything is sent: after a crash, this row is seen.
        if not self._set(row, where_status="pending", status="sending", claim_token=token,
                         claimed_at=self.clock(), attempts=attempts):
            return True  # another sender took it
        try:
            self.transport.send(self.settings.sender, contact.email, message)
        except Uncertain as error:
            counts.uncertain += 1
            self._set(row, token=token, status="uncertain", last_error=str(error)[:200])
            log.warning("notify %s: %s: marked uncertain, not sent again", row.id, error)
            return True
        except (Retry, Permanent) as error:
            give_up = isinstance(error, Permanent) or attempts >= self.settings.max_attempts
            if give_up:
                counts.failed += 1
                self._set(row, token=token, status="failed", last_error=str(error)[:200])
                log.error("notify %s: failed after %d attempt(s): %s", row.id, attempts, error)
            else:
                counts.retried += 1
                self._set(row, token=token, status="pending", last_error=str(error)[:200],
                          next_attempt_at=self.clock() + self._backoff(attempts))
                log.info("notify %s: attempt %d: %s; retried later", row.id, attempts, error)
            return not str(error).startswith("connect ")
        self._set(row, token=token, status="sent", sent_at=self.clock(), last_error=None)
        counts.sent += 1
        return True

    def drain(self) -> Counts:
        """Send every due row (oldest first) until none is due or the server is down."""
        counts = Counts()
        try:
            while True:
                rows = self._due(self.clock())
                if not rows:
                    break
                reachable = True
                for row in rows:
                    reachable = self.send_one(row, counts)
                    if not reachable:
                        break
                if not reachable:
                    break
        finally:
            self.transport.close()
        return counts

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> Counts:
        """`recover`, then drain; with ``once`` return, otherwise wake every
        ``settings.interval`` seconds until ``stop`` is set."""
        stop = stop or threading.Event()
        total = Counts(uncertain=self.recover())
        while True:
            counts = self.drain()
            for name in ("sent", "skipped", "retried", "failed", "uncertain"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
            if counts.sent or counts.failed or counts.uncertain:
                log.info("notify: %s", counts)
            if once or stop.wait(self.settings.interval):
                return total


def status(engine: Engine) -> dict[str, Any]:
    """Counts per status, the uncertain and failed rows (ids and times, no patient data),
    the oldest pending one and the next retry."""
    table = notifications
    with engine.connect() as connection:
        counts = dict(connection.execute(
            select(table.c.status, func.count()).group_by(table.c.status)).all())
        problems = connection.execute(
            select(table.c.id, table.c.created_at, table.c.kind, table.c.status,
                   table.c.attempts, table.c.last_error)
            .where(table.c.status.in_(("uncertain", "failed")))
            .order_by(table.c.created_at).limit(100)).all()
        oldest = connection.execute(select(func.min(table.c.created_at))
                                    .where(table.c.status == "pending")).scalar_one()
        retry = connection.execute(select(func.min(table.c.next_attempt_at))
                                   .where(table.c.status == "pending")).scalar_one()
    return {
        "counts": {name: int(counts.get(name, 0)) for name in STATUSES},
        "problems": [dict(row._mapping) for row in problems],
        "oldestPending": oldest, "nextRetry": retry,
    }
