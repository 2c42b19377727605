"""Request bodies, bounded while they are read.

Every route reads its body through here: the size limit is enforced as the bytes arrive
(a 1 GiB body costs the host at most ``limit`` bytes of memory, and a declared
Content-Length above the limit is refused before reading), and JSON nested deeper than
`MAX_DEPTH` is a 400 (json and the code walking its result recurse).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from .blobs import too_large
from .errors import bad_request

JSON_LIMIT = 64 * 1024  # every small JSON body (sessions, identity, dossiers, grants, patches)
MAX_DEPTH = 32


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: a deep value must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``raw`` parsed; 400 when it is not JSON or nests deeper than ``max_depth``."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise bad_request("too-deep", "Structure JSON trop imbriquée / JSON nested too deeply"
                          ) from None
    except (ValueError, UnicodeDecodeError):
        raise bad_request("bad-json", "JSON illisible / the body is not JSON") from None
    if depth(value) > max_depth:
        raise bad_request("too-deep", f"Structure JSON trop imbriquée (max {max_depth}) / "
                          f"JSON nested too deeply")
    return value


async def read_json(request: Request, *, optional: bool = False,
                    limit: int = JSON_LIMIT) -> dict[str, Any]:
    """The request's JSON object body (an empty body is {} when ``optional``)."""
    raw = await read_body(request, limit)
    if not raw.strip() and optional:
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise bad_request("bad-request", "Corps JSON objet attendu / a JSON object is expected")
    return body
