"""The registry of structures: the operator registers a regulation centre with
``dmp-host structure add``, and only then may its professionals use centre 15."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.cli import main
from host.structures import StructureError, load_seed
from tests.host.harness import OTHER_GP, InProcessHost

INS = "284057511402396"


@pytest.fixture
def host(db_url: str, tmp_path: Path) -> InProcessHost:
    return InProcessHost(db_url, tmp_path)


def _centre_15(host: InProcessHost) -> int:
    return host.client(OTHER_GP, **{"x-dmp-access-mode": "centre_15"}).get(
        f"/dossiers/{INS}").status_code


def test_registering_a_regulation_centre_opens_centre_15_to_it(
    host: InProcessHost, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _centre_15(host) == 403
    assert main(["structure", "add", OTHER_GP.structure_id, "--kind", "regulation_centre",
                 "--name", "SAMU de test", "--database", db_url]) == 0
    assert _centre_15(host) == 200
    capsys.readouterr()
    assert main(["structure", "list", "--json", "--database", db_url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"id": OTHER_GP.structure_id, "kind": "regulation_centre"} in [
        {"id": e["id"], "kind": e["kind"]} for e in listed]
    # Back to an ordinary care structure: its sessions lose the mode at their next request.
    assert main(["structure", "add", OTHER_GP.structure_id, "--kind", "care",
                 "--name", "Cabinet", "--database", db_url]) == 0
    assert _centre_15(host) == 403


def test_bad_registrations_are_refused(db_url: str) -> None:
    for args in (["12", "--kind", "care"], [OTHER_GP.structure_id, "--kind", "care"]):
        name = ["--name", "x\x1b[2J"] if args[0] != "12" else ["--name", "x"]
        assert main(["structure", "add", *args, *name, "--database", db_url]) == 2


def test_the_seed_file_is_checked(tmp_path: Path) -> None:
    assert {entry["kind"] for entry in load_seed()} == {
        "regulation_centre", "occupational_health", "mutual"}
    bad = tmp_path / "seed.json"
    bad.write_text(json.dumps({"format": "dmp-host-seed-structures", "version": 1,
                               "structures": [{"id": "3750712184", "name": "x",
                                               "kind": "hospital"}]}))
    with pytest.raises(StructureError, match="structures\\[0\\]"):
        load_seed(bad)
