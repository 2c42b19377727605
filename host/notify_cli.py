"""``dmp-host notify run|status``: the notification sender and its report.

    dmp-host notify run --database URL --smtp URL [--from ADDR] [--once]
    dmp-host notify status --database URL [--json]
    dmp-host notify mailbox --port P --dir DIR   a local SMTP server that keeps every message


``--database`` defaults to $DMP_HOST_DATABASE, ``--smtp`` to $DMP_HOST_SMTP_URL, ``--from``
to $DMP_HOST_SMTP_FROM. Run one sender per database. ``status`` exits 1 when notifications
are uncertain (a sender was stopped during a send) or failed, so a monitor sees them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from . import notify
from .patient_cli import DATABASE_ENV, database_url
from .settings import NotifySettings
from .store import open_engine

SMTP_ENV = "DMP_HOST_SMTP_URL"
FROM_ENV = "DMP_HOST_SMTP_FROM"


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("a number of seconds above 0")
    return value


def _run(args: argparse.Namespace) -> int:
    url = database_url(args)
    if not url:
        return 2
    smtp = args.smtp or os.environ.get(SMTP_ENV)
    if not smtp:
        print(f"dmp-host: no SMTP server: give --smtp URL or set {SMTP_ENV}", file=sys.stderr)
        return 2
    defaults = NotifySettings()
    settings = NotifySettings(
        smtp_url=smtp, sender=args.sender or os.environ.get(FROM_ENV) or defaults.sender,
        interval=args.interval, backoff=dt.timedelta(seconds=args.backoff),
        max_attempts=args.max_attempts)
    try:
        notify.SmtpTarget.parse(smtp)
    except ValueError as error:
        print(f"dmp-host: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = open_engine(url)
    try:
        total = notify.Sender(engine, settings).run(once=args.once, stop=stop)
    except KeyboardInterrupt:
        return 0
    finally:
        engine.dispose()
    print(f"sent {total.sent}, skipped {total.skipped}, retried {total.retried}, failed "
          f"{total.failed}, uncertain {total.uncertain}")
    return 0


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _status(args: argparse.Namespace) -> int:
    url = database_url(args)
    if not url:
        return 2
    engine = open_engine(url)
    try:
        report = notify.status(engine)
    finally:
        engine.dispose()
    counts = report["counts"]
    if args.json:
        print(json.dumps(report, default=_text, indent=2))
    else:
        print(", ".join(f"{name} {count}" for name, count in counts.items()))
        if report["oldestPending"] is not None:
            print(f"oldest pending: {_text(report['oldestPending'])}; next retry: "
                  f"{_text(report['nextRetry'])}")
        for row in report["problems"]:
            print(f"{row['status'].upper()} {row['id']} {row['kind']} created "
                  f"{_text(row['created_at'])}, {row['attempts']} attempt(s): "
                  f"{row['last_error']}")
    return 1 if counts["uncertain"] or counts["failed"] else 0


def _mailbox(args: argparse.Namespace) -> int:
    from .mailbox import SmtpServer

    server = SmtpServer(port=args.port, directory=args.dir).start()
    print(f"dmp-host: mailbox on {server.url}, messages written to {args.dir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def add_notify_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``notify run`` and ``notify status`` to dmp-host's command parsers."""
    parser = commands.add_parser("notify", help="send the patients' notifications by email")
    sub = parser.add_subparsers(dest="notify_command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run", help="send pending notifications (a loop; --once drains and exits)",
        description="Send the pending notifications in order through SMTP, retrying with "
        "backoff. A notification left 'sending' by a stopped sender is never sent again: it "
        "is reported as uncertain.")
    run.add_argument("--database", metavar="URL", help=f"default: ${DATABASE_ENV}")
    run.add_argument("--smtp", metavar="URL", help="smtp://host:port, smtp+starttls://user:"
                     f"pass@host:587 or smtps://user:pass@host:465 (default: ${SMTP_ENV})")
    run.add_argument("--from", dest="sender", metavar="ADDR",
                     help=f"the From address (default: ${FROM_ENV} or the built-in one)")
    run.add_argument("--once", action="store_true", help="drain the queue and exit")
    run.add_argument("--interval", type=_seconds, default=NotifySettings.interval,
                     help="seconds between two looks at the queue (default: %(default)s)")
    run.add_argument("--backoff", type=_seconds,
                     default=NotifySettings.backoff.total_seconds(),
                     help="first retry delay in seconds, doubled each time "
                     "(default: %(default)s)")
    run.add_argument("--max-attempts", type=int, default=NotifySettings.max_attempts,
                     help="attempts before a notification is failed (default: %(default)s)")
    run.set_defaults(run=_run)
    report = sub.add_parser("status", help="counts per status; uncertain and failed ones",
                            description="Exit 1 when some notifications are uncertain or "
                            "failed.")
    report.add_argument("--database", metavar="URL", help=f"default: ${DATABASE_ENV}")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(run=_status)
    mailbox = sub.add_parser(
        "mailbox", help="a local SMTP server keeping each message as a file (sandbox, tests)",
        description="Accept every message on 127.0.0.1 and write it to DIR as NNNN.eml: the "
        "sandbox's post office, where the patients' notifications and sign-in codes arrive. "
        "Not a relay: nothing leaves the machine.")
    mailbox.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    mailbox.add_argument("--dir", type=Path, required=True, help="where messages are written")
    mailbox.set_defaults(run=_mailbox)
