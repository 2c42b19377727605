"""The host's ASGI application, built by a function from its settings (no global state)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from . import audit
from .actors import Authenticator
from .blobs import BlobStore
from .errors import HostError, error_response, operation_outcome
from .guard import Guard
from .revocation import Revocations
from .routes import ROUTES, ins, pdsm4dmp
from .settings import HostSettings
from .store import open_engine

OPENAPI_INFO = {
    "openapi": "3.0.3",
    "info": {
        "title": "DMP reference host",
        "version": "1",
        "description": (
            "The reference central host of the DMP workstation agent: card-rooted sessions, "
            "identity resolution, DMP lifecycle, authorizations and documents (FHIR R4 / IHE "
            "MHD as profiled by the French PDSm guide). Every call is mutual TLS 1.3; errors "
            "are FHIR OperationOutcome with a code in system urn:dmp:host:error. The access "
            "mode travels in the X-DMP-Access-Mode header (normal, bris_de_glace, centre_15) "
            "with X-DMP-Justification (percent-encoded UTF-8) for break-the-glass."
        ),
    },
}


log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_app(
    settings: HostSettings,
    *,
    authenticator: Authenticator | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> Starlette:
    """The host application. ``authenticator`` defaults to the TLS client-certificate one."""
    engine = open_engine(settings.database_url)
    if settings.seed_identities:
        from .seed import seed_identities
        from .structures import seed_structures

        seed_identities(engine)
        seed_structures(engine, clock())
    audit.install(engine)
    schemas = SchemaGenerator(OPENAPI_INFO)
    document: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        """
        responses:
          200:
            description: This OpenAPI document.
        """
        if not document:  # the routes never change: build it once
            document.update(schemas.get_schema(routes=app.routes))
        return JSONResponse(document)

    async def host_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HostError)
        current = audit.current()
        if current is not None:
            current.error_code = exc.code  # the reason the refusal is traced with
        return error_response(exc)

    async def too_deep(request: Request, exc: Exception) -> Response:
        # json and the code that walks what it parsed recurse: nesting is the client's fault.
        return await host_error(request, HostError(
            400, "too-deep", "Structure JSON trop imbriquée / JSON nested too deeply",
            issue_type="invalid"))

    async def client_gone(request: Request, exc: Exception) -> Response:
        # The client went away in the middle of its body (an upload cut by the network, an
        # agent stopped): nothing failed here, so one line and no traceback. The route's
        # template only: a URL may carry a patient's INS.
        route = getattr(request.scope.get("route"), "path", "?")
        log.info("client disconnected before the end of its request (%s %s)",
                 request.method, route)
        return Response(status_code=400)  # nobody reads it

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a bare 500 page: an OperationOutcome, and no internals in the message.
        if isinstance(exc, audit.UnguardedAccess):
            log.error("route %s reached patient data without a decision: %s",
                      request.url.path, exc)
        return JSONResponse(
            operation_outcome("internal-error",
                              "Erreur interne du serveur / internal server error",
                              issue_type="exception"),
            status_code=500, media_type="application/fhir+json",
        )

    app = Starlette(
        routes=[Route("/openapi.json", openapi, methods=["GET"]), *ROUTES, *pdsm4dmp.routes,
                *ins.routes],
        middleware=[Middleware(audit.AuditMiddleware)],
        exception_handlers={HostError: host_error, RecursionError: too_deep,
                            ClientDisconnect: client_gone, Exception: unexpected},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock
    app.state.guard = Guard(engine, clock)
    app.state.blobs = BlobStore(settings.blob_dir)
    if authenticator is None:
        from .actors import TlsAuthenticator
        from .pki import load_certificate

        establishment = load_certificate(settings.pki_dir / "establishment-ca" / "ca.pem")
        authenticator = TlsAuthenticator(engine, establishment.subject, clock,
                                         Revocations(settings.pki_dir))
    app.state.authenticator = authenticator
    return app
