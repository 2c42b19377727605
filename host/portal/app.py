"""The patient portal: a small French web app on its own port (the patient's side of the
reference host, as "Mon espace santé" is the real one's).

Server-rendered pages and plain HTML forms: it works without JavaScript, and the Content
Security Policy allows none. The session cookie is ``__Host-`` prefixed, Secure, HttpOnly,
SameSite=Strict; every form carries the session's CSRF token and every POST must come from
the portal's own origin. Every action goes through host/patient.py, hence through
`policies.decide` and into the access history, exactly like the command line.
"""

from __future__ import annotations

import collections
import datetime as dt
import hmac
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import audit, patient
from ..errors import HostError
from ..guard import Guard
from ..settings import NotifySettings
from ..store import open_engine
from . import dossier, render
from .accounts import Accounts, Session
from .mail import send_code

COOKIE = "__Host-dmp-portail"
PLAIN_COOKIE = "dmp-portail"  # for plain http on another name than localhost (no Secure)
MAX_FORM = 16 * 1024
# Per client address, on the sign-in forms: beyond this many posts in the window, 429.
IP_LIMIT, IP_WINDOW = 30, 600.0
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SLOW_DOWN = "Trop de tentatives depuis cet appareil : attendez quelques minutes."
NOTICES = {
    "masque": "Le document est masqué aux professionnels (sauf son auteur et vos médecins "
              "traitants).",
    "demasque": "Le document est de nouveau visible des professionnels autorisés.",
    "bloque": "Ce professionnel ne peut plus accéder à votre DMP.",
    "debloque": "Ce professionnel n'est plus bloqué.",
    "medecin": "Votre médecin traitant DMP est déclaré.",
    "medecin-retire": "Ce médecin n'est plus votre médecin traitant DMP.",
    "oppositions": "Vos choix sur les accès d'urgence sont enregistrés.",
    "notifications": "Vos choix de notification sont enregistrés.",
    "ferme": "Votre DMP est fermé. Il est conservé dix ans et vous pouvez le réactiver.",
    "reactive": "Votre DMP est réactivé.",
    "mot-de-passe": "Votre mot de passe est enregistré.",
}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class PortalSettings:
    database_url: str
    notify: NotifySettings = field(default_factory=NotifySettings)
    secure_cookie: bool = True  # False only for plain http on a name that is not localhost


class Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


class Limiter:
    """A sliding window of posts per client address (in memory: one portal process)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.seen: dict[str, collections.deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        times = self.seen.setdefault(key, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(self.seen) > 10_000:  # forget the quiet ones
            self.seen = {k: v for k, v in self.seen.items() if v}
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


class Portal:
    """The portal's state: one per app."""

    def __init__(self, settings: PortalSettings, engine: Engine,
                 clock: Callable[[], dt.datetime]) -> None:
        self.settings = settings
        self.guard = Guard(engine, clock)
        self.accounts = Accounts(engine, clock)
        self.limiter = Limiter(IP_LIMIT, IP_WINDOW)
        self.cookie = COOKIE if settings.secure_cookie else PLAIN_COOKIE


def _portal(request: Request) -> Portal:
    return request.app.state.portal  # type: ignore[no-any-return]


async def read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HostError(415, "form-expected", "Formulaire attendu.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise HostError(413, "form-too-large", "Formulaire trop long.")
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                       max_num_fields=20, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise HostError(400, "bad-form", "Formulaire illisible.") from None
    return dict(pairs)


def _session(request: Request) -> Session | None:
    portal = _portal(request)
    return portal.accounts.load(request.cookies.get(portal.cookie))


def signed_in(request: Request) -> Session:
    """The active session, or a redirect to the step the browser is at."""
    session = _session(request)
    if session is None:
        raise Redirect("/connexion")
    if session.stage == "code":
        raise Redirect("/code")
    if session.stage == "password":
        raise Redirect("/mot-de-passe")
    return session


def check_csrf(session: Session, form: dict[str, str]) -> None:
    if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        raise HostError(403, "csrf", "Formulaire expiré : rechargez la page.")


def html(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(render.page(name, **values), status_code=status)


def with_cookie(response: Response, portal: Portal, token: str | None) -> Response:
    if token is None:
        response.delete_cookie(portal.cookie, path="/", secure=portal.settings.secure_cookie,
                               httponly=True, samesite="strict")
    else:
        response.set_cookie(portal.cookie, token, path="/", secure=portal.settings.secure_cookie,
                            httponly=True, samesite="strict")
    return response


def see_other(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303)


def masked_address(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'•' * max(len(local) - 1, 2)}@{domain}"


# -- signing in ------------------------------------------------------------------------------
async def home(request: Request) -> Response:
    signed_in(request)
    return see_other("/historique")


async def sign_in_page(request: Request) -> Response:
    session = _session(request)
    if session is not None and session.stage == "active":
        return see_other("/historique")
    return html("connexion.html")


async def sign_in(request: Request) -> Response:
    portal = _portal(request)
    form = await read_form(request)
    try:
        if not portal.limiter.allow(_client(request)):
            raise HostError(429, "slow-down", SLOW_DOWN)
        ins = await run_in_threadpool(portal.accounts.check_secret, form.get("ins", ""),
                                      form.get("secret", ""))
        token, to_send = await run_in_threadpool(portal.accounts.start, ins)
    except HostError as error:
        return html("connexion.html", error.status, error=error.message,
                    ins=form.get("ins", ""))
    try:
        await run_in_threadpool(send_code, portal.settings.notify, to_send)
    except HostError as error:
        session = portal.accounts.load(token)
        if session is not None:
            portal.accounts.end(session)
        return html("connexion.html", error.status, error=error.message, ins=form.get("ins"))
    return with_cookie(see_other("/code"), portal, token)


async def code_page(request: Request, *, notice: str | None = None, error: str | None = None,
                    status: int = 200) -> Response:
    session = _session(request)
    if session is None:
        return see_other("/connexion")
    if session.stage != "code":
        return see_other("/historique")
    return html("code.html", status, session=session, notice=notice, error=error)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


async def _code_step(request: Request) -> tuple[Portal, Session, dict[str, str]]:
    """A POST of the code step: its session (CSRF checked) and form; else back to sign-in."""
    session = _session(request)
    form = await read_form(request)
    if session is None or session.stage != "code":
        raise Redirect("/connexion")
    check_csrf(session, form)
    return _portal(request), session, form


async def enter_code(request: Request) -> Response:
    portal, session, form = await _code_step(request)
    if not portal.limiter.allow(_client(request)):
        return await code_page(request, error=SLOW_DOWN, status=429)
    try:
        moved = await run_in_threadpool(portal.accounts.check_code, session,
                                        form.get("code", ""))
    except HostError as error:
        return await code_page(request, error=error.message, status=error.status)
    next_page = "/mot-de-passe" if moved.stage == "password" else "/historique"
    return with_cookie(see_other(next_page), portal, moved.token)


async def resend_code(request: Request) -> Response:
    portal, session, _ = await _code_step(request)
    try:
        to_send = await run_in_threadpool(portal.accounts.resend, session)
        await run_in_threadpool(send_code, portal.settings.notify, to_send)
    except HostError as error:
        return await code_page(request, error=error.message, status=error.status)
    return await code_page(request, notice=f"Un nouveau code a été envoyé à "
                           f"{masked_address(to_send.address)}.")


async def password_page(request: Request, *, error: str | None = None,
                        status: int = 200) -> Response:
    session = _session(request)
    if session is None or session.stage == "code":
        return see_other("/connexion" if session is None else "/code")
    return html("mot_de_passe.html", status, session=session, error=error,
                first=session.stage == "password")


async def set_password(request: Request) -> Response:
    portal = _portal(request)
    session = _session(request)
    form = await read_form(request)
    if session is None or session.stage == "code":
        return see_other("/connexion")
    check_csrf(session, form)
    try:
        await run_in_threadpool(portal.accounts.set_password, session,
                                form.get("password", ""), form.get("again", ""))
    except HostError as error:
        return await password_page(request, error=error.message, status=error.status)
    return see_other("/historique?ok=mot-de-passe")


async def sign_out(request: Request) -> Response:
    portal = _portal(request)
    session = _session(request)
    form = await read_form(request)
    if session is not None:
        check_csrf(session, form)
        await run_in_threadpool(portal.accounts.end, session)
    response = html("connexion.html", notice="Vous êtes déconnecté.")
    return with_cookie(response, portal, None)


# -- the pages of a signed-in patient --------------------------------------------------------
Page = Callable[[Request, Session, Portal], Awaitable[dict[str, Any]]]


def page(template: str, build: Page) -> Callable[[Request], Awaitable[Response]]:
    """A GET page of a signed-in patient: ``build`` gives its values; the notice of the
    action that led here (``?ok=``) and the error of one that failed are shown on top."""

    async def endpoint(request: Request, *, error: str | None = None,
                       status: int = 200) -> Response:
        session = signed_in(request)
        portal = _portal(request)
        try:
            values = await build(request, session, portal)
        except HostError as failure:
            if failure.code == "dossier-closed":
                return see_other("/reglages")
            raise
        notice = NOTICES.get(request.query_params.get("ok", ""))
        return html(template, status, session=session, notice=notice, error=error,
                    section=template.removesuffix(".html"), **values)

    return endpoint


def action(run: Callable[[Portal, Session, dict[str, str]], str],
           page_endpoint: Callable[..., Awaitable[Response]],
           back: str) -> Callable[[Request], Awaitable[Response]]:
    """A POST action: CSRF checked, ``run`` (blocking, in a thread) returns the notice key;
    a refusal is shown on the page the form was on."""

    async def endpoint(request: Request) -> Response:
        session = signed_in(request)
        form = await read_form(request)
        check_csrf(session, form)
        try:
            notice = await run_in_threadpool(run, _portal(request), session, form)
        except HostError as error:
            return await page_endpoint(request, error=error.message, status=error.status)
        return see_other(f"{back}?ok={notice}")

    return endpoint


async def _history(request: Request, session: Session, portal: Portal) -> dict[str, Any]:
    guard, ins = portal.guard, session.ins
    # By default the professionals' accesses; the refusals (anyone's: a wrong sign-in too);
    # or everything, the patient's own visits included.
    only = request.query_params.get("voir")
    if only not in ("refus", "tout"):
        only = None
    outcome = "refused" if only == "refus" else None
    kind = "professional" if only is None else None
    after = request.query_params.get("apres") or None
    verdict = await run_in_threadpool(dossier.verify_history, guard, ins)
    history = await run_in_threadpool(lambda: patient.access_log_page(
        guard, ins, limit=50, after=after, outcome=outcome, actor_kind=kind))
    return {"entries": history["entries"], "next": history["next"], "verdict": verdict,
            "only": only}


async def _documents(request: Request, session: Session, portal: Portal) -> dict[str, Any]:
    from .. import patient_documents

    items = await run_in_threadpool(patient_documents.documents, portal.guard, session.ins)
    return {"documents": items}


async def _professionals(request: Request, session: Session,
                         portal: Portal) -> dict[str, Any]:
    from .. import patient_documents

    people = await run_in_threadpool(patient_documents.professionals, portal.guard,
                                     session.ins)
    return {"professionals": people}


async def _settings(request: Request, session: Session, portal: Portal) -> dict[str, Any]:
    return {"dossier": await run_in_threadpool(dossier.summary, portal.guard, session.ins)}


history_page = page("historique.html", _history)
documents_page = page("documents.html", _documents)
professionals_page = page("professionnels.html", _professionals)
settings_page = page("reglages.html", _settings)


def _mask(portal: Portal, session: Session, form: dict[str, str]) -> str:
    from .. import patient_documents

    masked = form.get("masquer") == "oui"
    patient_documents.set_masked(portal.guard, session.ins, form.get("document", ""), masked)
    return "masque" if masked else "demasque"


def _block(portal: Portal, session: Session, form: dict[str, str]) -> str:
    block = form.get("bloquer") == "oui"
    (patient.block if block else patient.unblock)(portal.guard, session.ins,
                                                  form.get("professionnel", ""))
    return "bloque" if block else "debloque"


def _medecin(portal: Portal, session: Session, form: dict[str, str]) -> str:
    from .. import patient_documents

    who = form.get("professionnel", "")
    if form.get("declarer") == "oui":
        patient_documents.designate_medecin_traitant(portal.guard, session.ins, who)
        return "medecin"
    patient.end_medecin_traitant(portal.guard, session.ins, who)
    return "medecin-retire"


def _oppositions(portal: Portal, session: Session, form: dict[str, str]) -> str:
    # Checkboxes say what the patient opposes: unchecked = allowed.
    patient.set_consents(portal.guard, session.ins,
                         break_the_glass=form.get("oppose_bris_de_glace") != "oui",
                         regulation_centre=form.get("oppose_centre_15") != "oui",
                         emergency_sees_masked=form.get("urgence_voit_masques") == "oui")
    return "oppositions"


def _notifications(portal: Portal, session: Session, form: dict[str, str]) -> str:
    channel = "email" if form.get("canal") == "email" else "none"
    patient.set_notifications(portal.guard, session.ins, channel=channel)
    return "notifications"


def _close(portal: Portal, session: Session, form: dict[str, str]) -> str:
    if form.get("confirmer") != "oui":
        raise HostError(400, "confirm", "Cochez la case pour confirmer la fermeture.")
    patient.close(portal.guard, session.ins, form.get("motif", "").strip()
                  or "À la demande du patient (portail)")
    return "ferme"


def _reactivate(portal: Portal, session: Session, form: dict[str, str]) -> str:
    patient.reactivate(portal.guard, session.ins)
    return "reactive"


# -- the application --------------------------------------------------------------------------
class Headers(BaseHTTPMiddleware):
    """Security headers on every answer; a POST from another origin is refused."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method == "POST" and not _same_origin(request):
            response: Response = PlainTextResponse(
                "Requête refusée : elle ne vient pas du portail.", status_code=403)
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: with no-referrer, browsers send "Origin: null" on
        # form posts, and the origin check could not tell the portal from another site.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        return response


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        # Browsers send Origin with every form POST; a client that sends neither Origin
        # nor Referer is not a browser another site could drive.
        referer = request.headers.get("referer")
        if referer is None:
            return True
        parts = urllib.parse.urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def create_portal(settings: PortalSettings, *, engine: Engine | None = None,
                  clock: Callable[[], dt.datetime] = utc_now) -> Starlette:
    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)
        return see_other(exc.to)

    async def failure(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HostError)
        return html("erreur.html", exc.status, error=exc.message)

    routes = [
        Route("/", home),
        Route("/connexion", sign_in_page, methods=["GET"]),
        Route("/connexion", sign_in, methods=["POST"]),
        Route("/code", code_page, methods=["GET"]),
        Route("/code", enter_code, methods=["POST"]),
        Route("/code/renvoyer", resend_code, methods=["POST"]),
        Route("/mot-de-passe", password_page, methods=["GET"]),
        Route("/mot-de-passe", set_password, methods=["POST"]),
        Route("/deconnexion", sign_out, methods=["POST"]),
        Route("/historique", history_page, methods=["GET"]),
        Route("/documents", documents_page, methods=["GET"]),
        Route("/documents/masquage", action(_mask, documents_page, "/documents"),
              methods=["POST"]),
        Route("/professionnels", professionals_page, methods=["GET"]),
        Route("/professionnels/blocage", action(_block, professionals_page,
                                                "/professionnels"), methods=["POST"]),
        Route("/professionnels/medecin-traitant", action(_medecin, professionals_page,
                                                         "/professionnels"), methods=["POST"]),
        Route("/reglages", settings_page, methods=["GET"]),
        Route("/reglages/oppositions", action(_oppositions, settings_page, "/reglages"),
              methods=["POST"]),
        Route("/reglages/notifications", action(_notifications, settings_page, "/reglages"),
              methods=["POST"]),
        Route("/dmp/fermeture", action(_close, settings_page, "/reglages"), methods=["POST"]),
        Route("/dmp/reactivation", action(_reactivate, settings_page, "/reglages"),
              methods=["POST"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="static"),
    ]
    if engine is None:
        engine = open_engine(settings.database_url)
        audit.install(engine)  # a route that reads patient data undecided fails closed
    # The same audit as the professionals' API: every request of a patient table comes after
    # a decision (host/audit.py); the patient's traces are written by host/patient.py.
    app = Starlette(routes=routes,
                    middleware=[Middleware(Headers), Middleware(audit.AuditMiddleware)],
                    exception_handlers={Redirect: redirect, HostError: failure})
    app.state.portal = Portal(settings, engine, clock)
    app.state.guard = app.state.portal.guard
    return app
