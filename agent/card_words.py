"""What the card layer reports, in the agent's language (docs/i18n.md).

`cardreader` imports nothing of ours, so its errors and slot reports carry its own fixed
sentences. The agent says them in its own words, by their type and status: a slot report is
put in words once, where it enters the agent's state (`localized`), and an error where it
becomes an `AgentError` (`card_error_text`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

from agent.i18n import N_, _

if TYPE_CHECKING:  # the card parsers load on the card thread, not at start (issue 11)
    from cardreader.cps import CpsIdentity
    from cardreader.errors import CardError
    from cardreader.inspect import SlotReport
    from cardreader.pcsc import SlotEvent
    from cardreader.vitale import Beneficiary

__all__ = ["blocked_cps_text", "card_error_text", "event_text", "expired_text", "localized",
           "no_card_text", "quality_text"]


def blocked_cps_text() -> str:
    """A blocked CPS: what to do, in reality (the PUK through the agent, else the issuer)."""
    return _("CPS card blocked (wrong PIN too many times). Unblock it with its unblocking code "
             "(PUK, 8 digits) and a new PIN: the agent's page, Session tab, or dmp-agent "
             "unblock. The agent cannot unblock it without that code: then ask the card's "
             "issuer (ANS, through your professional body or your establishment) to unblock "
             "or replace it.")


def no_card_text() -> str:
    return _("no card")


def expired_text(identity: CpsIdentity, moment: dt.datetime) -> str:
    """What an out-of-validity CPS means and what to do (renew it; a card not yet valid
    waits for its first day)."""
    if moment < identity.not_before:
        return _("CPS card not valid yet (from {date}): use your current card until "
                 "then").format(date=_day(identity.not_before))
    return _("CPS card expired on {date}: it can no longer open a session. Have it renewed "
             "by the CPS cards' issuer (ANS, through your professional body or your "
             "establishment).").format(date=_day(identity.not_after))


def _day(moment: dt.datetime) -> str:
    return moment.strftime(_("%Y-%m-%d"))  # the French catalogue: %d/%m/%Y


def localized(report: SlotReport, now: dt.datetime | None = None) -> SlotReport:
    """``report`` with its message in the agent's language (the status says which)."""
    from cardreader.inspect import CardStatus

    status = report.status
    message = report.message
    if status is CardStatus.NONE:
        message = no_card_text()
    elif status is CardStatus.BLOCKED and report.cps is not None:
        message = blocked_cps_text()
    elif status is CardStatus.BLOCKED:
        message = _("Card blocked (PIN)")
    elif status is CardStatus.EXPIRED and report.cps is not None:
        message = expired_text(report.cps, now or dt.datetime.now(dt.UTC))
    elif status is CardStatus.READER_ERROR and report.error is not None:
        message = card_error_text(report.error)  # e.g. a card that stopped answering
    elif status is CardStatus.READER_ERROR:
        message = _("the reader cannot be used (unplugged, or the smart-card service stopped)")
    elif status is CardStatus.UNKNOWN:
        message = _unknown_text(report)
    label = report.label
    if report.kind is not None and report.kind.value == "unknown":
        label = _("unknown card")
    if message == report.message and label == report.label:
        return report
    return dataclasses.replace(report, message=message, label=label)


def _unknown_text(report: SlotReport) -> str:
    """A card the agent does not use: unknown, of a kind it does not read (CPS4, Vitale 1),
    or one whose reading failed (`cardreader.inspect` said which in its own English)."""
    if report.kind is None or report.kind.value == "unknown":
        return _("unknown card")
    if report.message.endswith("not read by this agent"):
        return _("{label}: not read by this agent").format(label=report.label)
    return _("{label}: the card could not be read").format(label=report.label)


def card_error_text(error: CardError) -> str:
    """The card layer's error in words, by its type (its own text when none fits)."""
    from cardreader import errors

    if isinstance(error, errors.NoServiceError):
        return _("The smart-card service (pcscd) is not running")
    if isinstance(error, errors.ReaderError):
        return _("The reader cannot be used (unplugged, or the smart-card service stopped)")
    if isinstance(error, errors.NoCardError):
        return _("No card in the reader")
    if isinstance(error, errors.CardRemovedError):
        return _("The card was removed")
    if isinstance(error, errors.CardNotAnsweringError):
        where = f" ({error.reader})" if error.reader else ""
        return _("The card stopped answering{where}: take it out, wait two seconds and insert "
                 "it again; if it happens again, try another reader").format(where=where)
    if isinstance(error, errors.TransportError):
        return _("The exchange with the card failed: take it out and insert it again")
    if isinstance(error, errors.MalformedResponseError):
        return _("The card's answer could not be read")
    if isinstance(error, errors.WrongPinError):
        return _("Wrong PIN, {tries} tries left").format(tries=error.tries_left)
    if isinstance(error, errors.PinBlockedError):
        return _("The card is blocked (PIN)")
    if isinstance(error, errors.WrongPukError):
        return _("Wrong unblocking code (PUK), {tries} tries left").format(
            tries=error.tries_left)
    if isinstance(error, errors.PukBlockedError):
        return _("The unblocking code (PUK) is blocked: only the card's issuer (ANS, through "
                 "your professional body or your establishment) can unblock or replace the "
                 "card now")
    if isinstance(error, errors.InvalidPinFormatError):
        if "PUK" in str(error):
            return _("The unblocking code (PUK) has 8 digits")
        return _("The PIN does not have the number of digits the card expects")
    if isinstance(error, errors.SecurityStatusError):
        return _("The card requires the PIN first")
    if isinstance(error, errors.FileNotFoundOnCardError):
        return _("The card does not hold what was asked (a file or an application)")
    if type(error) is errors.ApduError:  # a status word the card layer has no type for
        return _("The card refused the command (status {sw:04X})").format(sw=error.sw)
    # The rest (e.g. the agent's own CardExpiredError, already in words) keeps its text.
    return str(error)


EVENT_WORDS = {
    "service-lost": N_("the smart-card service stopped"),
    "service-back": N_("the smart-card service is back"),
    "reader-added": N_("reader connected"),
    "reader-removed": N_("reader disconnected"),
    "card-removed": N_("card removed"),
    "card-mute": N_("a card that does not answer"),
}


def event_text(event: SlotEvent) -> str:
    """A card event as `dmp-agent cards --watch` and the sandbox print it."""
    where = f"[{event.reader}] " if event.reader else ""
    if event.kind.value == "card-inserted":
        label = _("unknown card") if event.card is not None and event.card.value == "unknown" \
            else event.label
        return where + _("card inserted: {label} (ATR {atr})").format(
            label=label, atr=event.atr.hex(" "))
    words = EVENT_WORDS.get(event.kind.value)
    return where + (_(words) if words else event.kind.value)


# The Vitale beneficiary's quality (SESAM-Vitale's codes; cardreader.vitale_model keeps the
# French labels of the specification), in the user's language.
QUALITY_WORDS = {
    0: N_("insured (entitled person)"),
    1: N_("ascendant, descendant, collateral"),
    2: N_("spouse"),
    3: N_("divorced spouse"),
    4: N_("cohabiting partner"),
    5: N_("separated spouse"),
    6: N_("child"),
    7: N_("beneficiary outside article 313"),
    8: N_("widowed spouse"),
    9: N_("other dependant"),
}


def quality_text(person: Beneficiary) -> str:
    """The beneficiary's quality in words (the card's French label for a code we lack)."""
    words = QUALITY_WORDS.get(person.quality)
    return _(words) if words else person.quality_label
