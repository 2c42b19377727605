"""`dmp-agent`: the workstation agent's command line."""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent.i18n import _, use_setting
from agent.install.enrol import add_enrol_command
from agent.safe_text import terminal_lines

if TYPE_CHECKING:
    from cardreader.inspect import SlotReport

def choose_language() -> str:
    """The language of everything this process says: ``ui.language``, or with ``auto`` (and
    when the configuration cannot be read: its command says why) the locale's."""
    from agent.config import ConfigError, load_config

    try:
        setting = load_config().ui_language
    except (ConfigError, OSError):
        setting = "auto"
    language = use_setting(setting)
    from agent.views.argparse_words import translate_argparse

    translate_argparse()
    return language


def main(argv: Sequence[str] | None = None) -> int:
    """`dmp-agent`: its exit status; no traceback reaches the user (`last_resort`)."""
    from agent.views.last_resort import guarded

    return guarded(_main, argv)


def _main(argv: Sequence[str] | None = None) -> int:
    choose_language()
    parser = argparse.ArgumentParser(
        prog="dmp-agent",
        description=_("DMP workstation agent.\n\nReads the professional's CPS card and the "
                      "patient's Vitale card in the PC/SC readers."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help=_("debug logs on stderr"))
    commands = parser.add_subparsers(dest="command", metavar=_("COMMAND"))
    cards = commands.add_parser(
        "cards",
        help=_("list the readers and the card in each, with the identity read from it"),
        description=_(
            "Lists the readers and what each holds: a CPS (identity, category, validity, PIN "
            "tries left), a Vitale card (holder and beneficiaries), an unknown card or "
            "nothing. Status: valid, none, unknown, changed, blocked, expired, reader-error."
        ),
    )
    cards.add_argument("--watch", action="store_true",
                       help=_("then print card events as they happen"))
    cards.add_argument("--json", action="store_true",
                       help=_("one JSON object per slot and event"))
    sandbox = commands.add_parser(
        "sandbox",
        help=_("play the daily scenarios end to end on virtual cards (see scripts/sandbox)"),
        description=_(
            "Sandbox: starts its own pcscd with the vpcd virtual reader, inserts virtual "
            "cards and plays the daily scenarios with readable output, then stops "
            "everything. It takes over pcscd's socket: run it through scripts/sandbox, which "
            "gives it private namespaces."
        ),
    )
    sandbox.add_argument("--keep", action="store_true",
                         help=_("keep pcscd and the cards running until Ctrl-C, for hands-on "
                                "use"))
    sandbox.add_argument("--state-dir", type=Path, default=None,
                         help=_("where the virtual cards keep their state (default: "
                                "temporary)"))
    add_enrol_command(commands)
    if _command(argv) not in _RUN_COMMANDS:
        # Not imported for `run` (start to API ready, issue 11): the workflow commands and the
        # doctor bring the card readers' parsers, the DMP client and the checks.
        from agent.install.doctor import add_doctor_command
        from agent.views.command_parser import add_workflow_commands

        add_workflow_commands(commands)
        add_doctor_command(commands)
    from agent.views.run import add_run_commands

    add_run_commands(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "cards":
        return cards_command(watch=args.watch, as_json_lines=args.json)
    if getattr(args, "run", None) is not None:  # enrol, doctor, run, page, the workflows
        return int(args.run(args))
    if args.command == "sandbox":
        from agent.sandbox.main import run

        return run(keep=args.keep, state_dir=args.state_dir)
    parser.print_help()
    return 2


_RUN_COMMANDS = ("run", "page")  # need none of the other commands' modules


def _command(argv: Sequence[str] | None) -> str | None:
    """The command named on the line (the first word that is not an option), if any."""
    words = sys.argv[1:] if argv is None else argv
    return next((word for word in words if not word.startswith("-")), None)


def _print(report: SlotReport, as_json_lines: bool) -> None:
    from agent.card_words import localized
    from agent.core.cards_view import as_json, describe  # the card parsers: not for `run`

    report = localized(report)
    if as_json_lines:
        print(json.dumps(as_json(report), ensure_ascii=False), flush=True)
    else:
        # What the cards say is someone else's text: shown, never obeyed by the terminal.
        print(terminal_lines("\n".join(describe(report))), flush=True)


def cards_command(*, watch: bool, as_json_lines: bool) -> int:
    # Here, not at the top: `run` needs none of the card readers' parsers at start.
    from agent.card_words import card_error_text
    from cardreader.errors import CardError
    from cardreader.inspect import CardStatus, inspect_reader
    from cardreader.pcsc import list_readers

    try:
        readers = list_readers()
    except CardError as exc:
        print(f"dmp-agent: {card_error_text(exc)}\n  → "
              + _("start pcscd (systemctl start pcscd)"),
              file=sys.stderr)
        return 1
    if not readers and not watch:
        print(_("No card reader found: plug one in, or check pcscd."), file=sys.stderr)
        return 1
    reports = {reader: inspect_reader(reader) for reader in readers}
    for report in reports.values():
        _print(report, as_json_lines)
    if not watch:
        return 0 if all(r.status is not CardStatus.READER_ERROR for r in reports.values()) else 1
    return _watch(reports, as_json_lines)


def _watch(reports: dict[str, SlotReport], as_json_lines: bool) -> int:
    from cardreader.inspect import CardStatus, SlotReport, inspect_reader
    from cardreader.pcsc import EventKind, Monitor, SlotEvent

    events: queue.Queue[SlotEvent | None] = queue.Queue()
    signal.signal(signal.SIGTERM, lambda *_: events.put(None))
    with Monitor(events.put):
        try:
            while (event := events.get()) is not None:
                if event.kind is EventKind.CARD_INSERTED:
                    report = inspect_reader(event.reader, reports.get(event.reader))
                    reports[event.reader] = report
                    _print(report, as_json_lines)
                elif event.kind in (EventKind.CARD_REMOVED, EventKind.CARD_MUTE):
                    status = CardStatus.NONE if event.kind is EventKind.CARD_REMOVED else (
                        CardStatus.UNKNOWN
                    )
                    _print(SlotReport(event.reader, status, message=event.kind.value),
                           as_json_lines)
                elif as_json_lines:
                    print(json.dumps({"event": event.kind.value, "reader": event.reader}),
                          flush=True)
                else:
                    from agent.card_words import event_text

                    print(event_text(event), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
