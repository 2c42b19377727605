"""The local API against its own OpenAPI document, property-based (schemathesis): whatever
practice software sends, the agent answers without a 5xx, with a status, content type and
body the document describes. Runs on the live agent with a session open and a patient in
the reader, so that the calls reach the card and the host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agent.views.localapi import app as api_module
from cardreader.virtual.vitale import VirtualVitale
from tests.live import LiveWorld

pytestmark = pytest.mark.pcsc


@schemathesis.serializer("application/pdf")
def _pdf(ctx: Any, value: Any) -> bytes:
    return value if isinstance(value, bytes) else b"%PDF-1.4\n" + str(value).encode()


SPEC = Path(api_module.__file__).parent / "openapi.yaml"
schema = schemathesis.openapi.from_path(SPEC).exclude(path="/api/events")  # endless stream
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def world(live: LiveWorld, pcscd: Any) -> Iterator[LiveWorld]:
    """A GP's session open and a patient with a DMP in the reader, for the whole run."""
    from cardreader.pcsc import list_readers, wait_for_card
    from cardreader.virtual.vpcd import VpcdLink, slot_port

    links = []
    for slot, card in ((0, live.cps("gp")), (1, VirtualVitale.from_profile("single"))):
        reader = list_readers()[slot]
        links.append(VpcdLink(card, slot_port(slot, pcscd.port)).start())
        assert wait_for_card(reader, present=True)
    live.agent.wait_for(lambda s: s["session"]["state"] == "locked")
    with live.agent.client() as api:
        assert api.post("/api/session", json={"pin": "1234"}).status_code == 200
        live.agent.wait_for(lambda s: s["patient"]["state"] == "ready")
        if api.get("/api/status").json()["patient"]["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
    yield live
    for link in links:
        link.stop()


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_5xx_and_every_answer_in_the_document(case: Any, world: LiveWorld) -> None:
    headers = {"authorization": f"Bearer {world.agent.token}"}
    if case.path == "/api/session" and case.method == "POST":
        # A random PIN would burn the card's tries: blocking the card is tested elsewhere.
        case.body = {"pin": "1234"} if isinstance(case.body, dict) else case.body
    if case.path == "/api/session" and case.method == "DELETE":
        return  # locking would leave the rest of the run without a session
    case.call_and_validate(base_url=world.agent.url, headers=headers, checks=CHECKS)
