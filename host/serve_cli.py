"""`dmp-host serve` and `dmp-host db upgrade`: running the reference host."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import platformdirs

DATA = platformdirs.user_data_path("dmp-host")
KEEP_ALIVE_SECONDS = 300  # host.tls's default, not imported: `--help` loads no server


def _settings(args: argparse.Namespace):  # -> HostSettings
    from .settings import HostSettings, MiB

    psc = None
    if args.psc_issuer:
        from .psc_token import PscTrust

        if args.psc_ca is None:
            raise SystemExit("dmp-host: --psc-issuer needs --psc-ca (the CA of the provider's "
                             "TLS certificate)")
        psc = PscTrust(issuer=args.psc_issuer.rstrip("/"), ca_file=args.psc_ca,
                       client_id=args.psc_client_id)
    return HostSettings(
        database_url=args.db or f"sqlite:///{args.data / 'host.db'}",
        blob_dir=args.data / "blobs",
        pki_dir=args.pki,
        mode=args.mode,
        session_lifetime=dt.timedelta(minutes=args.session_minutes),
        max_document_size=args.max_document_mib * MiB,
        psc=psc,
    )


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .store import upgrade
    from .tls import serve, server_ssl_context

    settings = _settings(args)
    if not (args.pki / "server" / "cert.pem").exists():
        print(f"dmp-host: no PKI in {args.pki}: run `dmp-host pki init {args.pki}` first",
              file=sys.stderr)
        return 1
    args.data.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    app = create_app(settings)
    from .documents import cda_check

    # Said at every start (never a silent downgrade); the schematrons compile meanwhile.
    print(f"dmp-host: {cda_check.start()}", flush=True)
    print(f"dmp-host: serving https://{args.host}:{args.port} ({settings.mode} mode, "
          f"database {settings.database_url.split('@')[-1]})", flush=True)
    serve(app, args.host, args.port, server_ssl_context(args.pki),
          timeout_keep_alive=args.keep_alive)
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from .store import upgrade

    upgrade(_settings(args).database_url)
    print("dmp-host: database schema up to date")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pki", type=Path, required=True, help="the PKI directory (pki init)")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="SQLite file and document bodies (default %(default)s)")
    parser.add_argument("--db", default=None,
                        help="database URL instead of SQLite, e.g. "
                             "postgresql+psycopg://user@127.0.0.1/dmp")
    parser.add_argument("--mode", choices=("test", "production"), default="test",
                        help="test: accept test cards only; production: real cards only")
    parser.add_argument("--session-minutes", type=int, default=240,
                        help="session certificate lifetime (default %(default)s)")
    parser.add_argument("--max-document-mib", type=int, default=64,
                        help="largest document accepted (default %(default)s MiB)")
    parser.add_argument("--psc-issuer", default=None, metavar="URL",
                        help="accept e-CPS logins: the Pro Santé Connect issuer, e.g. "
                             "https://127.0.0.1:8444/auth/realms/esante-wallet (docs/psc.md)")
    parser.add_argument("--psc-ca", type=Path, default=None, metavar="FILE",
                        help="the CA of the provider's TLS certificate (PKI/psc/ca.pem)")
    parser.add_argument("--psc-client-id", default="dmp-agent",
                        help="the client id PSC tokens must be issued to (%(default)s)")


def add_serve_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve", help="run the host (HTTPS, TLS 1.3, client certificates required)",
        description="Run the reference DMP host on TLS 1.3 with mutual TLS. The database is "
                    "migrated first. Stop with Ctrl-C.",
    )
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1", help="listen address (%(default)s)")
    serve.add_argument("--port", type=int, default=8443, help="port (%(default)s)")
    serve.add_argument("--keep-alive", type=int, default=KEEP_ALIVE_SECONDS, metavar="SECONDS",
                       help="close a connection idle this long (%(default)s s: longer than "
                            "the agents' keep-alive calls, every 240 s by default)")
    serve.set_defaults(run=_serve)
    db = commands.add_parser("db", help="database maintenance")
    sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = sub.add_parser("upgrade", help="apply the migrations (Alembic)")
    _common(upgrade)
    upgrade.set_defaults(run=_upgrade)
