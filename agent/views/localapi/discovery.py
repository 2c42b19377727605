"""Where this user's agent listens: the discovery file.

On a PC several people use in turn, or a terminal server, each user runs an agent of their
own, and only one of them can have the configured port (``api.port``). The others listen on
a free loopback port. The running agent writes where it listens in a small JSON file in the
user's runtime directory (``platformdirs.user_runtime_dir("dmp-agent")``: Linux
``$XDG_RUNTIME_DIR/dmp-agent``, Windows ``%LOCALAPPDATA%\\Temp\\dmp-agent\\dmp-agent``), owner-only,
atomically once the API listens, removed at a clean stop::

    {"pid": 4242, "port": 17772, "url": "http://127.0.0.1:17772",
     "tokenFile": "/home/anne/.config/dmp-agent/api-token"}

It never holds the token: that stays in its own owner-only file (`token.token_path`). The
file's name carries a digest of the configuration directory, where the token file is
(``api-<12 hex>.json``), so that two configurations of one user never read each other's.
Clients (`token.client_token`, the page link, the tray, ``dmp-agent page``) trust it only
when the agent it names accepts their token: a file left by an agent that was killed is
ignored. docs/agent-local-api.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from agent.config import APP_NAME, AgentConfig, private_dir, write_private_file

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    """A running agent's address, as its discovery file says it."""

    port: int
    pid: int

    @property
    def url(self) -> str:
        return base_url(self.port)


def base_url(port: int) -> str:
    """The local API's base address on ``port``: always loopback, whatever a file says."""
    return f"http://{LOOPBACK}:{port}"


def runtime_dir() -> Path:
    """The user's runtime directory for the agent (not created)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to a private
        # directory of its own: the fallback is what we want, the warning is noise.
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP_NAME))


def discovery_path(config: AgentConfig, directory: Path | None = None) -> Path:
    """This configuration's discovery file (``directory``: the runtime directory)."""
    key = hashlib.sha256(str(config.credentials_dir.parent).encode("utf-8")).hexdigest()[:12]
    return (directory or runtime_dir()) / f"api-{key}.json"


def publish(config: AgentConfig, port: int, token_file: Path) -> Path:
    """Say where this process's agent listens (owner-only, atomic); returns the file."""
    path = discovery_path(config)
    private_dir(path.parent)
    record = {"pid": os.getpid(), "port": port, "url": base_url(port),
              "tokenFile": str(token_file)}
    write_private_file(path, (json.dumps(record) + "\n").encode("utf-8"))
    return path


def withdraw(path: Path) -> None:
    """Remove the discovery file at a clean stop, if it is still this process's."""
    found = _parse(path)
    if found is not None and found.pid != os.getpid():
        return  # another agent of this configuration wrote it since: its file now
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        log.warning("discovery file %s cannot be removed: %s", path, error)


def read(config: AgentConfig) -> Endpoint | None:
    """Where the discovery file says this configuration's agent listens; None when there
    is no well-formed file (no agent, or an agent older than the file)."""
    return _parse(discovery_path(config))


def _parse(path: Path) -> Endpoint | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    port, pid = record.get("port"), record.get("pid")
    if (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
            or isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        return None
    return Endpoint(port=port, pid=pid)


__all__ = ["Endpoint", "base_url", "discovery_path", "publish", "read", "runtime_dir",
           "withdraw"]
