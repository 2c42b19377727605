"""Metadata changes: JSON Patch (RFC 6902) parsed strictly and applied to a resource."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .fhir import WireError, load_json

# -- metadata changes: JSON Patch (RFC 6902) ----------------------------------------------------

PATCH_OPS = frozenset({"add", "remove", "replace", "test", "move", "copy"})
MAX_PATCH_OPS = 50


@dataclass(frozen=True)
class PatchOp:
    op: str
    path: tuple[str, ...]
    value: Any = None
    from_path: tuple[str, ...] | None = None


def _pointer(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, str) or len(value) > 200 or (value and not value.startswith("/")):
        raise WireError("invalid-patch", f"{where}: a JSON pointer is expected")
    if value == "":
        return ()
    parts = value[1:].split("/")
    if any(re.search(r"~[^01]|~$", part) for part in parts):
        raise WireError("invalid-patch", f"{where}: bad escape in the pointer")
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in parts)


def parse_json_patch(data: bytes | str) -> tuple[PatchOp, ...]:
    """An RFC 6902 document: an array of operations. Raises WireError("invalid-patch")."""
    try:
        document = load_json(data, "the patch")
    except WireError:
        raise WireError("invalid-patch", "the patch is not valid JSON") from None
    if not isinstance(document, list) or not document or len(document) > MAX_PATCH_OPS:
        raise WireError("invalid-patch", f"a JSON Patch is an array of 1 to {MAX_PATCH_OPS} "
                        "operations")
    ops = []
    for index, raw in enumerate(document):
        where = f"patch[{index}]"
        if not isinstance(raw, dict):
            raise WireError("invalid-patch", f"{where}: an object is expected")
        op = raw.get("op")
        if op not in PATCH_OPS:
            raise WireError("invalid-patch", f"{where}.op: one of {sorted(PATCH_OPS)}")
        path = _pointer(raw.get("path"), f"{where}.path")
        if op in ("add", "replace", "test") and "value" not in raw:
            raise WireError("invalid-patch", f"{where}: {op} needs a value")
        from_path = _pointer(raw.get("from"), f"{where}.from") if op in ("move", "copy") else None
        ops.append(PatchOp(op, path, copy.deepcopy(raw.get("value")), from_path))
    return tuple(ops)


def _walk(document: Any, path: tuple[str, ...]) -> tuple[Any, str]:
    """The container of ``path``'s last step, and that step."""
    if not path:
        raise WireError("patch-failed", "the whole resource cannot be patched")
    node = document
    for part in path[:-1]:
        node = _child(node, part)
    return node, path[-1]


def _index_of(node: list[Any], part: str, *, append: bool = False) -> int:
    if append and part == "-":
        return len(node)
    if not re.fullmatch(r"0|[1-9][0-9]{0,5}", part):
        raise WireError("patch-failed", f"{part[:20]!r} is not an array index")
    index = int(part)
    if index > len(node) or (index == len(node) and not append):
        raise WireError("patch-failed", f"index {index} is out of the array")
    return index


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            raise WireError("patch-failed", f"no member {part[:40]!r}")
        return node[part]
    if isinstance(node, list):
        return node[_index_of(node, part)]
    raise WireError("patch-failed", f"{part[:40]!r}: not a container")


def _remove(document: Any, path: tuple[str, ...]) -> Any:
    parent, last = _walk(document, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise WireError("patch-failed", f"no member {last[:40]!r} to remove")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index_of(parent, last))
    raise WireError("patch-failed", "not a container")


def _add(document: Any, path: tuple[str, ...], value: Any) -> None:
    parent, last = _walk(document, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index_of(parent, last, append=True), value)
    else:
        raise WireError("patch-failed", "not a container")


def apply_json_patch(resource: Mapping[str, Any], ops: Sequence[PatchOp]) -> dict[str, Any]:
    """The patched copy of ``resource`` (never modified). Raises WireError("patch-failed")."""
    document = copy.deepcopy(dict(resource))
    for op in ops:
        if op.op == "add":
            _add(document, op.path, copy.deepcopy(op.value))
        elif op.op == "remove":
            _remove(document, op.path)
        elif op.op == "replace":
            _remove(document, op.path)
            _add(document, op.path, copy.deepcopy(op.value))
        elif op.op == "test":
            parent, last = _walk(document, op.path)
            if _child(parent, last) != op.value:
                raise WireError("patch-failed", "a test operation failed")
        else:
            assert op.from_path is not None
            if op.op == "move" and op.path[: len(op.from_path)] == op.from_path:
                raise WireError("patch-failed", "cannot move a value into itself")
            parent, last = _walk(document, op.from_path)
            value = copy.deepcopy(_child(parent, last))
            if op.op == "move":
                _remove(document, op.from_path)
            _add(document, op.path, value)
    return document
