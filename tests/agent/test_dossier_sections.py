"""The dossier's sections read from the CI-SIS examples (agent.core.dossier_sections): each
item from the entry the CDA carries, linked to its document; a section without a source
document says so; the latest VSM wins; lab results form a series with a plot; a rapid
test's coded result joins them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lxml import etree

from agent.core import dossier_sections as ds
from tests.cda_support import CR_BIO, TROD, VAC_NOTE, VSM
from wire.cda import safe_xml

DAY = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def parsed(path: Path | bytes, fmt: str, unique_id: str, days: int = 0) -> ds.Parsed:
    data = path if isinstance(path, bytes) else path.read_bytes()
    return ds.Parsed(ds.Source(unique_id, unique_id, DAY + dt.timedelta(days=days), fmt),
                     safe_xml.parse(data))


def by_key(documents: list[ds.Parsed]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {s["key"]: s for s in (section.as_json() for section in ds.sections(documents))}


def labels(section: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["label"] for item in section["items"]]


def test_without_structured_documents_every_section_says_it_has_no_source() -> None:
    sections = by_key([])
    assert list(sections) == list(ds.SECTION_KEYS)
    assert {s["status"] for s in sections.values()} == {"no-source"}


def test_the_vsm_gives_allergies_history_pathologies_treatments_and_contact() -> None:
    sections = by_key([parsed(VSM, ds.VSM_FORMAT, "vsm")])
    assert labels(sections["allergies"]) == ["Paracétamol"]
    assert sections["allergies"]["items"][0]["detail"] == "allergie médicamenteuse"
    assert sections["allergies"]["items"][0]["date"] == "2018-06-03"
    assert labels(sections["pathologies"]) == ["Accident ischémique cérébral transitoire",
                                               "Angine de poitrine instable"]
    history = labels(sections["history"])
    assert "Pyélonéphrite aiguë" in history and "Anémie drépanocytaire" in history
    treatments = labels(sections["treatments"])
    assert treatments == ["PLAVIX 75 mg, comprimé pelliculé", "COUMADINE 5mg, comprimé sécable"]
    assert "Voie orale" in sections["treatments"]["items"][0]["detail"]
    contact = sections["emergencyContacts"]["items"]
    assert [(c["label"], c["detail"]) for c in contact] == [("Sophie NESSI", "Soeur, 0647150100")]
    # Each item names its document; the VSM records no blood group: said, not left empty.
    assert {i["source"]["uniqueId"] for i in sections["allergies"]["items"]} == {"vsm"}
    assert sections["bloodGroup"]["status"] == "empty"
    assert sections["vaccinations"]["status"] == "no-source"
    assert sections["labResults"]["status"] == "no-source"


def test_the_latest_vsm_gives_the_current_treatments() -> None:
    newer = VSM.read_bytes().replace("PLAVIX 75 mg, comprimé pelliculé".encode(),
                                     b"KARDEGIC 75 mg")
    sections = by_key([parsed(VSM, ds.VSM_FORMAT, "old", 0),
                       parsed(newer, ds.VSM_FORMAT, "new", 30)])
    treatments = sections["treatments"]
    assert treatments["items"][0]["label"] == "KARDEGIC 75 mg"
    assert {i["source"]["uniqueId"] for i in treatments["items"]} == {"new"}
    assert [s["uniqueId"] for s in treatments["sources"]] == ["new"]


def test_vaccinations_come_from_every_vaccination_note() -> None:
    sections = by_key([parsed(VAC_NOTE, ds.VAC_NOTE_FORMAT, "vac")])
    vaccinations = sections["vaccinations"]["items"]
    assert vaccinations[0]["label"].startswith("VACCIN TETANIQUE PASTEUR")
    assert vaccinations[0]["date"] == "2009-09-28"
    assert "lot 4456672" in vaccinations[0]["detail"]
    assert sections["allergies"]["status"] == "no-source"


def test_lab_results_over_time_with_a_plot_per_analysis() -> None:
    later = CR_BIO.read_bytes().replace(b'value="1.950"', b'value="5.100"').replace(
        b"20140402145521+0200", b"20150402145521+0200")
    sections = by_key([parsed(CR_BIO, ds.CR_BIO_FORMAT, "bio-1", 0),
                       parsed(later, ds.CR_BIO_FORMAT, "bio-2", 365)])
    labs = sections["labResults"]
    assert labs["status"] == "ok"
    tsh = next(a for a in labs["analyses"] if a["code"] == "3016-3")
    assert [(r["date"], r["value"], r["source"]["uniqueId"]) for r in tsh["results"]] == [
        ("2014-04-02", "1.950", "bio-1"), ("2015-04-02", "5.100", "bio-2")]
    assert tsh["unit"] == "m[IU]/L"
    assert (tsh["results"][0]["low"], tsh["results"][0]["high"]) == (0.27, 4.2)
    svg = etree.fromstring(tsh["svg"].encode())
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(svg.findall("{http://www.w3.org/2000/svg}circle")) == 2
    assert svg.find("{http://www.w3.org/2000/svg}polyline") is not None
    # Nothing that runs or loads: only shapes and a title.
    assert {e.tag.split("}")[1] for e in svg.iter()} <= {"svg", "title", "rect", "polyline",
                                                         "circle"}
    assert not [a for e in svg.iter() for a in e.attrib if a.startswith("on")]


def test_a_rapid_test_at_the_counter_joins_the_lab_results_with_its_coded_result() -> None:
    sections = by_key([parsed(CR_BIO, ds.CR_BIO_FORMAT, "bio-1", 0),
                       parsed(TROD, ds.TROD_FORMAT, "trod-1", 1)])
    labs = sections["labResults"]
    assert [s["uniqueId"] for s in labs["sources"]] == ["trod-1", "bio-1"]
    strep = next(a for a in labs["analyses"] if a["code"] == "78012-2")
    assert strep["label"].startswith("Streptococcus pyogenes Ag")
    assert [(r["date"], r["value"], r["source"]["uniqueId"]) for r in strep["results"]] == [
        ("2024-01-06", "négatif", "trod-1")]  # the words its narrative gives the result
    assert strep["svg"] == ""  # nothing to plot
    # The CR-BIO's analyses are what they were alone (its coded values are no results).
    alone = by_key([parsed(CR_BIO, ds.CR_BIO_FORMAT, "bio-1", 0)])["labResults"]["analyses"]
    assert [a for a in labs["analyses"] if a["code"] != "78012-2"] == alone


def test_a_label_with_markup_in_the_plot_title_is_escaped() -> None:
    point = ds.LabPoint("2020-01-01", "1", "g/L", 1.0, None, None, "", ds.Source(
        "u", "t", DAY, ds.CR_BIO_FORMAT))
    svg = ds.plot_svg([point], "<script>alert(1)</script>")
    assert "<script>" not in svg
    etree.fromstring(svg.encode())  # well formed


def test_the_blood_group_is_read_where_a_document_records_it() -> None:
    observation = (b'<entry><observation classCode="OBS" moodCode="EVN"><code code="882-1" '
                   b'codeSystem="2.16.840.1.113883.6.1" displayName="Groupe ABO et Rh"/>'
                   b'<effectiveTime value="20200101"/><value xmlns:xsi="http://www.w3.org/2001/'
                   b'XMLSchema-instance" xsi:type="CE" code="A+" displayName="A Rh+"/>'
                   b"</observation></entry>")
    data = CR_BIO.read_bytes()
    data = data.replace(b"</section>", observation + b"</section>", 1)
    sections = by_key([parsed(data, ds.CR_BIO_FORMAT, "bio")])
    assert [(i["label"], i["date"]) for i in sections["bloodGroup"]["items"]] == [
        ("A Rh+", "2020-01-01")]
