"""What the viewer shows of a document (docs/cda-viewer.md): a CDA level 1 its file (the PDF
decoded from its base64 body), a CDA level 3 our own XSLT's HTML (sanitised), an image (JPEG
or PNG as it is, TIFF converted to PNG), text, RTF as text.

Everything is checked before anything is shown: the XML parsed by `wire.cda.safe_xml` (no
DTD, no entity, no network), the volet known, a file's first bytes matching the type it
claims, an image's size bounded. A refusal is an `AgentError` with a specific code and
nothing rendered.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lxml import etree, html

from agent.errors import AgentError
from agent.i18n import _

# A level 1 body or a stand-alone image past these is refused, not shown.
MAX_IMAGE_BYTES = 20 << 20
MAX_IMAGE_PIXELS = 40_000_000  # 40 Mpx: a large scan; past it a decoder is a memory bomb
MAX_HTML_IMAGES_BYTES = 20 << 20  # the images a level 3 document carries, in total
CDA_TYPES = {"text/xml", "application/xml", "application/hl7-v3+xml", "application/cda+xml"}
STYLESHEET = "/static/cda-view.css"  # the viewer's CSS, same origin (the page's CSP allows it)
CSP = ("sandbox; default-src 'none'; img-src data:; style-src 'self'; "
       "form-action 'none'; base-uri 'none'")

_MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


@dataclass(frozen=True)
class Viewable:
    """What the page shows: ``kind`` is html, pdf, image or text; ``body`` in ``media_type``."""

    kind: str
    media_type: str
    body: bytes
    title: str
    volet: str | None = None  # the CDA volet, when the document is a CDA


class ViewRefused(AgentError):
    status = 422


def refuse(code: str, message: str) -> ViewRefused:
    return ViewRefused(message, code=code)


def view(content: bytes, mime_type: str, title: str) -> Viewable:
    """What to show of ``content`` (declared ``mime_type``); `ViewRefused` otherwise."""
    mime = mime_type.split(";")[0].strip().lower()
    if mime in CDA_TYPES:
        return view_cda(content, title)
    return view_file(content, mime, title)


def view_cda(content: bytes, title: str) -> Viewable:
    from wire import cda
    from wire.cda.header import non_xml_body

    try:
        document = cda.read(content)
        if document.header.level == 1:
            media, body = non_xml_body(document.root, max_bytes=cda.MAX_XML_BYTES)
            shown = view_file(body, media.lower(), document.header.title or title)
            return Viewable(shown.kind, shown.media_type, shown.body, shown.title,
                            document.volet.name)
    except cda.CdaError as error:
        from agent.client.refusals import host_text  # the wire's "français / English"

        raise refuse(error.code, _("Document not shown: {reason}").format(
            reason=host_text(error.message))) from None
    return Viewable("html", "text/html; charset=utf-8", render_level3(document.root),
                    document.header.title or title, document.volet.name)


def view_file(content: bytes, mime: str, title: str) -> Viewable:
    """A file (a level 1 body or a document deposited as a file) checked against its type."""
    magic = _MAGIC.get(mime)
    if magic is not None and not content.startswith(magic):
        raise refuse("view-type-mismatch", _(
            "Document not shown: it claims to be {type} but its content is not").format(
                type=mime))
    if mime == "application/pdf":
        return Viewable("pdf", mime, content, title)
    if mime in ("image/jpeg", "image/png", "image/tiff"):
        return Viewable("image", *_image(content, mime), title)
    if mime == "text/plain":
        return Viewable("text", "text/plain; charset=utf-8", _text(content).encode(), title)
    if mime in ("text/rtf", "application/rtf"):
        return Viewable("text", "text/plain; charset=utf-8", rtf_text(content).encode(), title)
    raise refuse("view-unsupported-type", _(
        "Document not shown: the type {type} cannot be displayed").format(type=mime or "?"))


def _text(content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")  # what French text files often are


def _image(content: bytes, mime: str) -> tuple[str, bytes]:
    """(media type, bytes) to show: JPEG and PNG as they are once their size is checked, TIFF
    converted to PNG (browsers do not show TIFF)."""
    from PIL import Image

    if len(content) > MAX_IMAGE_BYTES:
        raise _too_large(_("{size} MB").format(size=len(content) >> 20))
    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _too_large(f"{width} × {height} px")
            if mime != "image/tiff":
                return mime, content
            image.seek(0)  # the first page of a multi-page TIFF
            out = io.BytesIO()
            converted = image if image.mode in ("1", "L", "RGB", "RGBA") else image.convert(
                "RGB")
            converted.save(out, "PNG")
            return "image/png", out.getvalue()
    except Image.DecompressionBombError:
        raise _too_large(_("too many pixels")) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise refuse("view-image-unreadable", _(
            "Document not shown: the image cannot be read ({reason})").format(
                reason=str(error)[:120])) from None


def _too_large(size: str) -> ViewRefused:
    return refuse("view-image-too-large", _(
        "Image not shown: too large ({size}; at most {mb} MB and {mpx} megapixels)").format(
            size=size, mb=MAX_IMAGE_BYTES >> 20, mpx=MAX_IMAGE_PIXELS // 1_000_000))


# -- RTF as text -------------------------------------------------------------------------
# Enough of RTF 1.x to read a letter: groups that are not text (font and colour tables,
# pictures, \*\destinations) skipped, \par and \line as new lines, \'hh and \uN as
# characters; the rest of the control words dropped.
_RTF_TOKEN = re.compile(rb"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|([^\\{}]+)",
                        re.S)
_RTF_SKIP = {b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"object",
             b"header", b"footer", b"listtable", b"listoverridetable", b"themedata",
             b"datastore", b"latentstyles", b"generator", b"xmlnstbl", b"rsidtbl"}


def rtf_text(content: bytes) -> str:
    if not content.lstrip().startswith(b"{\\rtf"):
        raise refuse("view-type-mismatch", _(
            "Document not shown: it claims to be {type} but its content is not").format(
                type="RTF"))
    out: list[str] = []
    stack: list[bool] = []
    skipping = False
    skip_next_chars = 0  # \ucN: the ANSI fallback characters after a \uN
    uc = 1
    fresh_group = False
    for word, number, hexa, symbol, brace, text in (
            m.groups() for m in _RTF_TOKEN.finditer(content)):
        if brace == b"{":
            stack.append(skipping)
            fresh_group = True
            continue
        if brace == b"}":
            skipping = stack.pop() if stack else False
            continue
        starts_group, fresh_group = fresh_group, False
        if symbol == b"*" and starts_group:
            skipping = True
            continue
        if word is not None:
            if word in _RTF_SKIP:
                skipping = True
            elif skipping:
                pass
            elif word in (b"par", b"line", b"sect", b"page"):
                out.append("\n")
            elif word == b"tab":
                out.append("\t")
            elif word == b"uc" and number is not None:
                uc = int(number)
            elif word == b"u" and number is not None:
                code = int(number)
                out.append(chr(code + 65536 if code < 0 else code))
                skip_next_chars = uc
            continue
        if skipping:
            continue
        if hexa is not None:
            if skip_next_chars:
                skip_next_chars -= 1
            else:
                out.append(bytes([int(hexa, 16)]).decode("cp1252", errors="replace"))
        elif symbol is not None:
            if symbol in (b"\\", b"{", b"}"):
                out.append(symbol.decode())
            elif symbol == b"~":
                out.append("\u00a0")
        elif text is not None:
            chunk = text.replace(b"\r", b"").replace(b"\n", b"").decode("cp1252",
                                                                         errors="replace")
            if skip_next_chars:
                dropped = min(skip_next_chars, len(chunk))
                chunk, skip_next_chars = chunk[dropped:], skip_next_chars - dropped
            out.append(chunk)
    return "".join(out).strip() + "\n"


# -- level 3: our XSLT, then the sanitiser -----------------------------------------------
_transform: etree.XSLT | None = None


def _stylesheet() -> etree.XSLT:
    global _transform
    if _transform is None:
        source = (resources.files("agent.core") / "cda_view.xsl").read_bytes()
        # No file, no network for the stylesheet at run time (document(), xsl:include...).
        _transform = etree.XSLT(etree.fromstring(source),
                                access_control=etree.XSLTAccessControl.DENY_ALL)
    return _transform


def _labels() -> dict[str, Any]:
    words = {
        "l-patient": _("Patient"), "l-born": _("Born on"), "l-ins": _("INS"),
        "l-author": _("Author"), "l-date": _("Date"), "l-custodian": _("Custodian"),
        "l-authenticator": _("Legal authenticator"), "l-type": _("Type"),
        "l-contact": _("Emergency contact"), "l-image-omitted": _("Image not shown"),
        "l-pdf-copy": _("PDF copy attached to the document"), "l-link": _("link"),
    }
    return {name: etree.XSLT.strparam(text) for name, text in words.items()}


def render_level3(root: etree._Element) -> bytes:
    """A parsed level 3 ClinicalDocument as a whole HTML page (bytes, UTF-8)."""
    transform = _stylesheet()
    try:
        result = transform(root, **_labels())
    except etree.XSLTApplyError as error:
        raise refuse("view-render-failed", _("Document not shown: rendering failed ({reason})"
                                             ).format(reason=str(error)[:120])) from None
    page = html.fromstring(str(result))
    sanitise(page)
    head = page.find("head")
    if head is not None:
        head.append(etree.Element("link", rel="stylesheet", href=STYLESHEET))
    body: bytes = html.tostring(page, encoding="utf-8", method="html")
    return b"<!DOCTYPE html>\n" + body


# What the rendering may hold, whatever the document said (the XSLT only ever builds these;
# this is the second line, checked on the HTML itself).
ALLOWED_TAGS = frozenset({
    "html", "head", "meta", "title", "body", "header", "main", "section", "h1", "h2", "h3",
    "h4", "h5", "h6", "p", "span", "div", "dl", "dt", "dd", "ul", "ol", "li", "table",
    "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "br", "sub", "sup", "small", "a",
    "img"})
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "frame", "frameset", "object",
                                  "embed", "applet", "noscript", "template", "svg", "math",
                                  "link", "base", "form", "textarea", "select", "button"})
ALLOWED_ATTRIBUTES = frozenset({"class", "id", "colspan", "rowspan", "href", "src", "alt",
                                "lang", "charset"})
_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_DATA_IMAGE = re.compile(r"^data:image/(?:png|jpeg);base64,[A-Za-z0-9+/]*={0,2}$")
_NUMBER = re.compile(r"^[1-9][0-9]{0,2}$")


def sanitise(page: etree._Element) -> None:
    """Remove from ``page`` (in place) whatever is not on the lists above: elements dropped
    (with their content for the active ones), attributes dropped, a link only to an anchor
    of the document, an image only as a JPEG or PNG data: URI, their total size bounded."""
    image_bytes = 0
    for node in list(page.iter()):
        if not isinstance(node.tag, str):  # a comment or a processing instruction
            node.drop_tree()
            continue
        tag = node.tag.lower()
        if tag in DROPPED_WITH_CONTENT:
            node.drop_tree()
            continue
        if tag not in ALLOWED_TAGS:
            node.drop_tag()
            continue
        for name, value in list(node.attrib.items()):
            keep = name in ALLOWED_ATTRIBUTES
            if name == "href":
                keep = tag == "a" and value.startswith("#") and bool(_ID.match(value[1:]))
            elif name == "src":
                keep = tag == "img" and bool(_DATA_IMAGE.match(value))
                if keep:
                    image_bytes += len(value)
                    keep = image_bytes <= MAX_HTML_IMAGES_BYTES * 4 // 3
            elif name == "id":
                keep = bool(_ID.match(value))
            elif name in ("colspan", "rowspan"):
                keep = bool(_NUMBER.match(value))
            elif name == "charset":
                keep = tag == "meta" and value.lower() == "utf-8"
            elif name == "class":
                keep = bool(re.fullmatch(r"[a-z0-9 -]{1,60}", value))
            if not keep:
                del node.attrib[name]
        if (tag == "img" and "src" not in node.attrib) or (tag == "meta"
                                                         and "charset" not in node.attrib):
            node.drop_tree()
