"""The agent's local API and page, on loopback only (docs/agent-local-api.md)."""

from .app import create_app
from .guard import TOKEN_FILE, load_or_create_token, page_url

__all__ = ["TOKEN_FILE", "create_app", "load_or_create_token", "page_url"]
