"""The tray's logic without a display: state precedence, tooltips, icons, notices, menu."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.views.tray import (
    LOOKS,
    TOOLTIP_MAX,
    Tray,
    TrayState,
    display_available,
    icon_image,
    notice_text,
    pending_count,
    tray_state,
    tray_tooltip,
    x11_title,
)
from tests.tray.scripted import PATIENT_INS, PATIENT_WORDS, PHARMACIST, ScriptedSource, snapshot

ROOT = Path(__file__).resolve().parents[2]

CPS_BLOCKED = [{"reader": "Virtual PCD 00 00", "status": "blocked", "kind": "cps", "label": "",
                "message": "", "pinTriesLeft": 0, "cps": None, "vitale": None}]
VITALE_BLOCKED = [{"reader": "Virtual PCD 00 01", "status": "blocked", "kind": "vitale",
                   "label": "", "message": "", "pinTriesLeft": None, "cps": None,
                   "vitale": None}]
READER_ERROR = [{"reader": "Lecteur USB", "status": "reader-error", "kind": None, "label": "",
                 "message": "", "pinTriesLeft": None, "cps": None, "vitale": None}]


@pytest.mark.parametrize(("snap", "expected"), [
    ({}, TrayState.NO_CARD),
    (snapshot("none"), TrayState.NO_CARD),
    (snapshot("locked"), TrayState.CPS_LOCKED),
    (snapshot("opening"), TrayState.CPS_LOCKED),
    (snapshot("locked", session_error="Code faux, 2 essais restants"), TrayState.CPS_LOCKED),
    (snapshot("open"), TrayState.SESSION_OPEN),
    (snapshot("open", "loading"), TrayState.SESSION_OPEN),
    (snapshot("open", "choosing"), TrayState.SESSION_OPEN),
    (snapshot("open", "ready"), TrayState.PATIENT_LOADED),
    # a Vitale card without a session loads nothing
    (snapshot("locked", "ready"), TrayState.CPS_LOCKED),
    # pending deposits show over the session, the patient and "no card"
    (snapshot("open", "ready", pending=2), TrayState.DEPOSITS_PENDING),
    (snapshot("none", pending=1), TrayState.DEPOSITS_PENDING),
    (snapshot("open", sending=True), TrayState.DEPOSITS_PENDING),
    # errors show over everything
    (snapshot("open", "ready", pending=2, problem="Hôte DMP injoignable"), TrayState.ERROR),
    (snapshot("none", cards="down"), TrayState.ERROR),
    (snapshot("none", slots=READER_ERROR), TrayState.ERROR),
    (snapshot("locked", slots=CPS_BLOCKED), TrayState.ERROR),
    (snapshot("open", pending=3, failed=1), TrayState.ERROR),
    # a blocked Vitale card is the patient's business, shown in the page
    (snapshot("open", "error", slots=VITALE_BLOCKED), TrayState.SESSION_OPEN),
])
def test_state_and_precedence(snap: dict, expected: TrayState) -> None:
    assert tray_state(snap) is expected


def test_pending_count_counts_the_deposit_being_sent() -> None:
    assert pending_count(snapshot("open", pending=2, sending=True)) == 2
    assert pending_count(snapshot("open", pending=0, sending=True)) == 1
    assert pending_count(snapshot("open")) == 0


def test_tooltips_say_what_the_agent_does_in_french() -> None:
    assert tray_tooltip(snapshot("none")) == "Agent DMP — insérez votre carte CPS"
    assert tray_tooltip(snapshot("locked")) == "Agent DMP — CPS verrouillée : saisissez le code"
    assert tray_tooltip(snapshot("locked", session_error="Code faux, 2 essais restants")) == (
        "Agent DMP — CPS verrouillée : saisissez le code\nCode faux, 2 essais restants")
    waiting = snapshot("opening")
    waiting["session"]["ecps"] = {"phase": "waiting", "bindingMessage": "Poste A code 1234",
                                  "secondsLeft": 80}
    assert tray_tooltip(waiting) == (
        "Agent DMP — e-CPS : validez la connexion sur votre téléphone")
    assert tray_tooltip(snapshot("open")) == "Agent DMP — session ouverte : Dr Claire MARTIN"
    assert tray_tooltip(snapshot("open", professional=PHARMACIST)) == (
        "Agent DMP — session ouverte : Paul LEROY")
    assert tray_tooltip(snapshot("open", "ready", pending=2)) == (
        "Agent DMP — session ouverte : Dr Claire MARTIN\nDossier patient ouvert\n"
        "2 dépôts en attente")
    assert tray_tooltip(snapshot("none", pending=1)) == (
        "Agent DMP — insérez votre carte CPS\n1 dépôt en attente")
    assert tray_tooltip(snapshot("open", "ready", access_mode="BRIS_DE_GLACE")).endswith(
        "Dossier patient ouvert (bris de glace)")
    assert tray_tooltip(snapshot("open", problem="Hôte DMP injoignable")) == (
        "Agent DMP — Hôte DMP injoignable\nSession ouverte : Dr Claire MARTIN")
    assert tray_tooltip(snapshot("open", failed=2)) == (
        "Agent DMP — 2 dépôts refusés : voir la page\nSession ouverte : Dr Claire MARTIN")
    assert tray_tooltip(snapshot("locked", slots=CPS_BLOCKED)).startswith(
        "Agent DMP — CPS bloquée")


def test_the_tooltip_says_the_identitys_status_and_the_choice_waiting() -> None:
    ready = snapshot("open", "ready")
    ready["patient"]["identity"] = {"status": "récupérée", "qualified": False}
    assert tray_tooltip(ready).endswith(
        "Dossier patient ouvert\nIdentité récupérée : vérifiez une pièce d'identité")
    ready["patient"]["identity"] = {"status": "qualifiée", "qualified": True}
    assert tray_tooltip(ready).endswith("Dossier patient ouvert\nIdentité qualifiée")
    assert tray_tooltip(snapshot("open", "choosing-identity")).endswith(
        "Plusieurs identités INS : choisissez dans la page")


def test_tooltips_fit_the_windows_limit() -> None:
    tooltip = tray_tooltip(snapshot("open", "ready", pending=12, failed=1,
                                    problem="Le poste n'est pas enrôlé " * 10))
    assert len(tooltip) <= TOOLTIP_MAX
    assert tooltip.endswith("…")


SNAPSHOTS_WITH_A_PATIENT = [
    snapshot(session, patient, pending=pending, access_mode=mode)
    for session in ("locked", "open")
    for patient in ("choosing", "loading", "ready", "error")
    for pending in (0, 2)
    for mode in (None, "BRIS_DE_GLACE")
]


@pytest.mark.parametrize("snap", SNAPSHOTS_WITH_A_PATIENT)
def test_no_patient_data_in_any_tooltip(snap: dict) -> None:
    tooltip = tray_tooltip(snap)
    for word in PATIENT_WORDS:
        assert word.lower() not in tooltip.lower()


def test_patient_data_leaking_from_the_service_is_masked_in_tooltips() -> None:
    leaky = snapshot("open", "ready", problem=f"Dossier de Léa DURAND ({PATIENT_INS}) fermé",
                     session_error="")
    tooltip = tray_tooltip(leaky)
    for word in PATIENT_WORDS:
        assert word.lower() not in tooltip.lower()
    assert "Dossier de [masqué] [masqué] ([masqué]) fermé" in tooltip
    # a patient who shares the professional's name does not hide the professional's name
    namesake = snapshot("open", "ready")
    namesake["patient"]["patient"]["birthName"] = "MARTIN"
    assert "Dr Claire MARTIN" in tray_tooltip(namesake)


# Notices as the service emits them (docs/agent-local-api.md): free of patient data.
SERVICE_NOTICES = [
    {"level": "info", "title": "Session DMP ouverte",
     "text": "Dr Claire MARTIN, Cabinet du Parc"},
    {"level": "info", "title": "Session DMP fermée",
     "text": "carte retirée"},
    {"level": "info", "title": "Document déposé",
     "text": "Compte rendu de consultation (1 Mo)"},
    {"level": "error", "title": "Dépôt refusé",
     "text": "Type de document non autorisé"},
    {"level": "warning", "title": "Carte CPS bloquée",
     "text": "Débloquez-la avec son code PUK"},
]


@pytest.mark.parametrize("notice", SERVICE_NOTICES)
def test_service_notices_pass_unchanged_and_carry_no_patient_data(notice: dict) -> None:
    snap = snapshot("open", "ready")
    title, text = notice_text(notice, snap)
    assert (title, text) == (notice["title"], notice["text"])
    for word in PATIENT_WORDS:
        assert word.lower() not in (title + text).lower()


@pytest.mark.parametrize("leak", [
    "Compte rendu de Léa DURAND déposé",
    "Document déposé pour l'INS 285017512345678",
    "Document déposé pour le NIR 2850175123456",
    "Document déposé pour le NIR 2 85 01 75 123 456 78",
    "Dépôt pour Hugo durand refusé",
])
def test_a_notice_that_leaks_patient_data_is_masked(leak: str) -> None:
    title, text = notice_text({"level": "info", "title": leak, "text": leak},
                              snapshot("open", "ready"))
    for word in [*PATIENT_WORDS, "2 85 01 75 123 456 78"]:
        assert word.lower() not in (title + text).lower()
    assert "[masqué]" in text


def test_every_state_has_its_own_icon() -> None:
    images = {state: icon_image(state, 2) for state in TrayState}
    assert all(image.size == (64, 64) and image.mode == "RGBA" for image in images.values())
    assert len({image.tobytes() for image in images.values()}) == len(TrayState)
    for state, image in images.items():
        colours = image.getcolors(64 * 64)
        assert colours is not None
        # the state's colour covers the icon: the pixel most seen
        assert max(colours)[1][:3] == LOOKS[state].colour, state


def test_the_badge_shows_the_pending_count() -> None:
    one, two, twelve, fifteen = (icon_image(TrayState.DEPOSITS_PENDING, n)
                                 for n in (1, 2, 12, 15))
    assert len({one.tobytes(), two.tobytes(), twelve.tobytes()}) == 3
    assert twelve.tobytes() == fifteen.tobytes()  # both "9+"
    # other states carry no badge, whatever the count
    assert icon_image(TrayState.ERROR, 0).tobytes() == icon_image(TrayState.ERROR, 3).tobytes()


def test_x11_titles_are_latin1() -> None:
    title = x11_title("Agent DMP — session ouverte : Dr Cœur…")
    assert title == "Agent DMP - session ouverte : Dr Coeur..."
    assert x11_title("Élodie ÇA") == "Élodie ÇA"  # Latin-1 letters stay


@pytest.mark.parametrize(("environ", "platform", "expected"), [
    ({}, "linux", False),
    ({"DISPLAY": ":0"}, "linux", True),
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
    ({}, "win32", True),
    ({}, "darwin", True),
])
def test_display_available(environ: dict, platform: str, expected: bool) -> None:
    assert display_available(environ, platform) is expected


def test_the_module_imports_and_refuses_cleanly_without_a_display() -> None:
    code = (
        "import sys\n"
        "import agent.views.tray as tray\n"
        "assert 'pystray' not in sys.modules and 'Xlib' not in sys.modules\n"
        "from tests.tray.scripted import ScriptedSource, snapshot\n"
        "try:\n"
        "    tray.run_tray(ScriptedSource(snapshot()), quit=lambda: None)\n"
        "except tray.TrayUnavailable as error:\n"
        "    print('unavailable:', error)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("unavailable: no display")  # for the log


def test_menu_entries_and_their_logic() -> None:
    source = ScriptedSource(snapshot("locked"))
    opened: list[str] = []
    quits: list[int] = []
    tray = Tray(source, quit=lambda: quits.append(1), open_url=opened.append)
    tray.refresh()
    entries = {entry.label: entry for entry in tray.menu_entries()}
    assert list(entries) == [
        "Ouvrir la page", "Déposer un document…", "Se connecter avec e-CPS…",
        "Verrouiller la session", "Diagnostic",
        "Paramètres", "Quitter"]
    assert [e.label for e in entries.values() if e.default] == ["Ouvrir la page"]

    ecps = entries["Se connecter avec e-CPS…"]
    assert ecps.enabled()
    ecps()  # the login goes on in the page: its binding message and countdown
    assert opened.pop() == source.PAGE + "#session"
    lock = entries["Verrouiller la session"]
    assert not lock.enabled()
    lock()  # a stale menu cannot lock a session that is not open
    assert source.locks == 0
    source.set(snapshot("open"))
    tray.refresh()
    assert lock.enabled() and not ecps.enabled()
    lock()
    assert source.locks == 1

    for label in ("Ouvrir la page", "Déposer un document…",
                  "Diagnostic", "Paramètres"):
        entries[label]()
    assert opened == [source.PAGE, source.PAGE + "#deposit", source.PAGE + "#diagnostics",
                      source.PAGE + "#settings"]
    entries["Quitter"]()
    assert quits == [1]


def test_a_browser_failure_does_not_break_the_tray(caplog: pytest.LogCaptureFixture) -> None:
    def no_browser(url: str) -> bool:
        raise OSError("no browser")

    tray = Tray(ScriptedSource(snapshot()), quit=lambda: None, open_url=no_browser)
    tray.open_page("diagnostics")
    assert "opening the page failed (#diagnostics)" in caplog.text
    assert "token" not in caplog.text  # the page URL carries the user's token
