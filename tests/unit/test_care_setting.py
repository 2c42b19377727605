"""A deposit's facility type (TRE_R02) and practice setting (TRE_A01) follow the practice
situation's activity sector (issue 12): no constant, no guess."""

from __future__ import annotations

import pytest

from agent.client.provide import CareSetting
from cardreader.virtual.cps_profiles import PROFILES
from wire import codes


@pytest.mark.parametrize(("sector", "expected"), [
    ("SA07", ("SA07", "AMBULATOIRE")),  # a GP's own practice
    ("SA33", ("SA33", "AMBULATOIRE")),  # a pharmacy (officine)
    ("SA05", ("SA05", "AMBULATOIRE")),  # a centre de santé
    ("SA42", ("SA42", "AMBULATOIRE")),  # the virtual optician's shop
    ("SA01", ("SA01", "ETABLISSEMENT")),  # a public hospital: not "cabinet individuel"
    ("SA50", ("SA50", "SAMU_SMUR")),
    ("SA24", ("SA24", "AMO")),
    (None, ("SA43", "AMBULATOIRE")),  # a card without a sector: "Secteur non défini"
    ("SA11", ("SA43", "AMBULATOIRE")),  # ended in 2020: not carried on
])
def test_the_setting_follows_the_sector(sector: str | None, expected: tuple[str, str]) -> None:
    setting = CareSetting.of_sector(sector)
    assert (setting.facility_type, setting.practice_setting) == expected
    assert setting.facility_type in codes.FACILITY_TYPES
    assert setting.practice_setting in codes.PRACTICE_SETTINGS


def test_every_virtual_card_situation_has_a_published_sector() -> None:
    for name, profile in PROFILES.items():
        for situation in profile.situations:
            assert situation.sector in codes.FACILITY_TYPES, (name, situation)
    pharmacy = PROFILES["pharmacist"].situations[0]
    assert CareSetting.of_sector(pharmacy.sector).facility_type == "SA33"
