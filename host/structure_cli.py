"""``dmp-host structure ...``: the registry of structures (what kind each one is).

    dmp-host structure add ID --kind regulation_centre --name "SAMU 75" --database URL
    dmp-host structure list --database URL [--json]

Only a structure registered as ``regulation_centre`` may use the centre 15 mode;
``occupational_health``, ``insurer`` and ``mutual`` get no access at all (docs/security.md).
``--database`` defaults to the DMP_HOST_DATABASE environment variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from policies import StructureKind

from . import structures
from .patient_cli import DATABASE_ENV, database_url
from .store import open_engine


def run_structure(args: argparse.Namespace) -> int:
    url = database_url(args)
    if not url:
        return 2
    engine = open_engine(url)
    try:
        if args.structure_command == "add":
            try:
                entry = structures.register(engine, args.id, args.name, args.kind,
                                            dt.datetime.now(dt.UTC))
            except structures.StructureError as error:
                print(f"dmp-host: {error}", file=sys.stderr)
                return 2
            print(f"{entry['id']} {entry['kind']} {entry['name']}")
        else:
            entries = structures.listing(engine)
            if args.json:
                print(json.dumps(entries, ensure_ascii=False, indent=2))
            for entry in [] if args.json else entries:
                print(f"{entry['id']}  {entry['kind']:<20} {entry['name']}")
    finally:
        engine.dispose()
    return 0


def add_structure_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "structure", help="the registry of structures (regulation centres, excluded kinds)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="structure_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="register a structure or change its kind",
                         description="Register a structure (3 + FINESS, 4 + SIREN, "
                         "5 + SIRET) with its kind; an unregistered structure is a care "
                         "structure.")
    add.add_argument("id", metavar="ID", help="the structure's national id")
    add.add_argument("--kind", required=True, choices=[k.value for k in StructureKind])
    add.add_argument("--name", required=True, help="the structure's name")
    listing = sub.add_parser("list", help="list the registered structures")
    listing.add_argument("--json", action="store_true", help="print JSON")
    for child in (add, listing):
        child.add_argument("--database", metavar="URL",
                           help=f"host database URL (default: ${DATABASE_ENV})")
        child.set_defaults(run=run_structure)
