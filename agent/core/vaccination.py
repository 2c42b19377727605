"""The vaccination record (docs/cda.md "The vaccination record"): a pharmacist, a nurse, a
midwife or a doctor records a vaccination they gave; the agent writes it as a CI-SIS
"Note de vaccination" (VAC-NOTE 2023.01, LOINC 87273-9) and deposits it through the one
deposit path (`WorkPart.deposit`: checked against the volet's schematrons, signed with the
card, queued in the outbox).

- `checked_vaccination`: what the user typed, checked (a vaccine of `VACCINES`, a date that
  is neither in the future nor before the patient's birth, a lot number, the dose rank, a
  route and a site from the volet's value sets); each refusal an `AgentError` with its own
  code, before anything is built, signed or queued.
- `build_note`: the document: the session's header (`wire.cda.level1.build_header`, the
  same builder as a level 1 deposit's) and one section "Historique des vaccinations"
  (11369-6) holding one FR-Vaccination entry, laid out as the CI-SIS example
  VAC-NOTE_2023.01.xml (tests/cda_examples/).
- `note_for`: that note for an open session and the patient's qualified identity.
- `VaccinationPart`: the core's call the local API and the page share
  (`record_vaccination`, `vaccination_choices`); the sandbox's pharmacy calls `note_for`
  and the agent's deposit functions, as its other deposits do.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from agent.core.work import WorkPart
from agent.errors import AgentError
from agent.i18n import _

if TYPE_CHECKING:
    from agent.core.professional import ProfessionalSession
    from wire.cda.level1 import Level1Header
    from wire.ins import InsIdentity

__all__ = [
    "ROUTES",
    "SITES",
    "VACCINES",
    "VAC_NOTE_TYPE",
    "Vaccination",
    "VaccinationPart",
    "Vaccine",
    "build_note",
    "checked_vaccination",
    "note_for",
]

VAC_NOTE_TYPE = "87273-9"  # LOINC "Note de vaccination": the document type of the volet
VACCINATIONS_SECTION = "11369-6"  # LOINC "Historique des vaccinations"

# templateIds (ansforge/TestContenuCDA-3-0, VAC-NOTE_2023.01.xml and its schematron).
_PCC_IMMUNIZATION_CONTENT = "1.3.6.1.4.1.19376.1.5.3.1.1.18.1.2"
_VAC_NOTE = ("1.2.250.1.213.1.1.1.46", "2023.01")
_SECTION_TEMPLATES = ("2.16.840.1.113883.10.20.1.6",  # CCD Immunizations Section
                      "1.3.6.1.4.1.19376.1.5.3.1.3.23",  # IHE PCC Immunization Section
                      "1.2.250.1.213.1.1.2.147")  # CI-SIS FR-Vaccinations
_ENTRY_TEMPLATES = ("2.16.840.1.113883.10.20.1.24",  # CCD Medication activity
                    "1.3.6.1.4.1.19376.1.5.3.1.4.12",  # IHE PCC Immunizations
                    "1.2.250.1.213.1.1.3.45")  # CI-SIS FR-Vaccination
_PRODUCT_TEMPLATES = ("2.16.840.1.113883.10.20.1.53",  # CCD Product
                      "1.3.6.1.4.1.19376.1.5.3.1.4.7.2",  # IHE PCC Product Entry
                      "1.2.250.1.213.1.1.3.43")  # CI-SIS FR-Produit-de-sante
_DOSE_TEMPLATES = ("2.16.840.1.113883.10.20.1.46",  # CCD Medication series number
                   "1.2.250.1.213.1.1.3.82")  # CI-SIS FR-Rang-de-la-vaccination

CIS = "1.2.250.1.213.2.3.1"  # Code Identifiant de Spécialité (BDPM): the volet requires it
ATC = "2.16.840.1.113883.6.73"  # WHO ATC: the volet requires its translation
EDQM = "0.4.0.127.0.16.1.1.2.1"  # EDQM Standard Terms (routes)
SNOMED_CT = "2.16.840.1.113883.6.96"  # (sites)
ACT_CODE = "2.16.840.1.113883.5.4"  # HL7 ActCode (the kind of vaccination act)


@dataclass(frozen=True)
class Vaccine:
    """A vaccine the form offers: its CIS code and label, its ATC code and label."""

    cis: str
    label: str
    atc: str
    atc_label: str
    disease: str  # what the form shows first, in French (the page lists by disease)


# A small curated list: CIS codes and labels as ANS publications give them (docs/cda.md).
VACCINES = {v.cis: v for v in (
    Vaccine("61402736", "VAXIGRIPTETRA, suspension injectable en seringue préremplie. Vaccin "
            "grippal quadrivalent (inactivé, à virion fragmenté)", "J07BB02",
            "grippe, inactivé, virion fragmenté ou antigène de surface", "Grippe"),
    Vaccine("68747507", "VACCIN TETANIQUE PASTEUR, suspension injectable en seringue "
            "préremplie. Vaccin tétanique adsorbé", "J07AM", "vaccins tétaniques", "Tétanos"),
    Vaccine("61920725", "VACCIN MENINGOCOCCIQUE A+C POLYOSIDIQUE, poudre et solvant pour "
            "suspension injectable en seringue préremplie", "J07AH",
            "vaccins méningococciques", "Méningocoques A et C"),
    Vaccine("61077869", "VACCIN BCG SSI, poudre et solvant pour suspension injectable",
            "J07AN", "vaccins de la tuberculose", "Tuberculose (BCG)"),
)}

# JDV_ImmunizationRouteCodes_CISIS (1.2.250.1.213.1.1.5.676), EDQM codes.
ROUTES = {"20035000": "Voie intramusculaire", "20066000": "Voie sous-cutanée",
          "20030000": "Voie intradermique", "20053000": "Voie orale",
          "20020000": "Voie inhalée"}
# JDV_ImmunizationApproachSiteCode_CISIS (1.2.250.1.213.1.1.5.621), SNOMED CT codes.
SITES = {"16217701000119102": "deltoïde gauche", "16217661000119109": "deltoïde droit",
         "66480008": "avant-bras gauche", "64262003": "avant-bras droit",
         "91775009": "épaule gauche", "91774008": "épaule droite",
         "61396006": "cuisse gauche", "11207009": "cuisse droite",
         "723979003": "fesse gauche", "723980000": "fesse droite"}

# A lot number as printed on the box: letters, digits and a few separators, no control
# character, no markup; the XML writer escapes anyway.
_LOT = re.compile(r"[0-9A-Za-z][0-9A-Za-z ./-]{0,29}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_DOSE = 10


@dataclass(frozen=True)
class Vaccination:
    """A vaccination as checked: the vaccine's CIS code, the day it was given, the lot,
    and optionally the dose rank, route (EDQM) and site (SNOMED CT)."""

    vaccine: str
    date: dt.date
    lot: str
    dose: int | None = None
    route: str | None = None
    site: str | None = None

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["date"] = self.date.isoformat()
        found["vaccineLabel"] = VACCINES[self.vaccine].label
        return found


def _refuse(message: str, code: str) -> AgentError:
    return AgentError(message, code=code, status=400, usage=True)


def _birth(birth_date: str) -> dt.date | None:
    """The patient's birth date (INS: YYYYMMDD, month or day 00 when unknown)."""
    if not re.fullmatch(r"\d{8}", birth_date):
        return None
    year, month, day = int(birth_date[:4]), int(birth_date[4:6]), int(birth_date[6:])
    try:
        return dt.date(year, month or 1, day or 1)
    except ValueError:
        return None


def checked_vaccination(*, vaccine: object, date: object, lot: object, dose: object = None,
                        route: object = None, site: object = None, birth_date: str = "",
                        today: dt.date | None = None) -> Vaccination:
    """The vaccination the user entered, checked field by field (the values as the API or
    the form send them: strings, the dose an integer). Raises `AgentError` (400) whose code
    names the field: vaccination-unknown-vaccine, vaccination-bad-date,
    vaccination-future-date, vaccination-before-birth, vaccination-bad-lot,
    vaccination-bad-dose, vaccination-unknown-route, vaccination-unknown-site."""
    if not isinstance(vaccine, str) or vaccine not in VACCINES:
        raise _refuse(_("Choose a vaccine from the list"), "vaccination-unknown-vaccine")
    if not isinstance(date, str) or not _DATE.fullmatch(date):
        raise _refuse(_("The vaccination date must be a date (YYYY-MM-DD)"),
                      "vaccination-bad-date")
    try:
        given = dt.date.fromisoformat(date)
    except ValueError:
        raise _refuse(_("The vaccination date must be a date (YYYY-MM-DD)"),
                      "vaccination-bad-date") from None
    if given > (today or dt.date.today()):
        raise _refuse(_("The vaccination date is in the future"), "vaccination-future-date")
    born = _birth(birth_date)
    if born is not None and given < born:
        raise _refuse(_("The vaccination date is before the patient's birth"),
                      "vaccination-before-birth")
    if not isinstance(lot, str) or not _LOT.fullmatch(lot.strip()):
        raise _refuse(_("The lot number: 1 to 30 letters, digits, spaces, dots, dashes or "
                        "slashes"), "vaccination-bad-lot")
    if dose is not None and (isinstance(dose, bool) or not isinstance(dose, int)
                             or not 1 <= dose <= MAX_DOSE):
        raise _refuse(_("The dose rank must be a whole number from 1 to {most}").format(
            most=MAX_DOSE), "vaccination-bad-dose")
    if route not in (None, "") and (not isinstance(route, str) or route not in ROUTES):
        raise _refuse(_("Choose a route of administration from the list"),
                      "vaccination-unknown-route")
    if site not in (None, "") and (not isinstance(site, str) or site not in SITES):
        raise _refuse(_("Choose an injection site from the list"), "vaccination-unknown-site")
    return Vaccination(vaccine, given, lot.strip(), dose, str(route or "") or None,
                       str(site or "") or None)


def build_note(header: Level1Header, vaccination: Vaccination) -> bytes:
    """The "Note de vaccination" (UTF-8 XML bytes): ``header`` (`header_for` with the
    87273-9 type) and the one vaccination, given by the header's author."""
    from wire.cda import oids
    from wire.cda.header import Code
    from wire.cda.level1 import (
        assigned_professional,
        build_header,
        coded,
        element,
        new_oid,
        to_bytes,
        ts,
    )

    vaccine = VACCINES[vaccination.vaccine]
    author = header.author
    root = build_header(header, ((_PCC_IMMUNIZATION_CONTENT, None), _VAC_NOTE))
    section = element(element(element(element(root, "component"), "structuredBody"),
                              "component"), "section")
    for template in _SECTION_TEMPLATES:
        element(section, "templateId", root=template)
    element(section, "id", root=new_oid())
    coded(section, "code", Code(VACCINATIONS_SECTION, oids.LOINC, "Historique des vaccinations"))
    element(section, "title", "Note de vaccination")

    # The narrative a reader sees; the entry points at the vaccine's cell.
    table = element(element(section, "text"), "table", border="0")
    row = element(element(table, "thead"), "tr")
    cells = {"Date": vaccination.date.strftime("%d/%m/%Y"), "Vaccin": vaccine.label,
             "Lot n°": vaccination.lot,
             "Rang": str(vaccination.dose) if vaccination.dose else "",
             "Voie d'administration": ROUTES.get(vaccination.route or "", ""),
             "Région d'administration": SITES.get(vaccination.site or "", ""),
             "Vaccinateur": f"{author.first_name} {author.last_name}".strip()}
    for heading in cells:
        element(row, "th", heading)
    row = element(element(table, "tbody"), "tr")
    for heading, value in cells.items():
        cell = element(row, "td")
        if heading == "Vaccin":
            element(cell, "content", value, ID="vac-1")
        else:
            cell.text = value

    sbadm = element(element(section, "entry"), "substanceAdministration", classCode="SBADM",
                    moodCode="EVN", negationInd="false")
    for template in _ENTRY_TEMPLATES:
        element(sbadm, "templateId", root=template)
    element(sbadm, "id", root=new_oid())
    coded(sbadm, "code", Code("IMMUNIZ", ACT_CODE, "Vaccination sans autre précision"))
    element(element(sbadm, "text"), "reference", value="#vac-1")
    element(sbadm, "statusCode", code="completed")
    element(sbadm, "effectiveTime", value=vaccination.date.strftime("%Y%m%d"))
    if vaccination.route:
        coded(sbadm, "routeCode", Code(vaccination.route, EDQM, ROUTES[vaccination.route]))
    if vaccination.site:
        coded(sbadm, "approachSiteCode", Code(vaccination.site, SNOMED_CT,
                                              SITES[vaccination.site]))
    product = element(element(sbadm, "consumable", typeCode="CSM"), "manufacturedProduct")
    for template in _PRODUCT_TEMPLATES:
        element(product, "templateId", root=template)
    material = element(product, "manufacturedMaterial")
    code = coded(material, "code", Code(vaccine.cis, CIS, vaccine.label))
    element(element(code, "originalText"), "reference", value="#vac-1")
    coded(code, "translation", Code(vaccine.atc, ATC, vaccine.atc_label))
    element(material, "name", vaccine.atc_label)
    element(material, "lotNumberText", vaccination.lot)
    # The vaccinator is the session's professional: performer and author of the entry.
    assigned_professional(element(sbadm, "performer", typeCode="PRF"), "assignedEntity",
                          author)
    entry_author = element(sbadm, "author", typeCode="AUT")
    element(entry_author, "time", value=ts(header.created))
    assigned_professional(entry_author, "assignedAuthor", author)
    if vaccination.dose:
        observation = element(element(sbadm, "entryRelationship", typeCode="SUBJ"),
                              "observation", classCode="OBS", moodCode="EVN")
        for template in _DOSE_TEMPLATES:
            element(observation, "templateId", root=template)
        coded(observation, "code", Code("30973-2", oids.LOINC, "Rang de la vaccination"))
        element(observation, "statusCode", code="completed")
        value = element(observation, "value", value=str(vaccination.dose))
        value.set(f"{{{oids.NS_XSI}}}type", "INT")
    return to_bytes(root)


def note_for(session: ProfessionalSession, identity: InsIdentity,
             vaccination: Vaccination) -> bytes:
    """The note of ``vaccination`` given by the session's professional (card or e-CPS, in
    its practice situation) to the patient of ``identity`` (qualifiée): the header is
    `header_for`'s, as a level 1 deposit's. Every view records through this (the core's
    `record_vaccination`, the sandbox's pharmacy)."""
    from agent.core.cda_documents import header_for

    now = dt.datetime.now(dt.UTC)
    # The act's day: now when given today, else noon UTC of that day (the CI-SIS header
    # asks for a time with its offset).
    given = (now if vaccination.date == now.date() else
             dt.datetime.combine(vaccination.date, dt.time(12), tzinfo=dt.UTC))
    situation = session.situation
    header = header_for(
        author=session.author(), setting=session.care_setting(), identity=identity,
        structure_name=situation.structure_name if situation is not None else "",
        type_code=VAC_NOTE_TYPE, title="Note de vaccination", service_start=given)
    return build_note(header, vaccination)


def vaccine_choices() -> dict[str, list[dict[str, str]]]:
    """The form's lists: vaccines (CIS), routes and sites (the volet's value sets)."""
    return {
        "vaccines": [{"code": v.cis, "disease": v.disease, "label": v.label, "atc": v.atc}
                     for v in VACCINES.values()],
        "routes": [{"code": c, "label": label} for c, label in ROUTES.items()],
        "sites": [{"code": c, "label": label} for c, label in SITES.items()],
    }


class VaccinationPart(WorkPart):
    """The core's vaccination record: one call for every view."""

    def may_record_vaccination(self) -> bool:
        """Whether the session's profession may deposit a vaccination note (the access
        matrix's 87273-9 right: doctors, pharmacists, midwives, nurses)."""
        return any(t["code"] == VAC_NOTE_TYPE for t in self.deposit_types())

    def vaccination_choices(self) -> dict[str, Any]:
        """What the form needs: whether this session may record one, and the lists."""
        return {"allowed": self.may_record_vaccination(), **vaccine_choices()}

    def record_vaccination(self, *, vaccine: object, date: object, lot: object,
                           dose: object = None, route: object = None,
                           site: object = None) -> dict[str, Any]:
        """Check the vaccination, write the note for the session's patient and deposit it
        (`WorkPart.deposit`: the volet's schematrons, the card's signature, the outbox).
        The deposit's answer with ``vaccination`` (what was recorded). Refused before
        anything is built or queued: a profession that may not (403
        vaccination-not-allowed), an identity not qualifiée, a bad field (400, its code)."""
        p = self._patient_ready()
        session = self._live_session()
        if not self.may_record_vaccination():
            raise AgentError(_("Your profession may not record a vaccination in the DMP "
                               "(doctors, pharmacists, midwives and nurses may)"),
                             code="vaccination-not-allowed", status=403, usage=True)
        self._require_qualified(p)
        assert p.identity is not None
        vaccination = checked_vaccination(vaccine=vaccine, date=date, lot=lot, dose=dose,
                                          route=route, site=site,
                                          birth_date=p.identity.birth_date)
        answer = self.deposit(note_for(session, p.identity, vaccination),
                              mime_type="text/xml", type_code=VAC_NOTE_TYPE)
        answer["vaccination"] = vaccination.as_json()
        return answer
