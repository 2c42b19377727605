"""The cards and the session of a workflow command: find the CPS and the Vitale card by
their ATR, read the Vitale card and choose the person, ask the PIN (terminal, or one line of
standard input), open the card-rooted session (agent/views/commands.py uses them)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from agent.client.dmp import DmpClient, PatientContext
from agent.config import AgentConfig, ConfigError, load_config
from agent.core.pin import PinPrompt, TerminalPrompt
from agent.core.professional import PinCancelledError, ProfessionalSession
from agent.install.enrol import EnrolmentError, load_workstation
from agent.safe_text import terminal_text
from cardreader.apdu import ApduProtocol
from cardreader.atr import CardKind, identify
from cardreader.errors import CardError, NoCardError, PinBlockedError, WrongPinError
from cardreader.pcsc import PcscConnection, list_readers
from cardreader.vitale import Beneficiary, VitaleCard, read_vitale
from wire.mhd import Author

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandError", "StdinPrompt", "Work",
           "choose_person", "find_reader", "load_command_config", "open_work",
           "read_patient_card"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A failure the user can act on: one sentence, French then English, and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


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


# -- finding the cards ------------------------------------------------------------------------


def _card_kind(reader: str) -> CardKind | None:
    try:
        with PcscConnection(reader) as connection:
            return identify(connection.atr)[0]
    except NoCardError:
        return None
    except CardError:
        return CardKind.UNKNOWN  # mute or half-inserted: not ours to use


def find_reader(config: AgentConfig, kind: CardKind, wanted: str | None) -> str:
    """The reader holding a card of ``kind`` (``wanted`` or the configured readers first)."""
    try:
        readers = list_readers()
    except CardError as error:
        raise CommandError(f"{error}\n  → démarrez pcscd / start pcscd "
                           "(systemctl start pcscd)") from None
    if not readers:
        raise CommandError("Aucun lecteur de carte / no card reader found: plug one in.")
    configured = config.cps_readers if kind is CardKind.CPS else config.vitale_readers
    candidates = [r for r in readers if wanted is None or r == wanted]
    if wanted is None and configured:
        candidates = [r for r in readers if r in configured]
    for reader in candidates:
        if _card_kind(reader) is kind:
            return reader
    what = "CPS (carte du professionnel / professional card)" if kind is CardKind.CPS else (
        "Vitale (carte du patient / patient's card)")
    raise CommandError(f"Carte {what} absente des lecteurs / card missing: insert it.")


def read_patient_card(reader: str) -> VitaleCard:
    try:
        with PcscConnection(reader) as connection:
            return read_vitale(ApduProtocol(connection))
    except CardError as error:
        raise CommandError(f"Lecture de la carte Vitale impossible / cannot read the Vitale "
                           f"card: {error}") from None


def choose_person(card: VitaleCard, number: int | None, out: TextIO) -> Beneficiary:
    people = card.beneficiaries
    if number is None:
        if len(people) == 1:
            return people[0]
        print("Plusieurs bénéficiaires sur la carte / several persons on the card:", file=out)
        for index, person in enumerate(people, 1):
            # The card's text is someone else's: shown, never obeyed by the terminal.
            print(terminal_text(f"  {index}. {person.first_name} {person.last_name}, né(e) le "
                                f"{person.birth_date} ({person.quality_label})"), file=out)
        raise CommandError("Choisissez avec --person N / choose one with --person N",
                           EXIT_USAGE)
    if not 1 <= number <= len(people):
        raise CommandError(f"--person {number}: la carte porte {len(people)} personne(s) / "
                           f"the card holds {len(people)} person(s)", EXIT_USAGE)
    return people[number - 1]


# -- the session ------------------------------------------------------------------------------


@dataclass
class Work:
    """An open professional session, and the patient when the command needs one."""

    config: AgentConfig
    session: ProfessionalSession
    dmp: DmpClient
    author: Author
    patient: PatientContext | None = None

    @property
    def holder(self) -> str:
        identity = self.session.identity
        assert identity is not None
        return f"{identity.first_name} {identity.last_name}"


def _prompt(args: argparse.Namespace) -> PinPrompt:
    return StdinPrompt() if args.pin_stdin else TerminalPrompt()


@contextlib.contextmanager
def open_work(args: argparse.Namespace, *, with_patient: bool = True) -> Iterator[Work]:
    config = load_command_config()
    vitale: VitaleCard | None = None
    person: Beneficiary | None = None
    if with_patient:  # the patient's card first: no PIN typed for nothing
        vitale = read_patient_card(find_reader(config, CardKind.VITALE, args.vitale_reader))
        person = choose_person(vitale, args.person, sys.stderr)
    cps_reader = find_reader(config, CardKind.CPS, args.cps_reader)
    try:
        workstation = load_workstation(config)
    except EnrolmentError as error:
        raise CommandError(f"{error}\n  → dmp-agent enrol") from None
    prompt = _prompt(args)
    try:
        session = ProfessionalSession.open(cps_reader, workstation, config.host_url, prompt,
                                           timeout=config.host_timeout)
    except PinCancelledError:
        if getattr(prompt, "last_try_kept", False):
            raise CommandError("Dernier essai avant blocage de la carte : saisissez le code au "
                               "clavier, sans --pin-stdin / last try before the card is "
                               "blocked: type the PIN at the terminal, without --pin-stdin"
                               ) from None
        tries = getattr(prompt, "refused_tries", None)
        if tries is not None:
            raise CommandError(f"Code porteur erroné : {tries} essai(s) restant(s) / wrong "
                               f"PIN: {tries} tries left") from None
        raise CommandError("Saisie du code porteur annulée / PIN entry cancelled") from None
    except WrongPinError as error:
        raise CommandError(f"Code porteur erroné : {error.tries_left} essai(s) restant(s) / "
                           f"wrong PIN: {error.tries_left} tries left") from None
    except PinBlockedError:
        raise CommandError("Carte CPS bloquée : débloquez-la avec le code PUK / the CPS is "
                           "blocked: unblock it with the PUK") from None
    with session:
        identity, situation = session.identity, session.situation
        assert identity is not None and situation is not None
        author = Author(identity.id_nat_ps, identity.profession_code, situation.structure_id,
                        identity.specialty_code, identity.last_name, identity.first_name)
        work = Work(config, session, session.dmp(), author)
        if vitale is not None and person is not None:
            work.patient = work.dmp.resolve(vitale, person)
        yield work


def load_command_config() -> AgentConfig:
    try:
        return load_config()
    except ConfigError as error:
        raise CommandError(f"Configuration: {error}") from None
