"""Turning slot reports into the lines and JSON that `dmp-agent cards` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the card parsers load on the card thread, not at start
    from cardreader.inspect import SlotReport
    from cardreader.vitale import Beneficiary

STATUS_FR = {
    "valid": "valide",
    "none": "vide",
    "unknown": "inconnue",
    "changed": "changée",
    "blocked": "bloquée",
    "expired": "expirée",
    "reader-error": "erreur lecteur",
}


def describe(report: SlotReport) -> list[str]:
    """Human lines for one slot: the reader, the card and its status, then the identity."""
    status = f"{STATUS_FR[report.status.value]} / {report.status.value}"
    head = f"{report.reader}: {report.label or 'aucune carte / no card'} — {status}"
    lines = [head]
    if report.cps is not None:
        who = report.cps
        category = "carte de TEST" if who.is_test_card else "carte réelle"
        lines.append(
            f"  {who.first_name} {who.last_name} — idNat_PS {who.id_nat_ps} — profession "
            f"{who.profession_code}" + (f", spécialité {who.specialty_code}" if who.specialty_code
                                        else "")
        )
        lines.append(
            f"  {category} (catégorie {who.category_code}), valide du "
            f"{who.not_before:%d/%m/%Y} au {who.not_after:%d/%m/%Y}, "
            f"n° {who.serial_number}, essais PIN restants : {report.pin_tries_left}"
        )
    if report.vitale is not None:
        card = report.vitale
        lines.append(
            f"  carte Vitale {card.category.name.lower()} — régime {card.regime}, caisse "
            f"{card.caisse}, centre {card.centre}, n° {card.serial_number}"
        )
        for number, person in enumerate(card.beneficiaries, 1):
            lines.append(f"  {number}. {_person(person)}")
    if report.message and report.status.value not in ("valid", "none"):
        lines.append(f"  {report.message}")
    return lines


def _person(person: Beneficiary) -> str:
    names = f"{person.last_name} {person.first_name}"
    if person.birth_name and person.birth_name != person.last_name:
        names += f" (né·e {person.birth_name})"
    return (
        f"{names}, naissance {person.birth_date}, rang {person.birth_rank}, "
        f"{person.quality_label}"
    )


def as_json(report: SlotReport) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reader": report.reader,
        "status": report.status.value,
        "card": report.kind.value if report.kind else None,
        "label": report.label,
        "message": report.message,
    }
    if report.cps is not None:
        who = report.cps
        out["cps"] = {
            "idNatPs": who.id_nat_ps,
            "lastName": who.last_name,
            "firstName": who.first_name,
            "profession": who.profession_code,
            "specialty": who.specialty_code,
            "category": who.category_code,
            "testCard": who.is_test_card,
            "notBefore": who.not_before.isoformat(),
            "notAfter": who.not_after.isoformat(),
            "serialNumber": who.serial_number,
            "pinTriesLeft": report.pin_tries_left,
        }
    if report.vitale is not None:
        card = report.vitale
        out["vitale"] = {
            "category": card.category.name.lower(),
            "regime": card.regime,
            "caisse": card.caisse,
            "centre": card.centre,
            "serialNumber": card.serial_number,
            "beneficiaries": [
                {
                    "lastName": p.last_name,
                    "birthName": p.birth_name,
                    "firstName": p.first_name,
                    "birthDate": str(p.birth_date),
                    "birthRank": p.birth_rank,
                    "quality": p.quality,
                    "nir": p.nir_with_key,
                }
                for p in card.beneficiaries
            ],
        }
    return out
