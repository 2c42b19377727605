"""Ready Vitale cards for tests, benchmarks and the sandbox: name -> `VitaleCard`.

Fictional persons with plausible French names and NIRs whose keys are computed (so they
validate); régime 01 (régime général) with the caisse of the département.
"""

from __future__ import annotations

from ..vitale import (
    QUALITY_CHILD,
    QUALITY_INSURED,
    QUALITY_SPOUSE,
    Beneficiary,
    BirthDate,
    VitaleCard,
    VitaleCategory,
    nir_key,
)


def _person(
    last_name: str,
    first_name: str,
    birth: str,
    nir: str | None,
    *,
    birth_name: str | None = None,
    quality: int = QUALITY_INSURED,
    rank: int = 1,
    nationality: str | None = None,
) -> Beneficiary:
    return Beneficiary(
        last_name=last_name,
        birth_name=birth_name or last_name,
        first_name=first_name,
        birth_date=BirthDate.parse(birth),
        birth_rank=rank,
        quality=quality,
        nir=nir,
        nir_key=None if nir is None else nir_key(nir),
        nationality=nationality,
    )


def _card(
    holder_nir: str,
    caisse: str,
    centre: str,
    category: VitaleCategory,
    serial: str,
    *beneficiaries: Beneficiary,
) -> VitaleCard:
    return VitaleCard(
        nir=holder_nir,
        nir_key=nir_key(holder_nir),
        regime="01",
        caisse=caisse,
        centre=centre,
        category=category,
        beneficiaries=beneficiaries,
        serial_number=serial,
    )


_SINGLE_NIR = "2840575114023"  # woman, born May 1984 in Paris 14e
_FAMILY_NIR = "1791169123045"  # man, born November 1979 in Lyon
_SPOUSE_NIR = "2810359350012"  # woman, born March 1981 in Lille
_TEST_NIR = "1670175056187"
_DEMO_NIR = "2920375117034"
_CORSICA_NIR = "286032A004011"  # woman, born March 1986 in Ajaccio (2A)
_HOMONYM_NIR = "1720833063123"  # man, born August 1972 in Bordeaux: two INS answer his card
_CORRECTED_NIR = "2900644109077"  # woman, born June 1990 in Nantes: the registry corrects her

PROFILES: dict[str, VitaleCard] = {
    "single": _card(
        _SINGLE_NIR, "751", "0521", VitaleCategory.PRODUCTION, "20240000101",
        _person("MARTIN", "CLAIRE", "19840517", _SINGLE_NIR),
    ),
    "family": _card(
        _FAMILY_NIR, "691", "0641", VitaleCategory.PRODUCTION, "20240000202",
        _person("DURAND", "THOMAS", "19791102", _FAMILY_NIR, nationality="FRA"),
        _person(
            "DURAND", "SOPHIE", "19810322", _SPOUSE_NIR,
            birth_name="LEFEBVRE", quality=QUALITY_SPOUSE,
        ),
        # A child covered under the father's NIR, with a lunar birth date (month and day 00).
        _person("DURAND", "LÉA", "20150000", None, quality=QUALITY_CHILD),
    ),
    "test": _card(
        _TEST_NIR, "349", "0349", VitaleCategory.TEST, "99990000303",
        _person("DUPONT", "JEAN", "19670115", _TEST_NIR),
    ),
    "demo": _card(
        _DEMO_NIR, "751", "0521", VitaleCategory.DEMO, "88880000404",
        _person("BERNARD", "LUCIE", "19920308", _DEMO_NIR),
    ),
    "corsica": _card(
        _CORSICA_NIR, "201", "0201", VitaleCategory.PRODUCTION, "20240000505",
        _person("ROSSI", "MARIE-ANGE", "19860311", _CORSICA_NIR),
    ),
    # The INS service answers two identities for this card (host/seed_identities.json): the
    # agent must let the user choose, never pick one.
    "homonym": _card(
        _HOMONYM_NIR, "331", "0331", VitaleCategory.PRODUCTION, "20240000606",
        _person("GIRARD", "PAUL", "19720800", _HOMONYM_NIR),
    ),
    # A person whose traits the INS service changes in tests (dmp-host ins correct).
    "corrected": _card(
        _CORRECTED_NIR, "441", "0441", VitaleCategory.PRODUCTION, "20240000707",
        _person("GARNIER", "ANNE", "19900621", _CORRECTED_NIR),
    ),
}
