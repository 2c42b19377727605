"""Writing the patient's notifications (the rows `host/notify.py` sends) and their contact.

Two sorts of rows land in the ``notifications`` table:

- what the access rules ask for (``Decision.notify_patient``: an emergency access, a new
  document, a closure recorded at the patient's request): always written, as before;
- the host's own events (issue 14): DMP created, first access of a professional, first
  document of an author, closure and reactivation. These are messages to the patient, written
  only when the patient gave an address (``patient_contacts``); the access log holds the same
  facts for everyone.

One access gives at most one row: a break-the-glass access by a professional who never
accessed the dossier is one ``emergency-access`` notification (``firstAccess`` in its
payload), never two messages. Every function here runs inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import weakref
from collections import OrderedDict
from typing import Any

from sqlalchemy import Connection, Engine, exists, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .errors import bad_request
from .store.schema import dossier_firsts, dossiers, notifications, patient_contacts
from .text import refuse_control_characters

CHANNELS = ("email", "none")
MAX_EMAIL = 254
# One plain address: no display name, no list, no comment, ASCII (no SMTPUTF8 needed).
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")

# The kinds a notification row may have (the sender renders each).
DOSSIER_CREATED = "dossier-created"
FIRST_ACCESS = "first-access"
EMERGENCY_ACCESS = "emergency-access"
NEW_DOCUMENT = "new-document"
DOSSIER_CLOSED = "dossier-closed"
DOSSIER_REACTIVATED = "dossier-reactivated"
ACCESS = "access"  # an access the rules asked to notify that fits none of the above


def checked_email(value: object) -> str:
    """One address, at most 254 characters, no control characters (400 bad-contact)."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request("bad-contact", "contact.email : une adresse / one email address")
    text = refuse_control_characters(value.strip(), "contact.email", "bad-contact")
    if len(text) > MAX_EMAIL or _EMAIL.fullmatch(text) is None or ".." in text:
        raise bad_request("bad-contact", "contact.email : une seule adresse valide (254 "
                          "caractères au plus) / one valid email address, 254 characters max")
    return text


def creation_contact(body: dict[str, Any]) -> str | None:
    """The optional ``contact: {"email": ...}`` of a creation body: the address or None."""
    contact = body.get("contact")
    if contact is None:
        return None
    if not isinstance(contact, dict) or set(contact) - {"email"}:
        raise bad_request("bad-contact", "contact : un objet {\"email\": ...} / an object "
                          "{\"email\": ...}")
    email = contact.get("email")
    return None if email is None else checked_email(email)


def contact(connection: Connection, ins: str) -> Any:
    """The patient's contact row (email, channel) or None."""
    return connection.execute(
        select(patient_contacts.c.email, patient_contacts.c.channel)
        .where(patient_contacts.c.ins == ins)).one_or_none()


def set_contact(connection: Connection, ins: str, now: dt.datetime, *,
                email: str | None = None, channel: str | None = None) -> dict[str, Any]:
    """Create or change the patient's address and channel. The channel defaults to email
    when an address exists, none otherwise; "email" without any address is refused."""
    if channel is not None and channel not in CHANNELS:
        raise bad_request("bad-channel", "canal : email ou none / channel: email or none")
    current = contact(connection, ins)
    address = email if email is not None else (None if current is None else current.email)
    if channel is None:
        channel = current.channel if current is not None and email is None else (
            "email" if address else "none")
    if channel == "email" and not address:
        raise bad_request("no-address", "Aucune adresse enregistrée / no email address on "
                          "file: give one")
    values = {"email": address, "channel": channel, "updated_at": now}
    if current is None:
        connection.execute(insert(patient_contacts).values(ins=ins, **values))
    else:
        connection.execute(update(patient_contacts).where(patient_contacts.c.ins == ins)
                           .values(**values))
    return {"ins": ins, "email": address, "channel": channel}


# (ins, role, idNat_PS) known to be in `dossier_firsts` already, per engine: the steady
# state of a professional's accesses costs no statement (a search stays a fixed number of
# them). Only committed facts enter it, so a rollback never makes a first access look old.
_KNOWN: weakref.WeakKeyDictionary[Engine, OrderedDict[tuple[str, str, str], None]] = \
    weakref.WeakKeyDictionary()
_KNOWN_MAX = 100_000


def _known(engine: Engine) -> OrderedDict[tuple[str, str, str], None]:
    return _KNOWN.setdefault(engine, OrderedDict())


def remember(engine: Engine, ins: str, role: str, id_nat_ps: str) -> None:
    """Note, once its transaction committed, that this pair is recorded."""
    known = _known(engine)
    known[(ins, role, id_nat_ps)] = None
    known.move_to_end((ins, role, id_nat_ps))
    while len(known) > _KNOWN_MAX:
        known.popitem(last=False)


def first_time(connection: Connection, ins: str, role: str, id_nat_ps: str,
               now: dt.datetime) -> bool:
    """Record that ``id_nat_ps`` accessed (role "access") or deposited in (role "author")
    the existing dossier ``ins``; True when this is the first time. Race-free: the primary key
    decides between two concurrent first accesses (insert ... on conflict do nothing). A pair
    already known (`remember`) costs no statement."""
    if (ins, role, id_nat_ps) in _known(connection.engine):
        return False
    dialect = connection.dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    source = select(literal(ins), literal(role), literal(id_nat_ps), literal(now,
                    type_=dossier_firsts.c.at.type)).where(
        exists().where(dossiers.c.ins == ins))
    statement = module.insert(dossier_firsts).from_select(
        ["ins", "role", "id_nat_ps", "at"], source).on_conflict_do_nothing().returning(
        dossier_firsts.c.role)
    # RETURNING, not rowcount: psycopg reports no rowcount for INSERT ... SELECT here.
    first = connection.execute(statement).first() is not None
    if not first:
        remember(connection.engine, ins, role, id_nat_ps)  # someone else's, committed
    return first


def add(connection: Connection, ins: str, kind: str, payload: dict[str, Any],
        now: dt.datetime) -> str:
    """Insert one pending notification; its id."""
    ident = str(uuid.uuid4())
    connection.execute(insert(notifications).values(
        ins=ins, id=ident, created_at=now, kind=kind, payload=payload, status="pending",
        attempts=0))
    return ident


def add_if_contact(connection: Connection, ins: str, kind: str, payload: dict[str, Any],
                   now: dt.datetime) -> str | None:
    """A host event (issue 14): written only when the patient gave an address."""
    found = contact(connection, ins)
    if found is None or not found.email:
        return None
    return add(connection, ins, kind, payload, now)
