"""What people are told about the outbox: why a deposit waits and until when, what a
recovery did, what sits in quarantine; for the local API and page (`outbox_json`) and for
`dmp-agent outbox` (`outbox_lines`). docs/agent-outbox.md, "What survives what"."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from agent.i18n import N_, _
from agent.outbox.model import Cause, Item, ItemState, OutboxFullError, OutboxStorageError
from agent.outbox.recovery import QuarantineReport, Repair, quarantine_report
from agent.outbox.storage import RESERVE, free_space
from agent.outbox.store import Outbox
from agent.outbox.throttle import pace_value, throttle_text
from agent.safe_text import terminal_text

_TEXTS = {
    Cause.HOST: N_("the DMP host is unavailable{status}"),
    Cause.NETWORK: N_("network: the DMP host cannot be reached or its answer was cut"),
    Cause.NO_SESSION: N_("no DMP session: insert the CPS card and enter the PIN"),
    Cause.DISK: N_("disk: the outbox cannot write"),
    Cause.REFUSED: N_("refused by the DMP host{status}"),
    Cause.DAMAGED: N_("local copy damaged or missing"),
    Cause.ERROR: N_("agent error (see the logs)"),
}


@dataclass(frozen=True)
class Waiting:
    """``cause`` (a `Cause` value, "" when nothing went wrong yet), ``text`` for people,
    ``next_attempt`` (epoch seconds; None when only a person can send it again)."""

    cause: str
    text: str
    next_attempt: float | None


def waiting(item: Item, *, write_problem: OutboxStorageError | None = None,
            paused_until: float = 0.0) -> Waiting:
    """Why ``item`` is not at the host yet. A local write that failed (``write_problem``)
    is the reason of every waiting item: its state on disk is stale until one succeeds."""
    if item.state is ItemState.DONE:
        return Waiting("", _("deposited"), None)
    if item.state is ItemState.FAILED:
        cause = item.cause or Cause.REFUSED
        return Waiting(str(cause), _text(cause, item.last_status), None)
    when = max(item.next_attempt, paused_until)
    if write_problem is not None:
        return Waiting(str(Cause.DISK), str(write_problem), when)
    if item.cause is None:
        return Waiting("", _("not sent yet"), when)
    return Waiting(str(item.cause), _text(item.cause, item.last_status), when)


def waiting_all(items: list[Item], *, write_problem: OutboxStorageError | None = None,
                paused_until: float = 0.0) -> dict[int, Waiting]:
    """`waiting` for each item; a pending item not tried yet behind an earlier one of the
    same patient (sent strictly in order) waits for the same reason as that one."""
    heads: dict[str, Item] = {}
    out: dict[int, Waiting] = {}
    for item in sorted(items, key=lambda i: i.id):
        why = waiting(item, write_problem=write_problem, paused_until=paused_until)
        head = heads.setdefault(item.patient, item) if item.state is not ItemState.FAILED \
            and item.patient else item
        if head is not item and not why.cause and head.id in out:
            first = out[head.id]
            why = Waiting(first.cause, first.text + " " + _(
                "(after deposit no. {id} of the same patient)").format(id=head.id),
                first.next_attempt)
        out[item.id] = why
    return out


def _text(cause: Cause, status: int | None) -> str:
    return _(_TEXTS[cause]).format(status=f" (HTTP {status})" if status else "")


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def _local(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%d/%m/%Y %H:%M")


def problem(outbox: Outbox) -> str:
    """What stops the outbox writing now (a failed write, or no room left), or ""."""
    if outbox.write_problem is not None:
        return str(outbox.write_problem)
    free = free_space(outbox.directory)
    return "" if free >= RESERVE else str(OutboxFullError(RESERVE, free, outbox.directory))


EMPTY_JSON: dict[str, Any] = {"pending": 0, "failed": 0, "done": 0,
                              "others": {"pending": 0, "failed": 0, "reasons": {}},
                              "sending": None,
                              "items": [], "problem": "", "quarantine": None,
                              "recovered": None, "throttle": None}


EVERYONE = object()  # `outbox_json`'s ``professional``: every item (no view scoping)


def author_of(item: Item) -> str | None:
    """The idNat_PS of the professional who queued ``item`` (None: an item queued before
    the outbox recorded it)."""
    author = item.metadata.get("author")
    return author if isinstance(author, str) and author else None


def throttle_json(outbox: Outbox, pending: list[Item],
                  paused_until: float = 0.0) -> dict[str, Any] | None:
    """The DMP's pace holding deposits back now (``pending``: the outbox's waiting items),
    or None: ``perSecond`` the pace allowed, ``rate`` the deposits started in the last
    second (the busiest establishment held), ``waiting`` the deposits due that wait their
    turn (the whole workstation's: a count, nothing of whose), ``message`` for people."""
    status = outbox.throttle.status() if outbox.throttle is not None else None
    now = outbox._clock()
    if status is None or now < paused_until:  # a pause, not the pace, holds them
        return None
    waiting = sum(1 for i in pending if i.state is ItemState.SENDING or i.next_attempt <= now)
    if not waiting:  # the burst is over: nothing left for the pace to hold back
        return None
    return {"perSecond": pace_value(status.per_second), "rate": status.rate, "waiting": waiting,
            "message": throttle_text(status.per_second, waiting)}


def outbox_json(outbox: Outbox, *, sending: dict[str, Any] | None,
                paused_until: float = 0.0,
                professional: str | object | None = EVERYONE) -> dict[str, Any]:
    """The outbox as the local API gives it (agent/views/localapi/openapi.yaml, ``Outbox``): the
    counts, each waiting item with why and when it is tried again, what stops the outbox
    writing, its quarantine, the rebuild of this start, and the DMP's pace when it holds
    deposits back (`throttle_json`; null otherwise).

    ``professional`` (an idNat_PS, or None when no session is open) scopes the items and
    the pending and failed counts to that professional's own deposits; the others (another
    professional's, or an older item without its author) are only counted, in ``others``
    (the worker still sends them all)."""
    counts = outbox.counts()
    items = []
    queued = outbox.pending()
    throttle = throttle_json(outbox, queued, paused_until)
    listed = queued + outbox.failed()
    whys = waiting_all(listed, write_problem=outbox.write_problem, paused_until=paused_until)
    pending, failed = counts.pending, counts.failed
    others: dict[str, Any] = {"pending": 0, "failed": 0, "reasons": {}}
    if professional is not EVERYONE:
        mine = [i for i in listed if professional is not None and author_of(i) == professional]
        own_ids = {i.id for i in mine}
        for item in listed:
            if item.id not in own_ids:
                others["failed" if item.state is ItemState.FAILED else "pending"] += 1
                # Why they wait, counted: no title, no patient, nothing of whose they are.
                cause = str(whys[item.id].cause or "") or "not-tried"
                others["reasons"][cause] = others["reasons"].get(cause, 0) + 1
        pending = sum(1 for i in mine if i.state is not ItemState.FAILED)
        failed = len(mine) - pending
        if sending is not None and sending.get("id") not in own_ids:
            sending = None  # someone else's deposit: its title is not this one's to see
        listed = mine
    for item in listed:
        why = whys[item.id]
        items.append({
            "id": item.id, "state": item.state.value,
            "title": str(item.metadata.get("title", "")), "attempts": item.attempts,
            "lastError": item.last_error or "", "created": _iso(item.created),
            "uniqueId": item.unique_id, "reason": why.cause, "reasonText": why.text,
            "status": item.last_status,
            "nextAttempt": None if why.next_attempt is None else _iso(why.next_attempt)})
    held = quarantine_report(outbox.directory)
    return {"pending": pending, "failed": failed, "done": counts.done, "others": others,
            "sending": sending, "items": items, "problem": problem(outbox),
            "quarantine": None if held is None else {
                "path": str(held.path), "folders": len(held.folders), "files": held.files},
            "recovered": outbox.rebuilt, "throttle": throttle}


def quarantine_text(held: QuarantineReport) -> str:
    return _("{count} file(s) set aside in {path} (the reasons: reasons.txt); nothing there is "
             "deleted").format(count=held.files, path=held.path)


def outbox_lines(outbox: Outbox) -> list[str]:
    """`dmp-agent outbox`: the counts, the DMP's pace when it holds deposits back (only
    while this process sends: a running agent holds the outbox), each waiting item with why
    and when, the quarantine."""
    counts = outbox.counts()
    lines = ([_("Warning: {text}").format(text=terminal_text(outbox.rebuilt))]
             if outbox.rebuilt else [])
    lines.append(_("Outbox: {pending} waiting, {failed} refused, {done} deposited").format(
        pending=counts.pending, failed=counts.failed, done=counts.done))
    queued = outbox.pending()
    throttle = throttle_json(outbox, queued)
    if throttle is not None:
        lines.append(_("Pace: {message} — {rate} in the last second").format(
            message=throttle["message"], rate=throttle["rate"]))
    listed = queued + outbox.failed()
    whys = waiting_all(listed, write_problem=outbox.write_problem)
    for item in listed:
        why = whys[item.id]
        retry = "" if why.next_attempt is None else \
            _("; next try {time}").format(time=_local(why.next_attempt))
        lines.append("  " + _("no. {id} [{state}] {title} ({created}, {attempts} "
                              "attempt(s)): {why}").format(
            id=item.id, state=item.state.value, title=terminal_text(item.metadata.get(
                "title", "")), created=_local(item.created), attempts=item.attempts,
            why=why.text) + f"{retry} — {terminal_text(item.last_error or '-')}")
    held = quarantine_report(outbox.directory)
    if held is not None:
        lines.append(_("Quarantine: {what}").format(what=quarantine_text(held)))
    return lines


def recover_lines(outbox: Outbox) -> list[str]:
    """`dmp-agent outbox --recover`: rebuild, then say what was done (by the opening too)
    and what is left."""
    again: Repair = outbox.recover()
    done = outbox.repair
    lines = [_("Recovery: {rebuilt} deposit(s) queued again, {restored} file(s) brought back "
               "from quarantine, {quarantined} put in quarantine, {removed} removed "
               "(acknowledged already, or duplicates)").format(
                 rebuilt=done.rebuilt + again.rebuilt, restored=again.restored,
                 quarantined=done.quarantined + again.quarantined,
                 removed=done.removed + again.removed),
             _("Queued deposits go out while the agent runs (dmp-agent run)")]
    return outbox_lines(outbox) + lines


__all__ = ["EMPTY_JSON", "EVERYONE", "Waiting", "author_of", "outbox_json", "outbox_lines",
           "problem",
           "quarantine_text", "recover_lines", "throttle_json", "waiting", "waiting_all"]
