"""``dmp-host access-log verify`` and ``dmp-host retention run``: the operator's checks on
the patients' records.

    dmp-host access-log verify INS --database URL      exit 0 when the chain is whole,
                                                        1 naming the first bad entry
    dmp-host retention run --database URL [--blobs DIR] [--dry-run]

``--database`` defaults to $DMP_HOST_DATABASE. Neither command prints patient data: the
verifier names an entry by its position and time, the retention job prints counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from . import access_chain, retention
from .blobs import BlobStore
from .patient_cli import DATABASE_ENV, database_and_ins, database_url
from .store import open_engine


def _verify(args: argparse.Namespace) -> int:
    given = database_and_ins(args)
    if given is None:
        return 2
    url, ins = given
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            verdict = access_chain.verify(connection, ins)
    finally:
        engine.dispose()
    if verdict.first_break is not None:
        print(f"access log of {ins}: BROKEN: {verdict.first_break.describe()}")
        return 1
    print(f"access log of {ins}: {verdict.entries} entries, chain whole")
    return 0


def _retention(args: argparse.Namespace) -> int:
    url = database_url(args)
    if not url:
        return 2
    engine = open_engine(url)
    try:
        counts = retention.run(engine, dt.datetime.now(dt.UTC), dry_run=args.dry_run,
                               blobs=BlobStore(args.blobs) if args.blobs else None)
    finally:
        engine.dispose()
    label = "would purge" if args.dry_run else "purged"
    print(f"{label}: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    return 0


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", metavar="URL",
                        help=f"host database URL (default: ${DATABASE_ENV})")


def add_records_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``access-log`` and ``retention`` to dmp-host's command parsers."""
    log = commands.add_parser("access-log", help="check a patient's access history")
    log_sub = log.add_subparsers(dest="access_log_command", required=True, metavar="COMMAND")
    verify = log_sub.add_parser(
        "verify", help="verify the hash chain of a patient's access log",
        description="Exit 0 when every entry is intact, in order and present; 1 naming the "
        "first bad entry (its number, time, and whether it was edited, is missing or is out "
        "of order).")
    verify.add_argument("ins", metavar="INS", help="the patient's INS (15 characters)")
    _database(verify)
    verify.set_defaults(run=_verify)

    job = commands.add_parser("retention", help="purge DMPs closed for ten years")
    job_sub = job.add_subparsers(dest="retention_command", required=True, metavar="COMMAND")
    run = job_sub.add_parser(
        "run", help="purge every DMP whose retention ended (idempotent)",
        description="Delete every row of each DMP closed whose retention date has passed, and "
        "the document bodies no other patient uses; prints counts only.")
    _database(run)
    run.add_argument("--blobs", type=Path, metavar="DIR", help="the host's blob directory")
    run.add_argument("--dry-run", action="store_true", help="count, change nothing")
    run.set_defaults(run=_retention)
