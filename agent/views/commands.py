"""`dmp-agent` workflow commands: the daily work with a CPS and a Vitale card in the readers.

Each command runs the agent core in its own process (`agent.views.command_session`): the
CPS and the patient's Vitale card found by their ATR, the Vitale card read (``--person N``
picks a beneficiary; with several and none chosen the command lists them and stops), the CPS
PIN asked (the terminal, or one line of standard input with ``--pin-stdin``: never an
argument or the environment), the session opened, then the same calls as the local API's.
Exit codes: 0 done, 1 refused or failed (card, PIN, host), 2 misuse. See docs/agent-cli.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import mimetypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.client.dmp import PatientContext, deposit_types
from agent.client.provide import CDA_MIME_TYPES, FORMAT_CODES
from agent.client.session import SessionError
from agent.config import private_dir
from agent.core.contact import checked_email
from agent.core.identity import QUALIFIEE
from agent.core.pin import ask_unblock_codes
from agent.core.secrets_sheet import display_date, write_private_pdf
from agent.core.state import PatientState
from agent.errors import AgentError, explain
from agent.i18n import N_, _
from agent.outbox import Item, ItemState, open_outbox
from agent.outbox.report import outbox_lines, recover_lines
from agent.safe_text import saved_name, terminal_lines, terminal_text, write_new_file
from agent.views.command_session import (
    CPS_MISSING,
    DOSSIER_WAIT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    StdinPrompt,
    Work,
    card_in,
    choose_identity,
    load_command_config,
    open_work,
    start_core,
    wait_for_dossier,
)
from cardreader.atr import CardKind
from policies import AccessMode, ModeCode
from wire.mhd import DocumentEntry

__all__ = ["CommandError", "StdinPrompt", "run_command"]

EMERGENCY_TAG = N_("[BREAK THE GLASS]")
REGULATION_TAG = N_("[CENTRE 15 / REGULATION CENTRE]")
SEND_WAIT = 10.0  # seconds beyond the host timeout for a deposit's first attempt


def describe_failure(error: AgentError) -> str:
    """An `AgentError` as the command line says it: the host's refusals with their HTTP
    status and code, a refusal of ours with its code (scripts match it)."""
    if isinstance(error, SessionError) and error.status:
        return _("The DMP host refused (HTTP {status}): {code}: {message}").format(
            status=error.status, code=terminal_text(error.code), message=terminal_text(error))
    if error.status == 403:
        return f"{error.code}: {terminal_text(error)}"
    return str(error)  # ours; `_complain` shows any control character but our line breaks


def _complain(args: argparse.Namespace, message: object) -> None:
    # Our line breaks stay; any other control character that reached a message is shown.
    print(terminal_lines(f"dmp-agent {args.command}: {message}"), file=sys.stderr)


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.action`` and turn every expected failure into one clear message."""
    action: Callable[[argparse.Namespace], int] = args.action
    try:
        return action(args)
    except BrokenPipeError:
        # The reader went away (`dmp-agent documents | head`): nothing more to say to it,
        # and Python's own flush at exit must not fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        _complain(args, _("interrupted"))
        return 130
    except Exception as error:
        failure = explain(error)
        if failure.code == "failed" and not isinstance(error, AgentError):
            raise
        _complain(args, describe_failure(failure))
        return EXIT_USAGE if failure.usage else EXIT_FAILED


# -- output -----------------------------------------------------------------------------------
# Text from the host (titles, names, statuses, reasons) goes through terminal_text where it is
# put in a line, so that its own line breaks cannot forge lines of ours; `_say` then shows any
# control character left in a line, whoever put it there.


def _say(text: str, mode: AccessMode | None = None) -> None:
    # In an emergency mode every line says so: such an access must never look ordinary.
    prefix = ""
    if mode is not None:
        prefix = _(REGULATION_TAG if mode.code is ModeCode.CENTRE_15 else EMERGENCY_TAG) + " "
    for line in text.split("\n"):
        print(f"{prefix}{terminal_text(line)}", flush=True)


def _patient_line(patient: PatientContext) -> str:
    return _("Patient: {first} {last}, born {date} — INS {ins}").format(
        first=terminal_text(patient.first_name), last=terminal_text(patient.birth_name),
        date=terminal_text(display_date(patient.birth_date)), ins=terminal_text(patient.ins))


def _document_line(entry: DocumentEntry) -> str:
    flags = [_(f) for f, on in ((N_("masked"), entry.masked),
                                (N_("invisible to the patient"), entry.invisible_to_patient),
                                (N_("archived"), entry.archived)) if on]
    if entry.class_code == "90":
        flags.append(_("deposited by the patient"))
    created = entry.creation_time.strftime("%d/%m/%Y")
    extra = f" [{', '.join(flags)}]" if flags else ""
    author = f"{entry.author.first_name} {entry.author.last_name}"
    return (_("- {title} ({type}), {date}, {author}, {size} bytes").format(
        title=terminal_text(entry.title), type=terminal_text(entry.type_code), date=created,
        author=terminal_text(author), size=entry.size)
        + f"{extra}\n  {terminal_text(entry.unique_id)}")


def _dossier_lines(p: PatientState) -> None:
    assert p.context is not None and p.dmp is not None
    _say(_patient_line(p.context))
    _say(_("DMP: {status}, authorization: {authorization}").format(
        status=terminal_text(p.dmp["status"]),
        authorization=terminal_text(p.dmp["authorization"])))
    _say(_("{count} document(s)").format(count=len(p.documents)))
    for entry in p.documents:
        _say(_document_line(entry))


# -- the commands -----------------------------------------------------------------------------


def _identity_lines(p: PatientState) -> None:
    """The identity's RNIV status, the document checked, and what to do when it is not
    qualified (docs/ins.md)."""
    from wire.ins import IDENTITY_DOCUMENTS

    if p.identity_notice:
        _say(f"⚠ {terminal_text(p.identity_notice)}")
    line = _("Identity: {status}").format(status=p.identity_status)
    document = IDENTITY_DOCUMENTS.get(p.identity_document or "")
    if document is not None:
        parent = IDENTITY_DOCUMENTS.get(p.identity_parent_document or "")
        line += _(" — document checked: {document}").format(document=document.label)
        if parent is not None:
            line += _(" (+ parent: {document})").format(document=parent.label)
        if p.identity_validated is not None:
            day = dt.datetime.fromtimestamp(p.identity_validated).strftime(_("%Y-%m-%d"))
            line += _(", on {date}").format(date=day)
    _say(line)
    if p.identity is not None:
        i = p.identity
        _say(terminal_text(_("INS traits: {birth_name} {first_names}, {sex}, born {date} in "
                             "{place}").format(birth_name=i.birth_name,
                                               first_names=i.first_names, sex=i.sex,
                                               date=display_date(i.birth_date),
                                               place=i.birth_place)))
    if p.identity_status != QUALIFIEE:
        _say(_("No deposit before qualification: check an identity document, then: dmp-agent "
               "identity --document passeport|carte-identite|titre-de-sejour|..."))


def cmd_patient(args: argparse.Namespace) -> int:
    # The outbox keeps the identity checks; held by `dmp-agent run`, the command still reads.
    with open_work(args, with_outbox=True, outbox_optional=True) as work:
        assert work.patient is not None
        state: dict[str, Any] = work.state.dmp or {}
        _say(_patient_line(work.patient))
        _identity_lines(work.state)
        closed = (_(", closed on {date}").format(date=terminal_text(state["closedAt"]))
                  if state.get("closedAt") else "")
        _say(_("DMP: {status}").format(status=terminal_text(state["status"])) + closed)
        _say(_("Authorization: {authorization}").format(
            authorization=terminal_text(state["authorization"])))
        _say(_("Médecin traitant DMP: yes") if state.get("medecinTraitant")
             else _("Médecin traitant DMP: no"))
    return EXIT_OK


def cmd_identity(args: argparse.Namespace) -> int:
    """Record the identity document the user checked against the INS traits shown."""
    from wire.ins import IDENTITY_DOCUMENTS

    if args.document not in IDENTITY_DOCUMENTS:
        raise CommandError(f"--document {args.document}: {', '.join(IDENTITY_DOCUMENTS)}",
                           EXIT_USAGE)
    with open_work(args, with_outbox=True) as work:
        assert work.patient is not None
        _say(_patient_line(work.patient))
        work.core.validate_identity(args.document, args.parent_document)
        _identity_lines(work.state)
    return EXIT_OK


def cmd_find_patient(args: argparse.Namespace) -> int:
    """The patient found by typed traits, with no Vitale card: identity, status, DMP."""
    from agent.core.identity import checked_traits

    traits = checked_traits(args.birth_name, args.first_names.split(), args.sex,
                            args.birth_date, args.birth_place)  # exit 2 before any card
    with open_work(args, with_patient=False, with_outbox=True, outbox_optional=True) as work:
        core = work.core
        core.search_identity(**traits)
        wait = core.config.host_timeout + DOSSIER_WAIT
        p = wait_for_dossier(core, wait)
        if p.state == "choosing-identity":
            choose_identity(core, p, args.identity)
            p = wait_for_dossier(core, wait)
        assert p.context is not None
        _say(_patient_line(p.context))
        _identity_lines(p)
        state: dict[str, Any] = p.dmp or {}
        _say(f"DMP: {terminal_text(state.get('status', '?'))}")
    return EXIT_OK


def _list_documents(args: argparse.Namespace, mode: str, justification: str = "") -> int:
    with open_work(args) as work:
        assert work.patient is not None
        if mode != "normal":
            work.core.set_access_mode(mode, justification)
        p = work.state
        if p.state == "error":
            raise p.failure or AgentError(p.error)
        shown = p.mode
        if shown is not None:
            why = (_("; justification: {text}").format(text=terminal_text(shown.justification))
                   if shown.justification else "")
            _say(_("Access traced and notified to the patient") + why, shown)
        _say(_patient_line(work.patient), shown)
        entries = work.core.document_entries(type_codes=tuple(args.type or ()),
                                             archived=getattr(args, "archived", False))
        _say(_("{count} document(s)").format(count=len(entries)), shown)
        for entry in entries:
            _say(_document_line(entry), shown)
        if args.save is not None:
            directory = private_dir(args.save)  # health data: owner-only
            for number, entry in enumerate(entries, 1):
                body = work.core.retrieve(entry)
                # The depositor chose the title and the MIME type: neither picks the folder,
                # nor an extension a double click would run; an existing file is kept.
                path = write_new_file(
                    directory, saved_name(f"{number:02d}", entry.title, entry.mime_type), body)
                _say(_("saved: {path} (hash checked)").format(path=terminal_text(path)), shown)
    return EXIT_OK


def cmd_documents(args: argparse.Namespace) -> int:
    return _list_documents(args, "normal")


def cmd_unblock(args: argparse.Namespace) -> int:
    """Unblock the blocked CPS with its PUK and a new PIN (the terminal without echo, or two
    lines of standard input with --stdin), through the core as the page does."""
    with start_core(args) as core:
        report = card_in(core, CardKind.CPS)
        if report is None:
            raise CommandError(_(CPS_MISSING))
        if report.pin_tries_left:  # asked nothing for a card that needs no PUK
            raise AgentError(_("The CPS card is not blocked ({tries} PIN tries left): nothing "
                               "to unblock").format(tries=report.pin_tries_left),
                             code="not-blocked", status=409)
        who = report.cps
        holder = f"{who.first_name} {who.last_name}" if who is not None else "?"
        codes = ask_unblock_codes(terminal_text(holder), stdin=args.stdin)
        if codes is None:
            raise CommandError(_("Unblocking cancelled"))
        core.unblock_cps(codes.puk, codes.new_pin)
        del codes
    _say(_("CPS card unblocked: open the session with the new PIN"))
    return EXIT_OK


def cmd_emergency(args: argparse.Namespace) -> int:
    justification = args.justification.strip()
    if len(justification) < 10:
        raise CommandError(_("--justification: describe the emergency (10 characters at "
                             "least)"), EXIT_USAGE)
    return _list_documents(args, "break-the-glass", justification)


def cmd_regulation(args: argparse.Namespace) -> int:
    return _list_documents(args, "regulation")


def cmd_watch(args: argparse.Namespace) -> int:
    """The consulting room: the session stays open, each Vitale card inserted opens its
    patient's dossier, each removal clears it; ends with the CPS or Ctrl-C / SIGTERM."""
    with open_work(args, with_patient=False) as work:
        core = work.core
        if not any(reader != work.session.reader and core.may_hold("vitale", reader)
                   for reader in core.slots):
            raise CommandError(_("No second reader for the Vitale card"))
        shown: list[tuple[int, str] | None] = [None]
        stop = threading.Event()

        def show(kind: str, _data: dict[str, Any]) -> None:
            if kind != "patient":
                return
            p = core.patient
            if p is not None and p.state == "choosing":
                threading.Thread(target=_choose_holder, args=(core,), daemon=True).start()
                return
            now = None if p is None else (p.generation, p.state)
            if now == shown[0] or (p is not None and p.state in ("loading", "choosing")):
                return
            shown[0] = now
            if p is None or p.state == "error":
                cleared = _("patient context cleared")
                _say(f"— {terminal_text(p.error if p is not None else cleared)}")
            elif p.state == "ready":
                _dossier_lines(p)

        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        unsubscribe = core.subscribe(show)
        _say(_("Waiting for Vitale cards"))
        try:
            while not stop.is_set() and not work.session.wait_ended(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            unsubscribe()
        if not work.session.alive:
            _say(_("CPS card removed: session ended"))
    return EXIT_OK


def _choose_holder(core: Any) -> None:
    try:
        core.select_person(1)  # the card's holder, as the consulting room expects
    except AgentError as error:
        _say(f"— {terminal_text(error)}")


def _check_sheet_path(path: Path) -> None:
    # Checked before the DMP is created: the access code exists only on this sheet.
    if path.suffix.lower() != ".pdf":
        raise CommandError(_("--sheet {path}: a .pdf file is expected").format(path=path),
                           EXIT_USAGE)
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise CommandError(_("--sheet {path}: the folder does not exist or is not "
                             "writable").format(path=path), EXIT_USAGE)


def cmd_create_dmp(args: argparse.Namespace) -> int:
    if not args.consent:
        raise CommandError(_("The patient's consent is required: add --consent once "
                             "collected"), EXIT_USAGE)
    _check_sheet_path(args.sheet)
    email = checked_email(args.email)  # refused before any card is touched (exit 2)
    with open_work(args) as work:
        assert work.patient is not None
        _say(_patient_line(work.patient))
        created = work.core.create_dmp(
            consent=True, regulation_centre=not args.no_regulation_centre,
            break_the_glass=not args.no_break_the_glass,
            emergency_sees_masked=not args.no_emergency_masked, email=email)
        write_private_pdf(work.core.secrets_sheet(), args.sheet)
        _say(_("DMP created: identifier {identifier}").format(
            identifier=terminal_text(created["identifier"])))
        _say(_("Secrets sheet: {path} — print it, hand it to the patient, then delete the "
               "file").format(path=args.sheet))
        if email is not None:
            _say(_("Notification and sign-in address: {email}").format(
                email=terminal_text(email)))
        else:
            _say(_("No email address: no notifications, no patient space (--email)"))
    return EXIT_OK


def _on_the_patients_word(args: argparse.Namespace, given: bool, refusal: str,
                          act: Callable[[Work], str]) -> int:
    """A change the patient, present, asks for or agrees to: refused (exit 2, before any
    card is touched) unless the user said so with its flag; then done, and said."""
    if not given:
        raise CommandError(refusal, EXIT_USAGE)
    with open_work(args) as work:
        assert work.patient is not None
        _say(_patient_line(work.patient))
        _say(act(work))
    return EXIT_OK


def cmd_authorize(args: argparse.Namespace) -> int:
    def act(work: Work) -> str:
        work.core.authorize(confirmed=True)
        return _("Authorization recorded for {who} ({id})").format(
            who=terminal_text(work.holder), id=terminal_text(work.id_nat_ps))

    return _on_the_patients_word(
        args, args.confirm, _("Refused: confirm with --confirm that the patient, in person, "
                              "authorizes you to see their DMP"), act)


def cmd_close_dmp(args: argparse.Namespace) -> int:
    def act(work: Work) -> str:
        closed = work.core.close_dmp(reason=args.reason, patient_request=True)
        return _("DMP closed on {date}; kept until {until} (can be reactivated: dmp-agent "
                 "reactivate-dmp --consent)").format(
            date=terminal_text(closed.get("closedAt", "")),
            until=terminal_text(closed.get("retentionUntil", "")))

    return _on_the_patients_word(
        args, args.patient_request, _("Refused: confirm with --patient-request that the "
                                      "patient, in person, asks for the closure of their DMP"),
        act)


def cmd_reactivate_dmp(args: argparse.Namespace) -> int:
    def act(work: Work) -> str:
        work.core.reactivate_dmp(consent=True)
        return _("DMP reactivated")

    return _on_the_patients_word(
        args, args.consent, _("The patient's consent is required: add --consent"), act)


def cmd_medecin_traitant(args: argparse.Namespace) -> int:
    def act(work: Work) -> str:
        work.core.designate_medecin_traitant(confirmed=True)
        return _("Médecin traitant DMP recorded: {who} ({id})").format(
            who=terminal_text(work.holder), id=terminal_text(work.id_nat_ps))

    return _on_the_patients_word(
        args, args.confirm, _("Refused: confirm with --confirm that the patient, in person, "
                              "designates you as médecin traitant DMP"), act)


def _list_types(args: argparse.Namespace) -> int:
    with start_core(args) as core:  # the identity is readable without the PIN
        report = card_in(core, CardKind.CPS)
        if report is None or report.cps is None:
            raise CommandError(_(CPS_MISSING))
        identity = report.cps
    who = terminal_text(f"{identity.first_name} {identity.last_name}")
    _say(_("Types {who} may deposit (profession {profession}):").format(
        who=who, profession=terminal_text(identity.profession_code)))
    for code, class_code, label in deposit_types(identity.profession_code):
        _say(_("  {code} class {class_code} {label}").format(
            code=f"{code:10}", class_code=f"{class_code:3}", label=label))
    return EXIT_OK


def _report_item(item: Item) -> int:
    if item.state is ItemState.DONE:
        _say(_("Deposited: {title} — {id}").format(
            title=terminal_text(item.metadata.get("title", "")),
            id=terminal_text(item.unique_id)))
        return EXIT_OK
    if item.state is ItemState.FAILED:
        _say(_("Refused by the host: {error} (outbox no. {id}; fix it, then: dmp-agent "
               "outbox --retry {id})").format(error=terminal_text(item.last_error),
                                              id=item.id))
        return EXIT_FAILED
    _say(_("Waiting to be sent (no. {id}): {error}; it will be retried by itself").format(
        id=item.id, error=terminal_text(item.last_error or _("not sent yet"))))
    return EXIT_FAILED


def _sent(work: Work, item_id: int) -> int:
    """Wait for the outbox worker's first attempt at ``item_id``, then say how it went."""
    def tried() -> bool:
        item = work.core.outbox_item(item_id)
        return item.state in (ItemState.DONE, ItemState.FAILED) or (
            item.state is ItemState.PENDING and item.attempts > 0)

    work.core.wait_until(tried, work.config.host_timeout + SEND_WAIT)
    return _report_item(work.core.outbox_item(item_id))


def _read_document(path: Path) -> str:
    """The document's MIME type, once it is known to be readable and of an accepted kind."""
    if not path.is_file() or not os.access(path, os.R_OK):
        raise CommandError(_("{path}: cannot read the file").format(path=path), EXIT_USAGE)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if mime in CDA_MIME_TYPES:  # a structured CDA from the practice's software
        return "text/xml"
    if mime not in FORMAT_CODES:
        raise CommandError(_("{path}: a PDF, text file or CDA document is expected (here "
                             "{mime})").format(
            path=path, mime=mime), EXIT_USAGE)
    return mime


def cmd_deposit(args: argparse.Namespace) -> int:
    if args.list_types:
        return _list_types(args)
    if args.file is None or args.type is None:
        raise CommandError(_("FILE and --type CODE are required (see --list-types)"),
                           EXIT_USAGE)
    mime = _read_document(args.file)
    with open_work(args, with_outbox=True) as work:
        assert work.patient is not None
        allowed = {t["code"] for t in work.core.deposit_types()}
        if args.type not in allowed:
            raise CommandError(_("--type {type}: not a type your profession may deposit (see "
                                 "--list-types)").format(type=args.type), EXIT_USAGE)
        _say(_patient_line(work.patient))
        queued = work.core.deposit(args.file, mime_type=mime, type_code=args.type,
                                   title=args.title or "", masked=args.masked,
                                   invisible_to_patient=args.invisible_to_patient)
        _say(_("Signed by the card and queued for sending (no. {id})").format(id=queued["id"]))
        return _sent(work, queued["id"])


def cmd_replace(args: argparse.Namespace) -> int:
    mime = _read_document(args.file)
    with open_work(args, with_outbox=True) as work:
        queued = work.core.deposit(args.file, mime_type=mime, type_code="",
                                   title=args.title or "", replaces=args.unique_id)
        _say(_("Signed by the card and queued for sending (no. {id})").format(id=queued["id"]))
        return _sent(work, queued["id"])


def cmd_outbox(args: argparse.Namespace) -> int:
    if args.retry is not None and not args.recover:
        with open_work(args, with_patient=False, with_outbox=True) as work:
            work.core.retry_deposit(args.retry)
            _say(_("Requeued: no. {id}").format(id=args.retry))
            return _sent(work, args.retry)
    config = load_command_config()
    # Held, read-only, full, unreadable: an OutboxError, said in one line by run_command.
    with open_outbox(config, holder="dmp-agent outbox", recover=args.recover) as outbox:
        for line in (recover_lines if args.recover else outbox_lines)(outbox):
            _say(line)
    return EXIT_OK


def _metadata_command(action: str, done: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with open_work(args) as work:
            entry = work.core.change_document_entry(args.unique_id, action)
            _say(f"{_(done)}: {terminal_text(entry.title)} — {terminal_text(entry.unique_id)}")
        return EXIT_OK
    return run
