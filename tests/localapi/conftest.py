"""A live world for the local API tests: pcscd with vpcd, the reference host in its own
process (TLS), and `dmp-agent run` for one user, enrolled from the host's test PKI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live import LiveWorld, live_world


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pcscd: object) -> Iterator[LiveWorld]:
    with live_world(tmp_path_factory.mktemp("live")) as world:
        yield world
