"""`dmp-agent` workflow commands: the daily work with a CPS and a Vitale card in the readers.

Each command finds the professional's card (CPS) and the patient's Vitale card by their ATR,
reads the Vitale card (``--person N`` picks a beneficiary; with several and none chosen the
command lists them and stops), asks the CPS PIN (the terminal, or one line of standard input
with ``--pin-stdin``: never an argument or the environment), opens a card-rooted session and
works over `DmpClient`. Exit codes: 0 done, 1 refused or failed (card, PIN, host), 2 misuse.
See docs/agent-cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import mimetypes
import os
import re
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

from cardreader.apdu import ApduProtocol
from cardreader.atr import CardKind, identify
from cardreader.cps import CpsCard
from cardreader.errors import CardError, NoCardError, PinBlockedError, WrongPinError
from cardreader.pcsc import PcscConnection, list_readers
from cardreader.vitale import Beneficiary, VitaleCard, read_vitale
from policies import AccessMode, ModeCode
from wire.mhd import Author, DocumentEntry

from .config import AgentConfig, ConfigError, load_config, private_dir
from .dmp import (
    FORMAT_CODES,
    DmpClient,
    DmpError,
    PatientContext,
    PreparedDeposit,
    deposit_types,
)
from .enrol import EnrolmentError, load_workstation
from .outbox import Item, ItemState, Outbox, OutboxError, RetryPolicy, Sender, SendResult
from .pin import PinPrompt, TerminalPrompt
from .professional import PinCancelledError, ProfessionalSession, SessionEndedError
from .secrets_sheet import SecretsSheet, display_date, write_secrets_sheet
from .session import SessionError

__all__ = ["WORKFLOW_COMMANDS", "CommandError", "StdinPrompt", "add_workflow_commands"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EMERGENCY_TAG = "[BRIS DE GLACE / BREAK-THE-GLASS]"
REGULATION_TAG = "[CENTRE 15 / REGULATION CENTRE]"


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
            print(f"  {index}. {person.first_name} {person.last_name}, né(e) le "
                  f"{person.birth_date} ({person.quality_label})", file=out)
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
    config = _config()
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


def _config() -> AgentConfig:
    try:
        return load_config()
    except ConfigError as error:
        raise CommandError(f"Configuration: {error}") from None


def _host_error(error: SessionError) -> str:
    status = f" (HTTP {error.status})" if error.status else ""
    return f"Refus de l'hôte DMP / the DMP host refused{status}: {error.code}: {error}"


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.action`` and turn every expected failure into one clear message."""
    action: Callable[[argparse.Namespace], int] = args.action
    try:
        return action(args)
    except CommandError as error:
        print(f"dmp-agent {args.command}: {error}", file=sys.stderr)
        return error.code
    except SessionEndedError as error:
        print(f"dmp-agent {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except SessionError as error:
        print(f"dmp-agent {args.command}: {_host_error(error)}", file=sys.stderr)
        return EXIT_FAILED
    except httpx.TransportError as error:
        print(f"dmp-agent {args.command}: hôte DMP injoignable / DMP host unreachable "
              f"({type(error).__name__}: {error}); vérifiez host.url dans la configuration / "
              "check host.url in the configuration", file=sys.stderr)
        return EXIT_FAILED
    except CardError as error:
        print(f"dmp-agent {args.command}: carte / card: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OutboxError as error:
        print(f"dmp-agent {args.command}: file d'envoi / outbox: {error}", file=sys.stderr)
        return EXIT_FAILED


# -- output -----------------------------------------------------------------------------------


def _say(text: str, mode: AccessMode | None = None) -> None:
    # In an emergency mode every line says so: such an access must never look ordinary.
    prefix = ""
    if mode is not None:
        prefix = (REGULATION_TAG if mode.code is ModeCode.CENTRE_15 else EMERGENCY_TAG) + " "
    for line in text.splitlines() or [""]:
        print(f"{prefix}{line}", flush=True)


def _patient_line(patient: PatientContext) -> str:
    return (f"Patient: {patient.first_name} {patient.birth_name}, né(e) le "
            f"{display_date(patient.birth_date)} — INS {patient.ins}")


def _document_line(entry: DocumentEntry) -> str:
    flags = [f for f, on in (("masqué/masked", entry.masked),
                             ("invisible patient", entry.invisible_to_patient),
                             ("archivé/archived", entry.archived)) if on]
    if entry.class_code == "90":
        flags.append("déposé par le patient / patient's own")
    created = entry.creation_time.strftime("%d/%m/%Y")
    extra = f" [{', '.join(flags)}]" if flags else ""
    return (f"- {entry.title} ({entry.type_code}), {created}, {entry.author.first_name} "
            f"{entry.author.last_name}, {entry.size} octets/bytes{extra}\n  {entry.unique_id}")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:60] or "document"


# -- the commands -----------------------------------------------------------------------------


def cmd_patient(args: argparse.Namespace) -> int:
    with open_work(args) as work:
        assert work.patient is not None
        state = work.dmp.existence(work.patient)
        _say(_patient_line(work.patient))
        closed = f", fermé le / closed {state['closedAt']}" if state.get("closedAt") else ""
        _say(f"DMP: {state['status']}{closed}")
        _say(f"Autorisation / authorization: {state['authorization']}")
        _say(f"Médecin traitant DMP: {'oui/yes' if state.get('medecinTraitant') else 'non/no'}")
    return EXIT_OK


def _list_documents(args: argparse.Namespace, mode: AccessMode | None) -> int:
    with open_work(args) as work:
        assert work.patient is not None
        if not work.session.may_use(mode):
            raise CommandError(REGULATION_ONLY, EXIT_FAILED)
        if mode is not None:
            why = f"; justification: {mode.justification}" if mode.justification else ""
            _say(f"Accès tracé et notifié au patient / traced and notified to the patient{why}",
                 mode)
        _say(_patient_line(work.patient), mode)
        filters = {"isArchived": "true"} if getattr(args, "archived", False) else {}
        entries = work.dmp.documents(work.patient, mode, **filters)
        if args.type:
            entries = [e for e in entries if e.type_code in args.type]
        _say(f"{len(entries)} document(s)", mode)
        for entry in entries:
            _say(_document_line(entry), mode)
        if args.save is not None:
            directory = private_dir(args.save)  # health data: owner-only
            for number, entry in enumerate(entries, 1):
                body = work.dmp.retrieve(entry, mode)
                suffix = mimetypes.guess_extension(entry.mime_type) or ".bin"
                path = directory / f"{number:02d}-{_safe_name(entry.title)}{suffix}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    os.fchmod(out.fileno(), 0o600)  # an older file keeps its mode otherwise
                    out.write(body)
                _say(f"enregistré / saved: {path} (empreinte vérifiée / hash checked)", mode)
    return EXIT_OK


def cmd_documents(args: argparse.Namespace) -> int:
    return _list_documents(args, None)


def cmd_emergency(args: argparse.Namespace) -> int:
    justification = args.justification.strip()
    if len(justification) < 10:
        raise CommandError("--justification: décrivez l'urgence (10 caractères au moins) / "
                           "describe the emergency (at least 10 characters)", EXIT_USAGE)
    return _list_documents(args, DmpClient.emergency(justification))


def cmd_watch(args: argparse.Namespace) -> int:
    """The consulting room: the session stays open, each Vitale card inserted opens its
    patient's dossier, each removal clears it; ends with the CPS or Ctrl-C / SIGTERM."""
    from .patient_context import ContextEvent, PatientWatcher

    with open_work(args, with_patient=False) as work:
        readers = list_readers()
        vitale_reader = args.vitale_reader or next(
            (r for r in readers if r != work.session.reader), None)
        if vitale_reader is None:
            raise CommandError("Aucun second lecteur pour la carte Vitale / no reader left "
                               "for the Vitale card")

        def show(event: ContextEvent) -> None:
            if event.dossier is None:
                _say(f"— {event.error or 'contexte patient effacé / patient context cleared'}")
                return
            dossier = event.dossier
            _say(_patient_line(dossier.patient))
            _say(f"DMP: {dossier.existence['status']}, autorisation / authorization: "
                 f"{dossier.existence['authorization']}")
            _say(f"{len(dossier.documents)} document(s)")
            for entry in dossier.documents:
                _say(_document_line(entry))

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        _say(f"En attente de cartes Vitale dans {vitale_reader} / waiting for Vitale cards")
        with (
            PatientWatcher(vitale_reader, lambda: work.dmp, show),
            contextlib.suppress(KeyboardInterrupt),
        ):
            while not stop.is_set() and not work.session.wait_ended(0.5):
                pass
        if not work.session.alive:
            _say("Carte CPS retirée : session terminée / CPS removed: session ended")
    return EXIT_OK


REGULATION_ONLY = (
    "regulation-centre-only: le mode centre 15 est réservé aux structures enregistrées comme "
    "centre de régulation / the centre 15 mode is reserved to registered regulation centres")


def cmd_regulation(args: argparse.Namespace) -> int:
    return _list_documents(args, AccessMode.centre_15())


def _check_sheet_path(path: Path) -> None:
    # Checked before the DMP is created: the access code exists only on this sheet.
    if path.suffix.lower() != ".pdf":
        raise CommandError(f"--sheet {path}: un fichier .pdf est attendu / a .pdf file",
                           EXIT_USAGE)
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise CommandError(f"--sheet {path}: dossier absent ou non inscriptible / the "
                           "folder does not exist or is not writable", EXIT_USAGE)


def cmd_create_dmp(args: argparse.Namespace) -> int:
    if not args.consent:
        raise CommandError("Le consentement du patient est obligatoire : ajoutez --consent "
                           "après l'avoir recueilli / the patient's consent is required: "
                           "add --consent once collected", EXIT_USAGE)
    _check_sheet_path(args.sheet)
    with open_work(args) as work:
        patient = work.patient
        assert patient is not None
        _say(_patient_line(patient))
        state = work.dmp.existence(patient)
        if state["status"] != "absent":
            raise CommandError(f"Ce patient a déjà un DMP ({state['status']}) / this patient "
                               "already has a DMP")
        created = work.dmp.create(
            patient, consent=True, regulation_centre=not args.no_regulation_centre,
            break_the_glass=not args.no_break_the_glass,
            emergency_sees_masked=not args.no_emergency_masked)
        sheet = SecretsSheet.for_created_dmp(patient, created, work.holder)
        write_secrets_sheet(sheet, args.sheet)
        _say(f"DMP créé / DMP created: identifiant / identifier {created['identifier']}")
        _say(f"Fiche des secrets / secrets sheet: {args.sheet} — à imprimer et remettre au "
             "patient, puis supprimer / print it, hand it over, then delete the file")
    return EXIT_OK


def cmd_authorize(args: argparse.Namespace) -> int:
    if not args.confirm:
        raise CommandError("Refusé : confirmez avec --confirm que le patient, présent, vous "
                           "autorise à consulter son DMP / refused: confirm with --confirm "
                           "that the patient, in person, authorises you", EXIT_USAGE)
    with open_work(args) as work:
        assert work.patient is not None
        _say(_patient_line(work.patient))
        work.dmp.record_authorization(work.patient, work.author.id_nat_ps, confirmed=True)
        _say(f"Autorisation enregistrée pour / authorization recorded for {work.holder} "
             f"({work.author.id_nat_ps})")
    return EXIT_OK


def _list_types(args: argparse.Namespace) -> int:
    config = _config()
    reader = find_reader(config, CardKind.CPS, args.cps_reader)
    with PcscConnection(reader) as connection:  # the identity is readable without the PIN
        identity = CpsCard(ApduProtocol(connection)).read_identity()
    _say(f"Types que peut déposer / types {identity.first_name} {identity.last_name} may "
         f"deposit (profession {identity.profession_code}):")
    for code, class_code, label in deposit_types(identity.profession_code):
        _say(f"  {code:10} classe {class_code:3} {label}")
    return EXIT_OK


def _send_pending(work: Work, outbox: Outbox) -> None:
    def send(item: Item) -> SendResult:
        try:
            status, replayed = work.dmp.send_deposit(item.read_payload())
        except DmpError as error:
            if error.status is None:
                raise
            return SendResult.from_status(error.status, f"{error.code}: {error}")
        return SendResult.from_status(status, already_stored=replayed)

    Sender(outbox, RetryPolicy.from_config(work.config)).send_pending(send)


def _report_item(item: Item) -> int:
    if item.state is ItemState.DONE:
        _say(f"Déposé / deposited: {item.metadata.get('title', '')} — {item.unique_id}")
        return EXIT_OK
    if item.state is ItemState.FAILED:
        _say(f"Refusé par l'hôte / refused by the host: {item.last_error} (file d'envoi "
             f"n° {item.id}; corrigez puis / fix, then: dmp-agent outbox --retry {item.id})")
        return EXIT_FAILED
    _say(f"En attente d'envoi / pending (n° {item.id}): {item.last_error or 'not sent yet'}; "
         "nouvel essai automatique / it will be retried")
    return EXIT_FAILED


def _read_document(path: Path) -> tuple[bytes, str, str]:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror}", EXIT_USAGE) from None
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if mime not in FORMAT_CODES:
        raise CommandError(f"{path}: PDF ou texte attendu / a PDF or text file is expected "
                           f"(here {mime})", EXIT_USAGE)
    return content, mime, FORMAT_CODES[mime]


def _queue_and_send(work: Work, prepared: PreparedDeposit, title: str) -> int:
    assert work.patient is not None
    with Outbox(work.config.outbox_path) as outbox:
        item_id = outbox.add(prepared.unique_id, work.patient.ins, prepared.bundle,
                             {"title": title})
        _say(f"Signé par la carte et mis en file d'envoi / signed and queued (n° {item_id})")
        _send_pending(work, outbox)
        return _report_item(outbox.get(item_id))


def cmd_deposit(args: argparse.Namespace) -> int:
    if args.list_types:
        return _list_types(args)
    if args.file is None or args.type is None:
        raise CommandError("FILE et --type CODE sont requis (voir --list-types) / FILE and "
                           "--type CODE are required (see --list-types)", EXIT_USAGE)
    content, mime, format_code = _read_document(args.file)
    with open_work(args) as work:
        assert work.patient is not None
        allowed = {code: label for code, _c, label in deposit_types(work.author.profession)}
        if args.type not in allowed:
            raise CommandError(f"--type {args.type}: type non autorisé pour votre profession "
                               f"/ not a type your profession may deposit (see --list-types)",
                               EXIT_USAGE)
        title = args.title or allowed[args.type]
        _say(_patient_line(work.patient))
        prepared = DmpClient.prepare_deposit(
            work.patient, content, author=work.author, type_code=args.type, title=title,
            sign=work.session.sign_document,
            signature_certificate_der=work.session.signature_certificate_der,
            mime_type=mime, format_code=format_code, masked=args.masked,
            invisible_to_patient=args.invisible_to_patient)
        return _queue_and_send(work, prepared, title)


def cmd_replace(args: argparse.Namespace) -> int:
    content, mime, _format = _read_document(args.file)
    with open_work(args) as work:
        assert work.patient is not None
        prepared = work.dmp.prepare_replacement(
            work.patient, args.unique_id, content, author=work.author,
            sign=work.session.sign_document,
            signature_certificate_der=work.session.signature_certificate_der,
            title=args.title, mime_type=mime)
        return _queue_and_send(work, prepared, args.title or "remplacement / replacement")


def cmd_outbox(args: argparse.Namespace) -> int:
    config = _config()
    with Outbox(config.outbox_path) as outbox:
        if args.retry is not None:
            item = outbox.retry(args.retry)
            _say(f"Remis en file / requeued: n° {item.id}")
            with open_work(args, with_patient=False) as work:
                _send_pending(work, outbox)
            return _report_item(outbox.get(item.id))
        items = outbox.pending() + outbox.failed()
        counts = outbox.counts()
        _say(f"File d'envoi / outbox: {counts.pending} en attente/pending, {counts.failed} "
             f"refusé(s)/failed, {counts.done} déposé(s)/done")
        for item in items:
            when = dt.datetime.fromtimestamp(item.created).strftime("%d/%m/%Y %H:%M")
            _say(f"  n° {item.id} [{item.state.value}] {item.metadata.get('title', '')} "
                 f"({when}, {item.attempts} essai(s)/attempts): {item.last_error or '-'}")
    return EXIT_OK


def _metadata_command(change: Callable[[DmpClient, PatientContext, str], DocumentEntry],
                      done: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with open_work(args) as work:
            assert work.patient is not None
            entry = change(work.dmp, work.patient, args.unique_id)
            _say(f"{done}: {entry.title} — {entry.unique_id}")
        return EXIT_OK
    return run


# -- the parser -------------------------------------------------------------------------------

WORKFLOW_COMMANDS = ("patient", "documents", "create-dmp", "authorize", "deposit", "outbox",
                     "emergency", "regulation", "watch", "mask", "unmask", "hide-from-patient",
                     "archive", "delete", "replace")


EXIT_CODES = ("Codes de sortie / exit codes: 0 fait/done, 1 refusé ou échoué (carte, code, "
              "hôte) / refused or failed (card, PIN, host), 2 usage incorrect / misuse.")
EXAMPLES = {
    "create-dmp": "dmp-agent create-dmp --consent --sheet ~/fiche-dmp.pdf",
    "deposit": "dmp-agent deposit bilan.pdf --type 34810-2 --title 'Bilan visuel'",
    "documents": "dmp-agent documents --save ~/dmp-documents",
    "emergency": "dmp-agent emergency --justification 'patient inconscient, pronostic "
                 "vital engagé' documents",
    "authorize": "dmp-agent authorize --confirm",
    "patient": "dmp-agent patient --person 2",
    "outbox": "dmp-agent outbox --retry 3",
    "replace": "dmp-agent replace urn:uuid:... bilan-v2.pdf",
}


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    cards = common.add_argument_group("cards / cartes")
    cards.add_argument("--pin-stdin", action="store_true",
                       help="read the CPS PIN as one line of standard input (automation; "
                            "never an argument or a variable). A wrong PIN is not retried, "
                            "and the card's last try is left to the terminal")
    cards.add_argument("--person", type=int, metavar="N",
                       help="the N-th person on the Vitale card (1 = the holder); listed "
                            "when the card holds several and none is chosen")
    cards.add_argument("--cps-reader", metavar="NAME", help="the reader holding the CPS "
                       "(default: found by its ATR)")
    cards.add_argument("--vitale-reader", metavar="NAME", help="the reader holding the "
                       "Vitale card (default: found by its ATR)")
    return common


def add_workflow_commands(commands: argparse._SubParsersAction) -> None:
    """Add the workflow commands; the parsed namespace's ``run(args) -> int`` runs one."""
    common = _common()

    def add(name: str, action: Callable[[argparse.Namespace], int], summary: str,
            description: str) -> argparse.ArgumentParser:
        example = EXAMPLES.get(name)
        epilog = textwrap.fill(EXIT_CODES, 90)
        if example:
            epilog = f"Exemple / example:\n  {example}\n\n{epilog}"
        parser = commands.add_parser(name, parents=[common], help=summary,
                                     description=textwrap.fill(description, 90), epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(run=run_command, action=action)
        return parser

    add("patient", cmd_patient, "the patient of the Vitale card: INS, DMP status, rights",
        "Identité du patient (INS via le service d'identité), état du DMP, votre autorisation "
        "/ the patient's INS, DMP status and your rights.")
    documents = add("documents", cmd_documents, "list (and save) the documents you may see",
                    "Liste les documents du DMP que vous pouvez voir / lists the documents "
                    "you may see; --save writes them, hash checked, owner-only.")
    documents.add_argument("--archived", action="store_true",
                           help="the archived documents instead (left out by default)")
    create = add("create-dmp", cmd_create_dmp, "create the patient's DMP, print the sheet",
                 "Crée le DMP au comptoir / creates the DMP: the consent is mandatory; the "
                 "emergency-access consents are given unless refused; writes the patient's "
                 "secrets sheet (PDF, owner-only) to print and hand over.")
    create.add_argument("--consent", action="store_true",
                        help="the patient consented to the DMP (mandatory)")
    create.add_argument("--no-break-the-glass", action="store_true",
                        help="the patient refuses break-the-glass access")
    create.add_argument("--no-regulation-centre", action="store_true",
                        help="the patient refuses access by the regulation centre (SAMU-15)")
    create.add_argument("--no-emergency-masked", action="store_true",
                        help="emergency access does not see masked documents")
    create.add_argument("--sheet", type=Path, required=True, metavar="FILE.pdf",
                        help="where to write the secrets sheet")
    authorize = add("authorize", cmd_authorize, "record the patient's authorisation (--confirm)",
                    "Enregistre que le patient vous autorise / records that the patient "
                    "authorises you; refused without --confirm.")
    authorize.add_argument("--confirm", action="store_true",
                           help="the patient, in person, said yes")
    deposit = add("deposit", cmd_deposit, "sign and deposit a document (via the outbox)",
                  "Signe (carte CPS) et dépose un document PDF ou texte / signs and deposits "
                  "a document; it goes through the outbox, so nothing is lost if the host is "
                  "away.")
    deposit.add_argument("file", type=Path, nargs="?", metavar="FILE",
                         help="the document: a .pdf or a .txt file")
    deposit.add_argument("--type", metavar="CODE", help="document type (LOINC), see --list-types")
    deposit.add_argument("--list-types", action="store_true",
                         help="list the types your profession may deposit (no PIN needed)")
    deposit.add_argument("--title", help="title (default: the type's label)")
    deposit.add_argument("--masked", action="store_true", help="masked from professionals")
    deposit.add_argument("--invisible-to-patient", action="store_true",
                         help="hidden from the patient until the announcement consultation")
    outbox = add("outbox", cmd_outbox, "pending and refused deposits; --retry ID",
                 "File d'envoi / outbox: deposits not yet acknowledged, with the reason; "
                 "--retry ID requeues a refused one and sends it (needs the author's CPS).")
    outbox.add_argument("--retry", type=int, metavar="ID", help="requeue and send item ID")
    emergency = add("emergency", cmd_emergency, "break-the-glass access (traced, notified)",
                    "Accès en urgence « bris de glace » / break-the-glass: only when the "
                    "patient cannot consent and there is an immediate risk; the justification "
                    "is recorded and the patient notified.")
    emergency.add_argument("--justification", required=True, metavar="TEXT",
                           help="why (recorded and shown to the patient)")
    emergency.add_argument("what", choices=["documents"], help="what to do in emergency mode")
    regulation = add("regulation", cmd_regulation,
                     "regulation-centre access (centre 15 / SAMU: traced, notified)",
                     "Accès du centre de régulation (centre 15) / regulation-centre access: the "
                     "authorisation is not checked, the patient's opt-out is; traced and "
                     "notified.")
    regulation.add_argument("what", choices=["documents"], help="what to do in this mode")
    add("watch", cmd_watch, "keep the session open; each Vitale card opens its dossier",
        "Consultation: la session reste ouverte ; chaque carte Vitale insérée ouvre le "
        "dossier de son patient, chaque retrait l'efface / each Vitale card inserted opens "
        "its patient's dossier, each removal clears it. Ends when the CPS is removed.")
    for parser in (documents, emergency, regulation):
        parser.add_argument("--type", action="append", metavar="CODE",
                            help="only this LOINC type code (repeatable)")
        parser.add_argument("--save", type=Path, metavar="DIR", help="save each document here")
    for name, change, done, summary in (
        ("mask", DmpClient.mask, "Masqué / masked", "mask a document from professionals"),
        ("unmask", DmpClient.unmask, "Démasqué / unmasked", "unmask a document"),
        ("hide-from-patient", DmpClient.set_invisible_to_patient,
         "Invisible pour le patient / hidden from the patient",
         "hide a document from the patient until the announcement consultation"),
        ("archive", DmpClient.archive, "Archivé / archived", "archive a document"),
        ("delete", DmpClient.delete, "Supprimé / deleted", "delete one's own document"),
    ):
        parser = add(name, _metadata_command(change, done), summary,
                     f"{summary} (by its uniqueId, as `documents` shows it).")
        parser.add_argument("unique_id", metavar="UNIQUE_ID")
    replace = add("replace", cmd_replace, "deposit a new version of a document",
                  "Remplace un document par une nouvelle version / deposits a new version "
                  "that replaces UNIQUE_ID (the old one leaves the current set).")
    replace.add_argument("unique_id", metavar="UNIQUE_ID")
    replace.add_argument("file", type=Path, metavar="FILE", help="the new version (.pdf, .txt)")
    replace.add_argument("--title", help="title (default: the old one's)")


def main(argv: Sequence[str] | None = None) -> int:
    """Only the workflow commands (the lead wires them into `agent.cli`)."""
    parser = argparse.ArgumentParser(prog="dmp-agent")
    add_workflow_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
