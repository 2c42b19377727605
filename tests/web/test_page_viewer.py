"""The viewer and the dossier's sections in Chromium (docs/cda-viewer.md).

- What the agent renders of a CDA level 3 (our XSLT, sanitised) shown in the page's own
  sandboxed frame under the page's real CSP: its stylesheet loads, its embedded image shows,
  nothing is blocked or run (the page reports any CSP violation as a failure). Runs in CI.
- The VSM, CR-BIO and vaccination note of the CI-SIS deposited for the live patient, then
  opened in the viewer and read into the summary, each item opening its document. Needs an
  agent whose deposit path carries CDA (issue 15, the deposit slice; without the CI-SIS files
  it runs in its optional mode): skipped until then, with the reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from agent.core.cda_view import view
from tests.agent.test_cda_view import hostile_vsm
from tests.cda_support import CR_BIO, VAC_NOTE, VSM, for_patient
from tests.conftest import Insert
from tests.live import LiveWorld
from tests.web.support import page_on_qualified_patient, shot

pytestmark = [pytest.mark.browser, pytest.mark.pcsc]

OpenPage = Callable[..., Any]


def show_in_viewer(page: Any, body: bytes, title: str) -> Any:
    """The rendered HTML in the viewer panel as viewer.js puts it (srcdoc, sandboxed
    without scripts)."""
    page.evaluate("""([html, title]) => {
        const frame = document.createElement('iframe');
        frame.setAttribute('sandbox', 'allow-same-origin');
        frame.title = title;
        frame.srcdoc = html;
        document.getElementById('viewer-frame').replaceChildren(frame);
        document.getElementById('viewer').hidden = false;
    }""", [body.decode("utf-8"), title])
    handle = page.locator("#viewer-frame iframe").element_handle()
    frame = handle.content_frame()
    frame.wait_for_load_state()
    return frame


def test_a_rendered_cda_shows_in_the_page_sandbox_under_its_csp(
        open_page: OpenPage) -> None:
    page = open_page()
    expect(page.locator("#statusbar")).to_be_visible()
    frame = show_in_viewer(page, view(hostile_vsm(), "text/xml", "VSM").body, "VSM")
    expect(frame.locator("h1")).to_have_text("Synthèse Médicale")
    # Our stylesheet applies (same origin, allowed by the page's CSP)...
    expect(frame.locator(".cda-header dt").first).to_have_css("font-weight", "600")
    # ...the image the document carries shows (a data: PNG), the others are only named.
    image = frame.locator("img.cda-image")
    expect(image).to_have_count(1)
    assert image.evaluate("i => i.complete && i.naturalWidth") == 1
    expect(frame.locator("body")).to_contain_text("Image non affichée")
    # A sandboxed frame without scripts: no script ran, none could.
    assert page.evaluate("[...document.querySelector('#viewer-frame iframe').sandbox]") == [
        "allow-same-origin"]
    shot(page, "viewer-hostile-vsm")


def test_cisis_documents_open_in_the_viewer_and_fill_the_summary(
        open_page: OpenPage, live: LiveWorld, insert_card: Insert) -> None:
    from wire import cda

    page, patient = page_on_qualified_patient(open_page, live, insert_card, "gp")
    with live.agent.client() as api:
        for path in (VSM, CR_BIO, VAC_NOTE):
            example = for_patient(
                path.read_bytes(), patient["ins"], patient["insOid"])
            type_code = cda.deposit_metadata(cda.read(example).header).type_code
            answer = api.post("/api/deposits", params={"typeCode": type_code},
                              content=example, headers={"content-type": "text/xml"},
                              timeout=120)
            assert answer.status_code == 202, answer.text
    live.agent.wait_for(lambda s: s["outbox"]["pending"] == 0, timeout=120)

    page.get_by_role("tab", name="Dossier").click()
    rows = page.locator("#documents-body tr")
    expect(rows).to_have_count(3)
    with page.expect_response(re.compile(r"/api/documents/.+/view$")) as answer:
        rows.filter(has_text="Synthèse Médicale").get_by_role("button", name="Ouvrir").click()
    assert answer.value.headers["x-view-kind"] == "html"
    assert answer.value.headers["x-view-volet"] == "VSM"
    frame = page.locator("#viewer-frame iframe").element_handle().content_frame()
    expect(frame.locator("h1")).to_have_text("Synthèse Médicale")
    expect(frame.locator("body")).to_contain_text("PLAVIX")
    shot(page, "viewer-vsm")

    summary = page.locator("#dossier-sections")
    expect(summary.locator("article[data-key='allergies']")).to_contain_text("Paracétamol")
    expect(summary.locator("article[data-key='treatments']")).to_contain_text("PLAVIX")
    expect(summary.locator("article[data-key='vaccinations']")).to_contain_text("4456672")
    expect(summary.locator("article[data-key='emergencyContacts']")).to_contain_text("NESSI")
    expect(summary.locator("article[data-key='labResults'] img.lab-plot")).to_have_count(2)
    expect(summary.locator("article[data-key='bloodGroup']")).to_contain_text(
        "Rien de consigné")
    shot(page, "summary")
    # An item opens its document in the viewer.
    summary.locator("article[data-key='vaccinations'] button.source").first.click()
    expect(page.locator("#viewer-title")).to_have_text(re.compile("vaccination", re.I))
    expect(page.locator("#viewer-frame iframe")).to_have_count(1)
