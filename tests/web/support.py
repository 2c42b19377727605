"""Helpers of the page tests: screenshots and what the host stored (read from its SQLite)."""

from __future__ import annotations

import contextlib
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tests.live import LiveWorld

T = TypeVar("T")
ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts"


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot: tests/artefacts/web-<name>.png."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"web-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def host_rows(world: LiveWorld, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(world.host.db()) as db:
        return db.execute(sql, params).fetchall()


def dossier(world: LiveWorld, ins: str) -> dict[str, Any] | None:
    """The host's dossier row for ``ins`` (status, emergency consents, creator), or None."""
    rows = host_rows(world, "SELECT status, consent_break_the_glass, consent_regulation_centre,"
                            " consent_emergency_sees_masked, created_by FROM dossiers "
                            "WHERE ins = ?", ins)
    if not rows:
        return None
    status, btg, regulation, masked, by = rows[0]
    return {"status": status, "breakTheGlass": bool(btg), "regulationCentre": bool(regulation),
            "emergencySeesMasked": bool(masked), "createdBy": by}


def authorization(world: LiveWorld, ins: str, id_nat_ps: str) -> str | None:
    """The status of ``id_nat_ps``'s authorization on ``ins`` (valid, revoked...), or None."""
    rows = host_rows(world, "SELECT status FROM authorizations WHERE ins = ? AND id_nat_ps = ?",
                     ins, id_nat_ps)
    return rows[0][0] if rows else None


def document_flags(world: LiveWorld, ins: str, title: str) -> dict[str, Any] | None:
    """The current document titled ``title`` as the host holds it, or None."""
    rows = host_rows(world, "SELECT type_code, masked, invisible_to_patient, mime_type, "
                            "author_id FROM documents WHERE ins = ? AND title = ? AND "
                            "status = 'current'", ins, title)
    if not rows:
        return None
    type_code, masked, invisible, mime, author = rows[0]
    return {"typeCode": type_code, "masked": bool(masked), "invisibleToPatient": bool(invisible),
            "mimeType": mime, "author": author}


def access_log(world: LiveWorld, ins: str, actor: str) -> list[tuple[Any, ...]]:
    """(action, mode, justification, outcome) of ``actor``'s accesses to ``ins``, in order."""
    return host_rows(world, "SELECT action, mode, justification, outcome FROM access_log "
                            "WHERE ins = ? AND actor_id = ? ORDER BY at", ins, actor)


def eventually(probe: Callable[[], T], timeout: float = 15.0) -> T:
    """``probe()``'s first truthy answer (polled: the host's database, a test helper only)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"never true: {probe}"
        time.sleep(0.05)


def unlock(page: Any, pin: str = "1234") -> None:
    """Type the PIN in the page and wait for the open session."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Session").click()
    field = page.get_by_label("Code porteur")
    field.fill(pin)
    page.get_by_role("button", name="Ouvrir la session").click()
    # A card with several practice situations asks for one after the PIN (the first time).
    opened = page.locator("#sb-session").filter(has_text="Ouverte")
    choose = page.locator("#situation-choose:visible")
    expect(opened.or_(choose).first).to_be_visible()
    if choose.count():
        choose.get_by_role("button").first.click()
    expect(page.locator("#sb-session")).to_contain_text("Ouverte")


@contextlib.contextmanager
def host_frozen(world: LiveWorld) -> Iterator[None]:
    """The host process stopped (SIGSTOP) for the block: its port still accepts connections
    (the kernel completes them), nothing answers. SIGCONT at the end, whatever happens."""
    process = world.host.process
    assert process is not None, "the host is not running"
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


def waited_seconds(line: Any) -> int:
    """N in a waiting line's "— depuis N s" (the line must be on screen)."""
    text = line.inner_text()
    found = re.search(r"depuis (\d+) s", text)
    assert found, f"no time in {text!r}"
    return int(found.group(1))


def record_waits(page: Any) -> None:
    """From now on, every waiting line and outcome the page shows is kept in the page
    (``waits_seen``), even one that goes away before the test looks."""
    page.evaluate("""() => {
        window.__waitsSeen = [];
        new MutationObserver((changes) => {
            for (const change of changes) {
                for (const node of change.addedNodes) {
                    window.__waitsSeen.push(node.textContent);
                }
            }
        }).observe(document.getElementById('waits'), {childList: true, subtree: true});
    }""")


def waits_seen(page: Any) -> list[str]:
    """What ``record_waits`` saw appear, in order."""
    return [str(text) for text in page.evaluate("window.__waitsSeen")]


def page_on_qualified_patient(open_page: Callable[..., Any], live: LiveWorld, insert_card: Any,
                              profile: str) -> tuple[Any, dict[str, Any]]:
    """``profile``'s CPS and the single Vitale inserted, the page opened and the session
    unlocked; the patient's DMP created if absent and her identity qualifiée (through the
    agent's API, as a user does), so that deposits are allowed. The page and the patient
    (``ins``, ``insOid``, names, birth date)."""
    from cardreader.virtual.vitale import VirtualVitale
    from tests.live import qualify

    insert_card(live.cps(profile), slot=0)
    insert_card(VirtualVitale.from_profile("single"), slot=1)
    page = open_page()
    unlock(page)
    with live.agent.client() as api:
        live.agent.wait_for(lambda s: (s["patient"] or {}).get("state") == "ready")
        if api.get("/api/status").json()["patient"]["dmp"]["status"] == "absent":
            assert api.post("/api/dmp", json={"consent": True}).status_code == 201
        qualify(api)
        patient: dict[str, Any] = api.get("/api/status").json()["patient"]["patient"]
    return page, patient
