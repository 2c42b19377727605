"""``dmp-host patient ...``: the patient's own actions, from the host's command line.

    dmp-host patient block INS IDNATPS --database URL
    dmp-host patient unblock INS IDNATPS --database URL
    dmp-host patient revoke INS IDNATPS --database URL
    dmp-host patient end-medecin-traitant INS IDNATPS --database URL
    dmp-host patient authorizations INS --database URL [--json]
    dmp-host patient consents INS [--regulation-centre yes|no] [--break-the-glass yes|no]
                                  [--emergency-sees-masked yes|no] --database URL
    dmp-host patient close INS --reason TEXT --database URL
    dmp-host patient reactivate INS --database URL
    dmp-host patient access-log INS --database URL [--actor IDNATPS] [--outcome O] [--json]
    dmp-host patient notifications INS --database URL [--json]
    dmp-host patient notifications --ins INS --channel none|email [--email ADDR]
    dmp-host patient documents INS --database URL [--all] [--json]
    dmp-host patient mask INS DOCUMENT_ID --database URL
    dmp-host patient unmask INS DOCUMENT_ID --database URL
    dmp-host patient professionals INS --database URL [--json]
    dmp-host patient designate-medecin-traitant INS IDNATPS --database URL

A stand-in for the patient portal: each command acts as the holder of the DMP, is decided by
the access rules and traced in the access log like any access. ``--database`` defaults to
the DMP_HOST_DATABASE environment variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any

from . import patient, patient_documents
from .errors import HostError
from .guard import Guard
from .identities import checked_ins
from .store import open_engine
from .text import escape_controls

DATABASE_ENV = "DMP_HOST_DATABASE"
_YES_NO = {"yes": True, "no": False}


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _yes_no(text: str) -> bool:
    try:
        return _YES_NO[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError("yes or no") from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _escaped(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with its text escaped: names and titles were written by other people."""
    return {key: escape_controls(value) if isinstance(value, str) else value
            for key, value in item.items()}


def _print_log(entries: list[dict[str, Any]]) -> None:
    if not entries:
        print("(no access)")
    for entry in entries:
        # Names, justifications and reasons were written by other people: escaped, so no
        # escape sequence reaches the terminal and no line can be forged.
        text = _escaped(entry)
        who = text["actorName"] or text["actorId"]
        profession = f" [{text['profession']}]" if text["profession"] else ""
        structure = f" @ {text['structureId']}" if text["structureId"] else ""
        mode = "" if text["mode"] == "normal" else f" MODE {text['mode'].upper()}"
        why = f" ({text['justification']})" if text["justification"] else ""
        document = f" document {text['documentId']}" if text["documentId"] else ""
        print(f"{text['at']}  {text['actorKind']} {who}{profession}{structure}: "
              f"{text['action']}{document} {text['outcome']} {text['reason']}{mode}{why}")


def _print_documents(items: list[dict[str, Any]]) -> None:
    if not items:
        print("(no document)")
    for item in map(_escaped, items):
        author = item["authorName"] or item["authorId"]
        masked = " MASKED" if item["masked"] else ""
        status = "" if item["status"] == "current" else f" ({item['status']})"
        change = ""
        if item["maskable"]:
            change = "  (can unmask)" if item["masked"] else "  (can mask)"
        print(f"{item['depositedAt']}  {item['id']}  {item['title'] or '(untitled)'}"
              f"{status}{masked}  [class {item['classCode']}, type {item['typeCode']}] by "
              f"{author}{change}")


def _print_professionals(items: list[dict[str, Any]]) -> None:
    if not items:
        print("(no professional)")
    for item in map(_escaped, items):
        who = f"{item['name']} " if item["name"] else ""
        profession = f" [{item['profession']}]" if item["profession"] else ""
        structure = f" @ {item['structureId']}" if item["structureId"] else ""
        seen = f"last access {item['lastAccessAt']}" if item["lastAccessAt"] else "no access"
        flags = "".join((" BLOCKED" if item["blocked"] else "",
                         " MEDECIN TRAITANT" if item["medecinTraitant"] else ""))
        print(f"{who}{item['idNatPs']}{profession}{structure}: {seen}, authorization "
              f"{item['authorization']}{flags}")


def _print_notifications(items: list[dict[str, Any]]) -> None:
    if not items:
        print("(no notification)")
    for item in items:
        payload = item["payload"]
        sent = "sent" if item["sentAt"] else item.get("status") or "pending"
        print(f"{item['createdAt']}  {item['kind']} ({sent}): {payload.get('action')} by "
              f"{payload.get('actor')} [{payload.get('profession')}] mode {payload.get('mode')}")


def database_url(args: argparse.Namespace) -> str | None:
    """``--database`` or $DMP_HOST_DATABASE; None (and says why on stderr) when neither."""
    url: str | None = args.database or os.environ.get(DATABASE_ENV)
    if not url:
        print(f"dmp-host: no database: give --database URL or set {DATABASE_ENV}",
              file=sys.stderr)
    return url


def database_and_ins(args: argparse.Namespace) -> tuple[str, str] | None:
    """The database URL and the checked ``args.ins`` of an operator's command on one
    patient; None (and why on stderr) when either is missing or the INS is malformed."""
    url = database_url(args)
    if not url:
        return None
    try:
        return url, checked_ins(args.ins)
    except HostError as error:
        print(f"dmp-host: {error.code}: {error.message}", file=sys.stderr)
        return None


def run_patient(args: argparse.Namespace) -> int:
    """The handler of every ``dmp-host patient`` command; 0 on success, 1 when refused."""
    args.ins = args.ins or args.ins_option
    if not args.ins:
        print("dmp-host: the patient's INS is required (INS or --ins INS)", file=sys.stderr)
        return 2
    url = database_url(args)
    if not url:
        return 2
    guard = Guard(open_engine(url), _utc_now)
    command = args.patient_command
    try:
        if command == "access-log":
            entries = patient.access_log(guard, args.ins, actor_id=args.actor,
                                         outcome=args.outcome)
            _print_json(entries) if args.json else _print_log(entries)
        elif command == "notifications" and (args.channel or args.email):
            _print_json(patient.set_notifications(guard, args.ins, channel=args.channel,
                                                  email=args.email))
        elif command == "notifications":
            items = patient.notifications(guard, args.ins)
            _print_json(items) if args.json else _print_notifications(items)
        elif command == "authorizations":
            _print_json(patient.authorizations(guard, args.ins))
        elif command == "consents":
            _print_json(patient.set_consents(
                guard, args.ins, regulation_centre=args.regulation_centre,
                break_the_glass=args.break_the_glass,
                emergency_sees_masked=args.emergency_sees_masked,
            ))
        elif command == "close":
            _print_json(patient.close(guard, args.ins, args.reason))
        elif command == "reactivate":
            _print_json(patient.reactivate(guard, args.ins))
        elif command == "documents":
            items = patient_documents.documents(guard, args.ins, include_history=args.all)
            _print_json(items) if args.json else _print_documents(items)
        elif command in ("mask", "unmask"):
            _print_json(patient_documents.set_masked(guard, args.ins, args.document_id,
                                                     command == "mask"))
        elif command == "professionals":
            people = patient_documents.professionals(guard, args.ins)
            _print_json(people) if args.json else _print_professionals(people)
        else:
            action = {
                "block": patient.block, "unblock": patient.unblock, "revoke": patient.revoke,
                "end-medecin-traitant": patient.end_medecin_traitant,
                "designate-medecin-traitant": patient_documents.designate_medecin_traitant,
            }[command]
            _print_json(action(guard, args.ins, args.id_nat_ps))
    except HostError as error:
        print(f"dmp-host: {error.code}: {error.message}", file=sys.stderr)
        return 1
    finally:
        guard.engine.dispose()
    return 0


def add_patient_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``patient`` and its subcommands to dmp-host's command parsers."""
    parser = commands.add_parser(
        "patient", help="act as a patient on their DMP (block, access log...)",
        description="Act as the holder of a DMP, as a patient portal would: each action is "
        "decided by the access rules and traced in the access log.",
    )
    sub = parser.add_subparsers(dest="patient_command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, *, professional: bool = False,
                document: bool = False, json_output: bool = False
                ) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=help_text, description=help_text)
        # INS positional, or --ins INS (the same).
        child.add_argument("ins", metavar="INS", nargs="?",
                           help="the patient's INS (15 characters)")
        child.add_argument("--ins", dest="ins_option", metavar="INS", help=argparse.SUPPRESS)
        if professional:
            child.add_argument("id_nat_ps", metavar="IDNATPS",
                               help="the professional's national id (8 + RPPS, 0 + ADELI)")
        if document:
            child.add_argument("document_id", metavar="DOCUMENT_ID",
                               help="the document's id (as `documents` lists it)")
        child.add_argument("--database", metavar="URL",
                           help=f"host database URL (default: ${DATABASE_ENV})")
        if json_output:
            child.add_argument("--json", action="store_true", help="print JSON")
        child.set_defaults(run=run_patient)
        return child

    command("block", "forbid a professional any access to the DMP", professional=True)
    command("unblock", "lift a professional's block", professional=True)
    command("revoke", "revoke a professional's authorization", professional=True)
    command("end-medecin-traitant", "end a médecin traitant DMP designation",
            professional=True)
    command("designate-medecin-traitant", "declare a médecin traitant DMP (a doctor who "
            "already accessed the DMP)", professional=True)
    command("authorizations", "list authorizations, blocks and médecins traitants")
    consents = command("consents", "set the emergency-access consents")
    for flag, dest in (("--regulation-centre", "regulation_centre"),
                       ("--break-the-glass", "break_the_glass"),
                       ("--emergency-sees-masked", "emergency_sees_masked")):
        consents.add_argument(flag, dest=dest, type=_yes_no, metavar="yes|no")
    close = command("close", "close the DMP (kept 10 years, reactivable)")
    close.add_argument("--reason", required=True, help="why the DMP is closed")
    command("reactivate", "reactivate a closed DMP")
    history = command("access-log", "read the whole access history (who, when, what, which "
                      "mode), newest first", json_output=True)
    history.add_argument("--actor", metavar="IDNATPS", help="only this professional's accesses")
    history.add_argument("--outcome", choices=["allowed", "refused"],
                         help="only allowed or only refused accesses")
    notes = command("notifications", "read the patient's notifications, or choose how they "
                    "are sent (--channel, --email)", json_output=True)
    notes.add_argument("--channel", choices=["email", "none"],
                       help="send notifications by email, or not at all")
    notes.add_argument("--email", metavar="ADDR", help="the patient's address")
    listing = command("documents", "list the documents the patient may see, newest first",
                      json_output=True)
    listing.add_argument("--all", action="store_true",
                         help="also the superseded and archived documents")
    command("mask", "mask a document from professionals (its author and the médecins "
            "traitants still see it)", document=True)
    command("unmask", "unmask a document", document=True)
    command("professionals", "list the professionals who accessed the DMP, are authorized, "
            "blocked or médecins traitants", json_output=True)
