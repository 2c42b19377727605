"""dmp-cisis-data (wire/cda/cisis_data.py, also scripts/cisis-data) takes only the CI-SIS
files the checks need out of the repository's archive (GitHub's, with its top folder, or
git archive's, without), and never writes outside its target; the JDV_J07 value set it
writes reads back to the same codes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import ModuleType

from wire.cda.valuesets import codes, svs_to_art_decor

ROOT = Path(__file__).resolve().parents[2]


def script() -> ModuleType:
    from wire.cda import cisis_data

    return cisis_data


def archive(prefix: str, names: list[str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in names:
            data = f"<!-- {name} -->".encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


NAMES = ["schematrons/moteur/iso_dsdl_include.xsl", "schematrons/abstract/IVL_TS.sch",
         "FeuilleDeStyle/FOP/fop.jar", "schematrons/moteur/saxon9he.jar",
         "schematrons/abstract/../../../escape.sch"]


def test_only_the_needed_files_are_taken_from_a_github_archive(tmp_path: Path) -> None:
    cisis = script()
    cisis.extract_tar(archive(f"TestContenuCDA-3-0-{cisis.COMMIT}/", NAMES), tmp_path)
    taken = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert taken == ["schematrons/abstract/IVL_TS.sch", "schematrons/moteur/iso_dsdl_include.xsl"]
    assert not (tmp_path.parent / "escape.sch").exists()


def test_a_git_archive_has_no_top_folder_to_drop(tmp_path: Path) -> None:
    script().extract_tar(archive("", NAMES[:2]), tmp_path)
    assert (tmp_path / "schematrons/abstract/IVL_TS.sch").is_file()


def test_the_j07_value_set_keeps_its_codes_in_the_schematrons_shape() -> None:
    svs = b"""<RetrieveValueSetResponse xmlns="urn:ihe:iti:svs:2008"><ValueSet
      id="1.2.250.1.213.1.1.5.471" displayName="JDV_J07_XdsTypeCode_CISIS.tabs"><ConceptList>
      <Concept code="11488-4" codeSystem="2.16.840.1.113883.6.1" displayName="CR consultation"/>
      <Concept code="SYNTH" codeSystem="1.2.250.1.213.1.1.4.12" displayName="Synthese"/>
      </ConceptList></ValueSet></RetrieveValueSetResponse>"""
    made = svs_to_art_decor(svs)
    from lxml import etree

    root = etree.fromstring(made)
    # The schematron reads doc(...)/*/valueSet/conceptList/concept/@code: no namespace there.
    assert root.xpath("/*/valueSet/conceptList/concept/@code") == ["11488-4", "SYNTH"]
    assert [c for c, _, _ in codes(svs)] == ["11488-4", "SYNTH"]


def test_an_installation_made_before_a_volet_was_added_is_made_again(tmp_path: Path) -> None:
    cisis = script()
    assert not cisis.up_to_date(tmp_path)  # nothing installed
    (tmp_path / ".commit").write_text(cisis.COMMIT + "\n")  # the stamp of older versions
    assert not cisis.up_to_date(tmp_path)
    (tmp_path / ".commit").write_text(cisis.stamp_text())
    assert cisis.up_to_date(tmp_path)
    for name in ("CI-SIS_BIO-TROD_2024.01.sch", "CI-SIS_OPH-BRE_2022.02.sch"):
        assert f"schematrons/{name}" in cisis.stamp_text()
