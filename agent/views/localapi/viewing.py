"""The local API's viewer and dossier-section routes (docs/cda-viewer.md).

- ``GET /api/documents/{uniqueId}/view``: what the viewer shows of a document, ready to
  display (HTML of a CDA level 3, the PDF of a level 1, an image, text), its kind in
  ``X-View-Kind``, under a CSP that allows no script and no remote resource;
- ``GET /api/patient/sections``: the dossier's sections read from its CDA documents.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.core.service import AgentService

Handler = Callable[[Request], Awaitable[Response]]


def viewing_routes(service: AgentService, call: Callable[..., Awaitable[Any]],
                   route: Callable[..., Route], unique_id: Callable[[Request], str]
                   ) -> list[Route]:
    async def view(request: Request) -> Response:
        from agent.core.cda_view import CSP

        shown = await call(service.view_document, unique_id(request))
        name = urllib.parse.quote(shown.title[:80] or "document", safe="")
        headers = {"content-disposition": f"inline; filename*=UTF-8''{name}",
                   "cache-control": "no-store", "x-content-type-options": "nosniff",
                   "content-security-policy": CSP, "referrer-policy": "no-referrer",
                   "x-view-kind": shown.kind}
        if shown.volet:
            headers["x-view-volet"] = shown.volet
        return Response(shown.body, media_type=shown.media_type, headers=headers)

    async def sections(request: Request) -> Response:
        return JSONResponse(await call(service.patient_sections),
                            headers={"cache-control": "no-store"})

    return [route("/api/documents/{unique_id}/view", view, "GET"),
            route("/api/patient/sections", sections, "GET")]
