"""The access matrix as data: document classes, document types, professions, and who may read
or write which type.

The packaged ``matrix.json`` is a plausible grid, not the official annex (which is not public
in machine form); a deployment replaces it wholesale with `load_matrix(path)`. Any file is
checked completely before use and a malformed one is refused with a `MatrixError` that names
the faulty place, so a bad replacement can never silently open or close access.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .model import PATIENT_CLASS

FORMAT = "dmp-agent/access-matrix"
VERSION = 1
CELL_VALUES = frozenset({"R", "W", "RW", "-"})
_TWO_DIGITS = re.compile(r"^[0-9]{2}$")


class MatrixError(ValueError):
    """An access-matrix file is malformed; the message says where and why."""

    def __init__(self, origin: str, where: str, problem: str) -> None:
        self.origin = origin
        self.where = where
        self.problem = problem
        super().__init__(
            f"Matrice d'accès invalide / invalid access matrix ({origin}) at {where}: {problem}"
        )


@dataclass(frozen=True)
class DocumentClass:
    code: str
    label_fr: str
    label_en: str


@dataclass(frozen=True)
class DocumentType:
    code: str
    system: str
    label_fr: str
    label_en: str
    class_code: str
    source: str


@dataclass(frozen=True)
class Profession:
    code: str
    label_fr: str
    label_en: str


@dataclass(frozen=True, eq=False)
class AccessMatrix:
    """A validated matrix. Build it with `load_matrix` or `AccessMatrix.from_json`."""

    classes: Mapping[str, DocumentClass]
    document_types: Mapping[str, DocumentType]
    professions: Mapping[str, Profession]
    grid: Mapping[str, Mapping[str, str]]
    metadata: Mapping[str, Any]
    origin: str

    def class_of(self, type_code: str) -> str | None:
        """The class a document type belongs to (ASS_X04), or None for an unknown type."""
        known = self.document_types.get(type_code)
        return known.class_code if known else None

    def can_read(self, profession: str | None, type_code: str) -> bool:
        return "R" in self._cell(profession, type_code)

    def can_write(self, profession: str | None, type_code: str) -> bool:
        return "W" in self._cell(profession, type_code)

    def _cell(self, profession: str | None, type_code: str) -> str:
        row = self.grid.get(profession or "")
        return row.get(type_code, "-") if row else "-"

    @classmethod
    def from_json(cls, text: str | bytes, origin: str = "<text>") -> AccessMatrix:
        """Parse and check a matrix; raise `MatrixError` on anything malformed."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MatrixError(origin, "(file)", f"not valid JSON: {exc}") from None
        return _Checker(origin).matrix(data)


class _Checker:
    """Walks the parsed JSON and raises at the first problem, naming its place."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, problem: str) -> MatrixError:
        return MatrixError(self.origin, where, problem)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, found {type(value).__name__}")
        return value

    def text(self, entry: dict[str, Any], key: str, where: str) -> str:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "expected a non-empty string")
        return value

    def matrix(self, data: Any) -> AccessMatrix:
        top = self.obj(data, "$")
        if top.get("format") != FORMAT:
            raise self.fail("$.format", f"expected {FORMAT!r}, found {top.get('format')!r}")
        if top.get("version") != VERSION:
            raise self.fail("$.version", f"expected {VERSION}, found {top.get('version')!r}")
        classes = self.classes(top.get("classes"))
        types = self.types(top.get("document_types"), classes)
        professions = self.professions(top.get("professions"))
        grid = self.grid(top.get("grid"), professions, types)
        metadata = self.obj(top.get("metadata", {}), "$.metadata")
        return AccessMatrix(
            classes=MappingProxyType(classes),
            document_types=MappingProxyType(types),
            professions=MappingProxyType(professions),
            grid=MappingProxyType({p: MappingProxyType(row) for p, row in grid.items()}),
            metadata=MappingProxyType(metadata),
            origin=self.origin,
        )

    def classes(self, value: Any) -> dict[str, DocumentClass]:
        section = self.obj(value, "$.classes")
        if not section:
            raise self.fail("$.classes", "no document class")
        out = {}
        for code, entry in section.items():
            where = f"$.classes[{code!r}]"
            if not _TWO_DIGITS.match(code):
                raise self.fail(where, "a class code is two digits (JDV_J57)")
            entry = self.obj(entry, where)
            out[code] = DocumentClass(
                code, self.text(entry, "label_fr", where), self.text(entry, "label_en", where)
            )
        return out

    def types(self, value: Any, classes: dict[str, DocumentClass]) -> dict[str, DocumentType]:
        section = self.obj(value, "$.document_types")
        if not section:
            raise self.fail("$.document_types", "no document type")
        out = {}
        for code, entry in section.items():
            where = f"$.document_types[{code!r}]"
            if not code.strip():
                raise self.fail(where, "empty type code")
            entry = self.obj(entry, where)
            class_code = self.text(entry, "class", where)
            if class_code not in classes:
                raise self.fail(f"{where}.class", f"unknown class {class_code!r}")
            out[code] = DocumentType(
                code=code,
                system=self.text(entry, "system", where),
                label_fr=self.text(entry, "label_fr", where),
                label_en=self.text(entry, "label_en", where),
                class_code=class_code,
                source=self.text(entry, "source", where),
            )
        return out

    def professions(self, value: Any) -> dict[str, Profession]:
        section = self.obj(value, "$.professions")
        if not section:
            raise self.fail("$.professions", "no profession")
        out = {}
        for code, entry in section.items():
            where = f"$.professions[{code!r}]"
            if not _TWO_DIGITS.match(code):
                raise self.fail(where, "a profession code is two digits (G15)")
            entry = self.obj(entry, where)
            out[code] = Profession(
                code, self.text(entry, "label_fr", where), self.text(entry, "label_en", where)
            )
        return out

    def grid(
        self,
        value: Any,
        professions: dict[str, Profession],
        types: dict[str, DocumentType],
    ) -> dict[str, dict[str, str]]:
        section = self.obj(value, "$.grid")
        # Every cell must be written out: a forgotten row or column is a mistake, not a "no".
        extra_rows = sorted(section.keys() - professions.keys())
        if extra_rows:
            raise self.fail(
                f"$.grid[{extra_rows[0]!r}]", "profession not declared in $.professions"
            )
        out = {}
        for profession in professions:
            where = f"$.grid[{profession!r}]"
            if profession not in section:
                raise self.fail(where, "missing row for this profession")
            row = self.obj(section[profession], where)
            extra_cells = sorted(row.keys() - types.keys())
            if extra_cells:
                raise self.fail(
                    f"{where}[{extra_cells[0]!r}]", "type not declared in $.document_types"
                )
            for type_code, known in types.items():
                cell_at = f"{where}[{type_code!r}]"
                if type_code not in row:
                    raise self.fail(cell_at, "missing cell")
                cell = row[type_code]
                if cell not in CELL_VALUES:
                    raise self.fail(cell_at, f"cell must be one of R, W, RW, -; found {cell!r}")
                if "W" in cell and known.class_code == PATIENT_CLASS:
                    raise self.fail(
                        cell_at, f"class {PATIENT_CLASS} is deposited by the patient only: no W"
                    )
            out[profession] = {type_code: row[type_code] for type_code in types}
        return out


def load_matrix(path: str | Path | None = None) -> AccessMatrix:
    """Load and check a matrix file; without a path, the packaged default grid."""
    if path is None:
        text = resources.files(__package__).joinpath("matrix.json").read_bytes()
        return AccessMatrix.from_json(text, "policies/matrix.json")
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise MatrixError(str(path), "(file)", f"cannot be read: {exc.strerror}") from None
    return AccessMatrix.from_json(text, str(path))


@cache
def default_matrix() -> AccessMatrix:
    """The packaged grid, loaded once."""
    return load_matrix()
