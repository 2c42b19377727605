"""A live world for the local API tests: pcscd with vpcd, the reference host in its own
process (TLS), and `dmp-agent run` for one user, enrolled from the host's test PKI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.live import LiveWorld, live_world
from tests.localapi.sessions import qualified_session


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[LiveWorld]:
    with live_world(tmp_path_factory.mktemp("live")) as world:
        yield world


@pytest.fixture
def gp_api(live: LiveWorld, insert_card: Any) -> Iterator[httpx.Client]:
    """The GP's session on the single card's patient, her DMP open, her identity qualifiée
    (the CDA deposit and viewing tests)."""
    with qualified_session(live, insert_card, "gp") as client:
        yield client
