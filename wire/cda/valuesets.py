"""CI-SIS value sets (JDV) as the schematrons read them.

The value sets of ansforge/TestContenuCDA-3-0 `jeuxDeValeurs/` are IHE SVS files
(``RetrieveValueSetResponse/ValueSet/ConceptList/Concept``); the art-decor generated header
schematron reads another shape (``valueSets/valueSet/conceptList/concept``). `svs_to_art_decor`
writes the second from the first, for the one set the repository lacks in that shape.
"""

from __future__ import annotations

from lxml import etree

SVS = "urn:ihe:iti:svs:2008"
HL7 = "urn:hl7-org:v3"


def codes(svs: bytes) -> list[tuple[str, str, str]]:
    """(code, codeSystem, displayName) of every concept of an SVS value set."""
    root = etree.fromstring(svs, etree.XMLParser(resolve_entities=False, no_network=True,
                                                 load_dtd=False))
    return [(c.get("code", ""), c.get("codeSystem", ""), c.get("displayName", ""))
            for c in root.iter(f"{{{SVS}}}Concept")]


def svs_to_art_decor(svs: bytes) -> bytes:
    root = etree.fromstring(svs, etree.XMLParser(resolve_entities=False, no_network=True,
                                                 load_dtd=False))
    source = root.find(f"{{{SVS}}}ValueSet")
    if source is None:
        raise ValueError("no SVS ValueSet")
    # A prefix for the root: its valueSet children are in no namespace, as the schematron reads
    out = etree.Element(f"{{{HL7}}}valueSets", nsmap={"hl7": HL7})
    value_set = etree.SubElement(out, "valueSet", id=source.get("id", ""),
                                 name=source.get("displayName", "").removesuffix(".tabs"),
                                 statusCode="final")
    concepts = etree.SubElement(value_set, "conceptList")
    for code, system, display in codes(svs):
        etree.SubElement(concepts, "concept", code=code, codeSystem=system,
                         displayName=display, level="0", type="L")
    return bytes(etree.tostring(out, xml_declaration=True, encoding="UTF-8", pretty_print=True))
