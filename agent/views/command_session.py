"""The command line's way to the agent core: it runs the same `AgentService` as `dmp-agent
run`, in its own process, for the length of one command.

`open_work` starts the core (one card monitor: the CPS and the Vitale card found by their
ATR, in the readers named or configured), checks the patient's card first (several persons
and none chosen: listed, and the command stops before any PIN is typed), asks the PIN
(terminal, or one line of standard input), opens the session through the core and waits for
the patient's dossier. Every failure is an `AgentError`, said once by `agent.views.commands`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from agent.card_words import card_error_text, quality_text
from agent.client.dmp import PatientContext
from agent.config import AgentConfig, ConfigError, load_config
from agent.core.pin import PinPrompt, TerminalPrompt
from agent.core.professional import ProfessionalSession, SessionEndedError
from agent.core.secrets_sheet import display_date
from agent.core.service import AgentService
from agent.core.state import PatientState
from agent.errors import AgentError
from agent.i18n import N_, _
from agent.outbox import OutboxBusyError
from agent.safe_text import terminal_text
from agent.views.agent_client import AgentCalls, RunningAgent, find_running_agent
from cardreader.atr import CardKind
from cardreader.errors import CardError
from cardreader.inspect import SlotReport
from cardreader.pcsc import list_readers
from cardreader.vitale import VitaleCard

__all__ = ["DOSSIER_WAIT", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandError",
           "StdinPrompt", "Work", "choose_identity", "load_command_config", "open_agent",
           "open_work", "patient_failure", "start_core", "wait_for_dossier"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DOSSIER_WAIT = 5.0  # seconds beyond the host timeout for the dossier to be read
# Translated where raised (`_`): the language is chosen after the import.
CPS_MISSING = N_("CPS card (the professional's card) missing from the readers: insert it.")
VITALE_MISSING = N_("Vitale card (the patient's card) missing from the readers: insert it.")


class CommandError(AgentError):
    """A failure the user can act on: one sentence in the agent's language; ``usage`` when
    the command was misused (exit status 2)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message, code="usage" if code == EXIT_USAGE else "failed",
                         status=400, usage=code == EXIT_USAGE)


class StdinPrompt:
    """The PIN as one line of standard input (automation). Presented once only: asked again
    means the card refused it, and another line would burn a try, so it cancels instead and
    remembers the tries left for the error message. The card's last try is left to a human
    at the terminal: a script holding a wrong PIN must not block the card."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._asked = False
        self.refused_tries: int | None = None
        self.last_try_kept = False

    def ask(self, holder: str, tries_left: int) -> str | None:
        if self._asked:
            self.refused_tries = tries_left
            return None
        if tries_left <= 1:
            self.last_try_kept = True
            return None
        self._asked = True
        line = (self._stream or sys.stdin).readline()
        return line.rstrip("\r\n") or None


@dataclass
class Work:
    """The core with an open session, and the patient when the command needs one."""

    config: AgentConfig
    core: AgentService
    session: ProfessionalSession
    patient: PatientContext | None = None

    @property
    def holder(self) -> str:
        identity = self.session.identity
        assert identity is not None
        return f"{identity.first_name} {identity.last_name}"

    @property
    def id_nat_ps(self) -> str:
        assert self.session.identity is not None
        return self.session.identity.id_nat_ps

    @property
    def state(self) -> PatientState:
        p = self.core.patient
        if p is None:
            raise AgentError(_("The Vitale card was removed"), code="no-patient", status=409)
        return p


def load_command_config() -> AgentConfig:
    try:
        return load_config()
    except ConfigError as error:
        raise CommandError(_("Configuration: {error}").format(error=error)) from None


@contextlib.contextmanager
def start_core(args: argparse.Namespace, *, with_outbox: bool = False,
               outbox_optional: bool = False) -> Iterator[AgentService]:
    """The core, started, with the cards in the readers read. ``outbox_optional``: when
    another process holds the outbox (`dmp-agent run`), start without it and say what that
    leaves out (the identity checks it keeps) instead of failing."""
    config = load_command_config()
    try:
        if not list_readers() and not getattr(args, "ecps", False):
            raise CommandError(_("No card reader found: plug one in."))
    except CardError as error:
        if not getattr(args, "ecps", False):  # the e-CPS needs no reader
            raise CommandError(f"{card_error_text(error)}\n  → "
                               + _("start pcscd (systemctl start pcscd)")
                               ) from None
    holder = f"dmp-agent {getattr(args, 'command', '') or ''}".strip()

    def make(outbox: bool) -> AgentService:
        return AgentService(config, cps_reader=getattr(args, "cps_reader", None),
                            vitale_reader=getattr(args, "vitale_reader", None),
                            with_outbox=outbox, holder=holder)

    core = make(with_outbox)
    try:
        try:
            core.start()
        except OutboxBusyError as error:
            if not outbox_optional:
                raise
            core.stop()
            core = make(False)
            print(terminal_text(_(
                "{holder} holds the outbox: the identity status shown leaves out the identity "
                "documents checked (see the page)").format(
                    holder=error.holder or _("another agent"))), file=sys.stderr)
            core.start()
        core.settle()
        yield core
    finally:
        core.stop()


def card_in(core: AgentService, kind: CardKind) -> SlotReport | None:
    role = "cps" if kind is CardKind.CPS else "vitale"
    for reader, report in core.slots.items():
        if report.kind is kind and core.may_hold(role, reader):
            return report
    return None


def _check_person(card: VitaleCard, number: int | None) -> None:
    people = card.beneficiaries
    if number is None and len(people) > 1:
        listed = "\n".join(  # the card's text is someone else's: shown, never obeyed
            terminal_text(_("  {number}. {first} {last}, born {date} ({quality})").format(
                number=i, first=p.first_name, last=p.last_name, date=p.birth_date,
                quality=quality_text(p))) for i, p in enumerate(people, 1))
        raise CommandError(_("Several persons on the card:\n{listed}\nChoose one with "
                             "--person N").format(listed=listed), EXIT_USAGE)
    if number is not None and not 1 <= number <= len(people):
        raise CommandError(_("--person {number}: the card holds {count} person(s)").format(
            number=number, count=len(people)), EXIT_USAGE)


def _prompt(args: argparse.Namespace) -> PinPrompt:
    return StdinPrompt() if getattr(args, "pin_stdin", False) else TerminalPrompt()


def open_session(core: AgentService, args: argparse.Namespace) -> ProfessionalSession:
    if getattr(args, "ecps", False):  # no card: the phone approves (docs/psc.md)
        from agent.views.ecps_cli import open_ecps_session

        return open_ecps_session(core, args)
    report = card_in(core, CardKind.CPS)
    if report is None:
        raise CommandError(_(CPS_MISSING))
    if core.problem and "enrol" in core.problem:
        raise CommandError(core.problem)
    prompt = _prompt(args)
    wanted = getattr(args, "situation", None)
    situation: int | str = 0
    if wanted:
        # A small number is the situation's rank; anything else a structure id (digits too).
        situation = int(wanted) - 1 if wanted.isdigit() and len(wanted) <= 2 else wanted
    try:
        core.open_session(prompt, situation, ask=False)
    except AgentError as error:
        if error.code == "pin-cancelled" and getattr(prompt, "last_try_kept", False):
            raise CommandError(_("Last try before the card is blocked: type the PIN at the "
                                 "terminal, without --pin-stdin")) from None
        raise
    session = core.session
    if session is None:
        raise SessionEndedError("card-removed")
    held = core.slots.get(session.reader)
    situations = held.situations if held is not None else ()
    if len(situations) > 1 and session.situation is not None:
        # Never silently: the structure signs every deposit and scopes the care team.
        used = session.situation
        print(terminal_text(_("Practice situation: {name} ({id}); the card holds {count}: "
                              "--situation N for another").format(
            name=used.structure_name, id=used.structure_id, count=len(situations))),
              file=sys.stderr)
    return session


def wait_for_dossier(core: AgentService, timeout: float) -> PatientState:
    """The patient's dossier once read (or the reason it could not be)."""
    core.wait_until(lambda: core.patient is None
                    or core.patient.state in ("ready", "error", "choosing",
                                              "choosing-identity"), timeout)
    p = core.patient
    if p is None:
        raise AgentError(_("The Vitale card was removed"), code="no-patient", status=409)
    if p.state == "choosing-identity":
        return p  # open_work asks the user (--identity N)
    if p.state == "error":
        raise p.failure or AgentError(p.error, code="no-patient", status=409)
    if p.state != "ready":
        raise AgentError(_("The dossier could not be read in time"), code="timeout",
                         status=504)
    return p


@contextlib.contextmanager
def open_work(args: argparse.Namespace, *, with_patient: bool = True,
              with_outbox: bool = False, outbox_optional: bool = False) -> Iterator[Work]:
    with start_core(args, with_outbox=with_outbox, outbox_optional=outbox_optional) as core:
        person = getattr(args, "person", None)
        if with_patient:  # the patient's card first: no PIN typed for nothing
            vitale = card_in(core, CardKind.VITALE)
            if vitale is None or vitale.vitale is None:
                raise CommandError(_(VITALE_MISSING) if vitale is None else
                                   _("Cannot read the Vitale card: {reason}").format(
                                       reason=vitale.message))
            _check_person(vitale.vitale, person)
        session = open_session(core, args)
        work = Work(core.config, core, session)
        if with_patient:
            core.wait_until(lambda: core.patient is not None, DOSSIER_WAIT)
            p = core.patient
            if person is not None and p is not None and p.person_index != person:
                core.select_person(person)
            wait = core.config.host_timeout + DOSSIER_WAIT
            p = wait_for_dossier(core, wait)
            if p.state == "choosing-identity":
                choose_identity(core, p, getattr(args, "identity", None))
                p = wait_for_dossier(core, wait)
            work.patient = p.context
        yield work


def choose_identity(core: AgentService, p: PatientState, number: int | None) -> None:
    """Several identities answered: the one the user named (--identity N), never a guess;
    without it the candidates are listed with their traits and the command stops."""
    if number is None or not 1 <= number <= len(p.candidates):
        listed = "\n".join(terminal_text(
            _("  {number}. {birth_name} {first_names}, {sex}, born {date} in {place}, "
              "INS {ins}").format(number=i, birth_name=c.birth_name, first_names=c.first_names,
                                  sex=c.sex, date=display_date(c.birth_date),
                                  place=c.birth_place, ins=c.ins))
            for i, c in enumerate(p.candidates, 1))
        raise CommandError(_("The INS service answered several identities:\n{listed}\nCompare "
                             "them with the patient's identity document and choose with "
                             "--identity N").format(listed=listed), EXIT_USAGE)
    core.choose_identity(number)


def patient_failure(p: dict[str, Any]) -> AgentError:
    """The refusal that left the patient JSON ``p`` in state "error", code and status kept."""
    return AgentError(p["error"], code=p.get("errorCode") or "no-patient",
                      status=p.get("errorStatus") or 409)


# -- beside a running agent (issue 17) ------------------------------------------------------

READY_STATES = ("ready", "error", "choosing", "choosing-identity")


@contextlib.contextmanager
def open_agent(args: argparse.Namespace, *, with_patient: bool = True,
               with_outbox: bool = False, outbox_optional: bool = False,
               checks_cda: bool = False) -> Iterator[AgentCalls]:
    """The agent a command works with, its session open (and the patient's dossier read when
    ``with_patient``): `dmp-agent run` when it runs (through its local API: its outbox,
    its session, no PIN asked when the page opened it), else the core in this process
    (`open_work`). The command then makes the same calls either way. ``checks_cda`` (a
    deposit): in this process, the CI-SIS schematrons start compiling at once."""
    running = find_running_agent(load_command_config())
    if running is None:
        if checks_cda:
            from wire import cda

            # SaxonC compiles them in the worker process (10-30 s, docs/cda.md) while the PIN
            # is typed, the session opens and the dossier is read: the check then waits less.
            cda.preload()
        with open_work(args, with_patient=with_patient, with_outbox=with_outbox,
                       outbox_optional=outbox_optional) as work:
            yield work.core
        return
    try:
        _open_remote_session(running, args)
        if with_patient:
            _remote_patient(running, args)
        yield running
    finally:
        running.close()


def _open_remote_session(agent: RunningAgent, args: argparse.Namespace) -> None:
    """The running agent's session: used as it is when open, else opened with the PIN typed
    here (the same prompt and rules as in-process: --pin-stdin presents it once)."""
    session = agent.snapshot()["session"]
    if session["state"] == "open":
        return
    if session["state"] in ("opening", "choosing"):
        raise CommandError(_("The session is being opened on the page: finish there, then "
                             "run the command again"))
    who = session.get("professional")
    if who is None:
        raise CommandError(_(CPS_MISSING))
    prompt = _prompt(args)
    wanted = getattr(args, "situation", None)
    situation: int | str = 0
    if wanted:
        situation = int(wanted) - 1 if wanted.isdigit() and len(wanted) <= 2 else wanted
    tries = session.get("pinTriesLeft") or 3
    refused: AgentError | None = None
    while True:
        pin = prompt.ask(terminal_text(f"{who['firstName']} {who['lastName']}"), tries)
        if pin is None:
            if getattr(prompt, "last_try_kept", False):
                raise CommandError(_("Last try before the card is blocked: type the PIN at "
                                     "the terminal, without --pin-stdin"))
            raise refused or AgentError(_("PIN entry cancelled"), code="pin-cancelled",
                                        status=400)
        try:
            opened = agent.open_session(pin, situation)
            break
        except AgentError as error:
            if error.code != "wrong-pin":
                raise
            refused, tries = error, int(error.extra.get("triesLeft") or 0)
    _say_situation(opened, agent.snapshot()["session"])


def _say_situation(session: dict[str, Any], known: dict[str, Any]) -> None:
    """Never silently: the structure signs every deposit and scopes the care team."""
    used, held = session.get("situation"), known.get("situations") or ()
    if used is not None and len(held) > 1:
        print(terminal_text(_("Practice situation: {name} ({id}); the card holds {count}: "
                              "--situation N for another").format(
            name=used["name"], id=used["structureId"], count=len(held))), file=sys.stderr)


def _remote_patient(agent: RunningAgent, args: argparse.Namespace) -> None:
    """The running agent's patient, its dossier read: the person and the identity chosen
    as the command says (--person, --identity), never guessed."""
    wait = load_command_config().host_timeout + DOSSIER_WAIT

    def patient() -> dict[str, Any]:
        found: dict[str, Any] = agent.snapshot()["patient"]
        return found

    p = patient()
    if p["state"] == "none" and not any(slot.get("kind") == "vitale"
                                        for slot in agent.snapshot()["cards"]["slots"]):
        raise CommandError(_(VITALE_MISSING))
    agent.wait_until(lambda: patient()["state"] in READY_STATES, wait)
    p = patient()
    person = getattr(args, "person", None)
    people = p.get("beneficiaries") or []
    if person is not None and not 1 <= person <= len(people):
        raise CommandError(_("--person {number}: the card holds {count} person(s)").format(
            number=person, count=len(people)), EXIT_USAGE)
    if p["state"] == "choosing" and person is None:
        listed = "\n".join(terminal_text(_(
            "  {number}. {first} {last}, born {date} ({quality})").format(
                number=b["index"], first=b["firstName"], last=b["lastName"],
                date=b["birthDate"], quality=b["quality"])) for b in people)
        raise CommandError(_("Several persons on the card:\n{listed}\nChoose one with "
                             "--person N").format(listed=listed), EXIT_USAGE)
    if person is not None and p.get("personIndex") != person:
        agent.select_person(person)
        agent.wait_until(lambda: patient()["state"] in READY_STATES
                         and patient().get("personIndex") == person, wait)
        p = patient()
    if p["state"] == "choosing-identity":
        number = getattr(args, "identity", None)
        candidates = p.get("candidates") or []
        if number is None or not 1 <= number <= len(candidates):
            listed = "\n".join(terminal_text(
                _("  {number}. {birth_name} {first_names}, {sex}, born {date} in {place}, "
                  "INS {ins}").format(number=c["index"], birth_name=c.get("birthName", ""),
                                      first_names=c.get("firstNames", ""),
                                      sex=c.get("sex", ""),
                                      date=display_date(c.get("birthDate", "")),
                                      place=c.get("birthPlace", ""), ins=c.get("ins", "")))
                for c in candidates)
            raise CommandError(_("The INS service answered several identities:\n{listed}\n"
                                 "Compare them with the patient's identity document and "
                                 "choose with --identity N").format(listed=listed), EXIT_USAGE)
        agent.choose_identity(number)
        agent.wait_until(lambda: patient()["state"] in ("ready", "error"), wait)
        p = patient()
    if p["state"] == "error":
        raise patient_failure(p)
    if p["state"] != "ready":
        raise AgentError(_("The dossier could not be read in time"), code="timeout",
                         status=504)
