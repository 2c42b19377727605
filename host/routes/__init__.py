"""The host's routes, one module per concern; `ROUTES` is what the app mounts."""

from __future__ import annotations

from starlette.routing import BaseRoute

ROUTES: list[BaseRoute] = []
