"""The host's routes, one module per concern; `ROUTES` is what the app mounts."""

from __future__ import annotations

from starlette.routing import BaseRoute

from . import authorizations, documents, dossiers, identity, sessions

ROUTES: list[BaseRoute] = [
    *sessions.routes,
    *identity.routes,
    *dossiers.routes,
    *authorizations.routes,
    *documents.routes,
]
