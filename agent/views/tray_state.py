"""What the tray shows, as pure functions of the agent's snapshot (``GET /api/status``).

The icon's state (``tray_state``), its tooltip (``tray_tooltip``), the desktop notices
(``notice_text``) and the icon's image (``icon_image``). Pure so that a test drives them with
a dict, without a display; ``agent.views.tray`` applies them to the icon.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image

from agent.i18n import N_, _, ngettext
from agent.logs import _IDENTIFIER
from agent.views.tray_icons import Colour, draw_icon

APP_NAME = "Agent DMP"  # the application's name for the desktop (notifications, the icon)
# Windows keeps 127 characters of a tooltip (NOTIFYICONDATA.szTip); keep every platform alike.
TOOLTIP_MAX = 127
MASK = N_("[hidden]")  # in place of a patient's name or number (translated where used)


class TrayState(enum.Enum):
    """What the icon shows, from the most to the least urgent (see ``tray_state``)."""

    ERROR = "error"
    DEPOSITS_PENDING = "deposits-pending"
    PATIENT_LOADED = "patient-loaded"
    SESSION_OPEN = "session-open"
    CPS_LOCKED = "cps-locked"
    NO_CARD = "no-card"


@dataclass(frozen=True)
class Look:
    colour: Colour
    glyph: str


LOOKS: dict[TrayState, Look] = {
    TrayState.ERROR: Look((200, 30, 30), "exclamation"),
    TrayState.DEPOSITS_PENDING: Look((120, 70, 190), "arrow-up"),
    TrayState.PATIENT_LOADED: Look((25, 100, 200), "person"),
    TrayState.SESSION_OPEN: Look((30, 140, 60), "check"),
    TrayState.CPS_LOCKED: Look((230, 145, 0), "padlock"),
    TrayState.NO_CARD: Look((110, 118, 129), "card"),
}


def _part(snapshot: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = snapshot.get(key)
    return value if isinstance(value, Mapping) else {}


def session_is_open(snapshot: Mapping[str, Any]) -> bool:
    """Whether the professional's session is open (the Lock entry needs one)."""
    return _part(snapshot, "session").get("state") == "open"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def pending_count(snapshot: Mapping[str, Any]) -> int:
    """Deposits waiting to be sent, the one being sent included."""
    outbox = _part(snapshot, "outbox")
    pending = _int(outbox.get("pending"))
    return max(pending, 1) if outbox.get("sending") else pending


def _error_text(snapshot: Mapping[str, Any]) -> str:
    """The one sentence the ERROR state shows, or "" when nothing needs the user."""
    problem = snapshot.get("problem")
    if isinstance(problem, str) and problem.strip():
        return problem.strip()
    cards = _part(snapshot, "cards")
    if cards.get("service") == "down":
        return _("The smart-card service stopped (pcscd)")
    slots = cards.get("slots")
    for slot in slots if isinstance(slots, list) else []:
        if not isinstance(slot, Mapping):
            continue
        status = slot.get("status")
        if status == "reader-error":
            return _("Reader error: {reader}").format(reader=slot.get("reader") or "?")
        if slot.get("kind") == "cps" and status == "blocked":
            # Its PUK unblocks it in the page; without it, only its issuer can.
            return _("CPS blocked: unblock it with its PUK in the page, else ask its issuer")
        if slot.get("kind") == "cps" and status == "expired":
            return _("CPS expired: ask for its renewal")
    host = _part(snapshot, "host")
    if host.get("state") in ("unreachable", "certificate"):
        # The page says it in full, with what to do; the tooltip short.
        return str(host.get("reason") or _("DMP host unreachable"))
    failed = _int(_part(snapshot, "outbox").get("failed"))
    if failed:
        return _refused(failed)
    return ""


def tray_state(snapshot: Mapping[str, Any]) -> TrayState:
    """The icon's state. Precedence, most urgent first:

    1. ERROR: ``problem`` is set, the card service is down, a reader is in error, the CPS is
       blocked or expired, the host is unreachable or refuses a certificate, or a deposit
       was refused (the user must act);
    2. DEPOSITS_PENDING: a deposit waits or is being sent; it shows over the session and
       patient states, and over "no card", since the deposits leave only while a session is
       open: the user must not believe they are gone;
    3. PATIENT_LOADED: a session is open and the patient's dossier is ready;
    4. SESSION_OPEN;
    5. CPS_LOCKED: a CPS is in a reader without a session (PIN to type, or being checked);
    6. NO_CARD.
    """
    if _error_text(snapshot):
        return TrayState.ERROR
    if pending_count(snapshot):
        return TrayState.DEPOSITS_PENDING
    session = _part(snapshot, "session").get("state")
    if session == "open":
        if _part(snapshot, "patient").get("state") == "ready":
            return TrayState.PATIENT_LOADED
        return TrayState.SESSION_OPEN
    if session in ("locked", "opening"):
        return TrayState.CPS_LOCKED
    return TrayState.NO_CARD


def _waiting(count: int) -> str:
    return ngettext("{count} deposit waiting", "{count} deposits waiting", count).format(
        count=count)


# G15 profession codes whose holders are addressed as "Dr": physicians and dentists.
_DOCTOR_PROFESSIONS = {"10", "40"}


def professional_name(professional: Mapping[str, Any]) -> str:
    """ "Dr Claire MARTIN" for a physician, "Paul DURAND" for a pharmacist."""
    name = " ".join(str(professional.get(k) or "").strip() for k in ("firstName", "lastName"))
    name = name.strip()
    profession = str(professional.get("profession") or "").strip().lower()
    if name and (profession in _DOCTOR_PROFESSIONS or profession.startswith("médecin")):
        return f"Dr {name}"
    return name


def _patient_names(snapshot: Mapping[str, Any]) -> list[str]:
    """Every name of the patient and of the card's beneficiaries, to keep out of texts."""
    patient = _part(snapshot, "patient")
    people: list[Mapping[str, Any]] = [_part(patient, "patient")]
    beneficiaries = patient.get("beneficiaries")
    people += [b for b in beneficiaries if isinstance(b, Mapping)] if isinstance(
        beneficiaries, list) else []
    names: set[str] = set()
    for person in people:
        for key in ("firstName", "lastName", "birthName", "usedName"):
            value = person.get(key)
            if isinstance(value, str):
                names.update(part for part in re.split(r"[\s,]+", value) if len(part) >= 2)
    return sorted(names, key=len, reverse=True)


# A NIR written in groups, as on the Vitale card: "2 85 01 75 123 456 78".
_SPACED_NIR = re.compile(
    r"(?<![0-9])[1-478] [0-9]{2} [0-9]{2} (?:[0-9]{2}|2[ABab]) [0-9]{3} [0-9]{3}(?: [0-9]{2})?"
    r"(?![0-9])")


def scrub(text: str, snapshot: Mapping[str, Any]) -> str:
    """``text`` without NIR/INS-shaped numbers nor the current patient's names.

    The service's texts are meant to be free of them already: this is a second line of
    defence, because a tooltip or a notification is read over the user's shoulder.
    """
    mask = _(MASK)
    text = _SPACED_NIR.sub(mask, _IDENTIFIER.sub(mask, text))
    for name in _patient_names(snapshot):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", mask, text, flags=re.IGNORECASE)
    return text


def _clip(text: str) -> str:
    return text if len(text) <= TOOLTIP_MAX else text[: TOOLTIP_MAX - 1].rstrip() + "…"


def tray_tooltip(snapshot: Mapping[str, Any]) -> str:
    """The icon's tooltip, in the agent's language (short: Windows keeps 127 characters).

    First line: "Agent DMP — " and the error if there is one, else the session; then the
    patient's step (never their name), the pending deposits and the refused ones. The texts
    that come from the service (``problem``, ``session.error``) go through ``scrub``; the
    professional's name is shown on purpose.
    """
    session = _part(snapshot, "session")
    state = session.get("state")
    if state == "open":
        who = professional_name(_part(session, "professional"))
        headline = _("session open: {who}").format(who=who) if who else _("session open")
    elif state == "opening" and _part(session, "ecps").get("phase") == "waiting":
        headline = _("e-CPS: approve the login on your phone")
    elif state == "opening":
        headline = _("opening the session…")
    elif state == "locked":
        headline = _("CPS locked: enter the PIN")
    else:
        headline = _("insert your CPS card")
    error = scrub(_error_text(snapshot), snapshot)
    lines = [f"{_('DMP agent')} — {error or headline}"]
    if error:
        lines.append(headline[0].upper() + headline[1:])
    session_error = session.get("error")
    if isinstance(session_error, str) and session_error.strip() and state != "open":
        lines.append(scrub(session_error.strip(), snapshot))
    if state == "open":
        patient = _part(snapshot, "patient")
        step = {
            "ready": _("Patient dossier open"),
            "loading": _("Reading the Vitale card…"),
            "choosing": _("Choose the person in the page"),
            "choosing-identity": _("Several INS identities: choose in the page"),
            "error": _("Vitale card: see the page"),
        }.get(str(patient.get("state")))
        mode = _part(patient, "accessMode").get("code")
        if step and mode:
            step += " " + (_("(break the glass)") if mode == "BRIS_DE_GLACE"
                           else _("(centre 15)"))
        if step:
            lines.append(step)
        identity = _part(patient, "identity")
        if patient.get("state") == "ready" and identity.get("status"):
            # The RNIV status (docs/ins.md): no deposit until it is qualifiée.
            lines.append(f"Identité {identity['status']}" + (
                "" if identity.get("qualified") else " : vérifiez une pièce d'identité"))
    pending = pending_count(snapshot)
    if pending:
        lines.append(_waiting(pending))
    failed = _int(_part(snapshot, "outbox").get("failed"))
    if failed and error != _refused(failed):
        lines.append(_refused(failed))
    return _clip("\n".join(lines))


def _refused(failed: int) -> str:
    return ngettext("{count} deposit refused: see the page",
                    "{count} deposits refused: see the page", failed).format(count=failed)


def notice_text(data: Mapping[str, Any], snapshot: Mapping[str, Any]) -> tuple[str, str]:
    """(title, text) of a ``notice`` event for the desktop, scrubbed."""
    title = str(data.get("title") or _("DMP agent"))
    text = str(data.get("text") or "")
    return scrub(title, snapshot), scrub(text, snapshot)


@functools.lru_cache(maxsize=32)
def icon_image(state: TrayState, count: int = 0) -> Image.Image:
    """The 64x64 image of ``state``; DEPOSITS_PENDING carries ``count`` in a badge."""
    look = LOOKS[state]
    badge = min(count, 10) if state is TrayState.DEPOSITS_PENDING else 0
    return draw_icon(look.colour, look.glyph, badge)
