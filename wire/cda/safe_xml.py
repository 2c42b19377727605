"""Parsing XML that comes from outside (a CDA to deposit, a CDA received): no DTD, no entity,
no network, bounded size and depth.

A CDA R2 never needs a DTD (the CI-SIS requires UTF-8 and validates against the XSD and
schematrons), so the parser refuses any document type declaration outright instead of
parsing it safely: that closes entity expansion ("billion laughs"), external entities and
external DTDs in one rule, each with its own code so a test can tell them apart. libxml2 is
still configured safe underneath (no entity substitution, no DTD loading, no network, no
huge trees), in case a declaration ever slipped past the scan.
"""

from __future__ import annotations

import re

from lxml import etree

from .errors import CdaError

# The host's document limit is a setting (DOMAIN.md); this is the ceiling for parsing a CDA in
# memory: a 20 MB PDF in base64 is 27 MB of text.
MAX_XML_BYTES = 64 * 1024 * 1024

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_EXTERNAL = re.compile(rb"\b(?:SYSTEM|PUBLIC)\s*[\"']", re.IGNORECASE)
_ENCODING = re.compile(rb"""^<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _parser() -> etree.XMLParser:
    # One per call: lxml parsers are not thread-safe, and the host parses in worker threads.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_pis=False,
                           collect_ids=False)


def check_declarations(data: bytes) -> None:
    """Refuse a document type declaration, naming the attack it carries."""
    match = _DOCTYPE.search(data)
    if match is None:
        return
    declaration = data[match.start():match.start() + 64 * 1024]
    if _ENTITY.search(declaration):
        if _EXTERNAL.search(declaration):
            raise CdaError("xml-external-entity",
                           "Entité externe refusée / external entity refused (XXE)")
        raise CdaError("xml-entity-expansion",
                       "Déclaration d'entité refusée / entity declaration refused (entity "
                       "expansion, « billion laughs »)")
    if _EXTERNAL.search(declaration):
        raise CdaError("xml-external-dtd", "DTD externe refusée / external DTD refused")
    raise CdaError("xml-dtd", "Déclaration DOCTYPE refusée / a CDA document has no DOCTYPE")


def parse(data: bytes, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """The root element of ``data``, parsed safely; `CdaError` for anything refused."""
    if not isinstance(data, bytes | bytearray):
        raise CdaError("xml-not-bytes", "XML attendu en octets / XML bytes expected")
    if len(data) > max_bytes:
        raise CdaError("xml-too-large", f"Document XML trop volumineux ({len(data)} octets, "
                       f"maximum {max_bytes}) / XML document too large")
    data = bytes(data)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and data[1:2] == b"\x00"):
        raise CdaError("xml-encoding", "Encodage UTF-8 obligatoire / UTF-8 is required (CI-SIS)")
    declared = _ENCODING.match(data.lstrip(b"\xef\xbb\xbf"))
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise CdaError("xml-encoding", "Encodage UTF-8 obligatoire / UTF-8 is required (CI-SIS)")
    check_declarations(data)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        # libxml2's message names the line and the fault, never the content around it.
        raise CdaError("xml-malformed", f"XML mal formé / malformed XML: {str(error)[:200]}"
                       ) from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise CdaError("xml-dtd", "Déclaration DOCTYPE refusée / a CDA document has no DOCTYPE")
    return root
