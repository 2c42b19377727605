"""The command line beside a running agent: a thin client of `dmp-agent run`'s local API.

Once installed, `dmp-agent run` is always running: it holds the outbox and, once the PIN was
typed on the page, the professional's session. A command then goes through it (issue 17)
instead of opening the store and the card itself: `RunningAgent` answers the calls the
commands make with the same names and the same JSON as `AgentService` (the API's handlers
call those very methods), so each command has one path whichever answers it
(`agent.views.command_session.open_agent`). Nothing here decides anything: the running
agent's core does, and its refusals come back as the same `AgentError` (code, message).

Where the agent listens and its token: `agent.views.localapi.token.running_agent` (the
discovery file, then ``api.port``; a token another user's agent refuses means: not ours).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx

from agent.config import AgentConfig
from agent.errors import AgentError
from agent.i18n import _

__all__ = ["AgentCalls", "RunningAgent", "find_running_agent"]

POLL = 0.1  # seconds between two looks at the running agent's state while a command waits
TIMEOUT = 30.0  # seconds for one call (the host's own timeout is shorter)
# A call that builds and checks a CDA: the agent's first check compiles the CI-SIS
# schematrons (10-30 s idle, more on a loaded machine).
CDA_TIMEOUT = 150.0


class AgentCalls(Protocol):
    """What a command asks of the agent: `AgentService` in this process, or `RunningAgent`
    over the local API. The same names, arguments and JSON as the local API's."""

    def snapshot(self) -> dict[str, Any]: ...
    def documents(self, **filters: Any) -> list[dict[str, Any]]: ...
    def document_content(self, unique_id: str) -> tuple[bytes, str, str]: ...
    def set_access_mode(self, mode: str, justification: str = "") -> dict[str, Any]: ...
    def deposit_types(self) -> list[dict[str, str]]: ...
    def deposit(self, content: Path, *, mime_type: str, type_code: str, title: str = "",
                masked: bool = False, invisible_to_patient: bool = False,
                replaces: str | None = None) -> dict[str, Any]: ...
    def record_vaccination(self, *, vaccine: object, date: object, lot: object,
                           dose: object = None, route: object = None,
                           site: object = None) -> dict[str, Any]: ...
    def outbox(self) -> dict[str, Any]: ...
    def retry_deposit(self, item_id: int) -> dict[str, Any]: ...
    def validate_identity(self, document: str, parent_document: str | None = None
                          ) -> dict[str, Any]: ...
    def change_document(self, unique_id: str, action: str) -> dict[str, Any]: ...
    def create_dmp(self, *, consent: bool, break_the_glass: bool = True,
                   regulation_centre: bool = True, emergency_sees_masked: bool = True,
                   email: str | None = None) -> dict[str, Any]: ...
    def secrets_sheet(self) -> bytes: ...
    def authorize(self, *, confirmed: bool) -> dict[str, Any]: ...
    def close_dmp(self, *, reason: str, patient_request: bool) -> dict[str, Any]: ...
    def reactivate_dmp(self, *, consent: bool) -> dict[str, Any]: ...
    def designate_medecin_traitant(self, *, confirmed: bool) -> dict[str, Any]: ...
    def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool: ...


class RunningAgent:
    """`dmp-agent run`'s local API at ``base`` with this user's ``token``."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self._http = httpx.Client(base_url=base, timeout=TIMEOUT,
                                  headers={"authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    # -- one call -------------------------------------------------------------------------
    def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            answer = self._http.request(method, path, **options)
        except httpx.TransportError:
            raise AgentError(_("The running agent ({url}) stopped answering: is `dmp-agent "
                               "run` still running?").format(url=self.base),
                             code="agent-gone", status=503) from None
        if answer.status_code >= 400:
            raise _refusal(answer)
        return answer

    def _json(self, method: str, path: str, **options: Any) -> Any:
        return self._call(method, path, **options).json()

    # -- the calls, named as `AgentService`'s ---------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/api/status")
        return result

    def open_session(self, pin: str, situation: int | str = 0) -> dict[str, Any]:
        body: dict[str, Any] = ({"structureId": situation} if isinstance(situation, str)
                                else {"situation": situation})
        body["pin"] = pin
        try:
            result: dict[str, Any] = self._json("POST", "/api/session", json=body)
        finally:
            body.clear()
        return result

    def select_person(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/api/patient/select",
                                            json={"index": index})
        return result

    def choose_identity(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/api/patient/identity/choose",
                                            json={"index": index})
        return result

    def validate_identity(self, document: str, parent_document: str | None = None
                          ) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST", "/api/patient/identity/validate",
            json={"document": document, "parentDocument": parent_document or ""})
        return result

    def documents(self, **filters: Any) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [("typeCode", t) for t in filters.get("type_codes", ())]
        if filters.get("archived"):
            params.append(("archived", "true"))
        result: list[dict[str, Any]] = self._json("GET", "/api/documents", params=params)
        return result

    def document_content(self, unique_id: str) -> tuple[bytes, str, str]:
        answer = self._call("GET", f"/api/documents/{_path(unique_id)}/content")
        mime = answer.headers.get("content-type", "application/octet-stream").split(";")[0]
        return answer.content, mime, ""  # the title: the listing's (the header's is cut)

    def set_access_mode(self, mode: str, justification: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "PUT", "/api/patient/access-mode",
            json={"mode": mode, "justification": justification})
        return result

    def deposit_types(self) -> list[dict[str, str]]:
        result: list[dict[str, str]] = self._json("GET", "/api/deposit-types")
        return result

    def deposit(self, content: Path, *, mime_type: str, type_code: str, title: str = "",
                masked: bool = False, invisible_to_patient: bool = False,
                replaces: str | None = None) -> dict[str, Any]:
        params = {"typeCode": type_code, "title": title}
        if masked:
            params["masked"] = "true"
        if invisible_to_patient:
            params["invisibleToPatient"] = "true"
        path = ("/api/deposits" if replaces is None
                else f"/api/documents/{_path(replaces)}/replace")
        with content.open("rb") as body:  # streamed, never held whole
            result: dict[str, Any] = self._json(
                "POST", path, params=params, content=_chunks(body),
                headers={"content-type": mime_type,
                         "content-length": str(content.stat().st_size)},
                timeout=CDA_TIMEOUT)  # made a PDF/A in a CDA, checked: not a quick call
        return result

    def record_vaccination(self, *, vaccine: object, date: object, lot: object,
                           dose: object = None, route: object = None,
                           site: object = None) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/api/vaccinations", json={
            "vaccine": vaccine, "date": date, "lot": lot, "dose": dose, "route": route,
            "site": site}, timeout=CDA_TIMEOUT)
        return result

    def outbox(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/api/outbox")
        return result

    def retry_deposit(self, item_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"/api/outbox/{item_id}/retry")
        return result

    def change_document(self, unique_id: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST", f"/api/documents/{_path(unique_id)}/{_path(action)}")
        return result

    def create_dmp(self, *, consent: bool, break_the_glass: bool = True,
                   regulation_centre: bool = True, emergency_sees_masked: bool = True,
                   email: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"consent": consent, "breakTheGlass": break_the_glass,
                                "regulationCentre": regulation_centre,
                                "emergencySeesMasked": emergency_sees_masked}
        if email is not None:
            body["email"] = email
        result: dict[str, Any] = self._json("POST", "/api/dmp", json=body)
        return result

    def secrets_sheet(self) -> bytes:
        return self._call("GET", "/api/dmp/sheet").content

    def authorize(self, *, confirmed: bool) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/api/authorizations",
                                            json={"confirmed": confirmed})
        return result

    def close_dmp(self, *, reason: str, patient_request: bool) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST", "/api/dmp/close", json={"reason": reason, "patientRequest": patient_request})
        return result

    def reactivate_dmp(self, *, consent: bool) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/api/dmp/reactivate",
                                            json={"consent": consent})
        return result

    def designate_medecin_traitant(self, *, confirmed: bool) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", "/api/dmp/medecin-traitant",
                                            json={"confirmed": confirmed})
        return result

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """As `AgentService.wait_until`: ``ready()`` asks the running agent again each time
        (a bound on the wait, not a measure)."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)
        return True


def _path(unique_id: str) -> str:
    from urllib.parse import quote

    return quote(unique_id, safe="")


def _chunks(body: Any, size: int = 1 << 16) -> Iterator[bytes]:
    while chunk := body.read(size):
        yield chunk


def _refusal(answer: httpx.Response) -> AgentError:
    """The running agent's refusal as the `AgentError` its core raised (code, message)."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return AgentError(_("The running agent refused (HTTP {status})").format(
            status=answer.status_code), code="failed", status=answer.status_code)
    extra = {k: v for k, v in body.items() if k not in ("code", "message")}
    return AgentError(body["message"], code=str(body.get("code") or "failed"),
                      status=answer.status_code, usage=answer.status_code == 400
                      and body.get("code") in ("bad-type", "bad-situation", "bad-request"),
                      **extra)


def find_running_agent(config: AgentConfig) -> RunningAgent | None:
    """This user's running agent (it accepted this user's token), or None: no agent runs,
    or only another user's answers (then the command works in its own process)."""
    from agent.views.localapi.token import TokenError, running_agent

    try:
        found = running_agent(config)
    except TokenError:
        return None
    if found is None:
        return None
    return RunningAgent(*found)
