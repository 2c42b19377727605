"""The viewer's rendering (agent.core.cda_view) on the CI-SIS examples of each volet, and
what it refuses: a hostile CDA never brings a script, an event attribute, a frame or an
outside address into the HTML; XML bombs, a file lying about its type, an unknown volet and
an oversized image are refused with their own code, nothing rendered."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from lxml import etree, html

from agent.core import cda_view
from agent.core.cda_view import ViewRefused, view, view_file
from tests.cda_support import CR_BIO, LEVEL_1, VAC_NOTE, VSM
from tests.unit.test_cda_xml_safety import BILLION_LAUGHS, external_entity

NS = "urn:hl7-org:v3"
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def shown(data: bytes, mime: str = "text/xml") -> cda_view.Viewable:
    return view(data, mime, "titre du registre")


def page_of(body: bytes) -> html.HtmlElement:
    return html.fromstring(body)


def texts(body: bytes) -> str:
    return " ".join(" ".join(page_of(body).itertext()).split())


def test_a_vsm_is_rendered_with_its_header_and_every_section() -> None:
    result = shown(VSM.read_bytes())
    assert (result.kind, result.volet) == ("html", "VSM")
    assert result.media_type.startswith("text/html")
    text = texts(result.body)
    assert "Synthèse Médicale" in text
    assert "279035121518989" in text  # the INS in the header
    assert "Né(e) le 28/03/1979" in text
    assert "NESSI Sophie" in text  # the person to contact, from the header
    for section in ("Pathologie en cours", "Antécédents médicaux", "Allergies et "
                    "hypersensibilités", "Traitements"):
        assert section in text
    assert "Accident ischémique cérébral transitoire" in text
    assert "PLAVIX" in text
    # Our stylesheet, from the agent's own origin: the one resource the page loads.
    page = page_of(result.body)
    assert [link.get("href") for link in page.iter("link")] == [cda_view.STYLESHEET]


def test_a_lab_report_shows_its_results_table() -> None:
    result = shown(CR_BIO.read_bytes())
    assert result.volet == "CR-BIO"
    text = texts(result.body)
    assert "BIOCHIMIE" in text
    assert "TSH" in text or "Thyréostimuline" in text
    assert page_of(result.body).xpath("//table//td")


def test_a_vaccination_note_shows_the_vaccine_and_its_lot() -> None:
    result = shown(VAC_NOTE.read_bytes())
    assert result.volet == "VAC-NOTE"
    text = texts(result.body)
    assert "Note de vaccination" in text
    assert "4456672" in text


def test_a_level_1_document_shows_its_pdf() -> None:
    root = etree.fromstring(LEVEL_1.read_bytes())
    encoded = root.find(f".//{{{NS}}}nonXMLBody/{{{NS}}}text").text
    result = shown(LEVEL_1.read_bytes())
    assert (result.kind, result.media_type, result.volet) == ("pdf", "application/pdf",
                                                              "CDA-R2-N1")
    assert result.body == base64.b64decode("".join(encoded.split()))
    assert result.body.startswith(b"%PDF-")
    assert result.title == "Compte rendu d'examens biologiques"


def with_body(content: bytes, media_type: str = "application/pdf") -> bytes:
    root = etree.fromstring(LEVEL_1.read_bytes())
    text = root.find(f".//{{{NS}}}nonXMLBody/{{{NS}}}text")
    text.text = base64.b64encode(content).decode()
    text.set("mediaType", media_type)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def refusal(data: bytes, mime: str = "text/xml") -> ViewRefused:
    with pytest.raises(ViewRefused) as caught:
        view(data, mime, "x")
    return caught.value


def test_a_level_1_body_lying_about_its_type_is_refused() -> None:
    error = refusal(with_body(b"<html><script>alert(1)</script></html>"))
    assert error.code == "view-type-mismatch"
    assert "application/pdf" in str(error)


def test_a_bare_pdf_that_is_not_a_pdf_is_refused() -> None:
    assert refusal(b"MZ\x90\x00 not a pdf", "application/pdf").code == "view-type-mismatch"


def test_a_level_1_text_body_is_shown_as_text() -> None:
    result = shown(with_body("Lettre de liaison — Mme Durand".encode(), "text/plain"))
    assert (result.kind, result.body.decode()) == ("text", "Lettre de liaison — Mme Durand")


@pytest.mark.parametrize(("data", "code"), [
    (BILLION_LAUGHS, "xml-entity-expansion"),
    (b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>", "xml-malformed"),
])
def test_xml_bombs_and_malformed_xml_are_refused(data: bytes, code: str) -> None:
    error = refusal(data)
    assert error.code == code
    assert str(error).startswith("Document non affiché")
    assert " / " not in str(error)  # the wire's "français / English": its French only


def test_an_external_entity_is_refused_and_nothing_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("NIR-SECRET")
    error = refusal(external_entity(secret))
    assert error.code == "xml-external-entity"
    assert "NIR-SECRET" not in str(error)


def test_an_unknown_volet_is_refused() -> None:
    data = VSM.read_bytes().replace(b'root="1.2.250.1.213.1.1.1.13"', b'root="1.2.3.4.5"')
    assert refusal(data).code == "cda-unknown-volet"


HOSTILE = """
<text>
  <paragraph onclick="steal()" style="background:url(https://evil.example/x)">Texte
    <script>alert('cda')</script>
    <x:script xmlns:x="http://www.w3.org/1999/xhtml">alert('xhtml')</x:script>
    <x:iframe xmlns:x="http://www.w3.org/1999/xhtml" src="https://evil.example/frame"/>
    <x:img xmlns:x="http://www.w3.org/1999/xhtml" src="https://evil.example/pixel.png"/>
    <x:a xmlns:x="http://www.w3.org/1999/xhtml" href="javascript:alert(1)">x</x:a>
  </paragraph>
  <content ID="ok-1" styleCode="Bold onmouseover=alert(1)" onmouseover="alert(2)">gras</content>
  <linkHtml href="javascript:alert(3)">lien js</linkHtml>
  <linkHtml href="https://evil.example/page">lien externe</linkHtml>
  <linkHtml href="#ok-1">lien interne</linkHtml>
  <linkHtml href="#x&quot; onclick=&quot;alert(4)">lien piégé</linkHtml>
  <table onload="alert(5)" border="1"><tbody><tr>
    <td colspan="2&quot; onclick=&quot;alert(6)" rowspan="3">cellule</td>
  </tr></tbody></table>
  <renderMultiMedia referencedObject="remote"/>
  <renderMultiMedia referencedObject="svg"/>
  <renderMultiMedia referencedObject="png"><caption>radio</caption></renderMultiMedia>
</text>
<entry><observationMedia ID="remote"><value mediaType="image/png" representation="B64">
  <reference value="https://evil.example/remote.png"/></value></observationMedia></entry>
<entry><observationMedia ID="svg"><value mediaType="image/svg+xml" representation="B64">
  {svg}</value></observationMedia></entry>
<entry><observationMedia ID="png"><value mediaType="image/png" representation="B64">{png}</value>
  </observationMedia></entry>
"""


def hostile_vsm() -> bytes:
    root = etree.fromstring(VSM.read_bytes())
    section = root.find(f".//{{{NS}}}section")
    for old in section.findall(f"{{{NS}}}text"):
        section.remove(old)
    svg = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(7)'/>")
    fragment = etree.fromstring(
        f'<w xmlns="{NS}">' + HOSTILE.format(svg=svg.decode(),
                                             png=base64.b64encode(PNG_1PX).decode()) + "</w>")
    position = list(section).index(section.find(f"{{{NS}}}title")) + 1
    for offset, child in enumerate(fragment):
        section.insert(position + offset, child)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def test_a_hostile_cda_brings_no_script_frame_event_or_outside_address() -> None:
    body = shown(hostile_vsm()).body
    page = page_of(body)
    tags = {node.tag for node in page.iter() if isinstance(node.tag, str)}
    assert not tags & {"script", "iframe", "object", "embed", "style", "svg", "form", "base"}
    for node in page.iter():
        if not isinstance(node.tag, str):
            continue
        for name, value in node.attrib.items():
            assert not name.lower().startswith("on"), (node.tag, name)
            assert name != "style"
            assert "javascript:" not in value.lower()
            assert "evil.example" not in value
            if name == "href" and node.tag == "a":
                assert re.fullmatch(r"#[A-Za-z0-9._-]+", value)
            if name == "src":
                assert value.startswith("data:image/png;base64,")
    assert b"<script" not in body.lower()
    text = texts(body)
    # The words stay, as text: nothing of the document is lost silently.
    assert "lien externe" in text and "lien js" in text and "gras" in text
    # An internal link is kept; the image the document carries is shown, the remote one and
    # the SVG (which could carry a script) are named, not fetched.
    assert page.xpath("//a[@href='#ok-1']")
    assert len(page.xpath("//img")) == 1
    assert "Image non affichée" in text
    assert page.xpath("//td[@rowspan='3' and not(@colspan)]")
    assert page.xpath("//span[@class='b']")  # styleCode Bold, nothing more


def test_the_sanitiser_drops_what_the_stylesheet_never_makes() -> None:
    # The second line of defence, on HTML the stylesheet could not produce.
    page = html.fromstring(
        "<html><head><base href='https://evil.example/'><meta http-equiv='refresh' "
        "content='0;url=https://evil.example/'></head><body><p onclick='x()'>a<script>b"
        "</script><a href='https://evil.example/'>c</a><img src='https://evil.example/i.png'>"
        "<object data='x.swf'></object><math><mi>d</mi></math><blink>e</blink></p></body>"
        "</html>")
    cda_view.sanitise(page)
    out = html.tostring(page).decode()
    assert "evil.example" not in out and "onclick" not in out and "script" not in out
    assert "object" not in out and "math" not in out and "blink" not in out
    assert " ".join(" ".join(page.itertext()).split()) == "a c e"


def test_images_jpeg_and_png_shown_tiff_converted() -> None:
    from PIL import Image

    tiff = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(tiff, "TIFF")
    result = view_file(tiff.getvalue(), "image/tiff", "radio")
    assert (result.kind, result.media_type) == ("image", "image/png")
    with Image.open(io.BytesIO(result.body)) as converted:
        assert converted.size == (20, 10)
    assert view_file(PNG_1PX, "image/png", "x").body == PNG_1PX


def test_an_oversized_image_is_refused() -> None:
    from PIL import Image

    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, "PNG")  # 48 Mpx in a few kB
    with pytest.raises(ViewRefused) as caught:
        view_file(huge.getvalue(), "image/png", "x")
    assert caught.value.code == "view-image-too-large"
    assert "8000 × 6000" in str(caught.value)
    assert "trop grande" in str(caught.value)


def test_rtf_is_shown_as_text() -> None:
    rtf = (rb"{\rtf1\ansi{\fonttbl{\f0 Arial;}}{\colortbl;\red0\green0\blue0;}"
           rb"{\*\generator Traitement 1.0;}\f0 Bonjour\par Fran\'e7ois \u8364? 12\par}")
    result = view_file(rtf, "text/rtf", "lettre")
    assert result.kind == "text"
    assert result.body.decode() == "Bonjour\nFrançois € 12\n"
    with pytest.raises(ViewRefused):
        view_file(b"%PDF-1.4 pretending", "text/rtf", "x")


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ViewRefused) as caught:
        view(b"PK\x03\x04", "application/zip", "x")
    assert caught.value.code == "view-unsupported-type"
