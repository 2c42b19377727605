"""A professional's session through the live agent on a patient ready for deposits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from tests.live import LiveWorld, qualify
from tests.localapi.test_workflows import _open, _patient


@contextlib.contextmanager
def qualified_session(live: LiveWorld, insert_card: Any, profile: str) -> Iterator[httpx.Client]:
    """``profile``'s session on the single card's patient, her DMP open, her identity
    qualifiée (what a CDA deposit or a vaccination note needs)."""
    with _open(live, insert_card, profile) as client:
        patient = _patient(live, insert_card, "single")
        if patient["dmp"]["status"] == "absent":
            assert client.post("/api/dmp", json={"consent": True}).status_code == 201
        qualify(client)
        yield client
