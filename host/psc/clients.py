"""The provider's registered clients, ``DATA/clients.json`` (mode 0600: it holds secrets):
``{"clients": [{"id", "secret" (null: a public client), "redirectUris": [...]}]}``.

Made on first start with one confidential client, ``dmp-agent`` (what the workstation
agent uses for CIBA and the page's sign-in), and a random secret.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from .app import Client

CLIENTS_FILE = "clients.json"
AGENT_CLIENT = "dmp-agent"
AGENT_REDIRECT = "http://127.0.0.1:7878/psc/callback"


class ClientsError(ValueError):
    pass


def load_clients(data_dir: Path) -> dict[str, Client]:
    path = Path(data_dir) / CLIENTS_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"clients": [{"id": AGENT_CLIENT, "secret": secrets.token_urlsafe(32),
                                    "redirectUris": [AGENT_REDIRECT]}]}, out, indent=1)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {entry["id"]: Client(entry["id"], entry.get("secret"),
                                    tuple(entry.get("redirectUris") or ()))
                for entry in data["clients"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ClientsError(f"{path}: unreadable clients file ({error})") from None
