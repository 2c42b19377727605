"""Text written by other people: refused with control characters on the way in, escaped on
the way out.

A justification, a title or a closure reason is shown later to someone else, in a terminal
(the access-log view) or a page. Control characters there are an attack, not data: ANSI
escape sequences rewrite a terminal's screen or title, CR rewrites a line, NUL truncates,
bidirectional overrides make a text read differently from its bytes. So the host refuses
them in what it stores (a specific 400) and escapes them in what it prints.
"""

from __future__ import annotations

import re

from .errors import bad_request

# C0 (tab, CR and LF included: every field we check is one line), DEL, C1, the Unicode line
# and paragraph separators, and the bidirectional embedding, override and isolate controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def refuse_control_characters(text: str, what: str, code: str = "control-characters", *,
                              expression: str | None = None) -> str:
    """``text`` unchanged, or a 400 naming the field (``what``; ``expression``: its FHIRPath)
    when it holds a control character."""
    match = _CONTROL.search(text)
    if match is not None:
        raise bad_request(
            code,
            f"Caractère de contrôle U+{ord(match.group()):04X} interdit / control character "
            f"not allowed: {what}", expression=expression,
        )
    return text


def escape_controls(text: str) -> str:
    """``text`` safe for a terminal: every control character shown as ``\\xNN`` or
    ``\\uNNNN``, so nothing a depositor wrote is interpreted."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)
