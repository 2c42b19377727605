"""Who may talk to the local API: a process of this user on this machine, or a web page
from an origin the user allowed.

- the token: 32 random bytes in the user's config directory, mode 0600, created at the first
  start and kept in its file by the running agent (`token.TokenKeeper`);
- the peer: a loopback address only (the server also binds 127.0.0.1 only);
- Host: ``127.0.0.1:<port>`` or ``localhost:<port>``, else DNS rebinding could make a remote
  page's own name point at us;
- Origin: absent (not a browser), the agent's own page, or ``api.allowed_origins``; for
  those the CORS and Private Network Access preflights are answered.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from agent.i18n import _
from agent.views.localapi.token import (
    TOKEN_FILE,
    TOKEN_ROUTE,
    TokenKeeper,
    load_or_create_token,
    page_url,
    token_path,
)

PUBLIC_PATHS = ("/api/health", TOKEN_ROUTE)  # and everything outside /api/: no data there

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["TOKEN_FILE", "Guard", "load_or_create_token", "page_url", "token_path"]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware applying the rules above before any route runs."""

    def __init__(self, app: App, *, token: str | TokenKeeper, port: int,
                 allowed_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.keeper = token if isinstance(token, TokenKeeper) else TokenKeeper(None, token)
        self._hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self._own = {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
        self._origins = self._own | {o.rstrip("/").lower() for o in allowed_origins}
        self.close_streams: Callable[[], None] = lambda: None  # set by create_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        client = scope.get("client") or ("", 0)
        if not _is_loopback(client[0]):
            await _refuse(send, 403, "not-loopback", _("Local access only"))
            return
        if headers.get("host", "").lower() not in self._hosts:
            await _refuse(send, 403, "bad-host", _("Host header refused"))
            return
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self._origins:
            await _refuse(send, 403, "bad-origin",
                          _("Origin not allowed: {origin} (see api.allowed_origins)").format(
                              origin=origin[:100]))
            return
        cors = self._cors(origin)
        path = scope.get("path", "")
        if scope["method"] == "OPTIONS" and origin is not None:
            await _reply(send, 204, b"", [
                *cors,
                (b"access-control-allow-methods", b"GET, POST, PUT, DELETE"),
                (b"access-control-allow-headers", b"authorization, content-type"),
                (b"access-control-max-age", b"600"),
                # Chromium's Private Network Access / Local Network Access preflight.
                *([(b"access-control-allow-private-network", b"true")]
                  if headers.get("access-control-request-private-network") else []),
            ])
            return
        if path.startswith("/api/") and path not in PUBLIC_PATHS:
            given = headers.get("authorization", "")
            scheme, _space, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    value.strip().encode(), self.keeper.token.encode()):
                # The client may have read a file deleted or changed since the agent
                # started: put the agent's token back there before saying where to look.
                await asyncio.to_thread(self.keeper.restore)
                await _refuse(send, 401, "bad-token",
                              _("Missing or wrong token (dmp-agent page --print-token)"), cors)
                return

        async def send_with_cors(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and cors:
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _cors(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        if origin is None or origin.lower() in self._own:
            return []
        return [(b"access-control-allow-origin", origin.encode("latin-1")),
                (b"vary", b"Origin")]


async def _reply(send: Send, status: int, body: bytes,
                 headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, status: int, code: str, message: str,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await _reply(send, status, body, [(b"content-type", b"application/json"),
                                      (b"content-length", str(len(body)).encode()),
                                      *(extra or [])])
