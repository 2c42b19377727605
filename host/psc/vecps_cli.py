"""``dmp-vecps``: the virtual e-CPS phone app (docs/psc.md).

    dmp-vecps enrol IDNAT --provider URL --ca FILE   activate the e-CPS (choose its code)
    dmp-vecps pending                                the logins waiting for an answer
    dmp-vecps approve ID | deny ID                   answer one (its message is shown)

A login not answered expires on its own (time out). The code is read from ``--code``, the
``DMP_VECPS_CODE`` environment variable or asked (hidden) on a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
import platformdirs

from .vecps import EcpsError, VirtualEcps

STATE = platformdirs.user_data_path("dmp-vecps")
CODE_ENV = "DMP_VECPS_CODE"


def _code(args: argparse.Namespace) -> str:
    if args.code:
        return str(args.code)
    if os.environ.get(CODE_ENV):
        return os.environ[CODE_ENV]
    return getpass.getpass("Code e-CPS : ")


def _enrol(app: VirtualEcps, args: argparse.Namespace) -> int:
    device = app.enrol(args.provider, args.ca, args.id_nat_ps, _code(args))
    print(f"e-CPS activée pour {args.id_nat_ps} (appareil {device})")
    return 0


def _pending(app: VirtualEcps, args: argparse.Namespace) -> int:
    logins = app.pending(_code(args))
    if not logins:
        print("Aucune demande en attente.")
    for login in logins:
        print(f"{login.id}  « {login.binding_message} »  ({login.client}, expire dans "
              f"{login.expires_in} s)")
    return 0


def _decide(app: VirtualEcps, args: argparse.Namespace) -> int:
    approve = args.command == "approve"
    shown, status = app.decide(args.login_id, approve, _code(args))
    print(f"« {shown.binding_message} » : "
          + ("connexion approuvée" if status == "approved" else "connexion refusée"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmp-vecps", description="Virtual e-CPS app "
                                     "(Pro Santé Connect) for tests and the sandbox.")
    parser.add_argument("--state", type=Path, default=STATE,
                        help="the app's data (default %(default)s)")
    parser.add_argument("--code", default=None, help=f"the e-CPS code (or {CODE_ENV})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    enrol = commands.add_parser("enrol", help="activate the e-CPS for a professional")
    enrol.add_argument("id_nat_ps", metavar="IDNAT", help="the professional's idNat_PS")
    enrol.add_argument("--provider", required=True, help="the provider, https://HOST:PORT")
    enrol.add_argument("--ca", type=Path, required=True, help="the provider's CA (PKI/psc/ca.pem)")
    enrol.set_defaults(run=_enrol)
    pending = commands.add_parser("pending", help="list the logins waiting for an answer")
    pending.set_defaults(run=_pending)
    for name, text in (("approve", "approve a login"), ("deny", "deny a login")):
        decide = commands.add_parser(name, help=text)
        decide.add_argument("login_id", metavar="ID")
        decide.set_defaults(run=_decide)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(VirtualEcps(args.state), args))
    except EcpsError as error:
        print(f"dmp-vecps: {error}", file=sys.stderr)
        return 2
    except (OSError, httpx.HTTPError) as error:  # the provider unreachable, its CA unreadable
        print(f"dmp-vecps: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
