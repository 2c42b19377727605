"""The provider's directory and the virtual CPS cards name the same professionals: a
professional with a card can use the e-CPS too (host/psc/professionals.json is the host
side's copy, since the host may not import cardreader)."""

from __future__ import annotations

from cardreader.virtual.cps_profiles import PROFILES
from host.psc.directory import load_directory


def test_every_virtual_cps_profile_is_in_the_psc_directory_with_the_same_data() -> None:
    directory = load_directory()
    assert len(directory) == len(PROFILES)
    for profile in PROFILES.values():
        identity = profile.identity
        professional = directory[identity.id_nat_ps]
        assert (professional.last_name, professional.first_name, professional.profession,
                professional.specialty) == (identity.last_name, identity.first_name,
                                            identity.profession_code, identity.specialty_code)
        assert [(s.structure_id, s.name, s.mode, s.role) for s in professional.situations] == [
            (s.structure_id, s.structure_name, s.mode, s.role) for s in profile.situations]
