"""The CDA R2 XML schema check (the CI-SIS's CDA_extended.xsd, shipped by
ansforge/TestContenuCDA-3-0 `infrastructure/cda/`, fetched by `scripts/cisis-data`)."""

from __future__ import annotations

import threading

from lxml import etree

from . import schematron
from .errors import CdaError

SCHEMA = "infrastructure/cda/CDA_extended.xsd"

_lock = threading.Lock()
_schema: etree.XMLSchema | None = None


def _load() -> etree.XMLSchema:
    global _schema
    if _schema is None:
        path = schematron.data_dir() / SCHEMA
        if not path.is_file():
            raise CdaError("cisis-data-missing", "Schéma CDA du CI-SIS absent (scripts/cisis-data)"
                           f" / the CI-SIS CDA schema is not installed: {SCHEMA}")
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        _schema = etree.XMLSchema(etree.parse(str(path), parser))
    return _schema


def check(root: etree._Element) -> None:
    """Refuse a document that does not follow the CDA R2 schema ("cda-xsd")."""
    with _lock:  # an XMLSchema keeps its error log: one validation at a time
        schema = _load()
        if schema.validate(root.getroottree()):
            return
        error = schema.error_log.last_error
    where = f"ligne / line {error.line}" if error is not None else ""
    raise CdaError("cda-xsd", f"Non conforme au schéma CDA R2 / not valid against the CDA R2 "
                   f"schema: {(error.message if error is not None else '')[:300]} ({where})",
                   rule="CDA_extended.xsd", location=error.path if error is not None else None)
