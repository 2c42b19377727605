"""Logins waiting for the professional's phone: CIBA requests and browser authorizations.

A login is created pending, shown on the professional's e-CPS app with its binding message,
and ends approved, denied or expired. A CIBA client polls for it at the token endpoint; a
browser's authorization waits for it, then gets a one-time code. One login at a time per
professional: a second request while one is pending is refused (the phone shows one
binding message, never a choice between two). In memory: a login lives two minutes.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["pending", "approved", "denied", "expired"]


class LoginPending(Exception):
    """A login for this professional is already waiting for the phone."""

    def __init__(self, expires_in: int) -> None:
        super().__init__(expires_in)
        self.expires_in = expires_in


@dataclass
class Login:
    id: str
    client_id: str
    id_nat_ps: str
    binding_message: str
    scope: str
    acr: str
    nonce: str | None
    created: dt.datetime
    expires: dt.datetime
    interval: int
    status: Status = "pending"
    decided: dt.datetime | None = None
    last_poll: dt.datetime | None = None
    delivered: bool = False
    # a browser authorization's (authorization code flow)
    redirect_uri: str | None = None
    state: str | None = None
    code_challenge: str | None = None
    code: str | None = None

    def status_at(self, now: dt.datetime) -> Status:
        if self.status == "pending" and now >= self.expires:
            return "expired"
        return self.status


class Logins:
    """The logins of one provider process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Login] = {}

    def _forget_old(self, now: dt.datetime) -> None:
        # Ended logins are kept ten minutes (a late poll gets expired_token, not an error).
        for key, login in list(self._by_id.items()):
            if now > login.expires + dt.timedelta(minutes=10):
                del self._by_id[key]

    def start(self, now: dt.datetime, expiry: int, interval: int, *, id_nat_ps: str,
              **fields: Any) -> Login:
        """A new pending login (``fields``: the other `Login` fields); LoginPending when
        one already waits for this professional."""
        with self._lock:
            self._forget_old(now)
            for other in self._by_id.values():
                if other.id_nat_ps == id_nat_ps and other.status_at(now) == "pending":
                    raise LoginPending(max(1, int((other.expires - now).total_seconds())))
            # Hex, not URL-safe base64: the professional may type it (`dmp-vecps approve ID`),
            # and an id starting with "-" reads as an option there.
            login = Login(id=secrets.token_hex(16), id_nat_ps=id_nat_ps, created=now,
                          expires=now + dt.timedelta(seconds=expiry), interval=interval,
                          **fields)
            self._by_id[login.id] = login
            return login

    def get(self, login_id: str) -> Login | None:
        with self._lock:
            return self._by_id.get(login_id)

    def pending_for(self, id_nat_ps: str, now: dt.datetime) -> list[Login]:
        with self._lock:
            return [login for login in self._by_id.values()
                    if login.id_nat_ps == id_nat_ps and login.status_at(now) == "pending"]

    def decide(self, login_id: str, id_nat_ps: str, approve: bool, now: dt.datetime) -> Status:
        """Approve or deny a pending login of ``id_nat_ps``; returns the login's status
        after (``expired`` when too late; KeyError when it is not theirs or unknown)."""
        with self._lock:
            login = self._by_id.get(login_id)
            if login is None or login.id_nat_ps != id_nat_ps:
                raise KeyError(login_id)
            status = login.status_at(now)
            if status != "pending":
                return status
            login.status = "approved" if approve else "denied"
            login.decided = now
            if approve and login.redirect_uri is not None:
                login.code = secrets.token_urlsafe(32)
            return login.status

    def poll(self, login_id: str, client_id: str, now: dt.datetime
             ) -> tuple[Login | None, str]:
        """One CIBA poll: (login, outcome) where outcome is "approved" (deliver the tokens,
        once), "authorization_pending", "slow_down", "expired_token", "access_denied" or
        "invalid_grant" (unknown, another client's, or already delivered)."""
        with self._lock:
            login = self._by_id.get(login_id)
            if login is None or login.client_id != client_id or login.delivered \
                    or login.redirect_uri is not None:
                return None, "invalid_grant"
            status = login.status_at(now)
            if status == "expired":
                return login, "expired_token"
            if status == "denied":
                return login, "access_denied"
            too_soon = (login.last_poll is not None
                        and now - login.last_poll < dt.timedelta(seconds=login.interval))
            login.last_poll = now
            if status == "pending":
                if too_soon:
                    # CIBA core 11: the client must poll 5 seconds slower from now on.
                    login.interval += 5
                    return login, "slow_down"
                return login, "authorization_pending"
            login.delivered = True
            return login, "approved"

    def redeem(self, code: str, client_id: str) -> Login | None:
        """The approved browser login of ``code`` for ``client_id``, once."""
        with self._lock:
            for login in self._by_id.values():
                if (login.code is not None and secrets.compare_digest(login.code, code)
                        and login.client_id == client_id and not login.delivered):
                    login.delivered = True
                    return login
            return None
