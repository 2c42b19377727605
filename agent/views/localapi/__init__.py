"""The agent's local API and page, on loopback only (docs/agent-local-api.md)."""

from agent.views.localapi.app import create_app
from agent.views.localapi.token import (
    TOKEN_FILE,
    TokenError,
    TokenKeeper,
    client_token,
    load_or_create_token,
    page_url,
)

__all__ = ["TOKEN_FILE", "TokenError", "TokenKeeper", "client_token", "create_app",
           "load_or_create_token", "page_url"]
