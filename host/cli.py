"""``dmp-host``: the reference host's command line.

    dmp-host pki init DIR                    make the whole test PKI
    dmp-host pki issue-workstation DIR NAME  a workstation client certificate
    dmp-host pki revoke DIR CERT.pem         revoke a certificate (rewrites its CA's CRL)
    dmp-host pki refresh-crl DIR             re-sign the CRLs before they expire
    dmp-host structure add|list ...          the registry of structures (regulation centres...)
    dmp-host access-log verify INS           check a patient's access-log hash chain
    dmp-host retention run [--dry-run]       purge DMPs whose ten-year retention ended
    dmp-host notify run [--once] | status    send the patients' notifications (SMTP)
    dmp-host portal serve                    the patient portal (a web app, in French)
    dmp-host psc serve | rotate-keys         the reference Pro Santé Connect (docs/psc.md)
    dmp-host seed --ins-people N             the INS service's identities (+ a population)
    dmp-host ins correct INS --first-names.. the registry corrects a person's traits

Each command group is a subparser with a ``run`` function, so new commands (``serve``) slot
in with `add_command`-style code and no change to `main`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from . import pki
from .ins.cli import add_ins_commands
from .notify_cli import add_notify_commands
from .patient_cli import add_patient_commands
from .portal_cli import add_portal_commands
from .psc.cli import add_psc_commands
from .records_cli import add_records_commands
from .serve_cli import add_serve_commands
from .structure_cli import add_structure_commands

DESCRIPTION = "Reference central host of the DMP (French shared medical record)."
PKI_HELP = f"""\
Test PKI of the reference host. Private keys are written with mode 0600; set
{pki.PASSPHRASE_ENV} to encrypt them (and to read them back), otherwise they are written in
clear with a warning: never use such a PKI outside tests and the sandbox, never commit it.

Layout of DIR:
  health-ca/         ca.pem ca.key root.pem crl.pem  CPS cards (use with dmp-vcard --ca)
  establishment-ca/  ca.pem ca.key crl.pem           workstation and server certificates
  session-ca/        ca.pem ca.key crl.pem           short-lived session certificates
  server/            cert.pem key.pem ca.pem         the host's TLS certificate (+ its CA)
  workstations/      NAME.pem NAME.key               workstation client certificates
  psc/               cert.pem key.pem ca.pem         the reference PSC's TLS certificate
                                                     (made by `psc serve`, docs/psc.md)
"""


def _days(text: str) -> int:
    days = int(text)
    if days <= 0:
        raise argparse.ArgumentTypeError("a number of days above 0")
    return days


def _init(args: argparse.Namespace) -> int:
    paths = pki.init_pki(args.dir, force=args.force)
    cert, key = paths.workstation(pki.SANDBOX_WORKSTATION)
    print(f"PKI created in {paths.root}")
    print(f"  server certificate: {paths.server_cert} (clients trust {paths.server_ca})")
    print(f"  sandbox workstation: {cert} + {key}")
    print(f"  virtual cards: dmp-vcard --ca {paths.health_ca}")
    return 0


def _issue_workstation(args: argparse.Namespace) -> int:
    cert, key = pki.issue_workstation(
        args.dir, args.name, organization=args.organization,
        lifetime=timedelta(days=args.days),
    )
    print(f"{cert}\n{key}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    certificate = pki.load_certificate(args.cert)
    ca_dir = pki.issuer_directory(args.dir, certificate)
    crl = pki.revoke(ca_dir, certificate)
    print(
        f"revoked serial {certificate.serial_number:x} "
        f"({certificate.subject.rfc4514_string()}); {ca_dir / pki.CRL_FILE} now lists "
        f"{len(crl)} certificate(s)"
    )
    return 0


def _refresh_crl(args: argparse.Namespace) -> int:
    paths = pki.PkiPaths(args.dir)
    for ca_dir in (paths.health_ca, paths.establishment_ca, paths.session_ca):
        crl = pki.refresh_crl(ca_dir, crl_lifetime=timedelta(days=args.days))
        print(f"{ca_dir / pki.CRL_FILE}: valid until {crl.next_update_utc:%Y-%m-%d %H:%M} UTC")
    return 0


def _add_pki(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "pki", help="make and manage the test PKI", description=PKI_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="pki_command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init", help="generate the whole test PKI in DIR",
        description="Generate the health CA (root + issuing CA, with the names of the "
        "IGC-Santé test CAs), the establishment CA, the session CA, their CRLs, the host's "
        "server certificate (localhost, 127.0.0.1, ::1) and the 'sandbox' workstation "
        "certificate.",
    )
    init.add_argument("dir", type=Path, metavar="DIR", help="directory to create the PKI in")
    init.add_argument("--force", action="store_true", help="replace a PKI already in DIR")
    init.set_defaults(run=_init)

    issue = sub.add_parser(
        "issue-workstation", help="issue a workstation client certificate",
        description="Issue a client certificate from the establishment CA into "
        "DIR/workstations/NAME.pem and NAME.key (what a workstation presents on every TLS "
        "connection to the host).",
    )
    issue.add_argument("dir", type=Path, metavar="DIR", help="the PKI directory")
    issue.add_argument("name", metavar="NAME", help="workstation name (letters, digits, . _ -)")
    issue.add_argument("--organization", default="ETABLISSEMENT DE TEST",
                       help="subject O (default: %(default)s)")
    issue.add_argument("--days", type=_days, default=3 * 365,
                       help="validity in days (default: %(default)s)")
    issue.set_defaults(run=_issue_workstation)

    revoke = sub.add_parser(
        "revoke", help="revoke a certificate into its CA's CRL",
        description="Find which CA of DIR issued CERT.pem (a card, workstation or session "
        "certificate) and add it to that CA's crl.pem. A running host reads the new CRL at "
        "its next request: a revoked card or workstation loses its sessions at once.",
    )
    revoke.add_argument("dir", type=Path, metavar="DIR", help="the PKI directory")
    revoke.add_argument("cert", type=Path, metavar="CERT.pem", help="the certificate (PEM)")
    revoke.set_defaults(run=_revoke)

    refresh = sub.add_parser(
        "refresh-crl", help="re-sign the three CRLs with a new validity",
        description="CRLs expire; a TLS server with an expired CRL refuses every client. "
        "Re-sign the CRLs of the three CAs, keeping their entries.",
    )
    refresh.add_argument("dir", type=Path, metavar="DIR", help="the PKI directory")
    refresh.add_argument("--days", type=_days, default=30,
                         help="validity in days (default: %(default)s)")
    refresh.set_defaults(run=_refresh_crl)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmp-host", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_pki(commands)
    add_patient_commands(commands)
    add_serve_commands(commands)
    add_structure_commands(commands)
    add_records_commands(commands)
    add_notify_commands(commands)
    add_portal_commands(commands)
    add_psc_commands(commands)
    add_ins_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except pki.PkiError as error:
        print(f"dmp-host: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
