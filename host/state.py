"""What every route reaches: the application's state, typed (built by `host.app.create_app`).

Routes get it with `host_state(request)`; it lives on Starlette's ``app.state`` so tests and
tools holding the app read the same objects (``app.state.engine``, ``app.state.guard``).
This module imports nothing that imports the routes, so route modules never import the app.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from starlette.requests import Request

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .actors import Authenticator
    from .blobs import BlobStore
    from .guard import Guard
    from .psc_token import PscVerifier
    from .settings import HostSettings


class HostState(Protocol):
    settings: HostSettings
    engine: Engine
    clock: Callable[[], dt.datetime]
    guard: Guard
    blobs: BlobStore
    authenticator: Authenticator
    psc_verifier: PscVerifier | None  # made at the first e-CPS login (routes/sessions.py)


def host_state(request: Request) -> HostState:
    return cast(HostState, request.app.state)
