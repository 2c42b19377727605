"""What the calls to the host said lately: reachable, slow, unreachable since when, or a
certificate problem, each with its reason in words and what to do (issue 17: the host being
down must not be almost invisible).

Every host client (`agent.client.session.host_client`) reports each call here: an answer,
whatever its HTTP status, means the host is reachable (slow when it took longer than
`SLOW_SECONDS`); a failure of the transport is classified by `classify`. `LINK` is the
process's one record: the core publishes it to the views (status bar, tray, API) and the
errors of the actions say the same sentence (`agent.errors`). No httpx import here: the
agent's start reads `LINK` before any host call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.i18n import N_, _

if TYPE_CHECKING:
    import httpx

__all__ = ["LINK", "SLOW_SECONDS", "HostLink", "LinkState", "causes", "classify",
           "linked_client"]

SLOW_SECONDS = 5.0  # an answer slower than this: the link is said to be slow

# What to do, per state (translated where said: the language is chosen after the import).
UNREACHABLE_FIX = N_("Check this workstation's internet connection (and the proxy, host.proxy); "
                     "the deposits wait in the outbox and go by themselves")
HOST_CERTIFICATE_FIX = N_("Check the workstation's clock and host.ca (dmp-agent doctor)")
OWN_CERTIFICATE_FIX = N_("This workstation's certificate is refused: have it renewed, then "
                         "enrol the workstation again (dmp-agent doctor)")


@dataclass(frozen=True)
class LinkState:
    state: str  # unknown, reachable, slow, unreachable, certificate
    since: dt.datetime | None = None  # when it entered this state
    reason: str = ""
    fix: str = ""
    last_ok: dt.datetime | None = None  # the host's last answer
    seconds: float | None = None  # how long the last answer took

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state,
                "since": self.since.isoformat() if self.since else None,
                "reason": self.reason, "fix": self.fix,
                "lastOk": self.last_ok.isoformat() if self.last_ok else None,
                "seconds": None if self.seconds is None else round(self.seconds, 2)}


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it was raised from or during (httpx wraps the socket or ssl
    error that says what really happened)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify(error: BaseException) -> tuple[str, str, str]:
    """(state, reason, fix) of a failed call: "certificate" when TLS refused a certificate
    (the host's, or ours by the host), else "unreachable" with what happened in words."""
    chain = causes(error)
    text = " ".join(str(e) for e in chain).upper()
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) \
            or "CERTIFICATE_VERIFY_FAILED" in text:
        return ("certificate", _("The DMP host's certificate is not trusted"),
                _(HOST_CERTIFICATE_FIX))
    if ("ALERT" in text and "CERTIFICATE" in text) or "UNKNOWN_CA" in text:
        return ("certificate", _("The DMP host refuses this workstation's certificate"),
                _(OWN_CERTIFICATE_FIX))
    name = type(error).__name__
    if name in ("ConnectTimeout", "PoolTimeout"):
        reason = _("DMP host unreachable (timed out)")
    elif "Timeout" in name:
        reason = _("The DMP host does not answer in time")
    elif name in ("ProxyError",):
        reason = _("The proxy refuses the connection to the DMP host")
    elif name in ("ReadError", "WriteError", "RemoteProtocolError"):
        reason = _("Connection to the DMP host cut")
    else:
        reason = _("DMP host unreachable")
    return "unreachable", reason, _(UNREACHABLE_FIX)


class HostLink:
    """The host's state as the last calls saw it; listeners hear each change of state."""

    def __init__(self, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
                 ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state = LinkState("unknown")
        self._listeners: list[Callable[[LinkState], None]] = []

    @property
    def state(self) -> LinkState:
        with self._lock:
            return self._state

    def subscribe(self, listener: Callable[[LinkState], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def succeeded(self, seconds: float) -> None:
        now = self._clock()
        if seconds > SLOW_SECONDS:
            self._set("slow", _("DMP host slow (answered in {seconds} s)").format(
                seconds=f"{seconds:.1f}"), "", now, seconds, ok=True)
        else:
            self._set("reachable", "", "", now, seconds, ok=True)

    def failed(self, error: BaseException) -> None:
        state, reason, fix = classify(error)
        self._set(state, reason, fix, self._clock(), None, ok=False)

    def _set(self, state: str, reason: str, fix: str, now: dt.datetime,
             seconds: float | None, *, ok: bool) -> None:
        with self._lock:
            old = self._state
            since = old.since if old.state == state and old.since else now
            new = LinkState(state, since, reason, fix, now if ok else old.last_ok,
                            seconds if ok else old.seconds)
            self._state = new
            listeners = list(self._listeners) if (old.state, old.reason) != (
                new.state, new.reason) else []
        for listener in listeners:
            with contextlib.suppress(Exception):  # a view's bug must not break a host call
                listener(new)


LINK = HostLink()


@functools.cache
def _client_class() -> type[httpx.Client]:
    import httpx  # at the first host call

    class LinkedClient(httpx.Client):
        """An httpx client that reports each call's outcome to `LINK`."""

        def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            started = time.monotonic()
            try:
                response = super().send(request, **kwargs)
            except httpx.TransportError as error:
                LINK.failed(error)
                raise
            LINK.succeeded(time.monotonic() - started)
            return response

    return LinkedClient


def linked_client(**options: Any) -> httpx.Client:
    """``httpx.Client(**options)`` whose calls are reported to `LINK`."""
    return _client_class()(**options)
