"""The vaccination note the agent writes (agent.core.vaccination): its header is the
session's (the level 1 header builder), it reads back as a VAC-NOTE of the session's patient,
it passes the CDA schema and the volet's schematrons (when the CI-SIS files are here), the
dossier's vaccinations section shows it; every bad field is refused with its own code."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from agent.core import dossier_sections as ds
from agent.core.vaccination import VACCINES, build_note, checked_vaccination
from agent.errors import AgentError
from tests.cda_support import EXAMPLE_INS, level1_header, needs_cisis
from wire import cda
from wire.cda import safe_xml
from wire.cda.header import Code

TODAY = dt.date(2026, 12, 7)
FLU = "61402736"


def note_header() -> Any:
    author = dataclasses.replace(level1_header().author, profession="21", specialty=None,
                                 profession_label="Pharmacien")
    return level1_header(author=author, title="Note de vaccination",
                         type_code=Code("87273-9", "2.16.840.1.113883.6.1",
                                        "Note de vaccination"))


def entered(**changes: object) -> dict[str, Any]:
    fields: dict[str, Any] = dict(vaccine=FLU, date="2026-12-01", lot="K123AB", dose=1,
                                     route="20035000", site="16217661000119109",
                                     birth_date="19790328", today=TODAY)
    fields.update(changes)
    return fields


def test_the_note_reads_back_as_a_vaccination_note_of_the_sessions_patient() -> None:
    header = note_header()
    document = cda.read(build_note(header, checked_vaccination(**entered())))
    assert document.volet.name == "VAC-NOTE"
    metadata = cda.deposit_metadata(document.header)
    assert (metadata.type_code, metadata.format_code) == ("87273-9",
                                                          "urn:asip:ci-sis:vac-note:2021")
    assert metadata.patient.ins == EXAMPLE_INS
    assert (metadata.author.id_nat_ps, metadata.author.profession) == ("810001234565", "21")
    assert metadata.unique_id == f"urn:oid:{header.document_id}"


def test_the_dossiers_vaccinations_section_shows_the_vaccine_its_day_and_lot() -> None:
    data = build_note(note_header(), checked_vaccination(**entered()))
    source = ds.Source("urn:oid:1", "Note de vaccination", dt.datetime(2026, 12, 1,
                                                                       tzinfo=dt.UTC),
                       ds.VAC_NOTE_FORMAT)
    sections = {s.key: s.as_json() for s in ds.sections([ds.Parsed(source,
                                                                     safe_xml.parse(data))])}
    [item] = sections["vaccinations"]["items"]
    assert item["label"].startswith("VAXIGRIPTETRA")
    assert item["date"] == "2026-12-01" and "lot K123AB" in item["detail"]


@needs_cisis
@pytest.mark.parametrize("vaccine", sorted(VACCINES))
def test_every_offered_vaccine_passes_the_schema_and_the_volets_schematrons(
        vaccine: str) -> None:
    full = build_note(note_header(), checked_vaccination(**entered(vaccine=vaccine)))
    assert cda.validate(cda.read(full)) == ()
    bare = build_note(note_header(), checked_vaccination(
        **entered(vaccine=vaccine, dose=None, route=None, site="")))
    assert cda.validate(cda.read(bare)) == ()


def test_markup_in_the_vaccinators_name_stays_text() -> None:
    header = note_header()
    author = dataclasses.replace(header.author, last_name="<b>O'Brien & fils</b>")
    data = build_note(dataclasses.replace(header, author=author),
                      checked_vaccination(**entered()))
    assert b"<b>" not in data and b"&lt;b&gt;O'Brien &amp; fils" in data
    cda.read(data)


@pytest.mark.parametrize(("changes", "code"), [
    ({"vaccine": "99999999"}, "vaccination-unknown-vaccine"),
    ({"vaccine": 61402736}, "vaccination-unknown-vaccine"),
    ({"date": "2026-13-01"}, "vaccination-bad-date"),
    ({"date": "01/12/2026"}, "vaccination-bad-date"),
    ({"date": "2026-12-01T10:00"}, "vaccination-bad-date"),
    ({"date": None}, "vaccination-bad-date"),
    ({"date": "2026-12-08"}, "vaccination-future-date"),
    ({"date": "1979-03-27"}, "vaccination-before-birth"),
    ({"lot": ""}, "vaccination-bad-lot"),
    ({"lot": "AB\x00123"}, "vaccination-bad-lot"),
    ({"lot": "AB\n123"}, "vaccination-bad-lot"),
    ({"lot": "<script>"}, "vaccination-bad-lot"),
    ({"lot": "A" * 100_000}, "vaccination-bad-lot"),
    ({"lot": 123}, "vaccination-bad-lot"),
    ({"dose": 0}, "vaccination-bad-dose"),
    ({"dose": 11}, "vaccination-bad-dose"),
    ({"dose": "2"}, "vaccination-bad-dose"),
    ({"dose": True}, "vaccination-bad-dose"),
    ({"route": "IM"}, "vaccination-unknown-route"),
    ({"site": "bras"}, "vaccination-unknown-site"),
])
def test_a_bad_field_is_refused_with_its_own_code(changes: dict[str, object],
                                                   code: str) -> None:
    with pytest.raises(AgentError) as caught:
        checked_vaccination(**entered(**changes))
    assert caught.value.code == code and caught.value.http_status == 400


def test_today_and_a_lot_with_separators_are_accepted() -> None:
    vaccination = checked_vaccination(**entered(date=TODAY.isoformat(), lot=" AB-12/3.4 "))
    assert (vaccination.date, vaccination.lot) == (TODAY, "AB-12/3.4")
