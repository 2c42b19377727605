"""The local API's routes over `AgentService` (docs/agent-local-api.md).

Handlers are thin: parse and check the input (400 with a sentence on anything malformed),
call the service on a worker thread (card and host work block), turn `AgentError` into
its status and JSON. Uploads are streamed to a private temporary file, never held whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from agent.core.service import AgentService
from agent.errors import AgentError, explain
from agent.i18n import _, catalogue, current_language, page_messages, translate_html
from agent.views.localapi.ecps_routes import ecps_routes
from agent.views.localapi.guard import Guard
from agent.views.localapi.token import TOKEN_ROUTE, TokenKeeper
from agent.views.localapi.vaccination_routes import vaccination_routes
from agent.views.localapi.viewing import viewing_routes

log = logging.getLogger(__name__)

MAX_UPLOAD = 64 << 20  # the host's own limit per document
KEEPALIVE = 30.0  # seconds between SSE comments while a client listens (proxies, dead peers)
WEB = Path(str(resources.files("agent.views") / "web"))
_TYPE_CODE = re.compile(r"^[0-9A-Za-z.\-_]{1,64}$")
_UNIQUE_ID = re.compile(r"^[!-~]{1,128}$")

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(AgentError):
    def __init__(self, message: str, code: str = "bad-request", status: int = 400) -> None:
        super().__init__(message, code=code, status=status)


def _error(error: AgentError) -> JSONResponse:
    return JSONResponse(error.as_json(), status_code=error.http_status)


def _guarded(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except AgentError as error:
            return _error(error)
        except Exception:
            log.exception("local API %s %s failed", request.method, request.url.path)
            return JSONResponse({"code": "internal",
                                 "message": _("Internal agent error (see the logs)")},
                                status_code=500)
    return run


async def _json_body(request: Request, limit: int = 64 << 10) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest(_("Content-Type: application/json expected"), "bad-content-type", 415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(_("Body too large"), "too-large", 413)
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(_("Invalid JSON"), "bad-json") from None
    if not isinstance(value, dict):
        raise BadRequest(_("A JSON object is expected"), "bad-json")
    return value


def _field(body: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in body:
        if default is ...:
            raise BadRequest(_("{name}: required field").format(name=name))
        return default
    value = body[name]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise BadRequest(_("{name}: {kind} expected").format(name=name, kind=kind.__name__))
    return value


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(_("{name}: true or false").format(name=name))
    return value in ("true", "1")


def _date(request: Request, name: str) -> dt.date | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadRequest(_("{name}: a YYYY-MM-DD date expected").format(name=name)) from None


def _unique_id(request: Request) -> str:
    value: str = request.path_params["unique_id"]
    if not _UNIQUE_ID.match(value):
        raise BadRequest(_("Invalid uniqueId"))
    return value


def _too_large() -> BadRequest:
    return BadRequest(_("Document too large (more than {size} MB)").format(
        size=MAX_UPLOAD >> 20), "too-large", 413)


async def _spool(request: Request) -> tuple[Path, str]:
    """The request body in a private temporary file (size-capped): (path, MIME type)."""
    mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise _too_large()
    fd, name = tempfile.mkstemp(prefix="dmp-upload-")  # 0600
    path, size = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise _too_large()
                out.write(chunk)
        if size == 0:
            raise BadRequest(_("Empty document"), "empty-document")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, mime


def create_app(service: AgentService, *, token: str | TokenKeeper, port: int,
               allowed_origins: tuple[str, ...] = ()) -> Guard:
    """The ASGI application: routes, the page, behind the `Guard`; ``token`` is the agent's
    `TokenKeeper` (a bare string: a token without a file)."""

    keeper = token if isinstance(token, TokenKeeper) else TokenKeeper(None, token)

    streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]] = set()

    def close_streams() -> None:
        """End every event stream (called from another thread when the agent stops)."""
        for loop, inbox in list(streams):
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(inbox.put_nowait, None)

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return run_in_threadpool(fn, *args, **kwargs)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": service.version})

    async def token_file(request: Request) -> Response:
        # No token needed and none given: the agent only puts its own token back in the
        # user's private file, for `dmp-agent page --print-token` to read.
        await call(keeper.restore)
        return Response(status_code=204)

    async def status(request: Request) -> Response:
        return JSONResponse(await call(service.snapshot))

    async def events(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(maxsize=1000)
        streams.add((loop, inbox))

        def listener(kind: str, data: dict[str, Any]) -> None:
            def put() -> None:
                with contextlib.suppress(asyncio.QueueFull):  # a stuck reader loses events,
                    inbox.put_nowait((kind, data))            # never the agent
            loop.call_soon_threadsafe(put)

        unsubscribe = service.subscribe(listener)
        first = await call(service.snapshot)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield _sse("status", first)
                while True:
                    try:
                        event = await asyncio.wait_for(inbox.get(), KEEPALIVE)
                    except TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                    if event is None:
                        return  # the agent stops: end the stream, the page reconnects
                    yield _sse(*event)
            finally:
                unsubscribe()
                streams.discard((loop, inbox))

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def open_session(request: Request) -> Response:
        body = await _json_body(request)
        pin = _field(body, "pin", str)
        # The practice situation: its index, or the structure id remembered for the card,
        # or null (the card's several situations are offered once read behind the PIN,
        # state "choosing"); absent: the first, as before.
        situation: int | str | None = 0
        if body.get("situation") is None and "situation" in body:
            situation = None
        elif "situation" in body:
            situation = _field(body, "situation", int)
        if "structureId" in body:
            structure: str = _field(body, "structureId", str)
            if not structure or len(structure) > 64:
                raise BadRequest(_("Invalid structureId"))
            situation = structure
        if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8):
            raise BadRequest(_("PIN: 4 digits"), "bad-pin-format")
        body.clear()
        return JSONResponse(await call(service.open_session, pin, situation))

    async def unblock(request: Request) -> Response:
        # The PUK and the new PIN: checked by the core (bad-pin-format) before the card is
        # asked; the body is dropped at once, nothing of it logged.
        body = await _json_body(request)
        puk, new_pin = _field(body, "puk", str), _field(body, "newPin", str)
        body.clear()
        return JSONResponse(await call(service.unblock_cps, puk, new_pin))

    async def choose_situation(request: Request) -> Response:
        body = await _json_body(request)
        return JSONResponse(await call(service.choose_situation, _field(body, "index", int)))

    async def close_session(request: Request) -> Response:
        await call(service.lock_session)
        return Response(status_code=204)

    async def select(request: Request) -> Response:
        body = await _json_body(request)
        return JSONResponse(await call(service.select_person, _field(body, "index", int)))

    async def reload(request: Request) -> Response:
        return JSONResponse(await call(service.reload_patient))

    async def choose_identity(request: Request) -> Response:
        body = await _json_body(request)
        return JSONResponse(await call(service.choose_identity, _field(body, "index", int)))

    async def search_identity(request: Request) -> Response:
        body = await _json_body(request)
        names = body.get("firstNames")
        if isinstance(names, str):
            names = names.split()
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest(_("firstNames: a list of first names expected"))
        place = _field(body, "birthPlace", str, "")
        return JSONResponse(await call(
            service.search_identity, birth_name=_field(body, "birthName", str)[:200],
            first_names=[n[:200] for n in names[:20]], sex=_field(body, "sex", str)[:2],
            birth_date=_field(body, "birthDate", str)[:20], birth_place=place[:10] or None))

    async def validate_identity(request: Request) -> Response:
        body = await _json_body(request)
        parent = _field(body, "parentDocument", str, "") or None
        return JSONResponse(await call(service.validate_identity,
                                       _field(body, "document", str)[:60],
                                       parent[:60] if parent else None))

    async def identity_documents(request: Request) -> Response:
        from wire.ins import IDENTITY_DOCUMENTS

        return JSONResponse([{"type": d.key, "code": d.code, "label": d.label,
                              "minorOnly": d.minor} for d in IDENTITY_DOCUMENTS.values()])

    async def access_mode(request: Request) -> Response:
        body = await _json_body(request)
        return JSONResponse(await call(service.set_access_mode, _field(body, "mode", str),
                                       _field(body, "justification", str, "")))

    async def documents(request: Request) -> Response:
        q = request.query_params
        types = tuple(q.getlist("typeCode"))
        if any(not _TYPE_CODE.match(t) for t in types):
            raise BadRequest(_("Invalid typeCode"))
        found = await call(service.documents, type_codes=types,
                           archived=_flag(request, "archived"), author=q.get("author", "")[:100],
                           since=_date(request, "since"), until=_date(request, "until"),
                           text=q.get("q", "")[:200], new=_flag(request, "new"))
        return JSONResponse(found)

    async def content(request: Request) -> Response:
        body, mime, title = await call(service.document_content, _unique_id(request))
        safe = re.sub(r"[^A-Za-z0-9._ -]+", "_", title)[:80] or "document"
        return Response(body, media_type=mime, headers={
            "content-disposition": f'inline; filename="{safe}"',
            "cache-control": "no-store", "x-content-type-options": "nosniff",
            "content-security-policy": "sandbox"})

    async def change(request: Request) -> Response:
        return JSONResponse(await call(service.change_document, _unique_id(request),
                                       request.path_params["action"]))

    async def types(request: Request) -> Response:
        return JSONResponse(await call(service.deposit_types))

    async def _deposit(request: Request, replaces: str | None) -> Response:
        q = request.query_params
        type_code = q.get("typeCode", "")
        # A CDA document names its own type (its header); a file the agent wraps needs one.
        cda_body = request.headers.get("content-type", "").split(";")[0].strip().lower() in (
            "text/xml", "application/xml")
        needed = replaces is None and not cda_body
        if (type_code or needed) and not _TYPE_CODE.match(type_code):
            raise BadRequest(_("typeCode required (GET /api/deposit-types)"))
        title = q.get("title", "")
        if len(title) > 200:
            raise BadRequest(_("{name}: 200 characters at most").format(name="title"))
        masked = _flag(request, "masked")
        invisible = _flag(request, "invisibleToPatient")
        # A disk without room for it refuses the deposit before a byte is received
        # ("disque plein : 5 Mo nécessaires, 2 Mo libres"), and a spool that fills says so.
        spool, declared = Path(tempfile.gettempdir()), request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) <= MAX_UPLOAD:
            await call(service.check_deposit_room, int(declared), spool)
        try:
            path, mime = await _spool(request)
        except OSError as error:
            raise explain(error, spool) from None
        try:
            queued = await call(service.deposit, path, mime_type=mime, type_code=type_code,
                                title=title, masked=masked, invisible_to_patient=invisible,
                                replaces=replaces)
        finally:
            path.unlink(missing_ok=True)
        return JSONResponse(queued, status_code=202)

    async def deposit(request: Request) -> Response:
        return await _deposit(request, None)

    async def replace(request: Request) -> Response:
        return await _deposit(request, _unique_id(request))

    async def outbox(request: Request) -> Response:
        return JSONResponse(await call(service.outbox))

    async def retry(request: Request) -> Response:
        item = request.path_params["item_id"]
        if not 0 < item < 1 << 63:  # SQLite's integers: anything else names no item
            raise AgentError(_("No outbox item {item}").format(item=item), code="bad-item",
                             status=404)
        return JSONResponse(await call(service.retry_deposit, item))

    async def create_dmp(request: Request) -> Response:
        body = await _json_body(request)
        created = await call(
            service.create_dmp, consent=_field(body, "consent", bool),
            break_the_glass=_field(body, "breakTheGlass", bool, True),
            regulation_centre=_field(body, "regulationCentre", bool, True),
            emergency_sees_masked=_field(body, "emergencySeesMasked", bool, True),
            email=_field(body, "email", str, None))  # checked by the core (bad-email)
        return JSONResponse(created, status_code=201)

    async def sheet(request: Request) -> Response:
        pdf = await call(service.secrets_sheet)
        return Response(pdf, media_type="application/pdf", headers={
            "content-disposition": 'inline; filename="fiche-dmp.pdf"',
            "cache-control": "no-store"})

    async def authorize(request: Request) -> Response:
        body = await _json_body(request)
        return JSONResponse(await call(service.authorize,
                                       confirmed=_field(body, "confirmed", bool)))

    async def close_dmp(request: Request) -> Response:
        body = await _json_body(request)
        reason = _field(body, "reason", str)
        if len(reason) > 200:
            raise BadRequest(_("{name}: 200 characters at most").format(name="reason"))
        return JSONResponse(await call(service.close_dmp, reason=reason,
                                       patient_request=_field(body, "patientRequest", bool)))

    async def reactivate_dmp(request: Request) -> Response:
        body = await _json_body(request)
        return JSONResponse(await call(service.reactivate_dmp,
                                       consent=_field(body, "consent", bool)))

    async def medecin_traitant(request: Request) -> Response:
        body = await _json_body(request)
        return JSONResponse(await call(service.designate_medecin_traitant,
                                       confirmed=_field(body, "confirmed", bool)))

    async def diagnostics(request: Request) -> Response:
        return JSONResponse(await call(service.diagnostics))

    async def settings(request: Request) -> Response:
        return JSONResponse(await call(service.settings))

    async def openapi(request: Request) -> Response:
        return Response((Path(__file__).parent / "openapi.yaml").read_bytes(),
                        media_type="application/yaml")

    async def messages(request: Request) -> Response:
        # The page's words in the agent's language; they change only with the catalogue
        # (a new version) or the language (a restart): revalidated, answered 304 if the same.
        etag = catalogue().etag
        headers = {"cache-control": "private, no-cache", "etag": etag,
                   "content-language": current_language()}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return JSONResponse(page_messages(), headers=headers)

    async def page(request: Request) -> Response:
        return Response(_page(), media_type="text/html", headers={
            "cache-control": "no-store", "x-frame-options": "DENY",
            "referrer-policy": "no-referrer",
            "content-security-policy": "default-src 'self'; frame-src 'self' blob:; "
                                       "img-src 'self' data:; object-src 'self'; "
                                       "frame-ancestors 'none'"})

    def route(path: str, handler: Handler, *methods: str) -> Route:
        return Route(path, _guarded(handler), methods=list(methods))

    routes: list[BaseRoute] = [
        route("/", page, "GET"),
        route("/api/health", health, "GET"),
        route(TOKEN_ROUTE, token_file, "POST"),
        route("/api/openapi.yaml", openapi, "GET"),
        route("/api/status", status, "GET"),
        route("/api/messages", messages, "GET"),
        route("/api/events", events, "GET"),
        route("/api/session", open_session, "POST"),
        route("/api/session", close_session, "DELETE"),
        route("/api/session/situation", choose_situation, "POST"),
        route("/api/session/unblock", unblock, "POST"),
        route("/api/patient/select", select, "POST"),
        route("/api/patient/reload", reload, "POST"),
        route("/api/patient/identity/search", search_identity, "POST"),
        route("/api/patient/identity/choose", choose_identity, "POST"),
        route("/api/patient/identity/validate", validate_identity, "POST"),
        route("/api/patient/identity/documents", identity_documents, "GET"),
        route("/api/patient/access-mode", access_mode, "PUT"),
        route("/api/documents", documents, "GET"),
        route("/api/documents/{unique_id}/content", content, "GET"),
        route("/api/documents/{unique_id}/replace", replace, "POST"),
        route("/api/documents/{unique_id}/{action}", change, "POST"),
        route("/api/deposit-types", types, "GET"),
        route("/api/deposits", deposit, "POST"),
        route("/api/outbox", outbox, "GET"),
        route("/api/outbox/{item_id:int}/retry", retry, "POST"),
        route("/api/dmp", create_dmp, "POST"),
        route("/api/dmp/sheet", sheet, "GET"),
        route("/api/dmp/close", close_dmp, "POST"),
        route("/api/dmp/reactivate", reactivate_dmp, "POST"),
        route("/api/dmp/medecin-traitant", medecin_traitant, "POST"),
        route("/api/authorizations", authorize, "POST"),
        route("/api/diagnostics", diagnostics, "GET"),
        route("/api/settings", settings, "GET"),
        *viewing_routes(service, call, route, _unique_id),
    ]
    routes += ecps_routes(service, route, call)  # the e-CPS login (docs/psc.md)
    routes += vaccination_routes(service, route, call)  # the vaccination record (docs/cda.md)
    if WEB.is_dir():
        routes.append(Mount("/static", StaticFiles(directory=WEB), name="static"))
    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = {404: _("No such address"),
                   405: _("Method not allowed")}.get(status, _("HTTP error"))
        return JSONResponse({"code": "not-found" if status == 404 else "bad-method",
                             "message": message}, status_code=status)

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    guard = Guard(app, token=keeper, port=port, allowed_origins=allowed_origins)
    guard.close_streams = close_streams
    return guard


_pages: dict[str, bytes] = {}


def _page() -> bytes:
    """index.html in the language in use (its static text), made once per language."""
    language = current_language()
    if language not in _pages:
        html = (WEB / "index.html").read_text(encoding="utf-8")
        _pages[language] = translate_html(html, language).encode("utf-8")
    return _pages[language]


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
