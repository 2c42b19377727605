"""The core's card part: one `Monitor` (SCardGetStatusChange, no polling) for every reader,
its events handled on one thread, in order, none of them waiting for the host. A CPS removal
ends the session at once, a Vitale card's arrival starts its patient context, its removal
clears it."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING

from agent.card_words import blocked_cps_text, localized, no_card_text
from agent.core.state import CoreState
from agent.i18n import _
from cardreader.atr import CardKind
from cardreader.pcsc import EventKind

if TYPE_CHECKING:
    from cardreader.inspect import SlotReport
    from cardreader.pcsc import SlotEvent

log = logging.getLogger("agent.core")



class CardsPart(CoreState):
    def _cps_reader(self) -> str | None:
        if self._session is not None:
            return self._session.reader
        for reader, report in self._slots.items():
            if report.kind is CardKind.CPS and self.may_hold("cps", reader):
                return reader
        return None

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until the cards present when the monitor started (or now) are read: the
        command line then knows what is in the readers."""
        self._monitor.ready.wait(timeout)
        marker = threading.Event()
        self._events.put(marker)
        return marker.wait(timeout)

    def _card_loop(self) -> None:
        while (event := self._events.get()) is not None:
            if isinstance(event, threading.Event):
                event.set()
                continue
            try:
                self._on_card_event(event)
            except Exception:  # keep watching whatever one event did
                log.exception("card event %s failed", event.kind)

    def _on_card_event(self, event: SlotEvent) -> None:
        kind = event.kind
        if kind is EventKind.SERVICE_LOST:
            with self._lock:
                self._service_up = False
                self._slots.clear()
                self._problem = _("The smart-card service stopped → systemctl start pcscd")
                self._service_problem = self._problem
            if getattr(self._session, "card_bound", True):  # no card, no end (e-CPS)
                self._session_gone("service-lost")
            self._clear_patient(None)
            self._publish("cards")
            return
        if kind is EventKind.SERVICE_BACK:
            with self._lock:
                self._service_up = True
                if self._problem and self._problem == self._service_problem:
                    self._problem = ""
            self._publish("cards")
            return
        if kind in (EventKind.READER_REMOVED, EventKind.CARD_REMOVED):
            self._card_left(event)
        elif kind in (EventKind.READER_ADDED, EventKind.CARD_INSERTED, EventKind.CARD_MUTE):
            self._card_came(event)

    def _card_left(self, event: SlotEvent) -> None:
        from cardreader.inspect import CardStatus, SlotReport

        reader = event.reader
        with self._lock:
            if event.kind is EventKind.READER_REMOVED:
                self._slots.pop(reader, None)
            else:
                self._slots[reader] = SlotReport(reader, CardStatus.NONE,
                                                 message=no_card_text())
            if self._session is None and self._cps_reader() is None \
                    and getattr(self, "_ecps", None) is None:  # not during an e-CPS login
                # The CPS of a locked (or never opened) session left.
                self._session_state, self._session_error = "none", ""
                self._session_tries = None
            session = self._session
        # The patient's data go first, from the API, the page and the tray; the session's
        # end is then recorded and told to the host in the background (agent.client.
        # revocations): nothing on this thread waits for the network, so the next card
        # event (the next patient's Vitale card) is handled at once, whatever the link.
        self._clear_patient(reader)
        self._drop_early_opening(reader)
        if session is not None and session.reader == reader:
            self._session_gone("card-removed", session)
        self._publish("cards")
        self._publish("session")

    def _card_came(self, event: SlotEvent) -> None:
        # The card parsers (CPS, Vitale): at the first card, not at start (issue 11).
        from cardreader.inspect import CardStatus, SlotReport, inspect_reader

        reader = event.reader
        # A reader's cards are reported after it as insertions: none until then. Its
        # message in the agent's words, once, here.
        report = localized(inspect_reader(reader, self._slots.get(reader))
                           if event.kind is not EventKind.READER_ADDED
                           else SlotReport(reader, CardStatus.NONE))
        usable = report.status in (CardStatus.VALID, CardStatus.CHANGED)
        with self._lock:
            self._slots[reader] = report
            is_cps = report.kind is CardKind.CPS and self.may_hold("cps", reader)
            if is_cps and self._session is None and getattr(self, "_ecps", None) is None:
                self._session_state = "locked" if usable else "none"
                self._session_error = "" if usable else report.message
                self._session_tries = report.pin_tries_left
        self._publish("cards")
        if is_cps:
            if usable and self._session is None:
                self._prefetch_opening(reader)
            if report.status is CardStatus.BLOCKED:
                self._notice("error", _("CPS card blocked"), blocked_cps_text(),
                             code="cps-blocked")
            elif report.status is CardStatus.EXPIRED:
                self._jobs.put(lambda: self._explain_expiry(report))
            self._publish("session")
        if (report.kind is CardKind.VITALE and report.vitale is not None
                and self.may_hold("vitale", reader)):
            self._new_patient(reader, report.vitale)

    def _explain_expiry(self, report: SlotReport) -> None:
        """Clock first: a CPS "expired" by this clock may be a clock off by months; the
        host's Date tells, and the slot and the session then say so (not the card)."""
        from agent.client.session import clock_skew  # only for an expired CPS

        workstation = self._workstation
        if workstation is None:
            return
        skew = clock_skew(self.config.host_url, workstation, self.config.host_timeout)
        if skew is None:
            return
        with self._lock:
            if self._slots.get(report.reader) is not report:
                return  # the card left or changed meanwhile
            self._slots[report.reader] = dataclasses.replace(report, message=str(skew))
            if self._session is None:
                self._session_error = str(skew)
        self._publish("cards")
        self._publish("session")
