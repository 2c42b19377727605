"""``dmp-host portal serve``: the patient portal on its own port.

    dmp-host portal serve --database URL --smtp URL [--from ADDR] [--host H] [--port P]
                          [--cert CERT.pem --key KEY.pem]

``--database`` defaults to $DMP_HOST_DATABASE, ``--smtp`` to $DMP_HOST_SMTP_URL, ``--from``
to $DMP_HOST_SMTP_FROM. Without a certificate the portal listens on the loopback only (the
sandbox, or behind a TLS reverse proxy on the same machine); with one, HTTPS (TLS 1.2+).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from pathlib import Path

from .notify_cli import FROM_ENV, SMTP_ENV
from .patient_cli import DATABASE_ENV, database_url
from .settings import NotifySettings

DEFAULT_PORT = 8090


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tcp_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .portal.app import PortalSettings, create_portal
    from .store import upgrade

    url = database_url(args)
    if not url:
        return 2
    if (args.cert is None) != (args.key is None):
        print("dmp-host: give --cert and --key together", file=sys.stderr)
        return 2
    if args.cert is None and not _loopback(args.host):
        print(f"dmp-host: the portal serves plain HTTP only on the loopback; give --cert and "
              f"--key to listen on {args.host}", file=sys.stderr)
        return 2
    smtp = args.smtp or os.environ.get(SMTP_ENV)
    if not smtp:
        print(f"dmp-host: warning: no SMTP relay (--smtp or ${SMTP_ENV}): no sign-in code "
              "can be sent", file=sys.stderr)
    sender = args.sender or os.environ.get(FROM_ENV) or NotifySettings.sender
    upgrade(url)
    app = create_portal(PortalSettings(url, NotifySettings(smtp_url=smtp, sender=sender)))
    config = uvicorn.Config(app, log_level="warning", server_header=False,
                            ssl_certfile=args.cert, ssl_keyfile=args.key)
    sockets = [_tcp_socket(args.host, args.port)]
    if args.uds is not None:
        # The sandbox's door: its network is private, so a relay outside reaches the
        # portal through this file (`dmp-host portal relay`).
        args.uds.unlink(missing_ok=True)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(str(args.uds))
        os.chmod(args.uds, 0o600)
        sockets.append(unix)
    scheme = "https" if args.cert is not None else "http"
    # Secure cookies are kept by browsers on https and on http://localhost.
    shown = "localhost" if _loopback(args.host) else args.host
    print(f"dmp-host: patient portal on {scheme}://{shown}:{args.port}/", flush=True)
    uvicorn.Server(config).run(sockets=sockets)
    return 0


def _relay(args: argparse.Namespace) -> int:
    import asyncio

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            inner_reader, inner_writer = await asyncio.open_unix_connection(str(args.uds))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, inner_writer), pipe(inner_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(connect, "127.0.0.1", args.port)
        port = server.sockets[0].getsockname()[1]
        print(f"dmp-host: the portal is on http://localhost:{port}/", flush=True)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(f"dmp-host: {error}", file=sys.stderr)
        return 1
    return 0


def add_portal_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    portal = commands.add_parser(
        "portal", help="the patient portal (sign-in, access history, masking, blocking...)",
        description="The patients' web portal of the reference host, in French.")
    sub = portal.add_subparsers(dest="portal_command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="serve the portal (Ctrl-C stops it)",
        description="Serve the patient portal. Patients sign in with the code of their "
        "secrets sheet (then a password they choose) and a one-time code sent by email.")
    serve.add_argument("--database", metavar="URL", help=f"default: ${DATABASE_ENV}")
    serve.add_argument("--smtp", metavar="URL", help="relay for the sign-in codes: "
                       f"smtp://host:port, smtp+starttls://user:pass@host:587, smtps://... "
                       f"(default: ${SMTP_ENV})")
    serve.add_argument("--from", dest="sender", metavar="ADDR",
                       help=f"sender of the codes (default: ${FROM_ENV} or "
                       f"{NotifySettings.sender!r})")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (%(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    serve.add_argument("--cert", type=Path, help="TLS certificate (PEM, with its chain)")
    serve.add_argument("--key", type=Path, help="its private key (PEM)")
    serve.add_argument("--uds", type=Path, metavar="PATH",
                       help="also listen on this Unix socket (the sandbox's relay uses it)")
    serve.set_defaults(run=_serve)
    relay = sub.add_parser(
        "relay", help="reach a portal listening on a Unix socket from a TCP port",
        description="Forward 127.0.0.1:PORT to the portal's Unix socket (`serve --uds`): how "
        "a browser on this machine reaches the portal of the sandbox, whose network is "
        "private. Ctrl-C stops it.")
    relay.add_argument("--uds", type=Path, required=True, metavar="PATH")
    relay.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help="port on 127.0.0.1 (%(default)s; 0: any free one)")
    relay.set_defaults(run=_relay)
