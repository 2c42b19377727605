"""What is in a reader, in the terms practice software uses for card statuses.

`inspect_reader` connects to the card in one reader, recognises it from its ATR, reads what
can be read without a PIN (the CPS identity and tries left, the Vitale holder and
beneficiaries) and returns a `SlotReport` with one status among valid, none, unknown,
changed, blocked, expired and reader-error. It never raises a card-layer error: every failure
becomes a status with its sentence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from .apdu import ApduProtocol
from .atr import CardKind, identify
from .cps import CpsCard, CpsIdentity
from .cps_data import PracticeSituation
from .errors import (
    BLOCKED_CPS,
    CardError,
    CardRemovedError,
    NoCardError,
    ReaderError,
    TransportError,
)
from .pcsc import PcscConnection
from .vitale import Vitale2Profile, VitaleCard


class CardStatus(StrEnum):
    VALID = "valid"
    NONE = "none"
    UNKNOWN = "unknown"
    CHANGED = "changed"  # a different card than the one last seen in this slot
    BLOCKED = "blocked"
    EXPIRED = "expired"
    READER_ERROR = "reader-error"


@dataclass(frozen=True)
class SlotReport:
    reader: str
    status: CardStatus
    kind: CardKind | None = None
    label: str = ""
    cps: CpsIdentity | None = None
    pin_tries_left: int | None = None
    vitale: VitaleCard | None = None
    message: str = ""
    # The CPS's practice situations: they are behind the PIN, so known only once a session
    # was opened with this card in this process (`remember_situations`); () until then.
    situations: tuple[PracticeSituation, ...] = ()
    # A reader error's cause, so that a view can say it by its type (a card that stopped
    # answering is taken out, a reader that is gone is plugged in again); not compared.
    error: CardError | None = field(default=None, compare=False, repr=False)

    @property
    def serial(self) -> str | None:
        if self.cps is not None:
            return self.cps.serial_number
        if self.vitale is not None:
            return self.vitale.serial_number
        return None




def expired_text(identity: CpsIdentity, moment: dt.datetime) -> str:
    """What an out-of-validity CPS means, in the card layer's own (developer's) English: the
    agent says it in the user's language (agent.card_words.expired_text)."""
    if moment < identity.not_before:
        return f"the CPS card is not valid yet (from {identity.not_before:%Y-%m-%d})"
    return (f"the CPS card expired on {identity.not_after:%Y-%m-%d}: have it renewed by its "
            "issuer (ANS)")


# Card serial number -> the practice situations read behind its PIN (this process only: they
# name structures, nothing secret, and are read again at every opening).
_SITUATIONS: dict[str, tuple[PracticeSituation, ...]] = {}


def remember_situations(serial: str, situations: tuple[PracticeSituation, ...]) -> None:
    """Keep the situations read (behind the PIN) from the CPS ``serial``: the next reports
    of that card carry them, so a view can offer the choice before the PIN."""
    _SITUATIONS[serial] = tuple(situations)


def known_situations(serial: str | None) -> tuple[PracticeSituation, ...]:
    return _SITUATIONS.get(serial, ()) if serial is not None else ()


def inspect_reader(
    reader: str, previous: SlotReport | None = None, *, now: dt.datetime | None = None
) -> SlotReport:
    """Read the card in ``reader``; ``previous`` is the last report of that slot, if any."""
    try:
        with PcscConnection(reader) as connection:
            report = inspect_connection(reader, connection, now=now)
    except (NoCardError, CardRemovedError):
        return SlotReport(reader, CardStatus.NONE, message="no card")
    except (ReaderError, TransportError) as exc:
        return SlotReport(reader, CardStatus.READER_ERROR, message=str(exc), error=exc)
    if (
        previous is not None
        and report.status is CardStatus.VALID
        and previous.serial is not None
        and report.serial != previous.serial
    ):
        return SlotReport(**{**report.__dict__, "status": CardStatus.CHANGED})
    return report


def inspect_connection(
    reader: str, connection: PcscConnection, *, now: dt.datetime | None = None
) -> SlotReport:
    kind, label = identify(connection.atr)
    protocol = ApduProtocol(connection)
    try:
        if kind is CardKind.CPS:
            card = CpsCard(protocol)
            identity = card.read_identity()
            tries = card.pin_tries_left()
            moment = now or dt.datetime.now(dt.UTC)
            message = ""
            if tries == 0:
                status, message = CardStatus.BLOCKED, BLOCKED_CPS
            elif not identity.not_before <= moment <= identity.not_after:
                status, message = CardStatus.EXPIRED, expired_text(identity, moment)
            else:
                status = CardStatus.VALID
            return SlotReport(reader, status, kind, label, cps=identity, pin_tries_left=tries,
                              message=message,
                              situations=known_situations(identity.serial_number))
        if kind is CardKind.VITALE:
            vitale = Vitale2Profile(protocol).read()
            return SlotReport(reader, CardStatus.VALID, kind, label, vitale=vitale)
    except (CardRemovedError, ReaderError, TransportError):
        raise
    except CardError as exc:
        return SlotReport(reader, CardStatus.UNKNOWN, kind, label, message=str(exc))
    return SlotReport(
        reader, CardStatus.UNKNOWN, kind, label, message=f"{label}: not read by this agent"
    )
