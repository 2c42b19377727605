"""The local API's token and its file: one owner.

The token is 32 random bytes in ``api-token`` in the user's config directory (mode 0600 in
a 0700 directory). While the agent runs, it owns both: `TokenKeeper` holds the token the
API accepts and puts it back in the file whenever the file is found missing or changed (at
every refused token, and when a client asks through ``POST /api/token-file``); a file that
others could read gets a new token, since the old one may have leaked. Nothing else writes
the file while the agent runs: `client_token` (``dmp-agent page --print-token``, the page's
address) asks the running agent to restore its file before reading it, and creates a token
only when no agent runs. The agent is found through its discovery file (`discovery`), else
on ``api.port``: another user's agent may hold that port. docs/agent-local-api.md.

"Others could read it" is POSIX's mode and owner. Windows has neither (``st_mode`` says
nothing of who may read, there are no uids): the file lives in the user's own profile
(``%LOCALAPPDATA%``), whose ACL lets only that user (and the administrators) in, so an
existing well-formed file is kept there; judging it by POSIX bits would give a new token at
every read, one the running agent refuses.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import sys
import threading
from pathlib import Path

from agent.config import AgentConfig, private_dir, write_private_file
from agent.errors import AgentError
from agent.i18n import _
from agent.views.localapi import discovery

log = logging.getLogger(__name__)

TOKEN_FILE = "api-token"
TOKEN_ROUTE = "/api/token-file"
ASK_TIMEOUT = 3.0  # seconds: the agent is on this machine, it answers at once or not at all
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{32,}")  # what secrets.token_urlsafe makes

_running: dict[Path, TokenKeeper] = {}  # the keeper of this process's agent, by file


class TokenError(AgentError):
    """No usable token: an agent answers but does not accept the token of this user's file."""

    code, status = "token-refused", 401


def token_path(config: AgentConfig) -> Path:
    return config.credentials_dir.parent / TOKEN_FILE


def _private(info: os.stat_result) -> bool:
    """Readable and writable by this user only (module docstring: per platform)."""
    if sys.platform == "win32":
        return _private_windows(info)
    return _private_posix(info, os.getuid())


def _private_posix(info: os.stat_result, uid: int) -> bool:
    """No permission bit for group or others, and owned by ``uid``."""
    return stat.S_IMODE(info.st_mode) & 0o077 == 0 and info.st_uid == uid


def _private_windows(info: os.stat_result) -> bool:
    """A plain file: the profile's ACL is what keeps others out (no mode to look at)."""
    return stat.S_ISREG(info.st_mode)


def _read(path: Path) -> tuple[str | None, bool]:
    """(the token in ``path`` or None, whether the file is private)."""
    try:
        info = path.stat()
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None, True  # missing or unreadable: the caller writes it again
    return (token if _WELL_FORMED.fullmatch(token) else None), _private(info)


def _write(path: Path, token: str) -> None:
    write_private_file(path, (token + "\n").encode())  # 0600 in a 0700 directory


def load_or_create_token(config: AgentConfig) -> str:
    """The token in the file, made on first use; a file others could read is replaced."""
    path = token_path(config)
    private_dir(path.parent)  # also an existing directory made too open
    token, private = _read(path)
    if token is not None and private:
        return token
    token = secrets.token_urlsafe(32)
    _write(path, token)
    return token


class TokenKeeper:
    """The running agent's token (``path`` None: a token with no file, for tests) and the
    port its API listens on (None: not known here)."""

    def __init__(self, path: Path | None, token: str, port: int | None = None) -> None:
        self.path = path
        self.port = port
        self._token = token
        self._lock = threading.Lock()

    @classmethod
    def start(cls, config: AgentConfig, port: int | None = None) -> TokenKeeper:
        """The agent's keeper: the file's token (made if needed), registered for this
        process so that its own page addresses use it and its port (default ``api.port``)."""
        keeper = cls(token_path(config), load_or_create_token(config),
                     config.api_port if port is None else port)
        assert keeper.path is not None
        _running[keeper.path] = keeper
        return keeper

    def stop(self) -> None:
        """This process's agent stops: its page addresses are no longer this keeper's."""
        if self.path is not None and _running.get(self.path) is self:
            del _running[self.path]

    @property
    def token(self) -> str:
        return self._token

    def restore(self) -> str:
        """Make the file hold the token: "ok" (it did), "restored" (it was missing or
        changed), "replaced" (others could read it: a new token from now on) or "failed"
        (the file cannot be written; the token is unchanged)."""
        if self.path is None:
            return "ok"
        with self._lock:
            found, private = _read(self.path)
            if found == self._token and private:
                return "ok"
            # Readable by others, the token may have leaked: a new one, adopted once written.
            token = secrets.token_urlsafe(32) if found == self._token else self._token
            try:
                _write(self.path, token)
            except OSError as error:
                log.error("API token file %s cannot be written: %s", self.path, error)
                return "failed"
            outcome = "restored" if token == self._token else "replaced"
            self._token = token
        log.warning("API token file %s: %s", self.path,
                    "written again (it was missing or changed)" if outcome == "restored"
                    else "was readable by others: new token")
        return outcome


def client_endpoint(config: AgentConfig) -> tuple[str, str]:
    """(base URL, token) for a client of this user: this process's own agent's, else the
    running agent's that accepts this user's token (`running_agent`), else (no agent runs)
    ``api.port`` and the file's token, made if needed: the next agent starts with it.
    `TokenError` when an agent answers on ``api.port`` but refuses it and none accepts it."""
    path = token_path(config)
    if (keeper := _running.get(path)) is not None:
        keeper.restore()
        return discovery.base_url(keeper.port or config.api_port), keeper.token
    found = running_agent(config)
    if found is not None:
        return found
    return discovery.base_url(config.api_port), load_or_create_token(config)


def running_agent(config: AgentConfig) -> tuple[str, str] | None:
    """(base URL, token) of this user's running agent: the one the discovery file names,
    else the one on ``api.port``, if it accepts the token of this user's file (each is first
    asked to write its token back there); None when no agent answers. `TokenError` when
    the agent on ``api.port`` refuses it (another user's, or another configuration's) and
    none other accepts it."""
    path = token_path(config)
    ports = [config.api_port]
    found = discovery.read(config)
    if found is not None and found.port != config.api_port:
        ports.insert(0, found.port)  # where this user's agent said it listens
    refused = False
    for port in ports:
        answer = _ask(discovery.base_url(port), path)
        if answer is None:
            continue  # nobody there (a discovery file left by an agent that was killed)
        token, accepted = answer
        if accepted and token is not None:
            return discovery.base_url(port), token
        # Not ours: on the discovery file's port, an agent that took it after ours was
        # killed (the file is stale); on api.port, another user's.
        refused = refused or port == config.api_port
    if refused:
        raise TokenError(
            _("An agent answers on port {port} but refuses the token in {path}: it belongs to "
              "another user or another configuration (api.port), or it is an older agent to "
              "restart").format(port=config.api_port, path=path))
    return None


def _ask(base: str, path: Path) -> tuple[str | None, bool] | None:
    """Ask the agent at ``base`` to write its token back in ``path``, then whether it
    accepts the file's token: (token, accepted), or None when nobody answers."""
    import httpx  # ~30 ms: only when another agent may be running, not at every start

    try:
        with httpx.Client(base_url=base, timeout=ASK_TIMEOUT) as agent:
            agent.post(TOKEN_ROUTE)  # our agent writes its token back in our file
            token, _written = _read(path)
            accepted = token is not None and agent.get(
                "/api/openapi.yaml", headers={"authorization": f"Bearer {token}"}
            ).status_code == 200
    except httpx.TransportError:
        return None
    return token, accepted


def client_token(config: AgentConfig) -> str:
    """The token the running agent accepts, for a client of this user (`client_endpoint`:
    made when no agent runs; `TokenError` when only another user's agent answers)."""
    return client_endpoint(config)[1]


def page_url(config: AgentConfig, section: str = "") -> str:
    """The page's address, on the port this user's agent listens on, with the API token in
    the fragment (never sent to a server, never in a log); ``section`` names a part of the
    page, e.g. ``deposit``."""
    base, token = client_endpoint(config)
    url = f"{base}/#token={token}"
    return f"{url}&section={section}" if section else url
