"""The local API's e-CPS login (docs/psc.md): start it, cancel it. Its progress (phase,
binding message, seconds left) is the session's, in GET /api/status and the event stream;
the practice situation is chosen with POST /api/session/situation, logout is DELETE
/api/session, as with the card."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.i18n import _

if TYPE_CHECKING:
    from agent.core.service import AgentService

Handler = Callable[[Request], Awaitable[Response]]


def ecps_routes(service: AgentService, route: Callable[..., Route],
                call: Callable[..., Awaitable[Any]]) -> list[Route]:
    """The routes, made with the app's own ``route`` (the guard) and ``call`` (a thread)."""
    from agent.views.localapi.app import BadRequest, _field, _json_body  # built by then

    async def start(request: Request) -> Response:
        body = await _json_body(request)
        id_nat_ps = _field(body, "idNatPs", str, None)
        situation: int | str | None = None
        if body.get("situation") is not None:
            situation = _field(body, "situation", int)
        if body.get("structureId") is not None:
            structure: str = _field(body, "structureId", str)
            if not structure or len(structure) > 64:
                raise BadRequest(_("Invalid structureId"))
            situation = structure
        return JSONResponse(await call(service.login_ecps, id_nat_ps, situation),
                            status_code=202)

    async def cancel(request: Request) -> Response:
        return JSONResponse(await call(service.cancel_ecps))

    return [route("/api/session/ecps", start, "POST"),
            route("/api/session/ecps", cancel, "DELETE")]
