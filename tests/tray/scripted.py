"""Snapshots shaped as docs/agent-local-api.md describes them, and a scriptable state
source for the tray tests whose boundary is the tray and X11, not the service."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

GP = {"idNatPs": "810001234565", "firstName": "Claire", "lastName": "MARTIN",
      "profession": "10", "specialty": "SM54"}
PHARMACIST = {"idNatPs": "810002345678", "firstName": "Paul", "lastName": "LEROY",
              "profession": "21", "specialty": None}

# The patient's identity: nothing of it may reach a tooltip or a notification.
PATIENT_INS = "285017512345678"
PATIENT = {"ins": PATIENT_INS, "insOid": "1.2.250.1.213.1.4.8", "firstName": "Léa",
           "birthName": "DURAND", "birthDate": "1985-01-17"}
BENEFICIARIES = [
    {"index": 1, "firstName": "Léa", "lastName": "DURAND", "birthDate": "1985-01-17",
     "quality": "assuré"},
    {"index": 2, "firstName": "Hugo", "lastName": "DURAND", "birthDate": "2015-06-02",
     "quality": "enfant"},
]
PATIENT_WORDS = ["Léa", "DURAND", "Hugo", PATIENT_INS, PATIENT_INS[:13], "1985-01-17"]


def snapshot(session: str = "none", patient: str = "none", *, pending: int = 0,
             failed: int = 0, sending: bool = False, problem: str = "",
             professional: dict[str, Any] | None = None, cards: str = "up",
             slots: list[dict[str, Any]] | None = None, access_mode: str | None = None,
             session_error: str = "") -> dict[str, Any]:
    """One ``AgentService.snapshot()``; a patient is filled in for every patient state."""
    who = professional if professional is not None else GP
    with_patient = patient != "none"
    return copy.deepcopy({
        "cards": {"service": cards, "slots": slots if slots is not None else [
            {"reader": "Virtual PCD 00 00", "status": "valid" if session != "none" else "none",
             "kind": "cps" if session != "none" else None, "label": "", "message": "",
             "pinTriesLeft": 3, "cps": None, "vitale": None}]},
        "session": {"state": session, "reader": "Virtual PCD 00 00" if session != "none" else None,
                    "professional": who if session == "open" else None,
                    "situation": {"structureId": "10B0012345", "name": "Cabinet du Parc"}
                    if session == "open" else None,
                    "notAfter": None, "pinTriesLeft": 3, "error": session_error},
        "patient": {"state": patient, "reader": "Virtual PCD 00 01" if with_patient else None,
                    "beneficiaries": BENEFICIARIES if with_patient else [],
                    "patient": PATIENT if patient == "ready" else None,
                    "dmp": {"status": "open", "authorization": "granted"}
                    if patient == "ready" else None,
                    "documents": [],
                    "accessMode": {"code": access_mode, "justification": "urgence vitale"}
                    if access_mode else None,
                    "error": ""},
        "outbox": {"pending": pending, "failed": failed, "done": 3,
                   "sending": {"id": "d1", "title": "Compte rendu"} if sending else None,
                   "items": []},
        "problem": problem,
    })


class ScriptedSource:
    """Implements agent.views.tray.StateSource over a snapshot the test sets."""

    PAGE = "http://127.0.0.1:7583/?token=not-a-secret"

    def __init__(self, initial: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self._snapshot = initial
        self._callbacks: list[Callable[[str, dict[str, Any]], None]] = []
        self.locks = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._snapshot)

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks.remove(callback)
        return unsubscribe

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._callbacks)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(kind, data)

    def set(self, new: dict[str, Any], kind: str = "session") -> None:
        """Replaces the state and emits ``kind`` with its part, as the service does."""
        with self._lock:
            self._snapshot = new
        self.emit(kind, copy.deepcopy(new.get(kind, {})))

    def notice(self, title: str, text: str, level: str = "info") -> None:
        self.emit("notice", {"level": level, "title": title, "text": text})

    def lock_session(self) -> None:
        self.locks += 1
        self.set(snapshot("locked"))

    def page_url(self, fragment: str = "") -> str:
        return self.PAGE + (f"#{fragment}" if fragment else "")
