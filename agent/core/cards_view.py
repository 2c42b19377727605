"""Turning slot reports into the lines and JSON that `dmp-agent cards` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.card_words import quality_text
from agent.i18n import N_, _

if TYPE_CHECKING:  # annotations only: the card parsers load on the card thread, not at start
    from cardreader.inspect import SlotReport
    from cardreader.vitale import Beneficiary

STATUS_WORDS = {
    "valid": N_("valid"),
    "none": N_("empty"),
    "unknown": N_("unknown"),
    "changed": N_("changed"),
    "blocked": N_("blocked"),
    "expired": N_("expired"),
    "reader-error": N_("reader error"),
}


def describe(report: SlotReport) -> list[str]:
    """Human lines for one slot: the reader, the card and its status in the user's language,
    then the identity; ``report``'s message as the agent says it
    (`agent.card_words.localized`). Scripts read the stable status word (valid, none,
    blocked...) in `as_json` (`dmp-agent cards --json`), not these lines."""
    status = _(STATUS_WORDS[report.status.value])
    head = f"{report.reader}: {report.label or _('no card')} — {status}"
    lines = [head]
    if report.cps is not None:
        who = report.cps
        lines.append(
            "  " + _("{first} {last} — idNat_PS {id} — profession {profession}").format(
                first=who.first_name, last=who.last_name, id=who.id_nat_ps,
                profession=who.profession_code)
            + (_(", specialty {code}").format(code=who.specialty_code) if who.specialty_code
               else "")
        )
        lines.append("  " + _(
            "{category} (category {code}), valid from {start} to {end}, no. {serial}, PIN "
            "tries left: {tries}").format(
                category=_("TEST card") if who.is_test_card else _("real card"),
                code=who.category_code, start=who.not_before.strftime(_("%Y-%m-%d")),
                end=who.not_after.strftime(_("%Y-%m-%d")), serial=who.serial_number,
                tries=report.pin_tries_left))
    if report.vitale is not None:
        card = report.vitale
        lines.append("  " + _(
            "Vitale card {category} — scheme {regime}, fund {caisse}, centre {centre}, no. "
            "{serial}").format(category=card.category.name.lower(), regime=card.regime,
                               caisse=card.caisse, centre=card.centre,
                               serial=card.serial_number))
        for number, person in enumerate(card.beneficiaries, 1):
            lines.append(f"  {number}. {_person(person)}")
    if report.message and report.status.value not in ("valid", "none"):
        lines.append(f"  {report.message}")
    return lines


def _person(person: Beneficiary) -> str:
    names = f"{person.last_name} {person.first_name}"
    if person.birth_name and person.birth_name != person.last_name:
        names += " " + _("(born {name})").format(name=person.birth_name)
    return _("{names}, born {date}, rank {rank}, {quality}").format(
        names=names, date=person.birth_date, rank=person.birth_rank,
        quality=quality_text(person))


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
