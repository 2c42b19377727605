"""The dossier's sections read from the CDA level 3 documents present (docs/cda-viewer.md):
allergies, medical history, pathologies and current treatments from the latest VSM, the
blood group from any VSM or CR-BIO that records it, the vaccinations from every vaccination
note, the lab results over time from every CR-BIO (a table and a small SVG plot per
analysis) and rapid test (TROD), the emergency contacts from the documents' headers. Every
item names the document it came from; a section with no source document says so
(``status``).

Pure functions over parsed documents (`wire.cda.safe_xml` parsed them): XPath on the CI-SIS
entries, no network, no state.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from wire.cda import oids

NS = {"h": oids.NS, "xsi": "http://www.w3.org/2001/XMLSchema-instance"}

# The volets whose documents feed a section, by their XDS formatCode (volets.py).
VSM_FORMAT = "urn:asip:ci-sis:vsm:2012"
VAC_NOTE_FORMAT = "urn:asip:ci-sis:vac-note:2021"
CR_BIO_FORMAT = "urn:ihe:lab:xd-lab:2008"
TROD_FORMAT = "urn:ans:ci-sis:trod:2024"  # a rapid test's coded result (négatif, positif)
SOURCE_FORMATS = (VSM_FORMAT, VAC_NOTE_FORMAT, CR_BIO_FORMAT, TROD_FORMAT)

# The VSM's sub-sections (LOINC section codes of the CI-SIS VSM 1.4).
PATHOLOGIES = ("11450-4",)  # Pathologie en cours (liste des problèmes actifs)
HISTORY = ("11348-0", "47519-4", "10157-6")  # antécédents médicaux, chirurgicaux, familiaux
ALLERGIES = ("48765-2",)
TREATMENTS = ("10160-0",)
VACCINATIONS = ("11369-6",)  # the vaccination note's section (Historique des vaccinations)
# LOINC: ABO and Rh group (882-1), ABO group (883-9), Rh type (10331-7).
BLOOD_GROUP_CODES = ("882-1", "883-9", "10331-7")

SECTION_KEYS = ("allergies", "history", "bloodGroup", "pathologies", "treatments",
                "vaccinations", "labResults", "emergencyContacts")


@dataclass(frozen=True)
class Source:
    """A document a section read: its XDS uniqueId (the page opens it), title and date."""

    unique_id: str
    title: str
    date: dt.datetime
    format_code: str

    def as_json(self) -> dict[str, Any]:
        return {"uniqueId": self.unique_id, "title": self.title,
                "date": self.date.isoformat()}


@dataclass(frozen=True)
class Parsed:
    source: Source
    root: etree._Element


@dataclass(frozen=True)
class Item:
    label: str
    detail: str
    date: str  # YYYY-MM-DD or "" (the CDA's own date, not the document's)
    source: Source

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "detail": self.detail, "date": self.date,
                "source": self.source.as_json()}


@dataclass
class Section:
    key: str
    status: str = "no-source"  # no-source, empty (sources say nothing), ok
    items: list[Item] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    analyses: list[dict[str, Any]] = field(default_factory=list)  # labResults only

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "status": self.status,
                               "items": [i.as_json() for i in self.items],
                               "sources": [s.as_json() for s in self.sources]}
        if self.key == "labResults":
            out["analyses"] = self.analyses
        return out

    def done(self) -> Section:
        self.status = ("ok" if self.items or self.analyses else "empty") if self.sources \
            else "no-source"
        return self


# -- reading a CDA -----------------------------------------------------------------------
def _x(node: etree._Element, path: str) -> list[Any]:
    result = node.xpath(path, namespaces=NS)
    return result if isinstance(result, list) else [result]


def _first(node: etree._Element, path: str) -> str:
    for value in _x(node, path):
        text = value if isinstance(value, str) else "".join(value.itertext())
        text = " ".join(str(text).split())
        if text:
            return text
    return ""


def _narrative(node: etree._Element, reference: str) -> str:
    """The text of the narrative element a ``reference/@value`` ("#id") names."""
    if not reference.startswith("#") or len(reference) < 2:
        return ""
    found = _x(node, f"/h:ClinicalDocument//h:text//*[@ID = {_literal(reference[1:])}]")
    return " ".join("".join(found[0].itertext()).split()) if found else ""


def _literal(value: str) -> str:
    """An XPath string literal for ``value`` (quotes cannot be escaped in XPath 1)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = value.split("'")
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in parts) + ")"


def _label(code: etree._Element | None) -> str:
    """A coded element in words: its originalText (or the narrative it points at), else
    its displayName, else its code."""
    if code is None:
        return ""
    reference = _first(code, "h:originalText/h:reference/@value")
    return (_narrative(code, reference) if reference else "") or _first(
        code, "h:originalText") or code.get("displayName", "") or code.get("code", "")


def _date(node: etree._Element, path: str = "h:effectiveTime") -> str:
    """The first date under ``path`` (value, else low) as YYYY-MM-DD; "" when none."""
    value = _first(node, f"{path}/@value | {path}/h:low/@value")
    if len(value) >= 8 and value[:8].isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return ""


def _sections(root: etree._Element, codes: Sequence[str]) -> list[etree._Element]:
    test = " or ".join(f"h:code/@code = '{c}'" for c in codes)
    return _x(root, f"h:component/h:structuredBody//h:section[{test}]")


def _problems(parsed: Parsed, codes: Sequence[str]) -> list[Item]:
    """The problem / allergy observations of a VSM's sections ``codes``."""
    items = []
    for section in _sections(parsed.root, codes):
        title = _first(section, "h:title")
        for entry in _x(section, "h:entry/*"):
            observations = _x(entry, "h:entryRelationship/h:observation | h:component/h:observation"
                                ) or [entry]
            for obs in observations:
                agent = _x(obs, "h:participant/h:participantRole/h:playingEntity/h:code")
                value = _x(obs, "h:value")
                code = _x(obs, "h:code")
                label = (_label(agent[0]) if agent else "") or (
                    _label(value[0]) if value else "") or (_label(code[0]) if code else "")
                if not label:
                    continue
                kind = _label(code[0]) if agent and code else ""
                items.append(Item(label, kind or title, _date(obs) or _date(entry),
                                  parsed.source))
    return items


def _treatments(parsed: Parsed) -> list[Item]:
    items = []
    for section in _sections(parsed.root, TREATMENTS):
        for sbadm in _x(section, "h:entry/h:substanceAdministration"):
            material = _x(sbadm, "h:consumable/h:manufacturedProduct/h:manufacturedMaterial")
            name = ""
            if material:
                codes = _x(material[0], "h:code")
                name = (codes and codes[0].get("displayName", "")) or _first(
                    material[0], "h:name") or (_label(codes[0]) if codes else "")
            if not name:
                continue
            dose = _x(sbadm, "h:doseQuantity/h:low | h:doseQuantity[@value]")
            route = _x(sbadm, "h:routeCode")
            detail = ", ".join(part for part in (
                _quantity(dose[0]) if dose else "",
                route[0].get("displayName", "") if route else "",
                _first(sbadm, "h:entryRelationship[@typeCode='RSON']/h:act/h:code/@displayName"),
            ) if part)
            items.append(Item(name, detail, _date(sbadm, "h:effectiveTime[1]"), parsed.source))
    return items


def _quantity(node: etree._Element) -> str:
    value, unit = node.get("value", ""), node.get("unit", "")
    unit = unit.strip("{}") if unit != "1" else ""
    return f"{value} {unit}".strip()


def _vaccinations(parsed: Parsed) -> list[Item]:
    items = []
    for section in _sections(parsed.root, VACCINATIONS):
        for sbadm in _x(section, "h:entry/h:substanceAdministration[not(@negationInd='true')]"):
            material = _x(sbadm, "h:consumable/h:manufacturedProduct/h:manufacturedMaterial")
            if not material:
                continue
            codes = _x(material[0], "h:code")
            name = (codes and codes[0].get("displayName", "")) or _first(material[0], "h:name")
            if not name:
                continue
            lot = _first(material[0], "h:lotNumberText")
            detail = ", ".join(p for p in (_first(material[0], "h:name"),
                                           f"lot {lot}" if lot else "") if p)
            items.append(Item(name, detail, _date(sbadm), parsed.source))
    return items


def _blood_groups(parsed: Parsed) -> list[Item]:
    test = " or ".join(f"h:code/@code = '{c}'" for c in BLOOD_GROUP_CODES)
    items = []
    for obs in _x(parsed.root, f"h:component/h:structuredBody//h:observation[{test}]"):
        value = _x(obs, "h:value")
        if not value:
            continue
        label = _label(value[0]) or value[0].text or ""
        if label.strip():
            items.append(Item(label.strip(), _label(_x(obs, "h:code")[0]), _date(obs),
                              parsed.source))
    return items


def _contacts(parsed: Parsed) -> list[Item]:
    items = []
    path = ("h:informant/h:relatedEntity[@classCode='ECON'] | "
            "h:participant[@typeCode='IND']/h:associatedEntity[@classCode='ECON']")
    for entity in _x(parsed.root, path):
        person = _x(entity, "h:relatedPerson/h:name | h:associatedPerson/h:name")
        name = " ".join(p for p in (_first(person[0], "h:given"),
                                    _first(person[0], "h:family")) if p) if person else ""
        phones = [v.split(":", 1)[-1] for v in _x(entity, "h:telecom/@value")
                  if str(v).startswith(("tel:", "mailto:"))]
        relation = _first(entity, "h:code/@displayName")
        if name or phones:
            items.append(Item(name or phones[0], ", ".join(p for p in (relation, *phones) if p),
                              "", parsed.source))
    return items


# -- lab results -------------------------------------------------------------------------
@dataclass(frozen=True)
class LabPoint:
    date: str
    value: str
    unit: str
    number: float | None
    low: float | None
    high: float | None
    interpretation: str
    source: Source


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _lab_results(parsed: Parsed) -> dict[tuple[str, str], list[LabPoint]]:
    """(code, label) → the results of a CR-BIO (its lab result observations, any depth) or
    of a rapid test (TROD: its coded results, "négatif", "positif")."""
    series: dict[tuple[str, str], list[LabPoint]] = {}
    coded = parsed.source.format_code == TROD_FORMAT
    for obs in _x(parsed.root, "h:component/h:structuredBody//h:entry//h:observation"
                               "[h:value and h:code/@code]"):
        code = _x(obs, "h:code")[0]
        value = _x(obs, "h:value")[0]
        kind = value.get(f"{{{NS['xsi']}}}type", "")
        if kind in ("CD", "CE") and not coded:
            continue  # a CR-BIO's coded values qualify its results (specimen, method)
        if kind in ("CD", "CE"):
            shown, unit, number = _label(value), "", None
        elif kind == "PQ":
            shown, unit, number = value.get("value", ""), value.get("unit", ""), _number(
                value.get("value"))
        else:
            shown, unit, number = " ".join("".join(value.itertext()).split()), "", None
        if not shown:
            continue
        unit = "" if unit == "1" else unit
        low = _number(_first(obs, "h:referenceRange/h:observationRange/h:value/h:low/@value"))
        high = _number(_first(obs, "h:referenceRange/h:observationRange/h:value/h:high/@value"))
        label = code.get("displayName", "") or _label(code)
        point = LabPoint(_date(obs) or parsed.source.date.date().isoformat(), shown, unit,
                         number, low, high, _first(obs, "h:interpretationCode/@displayName"),
                         parsed.source)
        series.setdefault((code.get("code", ""), label), []).append(point)
    return series


def plot_svg(points: Sequence[LabPoint], label: str) -> str:
    """A small SVG line of an analysis' numeric values over time, its reference range
    shaded; no script, no external reference (the page puts it in as an image)."""
    numeric = [p for p in points if p.number is not None]
    width, height, pad = 240, 80, 8
    if not numeric:
        return ""
    values = [p.number for p in numeric if p.number is not None]
    low = next((p.low for p in reversed(numeric) if p.low is not None), None)
    high = next((p.high for p in reversed(numeric) if p.high is not None), None)
    bounds = values + [b for b in (low, high) if b is not None]
    top, bottom = max(bounds), min(bounds)
    span = (top - bottom) or (abs(top) or 1.0)
    top, bottom = top + span * 0.1, bottom - span * 0.1

    def y(v: float) -> float:
        return round(pad + (top - v) / (top - bottom) * (height - 2 * pad), 1)

    def x(i: int) -> float:
        return round(pad + (i * (width - 2 * pad) / (len(numeric) - 1) if len(numeric) > 1
                            else (width - 2 * pad) / 2), 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img"><title>{escape(label)}</title>',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff" '
             'stroke="#c8ccd0"/>']
    if low is not None and high is not None and high > low:
        parts.append(f'<rect x="{pad}" y="{y(high)}" width="{width - 2 * pad}" '
                     f'height="{round(y(low) - y(high), 1)}" fill="#e3f1e6"/>')
    line = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))
    if len(values) > 1:
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1f5fa8" '
                     'stroke-width="2"/>')
    for i, v in enumerate(values):
        parts.append(f'<circle cx="{x(i)}" cy="{y(v)}" r="3" fill="#1f5fa8"/>')
    parts.append("</svg>")
    return "".join(parts)


def _analyses(parsed: Iterable[Parsed]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], list[LabPoint]] = {}
    for document in parsed:
        for key, points in _lab_results(document).items():
            merged.setdefault(key, []).extend(points)
    out = []
    for (code, label), points in sorted(merged.items(), key=lambda kv: kv[0][1].lower()):
        points.sort(key=lambda p: p.date)
        out.append({
            "code": code, "label": label, "unit": points[-1].unit,
            "results": [{"date": p.date, "value": p.value, "unit": p.unit,
                         "low": p.low, "high": p.high, "interpretation": p.interpretation,
                         "source": p.source.as_json()} for p in points],
            "svg": plot_svg(points, label)})
    return out


# -- the sections ------------------------------------------------------------------------
def sections(documents: Sequence[Parsed]) -> list[Section]:
    """Every section of the dossier from ``documents`` (the CDA level 3 ones present)."""
    newest_first = sorted(documents, key=lambda d: d.source.date, reverse=True)
    vsms = [d for d in newest_first if d.source.format_code == VSM_FORMAT]
    notes = [d for d in newest_first if d.source.format_code == VAC_NOTE_FORMAT]
    bios = [d for d in newest_first if d.source.format_code == CR_BIO_FORMAT]
    labs = [d for d in newest_first if d.source.format_code in (CR_BIO_FORMAT, TROD_FORMAT)]
    latest = vsms[:1]
    out = {key: Section(key) for key in SECTION_KEYS}
    for d in latest:
        for key, codes in (("allergies", ALLERGIES), ("history", HISTORY),
                           ("pathologies", PATHOLOGIES)):
            out[key].sources.append(d.source)
            out[key].items.extend(_problems(d, codes))
        out["treatments"].sources.append(d.source)
        out["treatments"].items.extend(_treatments(d))
    for d in notes:
        out["vaccinations"].sources.append(d.source)
        out["vaccinations"].items.extend(_vaccinations(d))
    out["vaccinations"].items.sort(key=lambda i: i.date, reverse=True)
    for d in [*vsms, *bios]:  # the newest record of the blood group first
        out["bloodGroup"].sources.append(d.source)
        out["bloodGroup"].items.extend(_blood_groups(d))
    out["labResults"].sources.extend(d.source for d in labs)
    out["labResults"].analyses = _analyses(labs)
    seen: set[tuple[str, str]] = set()
    for d in newest_first:
        out["emergencyContacts"].sources.append(d.source)
        for item in _contacts(d):
            if (item.label, item.detail) not in seen:  # the same person in several documents
                seen.add((item.label, item.detail))
                out["emergencyContacts"].items.append(item)
    return [out[key].done() for key in SECTION_KEYS]
