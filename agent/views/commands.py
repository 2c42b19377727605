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
import mimetypes
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from agent.client.dmp import (
    FORMAT_CODES,
    DmpClient,
    DmpError,
    PatientContext,
    PreparedDeposit,
    deposit_types,
)
from agent.client.session import SessionError
from agent.config import private_dir
from agent.core.professional import SessionEndedError
from agent.core.secrets_sheet import SecretsSheet, display_date, write_secrets_sheet
from agent.outbox import (
    Item,
    ItemState,
    Outbox,
    OutboxError,
    RetryPolicy,
    Sender,
    SendResult,
    open_outbox,
)
from agent.outbox.report import outbox_lines, recover_lines
from agent.safe_text import saved_name, terminal_lines, terminal_text, write_new_file
from agent.views.command_session import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    StdinPrompt,
    Work,
    find_reader,
    load_command_config,
    open_work,
)
from cardreader.apdu import ApduProtocol
from cardreader.atr import CardKind
from cardreader.cps import CpsCard
from cardreader.errors import CardError
from cardreader.pcsc import PcscConnection, list_readers
from policies import AccessMode, ModeCode
from wire.mhd import DocumentEntry

__all__ = ["WORKFLOW_COMMANDS", "CommandError", "StdinPrompt", "add_workflow_commands"]

EMERGENCY_TAG = "[BRIS DE GLACE / BREAK-THE-GLASS]"
REGULATION_TAG = "[CENTRE 15 / REGULATION CENTRE]"


def _host_error(error: SessionError) -> str:
    status = f" (HTTP {error.status})" if error.status else ""
    return (f"Refus de l'hôte DMP / the DMP host refused{status}: "
            f"{terminal_text(error.code)}: {terminal_text(error)}")


def _complain(args: argparse.Namespace, message: object) -> None:
    # Our line breaks stay; any other control character that reached a message is shown.
    print(terminal_lines(f"dmp-agent {args.command}: {message}"), file=sys.stderr)


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.action`` and turn every expected failure into one clear message."""
    action: Callable[[argparse.Namespace], int] = args.action
    try:
        return action(args)
    except CommandError as error:
        _complain(args, error)
        return error.code
    except SessionEndedError as error:
        _complain(args, error)
    except SessionError as error:
        _complain(args, _host_error(error))
    except httpx.TransportError as error:
        _complain(args, f"hôte DMP injoignable / DMP host unreachable ({type(error).__name__}: "
                        f"{terminal_text(error)}); vérifiez host.url dans la configuration / "
                        "check host.url in the configuration")
    except CardError as error:
        _complain(args, f"carte / card: {terminal_text(error)}")
    except OutboxError as error:
        _complain(args, f"file d'envoi / outbox: {terminal_text(error)}")
    return EXIT_FAILED


# -- output -----------------------------------------------------------------------------------
# Text from the host (titles, names, statuses, reasons) goes through terminal_text where it is
# put in a line, so that its own line breaks cannot forge lines of ours; `_say` then shows any
# control character left in a line, whoever put it there.


def _say(text: str, mode: AccessMode | None = None) -> None:
    # In an emergency mode every line says so: such an access must never look ordinary.
    prefix = ""
    if mode is not None:
        prefix = (REGULATION_TAG if mode.code is ModeCode.CENTRE_15 else EMERGENCY_TAG) + " "
    for line in text.split("\n"):
        print(f"{prefix}{terminal_text(line)}", flush=True)


def _patient_line(patient: PatientContext) -> str:
    return (f"Patient: {terminal_text(patient.first_name)} {terminal_text(patient.birth_name)}"
            f", né(e) le {terminal_text(display_date(patient.birth_date))} — INS "
            f"{terminal_text(patient.ins)}")


def _document_line(entry: DocumentEntry) -> str:
    flags = [f for f, on in (("masqué/masked", entry.masked),
                             ("invisible patient", entry.invisible_to_patient),
                             ("archivé/archived", entry.archived)) if on]
    if entry.class_code == "90":
        flags.append("déposé par le patient / patient's own")
    created = entry.creation_time.strftime("%d/%m/%Y")
    extra = f" [{', '.join(flags)}]" if flags else ""
    author = f"{entry.author.first_name} {entry.author.last_name}"
    return (f"- {terminal_text(entry.title)} ({terminal_text(entry.type_code)}), {created}, "
            f"{terminal_text(author)}, {entry.size} octets/bytes{extra}\n"
            f"  {terminal_text(entry.unique_id)}")


# -- the commands -----------------------------------------------------------------------------


def cmd_patient(args: argparse.Namespace) -> int:
    with open_work(args) as work:
        assert work.patient is not None
        state = work.dmp.existence(work.patient)
        _say(_patient_line(work.patient))
        closed = (f", fermé le / closed {terminal_text(state['closedAt'])}"
                  if state.get("closedAt") else "")
        _say(f"DMP: {terminal_text(state['status'])}{closed}")
        _say(f"Autorisation / authorization: {terminal_text(state['authorization'])}")
        _say(f"Médecin traitant DMP: {'oui/yes' if state.get('medecinTraitant') else 'non/no'}")
    return EXIT_OK


def _list_documents(args: argparse.Namespace, mode: AccessMode | None) -> int:
    with open_work(args) as work:
        assert work.patient is not None
        if not work.session.may_use(mode):
            raise CommandError(REGULATION_ONLY, EXIT_FAILED)
        if mode is not None:
            why = (f"; justification: {terminal_text(mode.justification)}"
                   if mode.justification else "")
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
                # The depositor chose the title and the MIME type: neither picks the folder,
                # nor an extension a double click would run; an existing file is kept.
                path = write_new_file(
                    directory, saved_name(f"{number:02d}", entry.title, entry.mime_type), body)
                _say(f"enregistré / saved: {terminal_text(path)} (empreinte vérifiée / hash "
                     "checked)", mode)
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
    from agent.core.patient_context import ContextEvent, PatientWatcher

    with open_work(args, with_patient=False) as work:
        readers = list_readers()
        vitale_reader = args.vitale_reader or next(
            (r for r in readers if r != work.session.reader), None)
        if vitale_reader is None:
            raise CommandError("Aucun second lecteur pour la carte Vitale / no reader left "
                               "for the Vitale card")

        def show(event: ContextEvent) -> None:
            if event.dossier is None:
                cleared = "contexte patient effacé / patient context cleared"
                _say(f"— {terminal_text(event.error or cleared)}")
                return
            dossier = event.dossier
            _say(_patient_line(dossier.patient))
            _say(f"DMP: {terminal_text(dossier.existence['status'])}, autorisation / "
                 f"authorization: {terminal_text(dossier.existence['authorization'])}")
            _say(f"{len(dossier.documents)} document(s)")
            for entry in dossier.documents:
                _say(_document_line(entry))

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        _say(f"En attente de cartes Vitale dans {terminal_text(vitale_reader)} / waiting for "
             "Vitale cards")
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
            raise CommandError(f"Ce patient a déjà un DMP ({terminal_text(state['status'])}) "
                               "/ this patient already has a DMP")
        created = work.dmp.create(
            patient, consent=True, regulation_centre=not args.no_regulation_centre,
            break_the_glass=not args.no_break_the_glass,
            emergency_sees_masked=not args.no_emergency_masked)
        sheet = SecretsSheet.for_created_dmp(patient, created, work.holder)
        write_secrets_sheet(sheet, args.sheet)
        _say(f"DMP créé / DMP created: identifiant / identifier "
             f"{terminal_text(created['identifier'])}")
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
        _say(f"Autorisation enregistrée pour / authorization recorded for "
             f"{terminal_text(work.holder)} ({terminal_text(work.author.id_nat_ps)})")
    return EXIT_OK


def _list_types(args: argparse.Namespace) -> int:
    config = load_command_config()
    reader = find_reader(config, CardKind.CPS, args.cps_reader)
    with PcscConnection(reader) as connection:  # the identity is readable without the PIN
        identity = CpsCard(ApduProtocol(connection)).read_identity()
    who = terminal_text(f"{identity.first_name} {identity.last_name}")
    _say(f"Types que peut déposer / types {who} may deposit (profession "
         f"{terminal_text(identity.profession_code)}):")
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
        _say(f"Déposé / deposited: {terminal_text(item.metadata.get('title', ''))} — "
             f"{terminal_text(item.unique_id)}")
        return EXIT_OK
    if item.state is ItemState.FAILED:
        _say(f"Refusé par l'hôte / refused by the host: {terminal_text(item.last_error)} "
             f"(file d'envoi "
             f"n° {item.id}; corrigez puis / fix, then: dmp-agent outbox --retry {item.id})")
        return EXIT_FAILED
    _say(f"En attente d'envoi / pending (n° {item.id}): "
         f"{terminal_text(item.last_error or 'not sent yet')}; nouvel essai automatique / it "
         "will be retried")
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
    with open_outbox(work.config) as outbox:
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
    config = load_command_config()
    # Held, read-only, full, unreadable: an OutboxError, said in one line by run_command.
    with open_outbox(config, holder="dmp-agent outbox", recover=args.recover) as outbox:
        if args.retry is not None and not args.recover:
            item = outbox.retry(args.retry)
            _say(f"Remis en file / requeued: n° {item.id}")
            with open_work(args, with_patient=False) as work:
                _send_pending(work, outbox)
            return _report_item(outbox.get(item.id))
        for line in (recover_lines if args.recover else outbox_lines)(outbox):
            _say(line)
    return EXIT_OK


def _metadata_command(change: Callable[[DmpClient, PatientContext, str], DocumentEntry],
                      done: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with open_work(args) as work:
            assert work.patient is not None
            entry = change(work.dmp, work.patient, args.unique_id)
            _say(f"{done}: {terminal_text(entry.title)} — {terminal_text(entry.unique_id)}")
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
    outbox = add("outbox", cmd_outbox, "pending and refused deposits; --retry ID; --recover",
                 "File d'envoi / outbox: deposits not yet acknowledged, with why they wait "
                 "and when they are tried again; --retry ID requeues a refused one and sends "
                 "it (needs the author's CPS); --recover rebuilds the queue from the "
                 "outbox's files (after a damaged database was put in quarantine).")
    outbox.add_argument("--retry", type=int, metavar="ID", help="requeue and send item ID")
    outbox.add_argument("--recover", action="store_true",
                        help="rebuild the queue from the outbox's files, bringing back from "
                             "quarantine what opens now (docs/agent-outbox.md)")
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
