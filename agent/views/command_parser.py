"""The parser of the `dmp-agent` workflow commands (`agent.views.commands` runs them): each
command's help in the agent's language (docs/i18n.md), an example, the exit codes."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.i18n import N_, _
from agent.views.command_session import EXIT_USAGE
from agent.views.commands import (
    _metadata_command,
    cmd_authorize,
    cmd_close_dmp,
    cmd_create_dmp,
    cmd_deposit,
    cmd_documents,
    cmd_emergency,
    cmd_find_patient,
    cmd_identity,
    cmd_medecin_traitant,
    cmd_outbox,
    cmd_patient,
    cmd_reactivate_dmp,
    cmd_regulation,
    cmd_replace,
    cmd_status,
    cmd_unblock,
    cmd_watch,
    run_command,
)
from agent.views.ecps_cli import cmd_login
from agent.views.vaccination_cli import add_vaccinate_command

__all__ = ["WORKFLOW_COMMANDS", "add_workflow_commands"]

# -- the parser -------------------------------------------------------------------------------

WORKFLOW_COMMANDS = ("patient", "find-patient", "identity", "documents", "create-dmp",
                     "authorize", "deposit", "outbox", "emergency", "regulation", "watch",
                     "mask", "unmask", "hide-from-patient", "show-to-patient", "archive",
                     "delete", "replace", "close-dmp", "reactivate-dmp", "medecin-traitant",
                     "unblock", "status", "login", "vaccinate")


EXIT_CODES = N_("Exit codes: 0 done, 1 refused or failed (card, PIN, host), 2 misuse.")
EXAMPLES = {
    "create-dmp": "dmp-agent create-dmp --consent --email claire.martin@example.fr "
                  "--sheet ~/fiche-dmp.pdf",
    "deposit": "dmp-agent deposit bilan.pdf --type 34810-2 --title 'Bilan visuel'",
    "documents": "dmp-agent documents --save ~/dmp-documents",
    "emergency": "dmp-agent emergency --justification 'patient inconscient, pronostic "
                 "vital engagé' documents",
    "authorize": "dmp-agent authorize --confirm",
    "patient": "dmp-agent patient --person 2",
    "identity": "dmp-agent identity --document passeport",
    "find-patient": "dmp-agent find-patient --birth-name MARTIN --first-names CLAIRE --sex F "
                    "--birth-date 19840517",
    "outbox": "dmp-agent outbox --retry 3",
    "replace": "dmp-agent replace urn:uuid:... bilan-v2.pdf",
    "close-dmp": "dmp-agent close-dmp --patient-request --reason 'ne souhaite plus de DMP'",
    "reactivate-dmp": "dmp-agent reactivate-dmp --consent",
    "medecin-traitant": "dmp-agent medecin-traitant --confirm",
    "unblock": "dmp-agent unblock",
    "login": "dmp-agent login --ecps --idnat 810003456786",
    "vaccinate": "dmp-agent vaccinate --vaccine 61402736 --lot K123AB --dose 1 "
                 "--route 20035000",
}


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    cards = common.add_argument_group(_("cards"))
    cards.add_argument("--pin-stdin", action="store_true",
                       help=_("read the CPS PIN as one line of standard input (automation; "
                              "never an argument or a variable). A wrong PIN is not retried, "
                              "and the card's last try is left to the terminal"))
    cards.add_argument("--person", type=int, metavar="N",
                       help=_("the N-th person on the Vitale card (1 = the holder); listed "
                              "when the card holds several and none is chosen"))
    cards.add_argument("--identity", type=int, metavar="N",
                       help=_("when the INS service answers several identities: the N-th, "
                              "chosen by comparing its traits with the patient's document "
                              "(listed when none is chosen; never picked for you)"))
    cards.add_argument("--situation", metavar="N|STRUCTURE",
                       help=_("the practice situation to work in, when the CPS holds several: "
                              "its number (1 = the first) or its structure id (default: the "
                              "first; the one used is said)"))
    cards.add_argument("--ecps", action="store_true",
                       help=_("log in with the e-CPS through Pro Santé Connect instead of the "
                              "CPS card: approve on your phone (countdown shown; Ctrl-C "
                              "cancels)"))
    cards.add_argument("--idnat", metavar="IDNAT_PS",
                       help=_("with --ecps: your national id (RPPS); default: the last one "
                              "used here"))
    cards.add_argument("--cps-reader", metavar=_("NAME"),
                       help=_("the reader holding the CPS (default: found by its ATR)"))
    cards.add_argument("--vitale-reader", metavar=_("NAME"),
                       help=_("the reader holding the Vitale card (default: found by its "
                              "ATR)"))
    return common


def add_workflow_commands(
        commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the workflow commands; the parsed namespace's ``run(args) -> int`` runs one."""
    common = _common()

    def add(name: str, action: Callable[[argparse.Namespace], int], summary: str,
            description: str, *, cards: bool = True) -> argparse.ArgumentParser:
        """``cards``: the options of a command that opens a session (PIN, person...)."""
        example = EXAMPLES.get(name)
        epilog = textwrap.fill(_(EXIT_CODES), 90)
        if example:
            epilog = _("Example:") + f"\n  {example}\n\n{epilog}"
        parser: argparse.ArgumentParser = commands.add_parser(
            name, parents=[common] if cards else [], help=summary,
            description=textwrap.fill(description, 90),
            epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(run=run_command, action=action)
        return parser

    add("patient", cmd_patient,
        _("the patient of the Vitale card: INS, identity status, DMP status, rights"),
        _("The patient's identity (INS from the INS service, its RNIV status: provisoire, "
          "récupérée, qualifiée), the DMP's status, your authorization."))
    identity = add("identity", cmd_identity,
                   _("record the identity document checked (the identity becomes qualifiée)"),
                   _("Records the high-trust identity document checked against the traits the "
                     "INS service returned: the identity becomes qualifiée, which allows "
                     "deposits (RNIV rule); kept on this workstation while the INS service "
                     "answers the same traits."))
    identity.add_argument("--document", required=True, metavar="TYPE",
                          help=_("passeport, carte-identite, carte-identite-electronique, "
                                 "titre-de-sejour; for a minor: acte-de-naissance or "
                                 "livret-de-famille with --parent-document"))
    identity.add_argument("--parent-document", metavar="TYPE",
                          help=_("a minor's: the document of the parent presenting the child"))
    find = add("find-patient", cmd_find_patient,
               _("find the patient by typed traits, with no Vitale card (INS service)"),
               _("Finds the patient by their identity traits through the INS service, with no "
                 "Vitale card (the Vitale app, or no card): then the identity, its RNIV status "
                 "and the DMP's status; several identities: --identity N."))
    find.add_argument("--birth-name", required=True, metavar="NAME", help=_("birth name"))
    find.add_argument("--first-names", required=True, metavar="'A B'",
                      help=_("the first names in the order of the civil registry (or the "
                             "first)"))
    find.add_argument("--sex", required=True, choices=("M", "F"))
    find.add_argument("--birth-date", required=True, metavar="YYYYMMDD",
                      help=_("00 for an unknown month or day"))
    find.add_argument("--birth-place", metavar="INSEE", help=_("INSEE code (99xxx abroad)"))
    documents = add("documents", cmd_documents, _("list (and save) the documents you may see"),
                    _("Lists the DMP's documents you may see; --save writes them, hash "
                      "checked, owner-only."))
    documents.add_argument("--archived", action="store_true",
                           help=_("the archived documents instead (left out by default)"))
    create = add("create-dmp", cmd_create_dmp, _("create the patient's DMP, print the sheet"),
                 _("Creates the DMP at the counter: the consent is mandatory; the "
                   "emergency-access consents are given unless refused; --email gives the "
                   "patient's address (notifications, sign-in codes); writes the patient's "
                   "secrets sheet (PDF, owner-only) to print and hand over."))
    create.add_argument("--consent", action="store_true",
                        help=_("the patient consented to the DMP (mandatory)"))
    create.add_argument("--no-break-the-glass", action="store_true",
                        help=_("the patient refuses break-the-glass access"))
    create.add_argument("--no-regulation-centre", action="store_true",
                        help=_("the patient refuses access by the regulation centre (SAMU-15)"))
    create.add_argument("--no-emergency-masked", action="store_true",
                        help=_("emergency access does not see masked documents"))
    create.add_argument("--sheet", type=Path, required=True, metavar=_("FILE.pdf"),
                        help=_("where to write the secrets sheet"))
    create.add_argument("--email", metavar=_("ADDRESS"),
                        help=_("the patient's email address, where the host sends the "
                               "patient's notifications and the patient portal the sign-in "
                               "codes (printed on the sheet). Optional, but without it the "
                               "patient can neither be notified nor sign in to the portal"))
    authorize = add("authorize", cmd_authorize,
                    _("record the patient's authorization (--confirm)"),
                    _("Records that the patient authorizes you; refused without --confirm."))
    authorize.add_argument("--confirm", action="store_true",
                           help=_("the patient, in person, said yes"))
    close = add("close-dmp", cmd_close_dmp, _("close the DMP at the patient's request"),
                _("Closes the DMP at the request of the patient, present: kept ten years, it "
                  "can be reactivated; the patient is notified. Refused without "
                  "--patient-request."))
    close.add_argument("--patient-request", action="store_true",
                       help=_("the patient, in person, asks for the closure"))
    close.add_argument("--reason", required=True, metavar=_("TEXT"),
                       help=_("why (recorded; the patient sees it)"))
    reactivate = add("reactivate-dmp", cmd_reactivate_dmp,
                     _("reopen a closed DMP (--consent)"),
                     _("Reopens a closed DMP with the patient's consent."))
    reactivate.add_argument("--consent", action="store_true",
                            help=_("the patient consented to reopen the DMP"))
    doctor = add("medecin-traitant", cmd_medecin_traitant,
                 _("record that the patient designates you médecin traitant DMP (--confirm)"),
                 _("Records that the patient designates you as médecin traitant DMP (doctors "
                   "only): you then see the documents masked from others."))
    doctor.add_argument("--confirm", action="store_true",
                        help=_("the patient, in person, designates you"))
    deposit = add("deposit", cmd_deposit, _("sign and deposit a document (via the outbox)"),
                  _("Signs (CPS card) and deposits a PDF or text document; it goes through "
                    "the outbox, so nothing is lost if the host is away."))
    deposit.add_argument("file", type=Path, nargs="?", metavar=_("FILE"),
                         help=_("the document: a .pdf, a .txt or a CDA .xml file"))
    deposit.add_argument("--type", metavar=_("CODE"),
                         help=_("document type (LOINC), see --list-types; a CDA document "
                                "names its own"))
    deposit.add_argument("--list-types", action="store_true",
                         help=_("list the types your profession may deposit (no PIN needed)"))
    deposit.add_argument("--title", help=_("title (default: the type's label)"))
    deposit.add_argument("--masked", action="store_true", help=_("masked from professionals"))
    deposit.add_argument("--invisible-to-patient", action="store_true",
                         help=_("hidden from the patient until the announcement consultation"))
    outbox = add("outbox", cmd_outbox, _("pending and refused deposits; --retry ID; --recover"),
                 _("The outbox: deposits not yet acknowledged, with why they wait and when "
                   "they are tried again; --retry ID requeues a refused one and sends it "
                   "(needs the author's CPS); --recover rebuilds the queue from the outbox's "
                   "files (after a damaged database was put in quarantine)."))
    outbox.add_argument("--retry", type=int, metavar="ID", help=_("requeue and send item ID"))
    outbox.add_argument("--recover", action="store_true",
                        help=_("rebuild the queue from the outbox's files, bringing back from "
                               "quarantine what opens now (docs/agent-outbox.md)"))
    emergency = add("emergency", cmd_emergency, _("break-the-glass access (traced, notified)"),
                    _("Emergency “break the glass” access: only when the patient cannot "
                      "consent and there is an immediate risk; the justification is recorded "
                      "and the patient notified."))
    emergency.add_argument("--justification", required=True, metavar=_("TEXT"),
                           help=_("why (recorded and shown to the patient)"))
    emergency.add_argument("what", choices=["documents"],
                           help=_("what to do in emergency mode"))
    regulation = add("regulation", cmd_regulation,
                     _("regulation-centre access (centre 15 / SAMU: traced, notified)"),
                     _("Access of the regulation centre (centre 15): the authorization is not "
                       "checked, the patient's opt-out is; traced and notified."))
    regulation.add_argument("what", choices=["documents"], help=_("what to do in this mode"))
    add("login", cmd_login, _("open a session (card, or --ecps), say who and until when, "
                              "close it"),
        _("Opens a session as every command does (the CPS card and its PIN, or with --ecps "
          "the e-CPS approved on the phone), says the professional, the practice situation "
          "and until when, then closes it: the check that this workstation can log in."),
        )
    unblock = add("unblock", cmd_unblock, _("unblock a blocked CPS with its PUK and a new PIN"),
                  _("Unblocks the blocked CPS (wrong PIN three times) with its unblocking "
                    "code (PUK, 8 digits) and a new PIN, typed without echo (the new one "
                    "twice). A wrong PUK says its tries left; a blocked PUK leaves only the "
                    "card's issuer (ANS)."),
                  cards=False)
    unblock.add_argument("--stdin", action="store_true",
                         help=_("read the PUK then the new PIN as two lines of standard input "
                                "(automation; never arguments or variables)"))
    unblock.add_argument("--cps-reader", metavar=_("NAME"),
                         help=_("the reader holding the CPS (default: found by its ATR)"))
    status = add("status", cmd_status,
                 _("the agent's state: host, session, patient, outbox (no PIN asked)"),
                 _("What the running agent (dmp-agent run) holds: the DMP host's state, the "
                   "session, the patient, the outbox; with none running, the cards as read "
                   "now."), cards=False)
    status.add_argument("--cps-reader", metavar=_("NAME"),
                        help=_("the reader holding the CPS (default: found by its ATR)"))
    add("watch", cmd_watch, _("keep the session open; each Vitale card opens its dossier"),
        _("Consultation: the session stays open; each Vitale card inserted opens its "
          "patient's dossier, each removal clears it. Ends when the CPS is removed."))
    for parser in (documents, emergency, regulation):
        parser.add_argument("--type", action="append", metavar=_("CODE"),
                            help=_("only this LOINC type code (repeatable)"))
        parser.add_argument("--save", type=Path, metavar=_("DIR"),
                            help=_("save each document here"))
    for name, done, summary in (
        ("mask", N_("Masked"), _("mask a document from professionals")),
        ("unmask", N_("Unmasked"), _("unmask a document")),
        ("hide-from-patient", N_("Hidden from the patient"),
         _("hide a document from the patient until the announcement consultation")),
        ("show-to-patient", N_("Shown to the patient"),
         _("show a hidden document to the patient (the announcement consultation took "
           "place)")),
        ("archive", N_("Archived"), _("archive a document")),
        ("delete", N_("Deleted"), _("delete one's own document")),
    ):
        parser = add(name, _metadata_command(name, done), summary,
                     _("{summary} (by its uniqueId, as `documents` shows it).").format(
                         summary=summary[:1].upper() + summary[1:]))
        parser.add_argument("unique_id", metavar="UNIQUE_ID")
    replace = add("replace", cmd_replace, _("deposit a new version of a document"),
                  _("Deposits a new version that replaces UNIQUE_ID (the old one leaves the "
                    "current set)."))
    replace.add_argument("unique_id", metavar="UNIQUE_ID")
    replace.add_argument("file", type=Path, metavar=_("FILE"),
                         help=_("the new version (.pdf, .txt)"))
    replace.add_argument("--title", help=_("title (default: the old one's)"))
    add_vaccinate_command(add)  # docs/cda.md "The vaccination record"


def main(argv: Sequence[str] | None = None) -> int:
    """Only the workflow commands (the lead wires them into `agent.cli`)."""
    parser = argparse.ArgumentParser(prog="dmp-agent")
    add_workflow_commands(parser.add_subparsers(dest="command", metavar=_("COMMAND")))
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
