"""`dmp-agent run` (the agent as people use it: service, local API and page, tray) and
`dmp-agent page` (open the page, or print its address or the API token for practice
software)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import uvicorn

from agent.config import AgentConfig, ConfigError, load_config
from agent.core.service import AgentService
from agent.i18n import _
from agent.logs import setup_logging
from agent.outbox import OutboxBusyError, OutboxError
from agent.views.localapi import (
    TokenError,
    TokenKeeper,
    client_token,
    create_app,
    discovery,
    page_url,
)
from agent.views.localapi.token import running_agent, token_path

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Another agent runs for this user (it answers with this user's token on api.port or on the
# port of its discovery file, or it holds the outbox): a service manager must not retry.
# api.port taken by another user's agent is no such case: a free port is taken instead.
EXIT_ALREADY_RUNNING = 3
# The outbox cannot be used: its directory is read-only or full, its database cannot be
# read nor rebuilt, or it was made by a newer agent. A person must act (the message says how).
EXIT_OUTBOX = 4


def agent_version() -> str:
    # importlib.metadata costs ~13 ms to import: asked for when a view first shows it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dmp-agent")
    except PackageNotFoundError:
        return "dev"


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or sys.platform == "win32")


def _bind(port: int) -> socket.socket:
    """The listening socket on loopback, bound before anything starts (``port`` 0: any
    free one). `OSError` EADDRINUSE when another process holds the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sys.platform == "win32":
        # Windows' SO_REUSEADDR would let a second socket take a port in use (another
        # user's agent): exclusive use makes the bind fail instead, as on POSIX.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
    else:  # restart at once despite the last run's connections in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by accepted sockets (Linux): h11 writes headers and body apart, and Nagle
    # plus the client's delayed ACK would add 40 ms to every answer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


class _QuietServer(uvicorn.Server):
    """uvicorn wakes up every 100 ms to refresh its Date header and look for a stop; an
    idle agent must not (it runs all day on battery-powered laptops too). No Date header,
    and the stop comes as an event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        await self.on_tick(0)  # the default headers, once
        if not self.should_exit:
            await self._exit.wait()

    def request_exit(self) -> None:
        self.should_exit = True
        if self._loop is not None and self._exit is not None:
            self._loop.call_soon_threadsafe(self._exit.set)


class ApiServer:
    """uvicorn on our socket, in a thread (the main thread belongs to the tray)."""

    def __init__(self, service: AgentService, config: AgentConfig, sock: socket.socket) -> None:
        self.port = int(sock.getsockname()[1])  # api.port, or the free one taken instead
        # The agent owns the token file while it runs.
        self._keeper = token = TokenKeeper.start(config, self.port)
        self._app = app = create_app(service, token=token, port=self.port,
                                     allowed_origins=config.api_allowed_origins)
        self._server = _QuietServer(uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", http="h11",
            timeout_graceful_shutdown=3, date_header=False, server_header=False))
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="local-api", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._sock])

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        for _attempt in range(int(timeout / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self._server.started:
            raise RuntimeError("the local API did not start")

    def stop(self) -> None:
        self._app.close_streams()  # else an open page holds the shutdown for its 3 s grace
        self._server.request_exit()
        self._thread.join(5)
        self._keeper.stop()


def _listen(config: AgentConfig) -> socket.socket | None:
    """The API's socket: on ``api.port``, else (another user's agent holds it, on a shared
    PC or a terminal server, or another program) on a free loopback port, said in the log.
    None when the agent holding it, or the one the discovery file names, is this user's."""
    try:
        return _bind(config.api_port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
    try:
        ours = running_agent(config)
    except TokenError:
        ours = None  # another user's agent: expected on a shared PC
    if ours is not None:
        return None
    sock = _bind(0)
    log.warning("port %d is taken (another user's agent?): the local API listens on port %d "
                "instead (the page link and dmp-agent page find it)", config.api_port,
                sock.getsockname()[1])
    return sock


def run_agent(*, tray: bool, open_page: bool) -> int:
    try:
        config = load_config()
    except ConfigError as error:
        print("dmp-agent run: " + _("configuration: {error}").format(error=error),
              file=sys.stderr)
        return EXIT_USAGE
    setup_logging(config, console=False)
    first_start = _first_start(config)
    sock = _listen(config)
    if sock is None:
        print("dmp-agent run: " + _("this user's agent is running already (dmp-agent page "
                                    "opens its page)"), file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    service = AgentService(config, version=agent_version,
                           holder=f"dmp-agent run, port {sock.getsockname()[1]}")
    if first_start:
        log.info("first start: %s", first_start)
    stop = threading.Event()
    # Before anything starts: a SIGTERM during the start still stops cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        service.start()
        server = ApiServer(service, config, sock)
        server.start()
    except BaseException as error:
        service.stop()
        sock.close()
        status = _startup_status(error)
        if status is None:
            raise
        # One sentence with its fix, no traceback: the cause, not what it broke later.
        log.error("start-up failed: %s", error)
        print(f"dmp-agent run: {error}", file=sys.stderr)
        return status
    found = _publish(config, server.port)
    print(_("DMP agent ready: {url}/").format(url=discovery.base_url(server.port)), flush=True)
    log.info("agent ready on 127.0.0.1:%d", server.port)
    if open_page:
        import webbrowser  # only with --open-page: not at every start

        webbrowser.open(service.page_url())
    try:
        if tray and has_display():
            from agent.views.tray import TrayUnavailable, run_tray

            threading.Thread(target=_stop_tray_on, args=(stop,), daemon=True).start()
            try:
                run_tray(service, quit=stop.set)
            except TrayUnavailable as error:  # DISPLAY set, but no X server or tray backend
                log.warning("no tray icon: %s", error)
            if not stop.is_set():  # no tray, or it ended without Quit (X server gone)
                log.info("running on without a tray icon")
        while not stop.wait(3600):  # a signal handler wakes it: no periodic wake-up
            pass
    finally:
        if found is not None:
            discovery.withdraw(found)  # first: no client is sent to a stopping agent
        server.stop()
        service.stop()
        sock.close()
        log.info("agent stopped")
    return EXIT_OK


def _publish(config: AgentConfig, port: int) -> Path | None:
    """Write the discovery file; None (said in the log) when it cannot be: the agent still
    serves, and clients still find it on api.port when it has that one."""
    try:
        return discovery.publish(config, port, token_path(config))
    except OSError as error:
        log.warning("discovery file not written (%s): clients look on port %d only",
                    error, config.api_port)
        return None


def _startup_status(error: BaseException) -> int | None:
    """The documented exit status of a start-up failure we can name, else None."""
    if isinstance(error, OutboxBusyError):
        return EXIT_ALREADY_RUNNING
    if isinstance(error, OutboxError):  # read-only, full, unreadable, newer schema
        return EXIT_OUTBOX
    return None


def _stop_tray_on(stop: threading.Event) -> None:
    stop.wait()
    _stop_tray()


def _stop_tray() -> None:
    from agent.views import tray

    with contextlib.suppress(Exception):
        tray.stop()


def _first_start(config: AgentConfig) -> str | None:
    from agent.install.first_start import enrol_if_needed

    return enrol_if_needed(config)


def run_page(*, print_token: bool, print_url: bool, section: str) -> int:
    try:
        config = load_config()
    except ConfigError as error:
        print("dmp-agent page: " + _("configuration: {error}").format(error=error),
              file=sys.stderr)
        return EXIT_USAGE
    try:
        if print_token:
            print(client_token(config))  # the running agent's, if one runs
            return EXIT_OK
        url = page_url(config, section)
    except TokenError as error:
        print(f"dmp-agent page: {error}", file=sys.stderr)
        return EXIT_FAILED
    if print_url:
        print(url)
        return EXIT_OK
    import webbrowser  # `dmp-agent page` only

    if not webbrowser.open(url):
        print(_("No browser found; the address:") + "\n" + url)
    return EXIT_OK


def add_run_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run", help=_("run the agent: card watching, local API and page, tray icon"),
        description=_("Runs the agent: watches the card readers, serves the local API and "
                      "page on 127.0.0.1 (api.port, or a free port when another user's agent "
                      "holds it: docs/agent-local-api.md), shows the tray icon when a desktop "
                      "is there. Enrols the workstation on first start when the administrator "
                      "left a provisioning file (docs/installer.md). Exit status: 0 stopped, "
                      "2 bad configuration, 3 another agent runs for this user (it answers on "
                      "its port with this user's token, or holds the outbox: its pid and port "
                      "are said), 4 the outbox cannot be used (read-only or full directory, "
                      "database unreadable: the message says the fix, docs/agent-outbox.md)."))
    run.add_argument("--no-tray", action="store_true",
                     help=_("no tray icon (a service without desktop)"))
    run.add_argument("--open-page", action="store_true", help=_("open the page once ready"))
    run.set_defaults(run=lambda a: run_agent(tray=not a.no_tray, open_page=a.open_page))
    page = commands.add_parser(
        "page", help=_("open the agent's page in the browser (or print its address or token)"),
        description=_("Opens the agent's page with its access token. --print-token gives the "
                      "token practice software sends as 'Authorization: Bearer <token>'."))
    page.add_argument("--print-token", action="store_true",
                      help=_("print the local API token (keep it private)"))
    page.add_argument("--print-url", action="store_true",
                      help=_("print the address, token included, instead of opening it"))
    page.add_argument("--section", default="", choices=["", "deposit", "diagnostics",
                                                         "settings", "dossier"],
                      help=_("open this section of the page"))
    page.set_defaults(run=lambda a: run_page(print_token=a.print_token,
                                             print_url=a.print_url, section=a.section))
