"""`dmp-host psc serve` and `dmp-host psc rotate-keys`: the reference Pro Santé Connect."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import platformdirs

DATA = platformdirs.user_data_path("dmp-psc")
PORT = 8444


def _serve(args: argparse.Namespace) -> int:
    from ..tls import serve
    from .app import REALM, PscSettings, create_psc_app
    from .clients import CLIENTS_FILE, load_clients
    from .tls import psc_paths, psc_ssl_context

    if not (args.pki / "establishment-ca" / "ca.pem").exists():
        print(f"dmp-host: no PKI in {args.pki}: run `dmp-host pki init {args.pki}` first",
              file=sys.stderr)
        return 1
    public = args.public_url or f"https://{args.host}:{args.port}"
    settings = PscSettings(data_dir=args.data, clients=load_clients(args.data),
                           issuer=public.rstrip("/") + REALM,
                           ciba_interval=args.interval)
    context = psc_ssl_context(args.pki)
    app = create_psc_app(settings)
    print(f"dmp-host psc: issuer {settings.issuer} (clients in {args.data / CLIENTS_FILE}, "
          f"TLS CA {psc_paths(args.pki)[2]})", flush=True)
    serve(app, args.host, args.port, context)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from .keys import KeyRing

    fresh = KeyRing(args.data).rotate(dt.datetime.now(dt.UTC),
                                      dt.timedelta(hours=args.grace_hours))
    print(f"new signing key {fresh.kid}; the previous one stays published "
          f"{args.grace_hours} h")
    return 0


def add_psc_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "psc", help="the reference Pro Santé Connect (OpenID provider, e-CPS, CIBA)",
        description="A reference Pro Santé Connect for tests and the sandbox (docs/psc.md).")
    sub = parser.add_subparsers(dest="psc_command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the provider (HTTPS, TLS 1.3)",
                           description="Run the reference PSC. Its TLS certificate is issued "
                           "from the PKI's establishment CA into PKI/psc/ on first start; its "
                           "keys, clients and enrolled e-CPS apps live in --data.")
    serve.add_argument("--pki", type=Path, required=True, help="the PKI directory (pki init)")
    serve.add_argument("--data", type=Path, default=DATA,
                       help="keys, clients and devices (default %(default)s)")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (%(default)s)")
    serve.add_argument("--port", type=int, default=PORT, help="port (%(default)s)")
    serve.add_argument("--public-url", default=None,
                       help="the URL clients use (default https://HOST:PORT)")
    serve.add_argument("--interval", type=int, default=2,
                       help="seconds between two CIBA polls (%(default)s)")
    serve.set_defaults(run=_serve)
    rotate = sub.add_parser("rotate-keys", help="make a new signing key",
                            description="Retire the active signing key (still in the JWKS "
                            "for the grace period) and sign new tokens with a new one; a "
                            "running provider takes it at once.")
    rotate.add_argument("--data", type=Path, default=DATA, help="(default %(default)s)")
    rotate.add_argument("--grace-hours", type=float, default=24.0,
                        help="how long the old key stays published (%(default)s)")
    rotate.set_defaults(run=_rotate)
