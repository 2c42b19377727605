"""The generated stylesheets of the CI-SIS schematrons are kept (wire/cda/schematron.py): made
once, found again by a later process under the key of the very files they come from, written
whole or not at all; a copy cut short, altered or made by another pipeline is made again.
Needs the CI-SIS files (the pipeline runs on the vaccination note's schematron, the smallest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cda_support import needs_cisis
from wire.cda import schematron

pytestmark = needs_cisis
VAC_NOTE = "schematrons/CI-SIS_VAC-NOTE_2023.01.sch"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(schematron.CACHE_VARIABLE, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def sch(tmp_path: Path) -> Path:
    """The schematron copied with its folder's includes, so that what is installed beside the
    original is not used (a fresh machine's user)."""
    import shutil

    source = schematron.data_dir() / VAC_NOTE
    shutil.copytree(source.parent, tmp_path / "schematrons", ignore=shutil.ignore_patterns(
        "*.xsl", "profils"))
    return tmp_path / "schematrons" / source.name


def generations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    made: list[Path] = []
    real = schematron._generate

    def counted(sch: Path, skeleton_dir: Path | None = None) -> str:
        made.append(sch)
        return real(sch, skeleton_dir)

    monkeypatch.setattr(schematron, "_generate", counted)
    return made


def test_a_stylesheet_is_generated_once_and_found_again_by_its_key(
        cache: Path, sch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = generations(monkeypatch)
    first = schematron.generated_stylesheet(sch)
    assert "<xsl:stylesheet" in first[:2000] and len(made) == 1
    kept = cache / f"{schematron.cache_key(sch)}.xsl"
    assert kept.is_file() and not list(cache.glob(".*.tmp"))  # renamed whole into place
    assert schematron.generated_stylesheet(sch) == first and len(made) == 1


@pytest.mark.parametrize("damage", ["cut", "altered", "other-pipeline"])
def test_a_damaged_or_stale_copy_is_made_again(
        cache: Path, sch: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    first = schematron.generated_stylesheet(sch)
    kept = cache / f"{schematron.cache_key(sch)}.xsl"
    data = kept.read_bytes()
    if damage == "cut":
        kept.write_bytes(data[: len(data) // 2])
    elif damage == "altered":
        kept.write_bytes(data.replace(b"failed-assert", b"failed-assurt", 1))
    else:
        monkeypatch.setattr(schematron, "PIPELINE_VERSION", "another")
    made = generations(monkeypatch)
    assert schematron.generated_stylesheet(sch) == first
    assert len(made) == 1
    assert schematron._unsealed(cache / f"{schematron.cache_key(sch)}.xsl",
                                schematron.cache_key(sch)) == first


def test_a_changed_schematron_has_another_key(sch: Path) -> None:
    before = schematron.cache_key(sch)
    sch.write_bytes(sch.read_bytes() + b"\n<!-- changed -->\n")
    assert schematron.cache_key(sch) != before


def test_the_stylesheet_installed_beside_its_schematron_is_used_when_sealed(
        cache: Path, sch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = schematron.compile_schematron(sch)  # what dmp-cisis-data does
    assert installed == sch.with_name(sch.name + ".xsl")
    made = generations(monkeypatch)
    assert "<xsl:stylesheet" in schematron.generated_stylesheet(sch)[:2000]
    assert made == [] and not cache.exists()
