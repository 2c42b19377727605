"""The local API's token and its file: one owner.

The token is 32 random bytes in ``api-token`` in the user's config directory (mode 0600 in
a 0700 directory). While the agent runs, it owns both: `TokenKeeper` holds the token the
API accepts and puts it back in the file whenever the file is found missing or changed (at
every refused token, and when a client asks through ``POST /api/token-file``); a file that
others could read gets a new token, since the old one may have leaked. Nothing else writes
the file while the agent runs: `client_token` (``dmp-agent page --print-token``, the page's
address) asks the running agent to restore its file before reading it, and creates a token
only when no agent runs. docs/agent-local-api.md.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
from pathlib import Path

import httpx

from agent.config import AgentConfig, private_dir, write_private_file

log = logging.getLogger(__name__)

TOKEN_FILE = "api-token"
TOKEN_ROUTE = "/api/token-file"
ASK_TIMEOUT = 3.0  # seconds: the agent is on this machine, it answers at once or not at all

_running: dict[Path, TokenKeeper] = {}  # the keeper of this process's agent, by file


class TokenError(Exception):
    """No usable token: an agent answers but does not accept the token of this user's file."""


def token_path(config: AgentConfig) -> Path:
    return config.credentials_dir.parent / TOKEN_FILE


def _private(info: os.stat_result) -> bool:
    """Readable and writable by this user only (POSIX; Windows protects the profile)."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return True
    return stat.S_IMODE(info.st_mode) & 0o077 == 0 and info.st_uid == getuid()


def _read(path: Path) -> tuple[str | None, bool]:
    """(the token in ``path`` or None, whether the file is private)."""
    try:
        info = path.stat()
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None, True  # missing or unreadable: the caller writes it again
    return (token if len(token) >= 32 else None), _private(info)


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
    """The running agent's token (``path`` None: a token with no file, for tests)."""

    def __init__(self, path: Path | None, token: str) -> None:
        self.path = path
        self._token = token
        self._lock = threading.Lock()

    @classmethod
    def start(cls, config: AgentConfig) -> TokenKeeper:
        """The agent's keeper: the file's token (made if needed), registered for this
        process so that its own page addresses use it."""
        keeper = cls(token_path(config), load_or_create_token(config))
        assert keeper.path is not None
        _running[keeper.path] = keeper
        return keeper

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


def client_token(config: AgentConfig) -> str:
    """The token the running agent accepts, for a client of this user: this process's own
    agent's, else the file after asking the agent on ``api.port`` to restore it, else (no
    agent runs) the file's, made if needed. `TokenError` when an agent answers but refuses
    it (another user's agent on that port, or one with another configuration)."""
    path = token_path(config)
    if (keeper := _running.get(path)) is not None:
        keeper.restore()
        return keeper.token
    base = f"http://127.0.0.1:{config.api_port}"
    try:
        with httpx.Client(base_url=base, timeout=ASK_TIMEOUT) as agent:
            agent.post(TOKEN_ROUTE)  # our agent writes its token back in our file
            token, _ = _read(path)
            accepted = token is not None and agent.get(
                "/api/openapi.yaml", headers={"authorization": f"Bearer {token}"}
            ).status_code == 200
    except httpx.TransportError:
        return load_or_create_token(config)  # no agent runs: the next one starts with this
    if token is None or not accepted:
        raise TokenError(
            f"Un agent répond sur le port {config.api_port} mais n'accepte pas le jeton de "
            f"{path} : c'est celui d'un autre utilisateur ou d'une autre configuration "
            "(api.port), ou un agent ancien à redémarrer / an agent answers on port "
            f"{config.api_port} but refuses the token in {path}: it belongs to another user "
            "or another configuration (api.port), or it is an older agent to restart")
    return token


def page_url(config: AgentConfig, section: str = "") -> str:
    """The page's address with the API token in the fragment (never sent to a server,
    never in a log); ``section`` names a part of the page, e.g. ``deposit``."""
    url = f"http://127.0.0.1:{config.api_port}/#token={client_token(config)}"
    return f"{url}&section={section}" if section else url
