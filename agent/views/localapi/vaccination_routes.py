"""The local API's vaccination record (docs/cda.md "The vaccination record"):

- ``GET /api/vaccinations/choices``: whether the session's profession may record one (the
  access matrix's right on 87273-9) and the form's lists (vaccines, routes, sites);
- ``POST /api/vaccinations``: record one for the session's patient; the note is deposited
  as every deposit is (202, the deposit's answer with ``vaccination``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from agent.core.service import AgentService

FIELDS = ("vaccine", "date", "lot", "dose", "route", "site")


def vaccination_routes(service: AgentService, route: Callable[..., Route],
                       call: Callable[..., Awaitable[Any]]) -> list[Route]:
    """The routes, made with the app's own ``route`` (the guard) and ``call`` (a thread)."""
    from agent.views.localapi.app import _json_body  # built by then

    async def choices(request: Request) -> Response:
        return JSONResponse(await call(service.vaccination_choices),
                            headers={"cache-control": "no-store"})

    async def record(request: Request) -> Response:
        body = await _json_body(request)
        # Every field is checked by the core, each refusal with its own code; unknown keys
        # are ignored, as elsewhere in this API.
        fields = {name: body.get(name) for name in FIELDS}
        return JSONResponse(await call(service.record_vaccination, **fields),
                            status_code=202)

    return [route("/api/vaccinations/choices", choices, "GET"),
            route("/api/vaccinations", record, "POST")]
