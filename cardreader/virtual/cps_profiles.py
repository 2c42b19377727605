"""Ready-made virtual CPS cards: one per profession the scenarios need.

Every card is a TEST card (category "CPS", test flag set), PIN 1234, PUK 12345678. idNat_PS
is "8" + an 11-digit RPPS number whose last digit is a Luhn key, as real RPPS numbers have;
structures are "3" + FINESS (9 digits) or "5" + SIRET (14 digits). Names, numbers and
structures are invented. Validity: from a year ago to three years ahead (computed at import).

    VirtualCps.from_profile("gp", ca=ca, state_dir=tmp_path / "gp-card")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..cps import CpsIdentity
from ..cps_data import PracticeSituation

PIN = "1234"
PUK = "12345678"

# Practice modes (ours, after table R23): L libéral, S salarié.
LIBERAL, SALARIED = "L", "S"
# Each situation's activity sector is a TRE_R02 code. No code names an optician's shop: the
# virtual optician uses SA42 "Appareillage médical" (ours; a real card carries the RPPS's).


@dataclass(frozen=True)
class CpsProfile:
    identity: CpsIdentity
    situations: tuple[PracticeSituation, ...]
    pin: str = PIN
    puk: str = PUK


def _validity() -> tuple[datetime, datetime]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=365), today + timedelta(days=3 * 365)


def _identity(
    rpps: str, last: str, first: str, profession: str, specialty: str | None, serial: str
) -> CpsIdentity:
    not_before, not_after = _validity()
    return CpsIdentity(
        id_nat_ps="8" + rpps, last_name=last, first_name=first, profession_code=profession,
        specialty_code=specialty, category_code="CPS", is_test_card=True,
        not_before=not_before, not_after=not_after, serial_number=serial,
    )


PROFILES: dict[str, CpsProfile] = {
    "gp": CpsProfile(
        _identity("10001234565", "MARTIN", "Claire", "10", "SM54", "0000100001"),
        (
            PracticeSituation(
                "5" + "81234567800015", "Cabinet médical du Parc", LIBERAL, "titulaire",
                "SA07",
            ),
            PracticeSituation(
                "3" + "750100042", "Centre de santé municipal Belleville", SALARIED,
                "médecin vacataire", "SA05",
            ),
        ),
    ),
    "pharmacist": CpsProfile(
        _identity("10002345675", "BERNARD", "Louis", "21", None, "0000100002"),
        (
            PracticeSituation(
                "3" + "690001234", "Pharmacie de la Croix-Rousse", LIBERAL, "titulaire d'officine",
                "SA33",
            ),
        ),
    ),
    "optician": CpsProfile(
        _identity("10003456786", "PETIT", "Sophie", "28", None, "0000100003"),
        (
            PracticeSituation(
                "5" + "82345678900021", "Optique du Vieux-Port", LIBERAL, "opticien-lunetier",
                "SA42",
            ),
        ),
    ),
    "orthoptist": CpsProfile(
        _identity("10004567896", "ROUX", "Julien", "92", None, "0000100004"),
        (
            PracticeSituation(
                "5" + "83456789000037", "Cabinet d'orthoptie Garonne", LIBERAL, "titulaire",
                "SA07",
            ),
        ),
    ),
    "nurse": CpsProfile(
        _identity("10005678908", "LEFEBVRE", "Amina", "60", None, "0000100005"),
        (
            PracticeSituation(
                "5" + "84567890100043", "Cabinet infirmier des Lilas", LIBERAL, "titulaire",
                "SA07",
            ),
        ),
    ),
    # Three cards whose structure kind matters to the host (host/seed_structures.json): a
    # doctor of a regulation centre (centre 15), an occupational physician (TRE_R38 SM25,
    # no DMP access by law) and a doctor working for a mutual (no access either).
    "regulation": CpsProfile(
        _identity("10006789019", "GARNIER", "Hugo", "10", "SM54", "0000100006"),
        (
            PracticeSituation(
                "3" + "750712184", "SAMU de Paris - Centre 15 (test)", SALARIED,
                "médecin régulateur", "SA01",
            ),
        ),
    ),
    "occupational": CpsProfile(
        _identity("10007890121", "FAURE", "Inès", "10", "SM25", "0000100007"),
        (
            PracticeSituation(
                "5" + "85678901200051", "Service de prévention et de santé au travail (test)",
                SALARIED, "médecin du travail", "SA13",
            ),
        ),
    ),
    "insurer": CpsProfile(
        _identity("10008901232", "BLANC", "Marc", "10", "SM54", "0000100008"),
        (
            PracticeSituation(
                "5" + "86789012300067", "Mutuelle des Tilleuls (test)", SALARIED,
                "médecin conseil", "SA23",
            ),
        ),
    ),
}

CPS_PROFILES = PROFILES  # the name the CLI and the sandbox use
