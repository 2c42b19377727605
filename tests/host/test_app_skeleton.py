"""The host application's common behaviour: sessions required, errors as OperationOutcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.harness import GP, InProcessHost


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def test_openapi_document_is_served(host: InProcessHost) -> None:
    response = host.client().get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "DMP reference host"


def test_unknown_route_is_404(host: InProcessHost) -> None:
    assert host.client(GP).get("/nowhere").status_code == 404
