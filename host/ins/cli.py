"""``dmp-host seed`` and ``dmp-host ins``: the INS service's population, by the operator.

    dmp-host seed [--ins-people N] [--random-seed S] --database URL
        migrate, load the seed file's identities, then add N generated people
    dmp-host ins correct INS [--birth-name ...] [--first-names ...] ... --database URL
        the national registry corrects a person's traits (what an agent holding the old
        ones must notice: its qualification is lost)

``--database`` defaults to $DMP_HOST_DATABASE. Neither prints anyone's traits.
"""

from __future__ import annotations

import argparse
import sys
import time

from sqlalchemy import update

from ..patient_cli import DATABASE_ENV, database_and_ins, database_url
from ..store import open_engine
from ..store.schema import patients

_CORRECTABLE = {"birth_name": "birth name", "first_names": "first names (space-separated)",
                "sex": "M or F", "birth_date": "YYYYMMDD", "birth_place": "INSEE code"}


def _seed(args: argparse.Namespace) -> int:
    from ..seed import seed_identities
    from ..store import upgrade
    from .population import generate

    url = database_url(args)
    if not url:
        return 2
    upgrade(url)
    engine = open_engine(url)
    try:
        seeded = seed_identities(engine)
        print(f"seed file: {seeded} identities")
        if args.ins_people:
            started = time.perf_counter()
            added = generate(engine, args.ins_people, args.random_seed)
            print(f"generated: {added} people in {time.perf_counter() - started:.1f} s "
                  f"(random seed {args.random_seed})")
    finally:
        engine.dispose()
    return 0


def _correct(args: argparse.Namespace) -> int:
    given = database_and_ins(args)
    if given is None:
        return 2
    url, ins = given
    values = {name: getattr(args, name) for name in _CORRECTABLE
              if getattr(args, name) is not None}
    if not values:
        print("dmp-host: nothing to correct: give at least one trait", file=sys.stderr)
        return 2
    if "first_names" in values:
        values["first_name"] = values["first_names"].split()[0]
    engine = open_engine(url)
    try:
        with engine.begin() as connection:
            changed = connection.execute(
                update(patients).where(patients.c.ins == ins).values(**values)).rowcount
    finally:
        engine.dispose()
    if not changed:
        print(f"dmp-host: no identity {ins}", file=sys.stderr)
        return 1
    print(f"{ins}: corrected ({', '.join(sorted(values))})")
    return 0


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", metavar="URL",
                        help=f"database URL (default ${DATABASE_ENV})")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a number of people, 0 or more")
    return value


def add_ins_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    seed = commands.add_parser(
        "seed", help="load the INS service's identities (and generate a population)",
        description="Migrate the database, load host/seed_identities.json, then add "
                    "--ins-people generated people: homonyms, composite names, lunar birth "
                    "dates, Corsica and abroad, twins (docs/ins.md).")
    seed.add_argument("--ins-people", type=_count, default=0, metavar="N",
                      help="how many people to generate (default none)")
    seed.add_argument("--random-seed", type=int, default=1, metavar="S",
                      help="the generator's seed: the same seed, the same people (%(default)s)")
    _database(seed)
    seed.set_defaults(run=_seed)
    ins = commands.add_parser("ins", help="the INS service's registry")
    sub = ins.add_subparsers(dest="ins_command", required=True, metavar="COMMAND")
    correct = sub.add_parser(
        "correct", help="correct a person's traits, as the national registry does",
        description="Change the traits the INS service answers for INS: an agent that "
                    "qualified the old ones loses the qualification at its next lookup.")
    correct.add_argument("ins", metavar="INS")
    for name, what in _CORRECTABLE.items():
        correct.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE",
                             help=what)
    _database(correct)
    correct.set_defaults(run=_correct)
