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
from agent.core.snapshot import identity_json
from agent.errors import AgentError, explain
from agent.i18n import N_, _
from agent.outbox import ItemState, open_outbox
from agent.outbox.report import outbox_lines, recover_lines
from agent.safe_text import saved_name, terminal_lines, terminal_text, write_new_file
from agent.views.agent_client import AgentCalls, find_running_agent
from agent.views.command_session import (
    CPS_MISSING,
    DOSSIER_WAIT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    StdinPrompt,
    card_in,
    choose_identity,
    load_command_config,
    open_agent,
    open_work,
    patient_failure,
    start_core,
    wait_for_dossier,
)
from cardreader.atr import CardKind
from policies import ModeCode

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


def _say(text: str, mode: str | None = None) -> None:
    """``mode``: the access mode's code (the patient JSON's ``accessMode.code``)."""
    # In an emergency mode every line says so: such an access must never look ordinary.
    prefix = ""
    if mode is not None and mode != ModeCode.NORMAL:
        prefix = _(REGULATION_TAG if mode == ModeCode.CENTRE_15 else EMERGENCY_TAG) + " "
    for line in text.split("\n"):
        print(f"{prefix}{terminal_text(line)}", flush=True)


def _patient_line(patient: PatientContext | dict[str, Any]) -> str:
    """The patient's line, from the core's context or the patient JSON's ``patient``."""
    if isinstance(patient, PatientContext):
        patient = {"firstName": patient.first_name, "birthName": patient.birth_name,
                   "birthDate": patient.birth_date, "ins": patient.ins}
    return _("Patient: {first} {last}, born {date} — INS {ins}").format(
        first=terminal_text(patient["firstName"]), last=terminal_text(patient["birthName"]),
        date=terminal_text(display_date(patient["birthDate"])),
        ins=terminal_text(patient["ins"]))


def _document_line(entry: dict[str, Any]) -> str:
    """One document of the listing (the local API's document JSON)."""
    flags = [_(f) for f, on in ((N_("masked"), entry["masked"]),
                                (N_("invisible to the patient"), entry["invisibleToPatient"]),
                                (N_("archived"), entry["archived"])) if on]
    if entry["classCode"] == "90":
        flags.append(_("deposited by the patient"))
    created = dt.datetime.fromisoformat(entry["created"]).strftime("%d/%m/%Y")
    extra = f" [{', '.join(flags)}]" if flags else ""
    return (_("- {title} ({type}), {date}, {author}, {size} bytes").format(
        title=terminal_text(entry["title"]), type=terminal_text(entry["typeCode"]),
        date=created, author=terminal_text(entry["author"]), size=entry["size"])
        + f"{extra}\n  {terminal_text(entry['uniqueId'])}")


def _dossier_lines(p: dict[str, Any]) -> None:
    """The patient JSON's dossier: the patient, the DMP, the documents."""
    dmp = p["dmp"] or {}
    _say(_patient_line(p["patient"]))
    _say(_("DMP: {status}, authorization: {authorization}").format(
        status=terminal_text(dmp.get("status", "?")),
        authorization=terminal_text(dmp.get("authorization", "?"))))
    _say(_("{count} document(s)").format(count=len(p["documents"])))
    for entry in p["documents"]:
        _say(_document_line(entry))


# -- the commands -----------------------------------------------------------------------------


def _identity_lines(identity: dict[str, Any]) -> None:
    """The identity's RNIV status, the document checked, and what to do when it is not
    qualified (docs/ins.md); ``identity``: the patient JSON's ``identity``."""
    if identity.get("notice"):
        _say(f"⚠ {terminal_text(identity['notice'])}")
    line = _("Identity: {status}").format(status=identity["status"])
    document = identity.get("document")
    if document is not None:
        line += _(" — document checked: {document}").format(document=document["label"])
        if document.get("parent") is not None:
            line += _(" (+ parent: {document})").format(document=document["parent"]["label"])
        if identity.get("validatedAt"):
            day = dt.datetime.fromisoformat(identity["validatedAt"]).astimezone()
            line += _(", on {date}").format(date=day.strftime(_("%Y-%m-%d")))
    _say(line)
    if identity.get("traits") is not None:
        i = identity["traits"]
        _say(terminal_text(_("INS traits: {birth_name} {first_names}, {sex}, born {date} in "
                             "{place}").format(birth_name=i["birthName"],
                                               first_names=i["firstNames"], sex=i["sex"],
                                               date=display_date(i["birthDate"]),
                                               place=i["birthPlace"])))
    if identity["status"] != QUALIFIEE:
        _say(_("No deposit before qualification: check an identity document, then: dmp-agent "
               "identity --document passeport|carte-identite|titre-de-sejour|..."))


def cmd_patient(args: argparse.Namespace) -> int:
    # The outbox keeps the identity checks: the running agent's, else this process's.
    with open_agent(args, with_outbox=True, outbox_optional=True) as agent:
        p = agent.snapshot()["patient"]
        state: dict[str, Any] = p["dmp"] or {}
        _say(_patient_line(p["patient"]))
        _identity_lines(p["identity"])
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
    with open_agent(args, with_outbox=True) as agent:
        _say(_patient_line(agent.snapshot()["patient"]["patient"]))
        agent.validate_identity(args.document, args.parent_document)
        _identity_lines(agent.snapshot()["patient"]["identity"])
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
        _identity_lines(identity_json(p))
        state: dict[str, Any] = p.dmp or {}
        _say(f"DMP: {terminal_text(state.get('status', '?'))}")
    return EXIT_OK


def _list_documents(args: argparse.Namespace, mode: str, justification: str = "") -> int:
    with open_agent(args) as agent:
        if mode != "normal":
            agent.set_access_mode(mode, justification)
        p = agent.snapshot()["patient"]
        if p["state"] == "error":
            raise patient_failure(p)
        access = p["accessMode"] or {}
        shown = access.get("code")
        if shown is not None and shown != ModeCode.NORMAL:
            why = (_("; justification: {text}").format(
                text=terminal_text(access["justification"])) if access["justification"]
                else "")
            _say(_("Access traced and notified to the patient") + why, shown)
        _say(_patient_line(p["patient"]), shown)
        entries = agent.documents(type_codes=tuple(args.type or ()),
                                  archived=getattr(args, "archived", False))
        _say(_("{count} document(s)").format(count=len(entries)), shown)
        for entry in entries:
            _say(_document_line(entry), shown)
        if args.save is not None:
            directory = private_dir(args.save)  # health data: owner-only
            for number, entry in enumerate(entries, 1):
                body = agent.document_content(entry["uniqueId"])[0]
                # The depositor chose the title and the MIME type: neither picks the folder,
                # nor an extension a double click would run; an existing file is kept.
                path = write_new_file(directory, saved_name(
                    f"{number:02d}", entry["title"], entry["mimeType"]), body)
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
                _dossier_lines(core.snapshot()["patient"])

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
    with open_agent(args) as agent:
        _say(_patient_line(agent.snapshot()["patient"]["patient"]))
        created = agent.create_dmp(
            consent=True, regulation_centre=not args.no_regulation_centre,
            break_the_glass=not args.no_break_the_glass,
            emergency_sees_masked=not args.no_emergency_masked, email=email)
        write_private_pdf(agent.secrets_sheet(), args.sheet)
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


def _professional(agent: AgentCalls) -> tuple[str, str]:
    """(name, idNat_PS) of the open session's professional."""
    who = agent.snapshot()["session"]["professional"] or {}
    return (terminal_text(f"{who.get('firstName', '')} {who.get('lastName', '')}".strip()),
            terminal_text(who.get("idNatPs", "")))


def _on_the_patients_word(args: argparse.Namespace, given: bool, refusal: str,
                          act: Callable[[AgentCalls], str]) -> int:
    """A change the patient, present, asks for or agrees to: refused (exit 2, before any
    card is touched) unless the user said so with its flag; then done, and said."""
    if not given:
        raise CommandError(refusal, EXIT_USAGE)
    with open_agent(args) as agent:
        _say(_patient_line(agent.snapshot()["patient"]["patient"]))
        _say(act(agent))
    return EXIT_OK


def cmd_authorize(args: argparse.Namespace) -> int:
    def act(agent: AgentCalls) -> str:
        agent.authorize(confirmed=True)
        who, id_nat_ps = _professional(agent)
        return _("Authorization recorded for {who} ({id})").format(who=who, id=id_nat_ps)

    return _on_the_patients_word(
        args, args.confirm, _("Refused: confirm with --confirm that the patient, in person, "
                              "authorizes you to see their DMP"), act)


def cmd_close_dmp(args: argparse.Namespace) -> int:
    def act(agent: AgentCalls) -> str:
        closed = agent.close_dmp(reason=args.reason, patient_request=True)
        return _("DMP closed on {date}; kept until {until} (can be reactivated: dmp-agent "
                 "reactivate-dmp --consent)").format(
            date=terminal_text(closed.get("closedAt", "")),
            until=terminal_text(closed.get("retentionUntil", "")))

    return _on_the_patients_word(
        args, args.patient_request, _("Refused: confirm with --patient-request that the "
                                      "patient, in person, asks for the closure of their DMP"),
        act)


def cmd_reactivate_dmp(args: argparse.Namespace) -> int:
    def act(agent: AgentCalls) -> str:
        agent.reactivate_dmp(consent=True)
        return _("DMP reactivated")

    return _on_the_patients_word(
        args, args.consent, _("The patient's consent is required: add --consent"), act)


def cmd_medecin_traitant(args: argparse.Namespace) -> int:
    def act(agent: AgentCalls) -> str:
        agent.designate_medecin_traitant(confirmed=True)
        who, id_nat_ps = _professional(agent)
        return _("Médecin traitant DMP recorded: {who} ({id})").format(who=who, id=id_nat_ps)

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


def _outbox_item(agent: AgentCalls, item_id: int) -> dict[str, Any] | None:
    """The outbox's item ``item_id`` as the outbox JSON lists it (state "sending" while the
    worker sends it); None once deposited (the listing keeps what waits or was refused)."""
    box = agent.outbox()
    if (box.get("sending") or {}).get("id") == item_id:
        return {"id": item_id, "state": "sending", "attempts": 0}
    return next((i for i in box["items"] if i["id"] == item_id), None)


def _report_item(item: dict[str, Any] | None, queued: dict[str, Any]) -> int:
    if item is None:
        _say(_("Deposited: {title} — {id}").format(
            title=terminal_text(queued.get("title", "")),
            id=terminal_text(queued.get("uniqueId", ""))))
        return EXIT_OK
    if item["state"] == ItemState.FAILED.value:
        _say(_("Refused by the host: {error} (outbox no. {id}; fix it, then: dmp-agent "
               "outbox --retry {id})").format(error=terminal_text(item["lastError"]),
                                              id=item["id"]))
        return EXIT_FAILED
    _say(_("Waiting to be sent (no. {id}): {error}; it will be retried by itself").format(
        id=item["id"], error=terminal_text(item.get("lastError") or item.get("reasonText")
                                           or _("not sent yet"))))
    return EXIT_FAILED


def _sent(agent: AgentCalls, queued: dict[str, Any]) -> int:
    """Wait for the outbox worker's first attempt at the item ``queued`` (its id, title,
    uniqueId), then say how it went."""
    seen: list[dict[str, Any] | None] = [None]

    def tried() -> bool:
        item = seen[0] = _outbox_item(agent, queued["id"])
        return item is None or item["state"] == ItemState.FAILED.value or (
            item["state"] != "sending" and item["attempts"] > 0)

    if not agent.wait_until(tried, load_command_config().host_timeout + SEND_WAIT):
        seen[0] = _outbox_item(agent, queued["id"])
    return _report_item(seen[0], queued)


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
    if args.file is None:
        raise CommandError(_("FILE and --type CODE are required (see --list-types)"),
                           EXIT_USAGE)
    mime = _read_document(args.file)
    if args.type is None and mime != "text/xml":  # a CDA document names its own type
        raise CommandError(_("FILE and --type CODE are required (see --list-types)"),
                           EXIT_USAGE)
    with open_agent(args, with_outbox=True, checks_cda=True) as agent:
        allowed = {t["code"] for t in agent.deposit_types()}
        if args.type is not None and args.type not in allowed:
            raise CommandError(_("--type {type}: not a type your profession may deposit (see "
                                 "--list-types)").format(type=args.type), EXIT_USAGE)
        _say(_patient_line(agent.snapshot()["patient"]["patient"]))
        queued = agent.deposit(args.file, mime_type=mime, type_code=args.type or "",
                               title=args.title or "", masked=args.masked,
                               invisible_to_patient=args.invisible_to_patient)
        if "replaces" in queued:  # the practice's CDA says it is a new version
            _say(_("New version of “{title}” (its CDA says it replaces {id})").format(
                title=queued["replaces"]["title"], id=queued["replaces"]["uniqueId"]))
        _say(_("Signed by the card and queued for sending (no. {id})").format(id=queued["id"]))
        return _sent(agent, queued)


def cmd_replace(args: argparse.Namespace) -> int:
    mime = _read_document(args.file)
    with open_agent(args, with_outbox=True, checks_cda=True) as agent:
        queued = agent.deposit(args.file, mime_type=mime, type_code="",
                               title=args.title or "", replaces=args.unique_id)
        _say(_("Signed by the card and queued for sending (no. {id})").format(id=queued["id"]))
        return _sent(agent, queued)


def cmd_outbox(args: argparse.Namespace) -> int:
    if args.retry is not None and not args.recover:
        with open_agent(args, with_patient=False, with_outbox=True) as agent:
            agent.retry_deposit(args.retry)
            _say(_("Requeued: no. {id}").format(id=args.retry))
            item = _outbox_item(agent, args.retry)
            return _sent(agent, {"id": args.retry, "uniqueId": (item or {}).get("uniqueId", ""),
                                 "title": (item or {}).get("title", "")})
    config = load_command_config()
    running = None if args.recover else find_running_agent(config)
    if running is not None:  # it holds the outbox: its view of it (this user's deposits)
        try:
            for line in outbox_json_lines(running.outbox()):
                _say(line)
        finally:
            running.close()
        return EXIT_OK
    # Held, read-only, full, unreadable: an OutboxError, said in one line by run_command.
    with open_outbox(config, holder="dmp-agent outbox", recover=args.recover) as outbox:
        for line in (recover_lines if args.recover else outbox_lines)(outbox):
            _say(line)
    return EXIT_OK


def _local_time(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone().strftime("%d/%m/%Y %H:%M")


def outbox_json_lines(box: dict[str, Any]) -> list[str]:
    """`dmp-agent outbox` beside the running agent: its outbox JSON (this professional's
    deposits; the others' only counted) in the lines `outbox_lines` writes in-process."""
    lines = ([_("Warning: {text}").format(text=terminal_text(box["recovered"]))]
             if box.get("recovered") else [])
    lines.append(_("Outbox: {pending} waiting, {failed} refused, {done} deposited").format(
        pending=box["pending"], failed=box["failed"], done=box["done"]))
    others = box.get("others") or {}
    if others.get("pending") or others.get("failed"):
        lines.append(_("Other professionals' deposits: {pending} waiting, {failed} "
                       "refused").format(pending=others["pending"], failed=others["failed"]))
    if box.get("throttle"):
        lines.append(_("Pace: {message} — {rate} in the last second").format(
            message=box["throttle"]["message"], rate=box["throttle"]["rate"]))
    for item in box["items"]:
        retry = "" if not item.get("nextAttempt") else \
            _("; next try {time}").format(time=_local_time(item["nextAttempt"]))
        lines.append("  " + _("no. {id} [{state}] {title} ({created}, {attempts} "
                              "attempt(s)): {why}").format(
            id=item["id"], state=item["state"], title=terminal_text(item["title"]),
            created=_local_time(item["created"]), attempts=item["attempts"],
            why=item["reasonText"]) + f"{retry} — {terminal_text(item['lastError'] or '-')}")
    if box.get("problem"):
        lines.append(terminal_text(box["problem"]))
    return lines


def status_lines(snapshot: dict[str, Any]) -> list[str]:
    """`dmp-agent status`: the host, the session, the patient and the outbox in one look,
    from the agent's snapshot (the local API's ``/api/status``)."""
    host, session, patient = snapshot["host"], snapshot["session"], snapshot["patient"]
    lines = []
    if host["state"] in ("unreachable", "certificate", "slow"):
        lines.append(_("DMP host: {reason}. {fix}").format(reason=host["reason"],
                                                            fix=host["fix"]))
    elif host["state"] == "reachable":
        lines.append(_("DMP host: reachable"))
    else:
        lines.append(_("DMP host: not asked yet"))
    who = session.get("professional")
    name = terminal_text(f"{who['firstName']} {who['lastName']}") if who else ""
    if session["state"] == "open":
        situation = session.get("situation") or {}
        lines.append(_("Session: open for {who} — {structure}").format(
            who=name, structure=terminal_text(situation.get("name", ""))))
    elif who is not None:
        lines.append(_("Session: closed; CPS card of {who} in the reader").format(who=name))
    else:
        lines.append(_("Session: closed; no CPS card"))
    if patient.get("patient"):
        lines.append(_patient_line(patient["patient"]))
    elif patient["state"] == "error":
        lines.append(_("Patient: {error}").format(error=terminal_text(patient["error"])))
    else:
        lines.append(_("Patient: none"))
    if snapshot.get("problem"):
        lines.append(terminal_text(snapshot["problem"]))
    return lines + outbox_json_lines(snapshot["outbox"])[:2]


def cmd_status(args: argparse.Namespace) -> int:
    """The running agent's state, or, with none running, the cards as this process reads
    them (no PIN asked)."""
    running = find_running_agent(load_command_config())
    if running is not None:
        try:
            snapshot = running.snapshot()
        finally:
            running.close()
        _say(_("Agent running: {url}").format(url=running.base))
    else:
        with start_core(args) as core:
            snapshot = core.snapshot()
        _say(_("No agent running (dmp-agent run): the cards as read now"))
    for line in status_lines(snapshot):
        _say(line)
    return EXIT_OK


def _metadata_command(action: str, done: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with open_agent(args) as agent:
            entry = agent.change_document(args.unique_id, action)
            _say(_("{done}: {title} — {id}").format(
                done=_(done), title=terminal_text(entry["title"]),
                id=terminal_text(entry["uniqueId"])))
        return EXIT_OK
    return run
