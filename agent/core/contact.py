"""The patient's email address given when the DMP is created: where the host sends the
patient's notifications and the patient portal the one-time sign-in codes.

One rule for every view (command line, local API, page), checked before anything is sent:
the host's own rule (``host/notify_events.py`` ``checked_email``: one plain ASCII address,
254 characters at most, no control character) made a little stricter (a dot in the domain,
no leading, trailing or doubled dot), so that an address the agent lets through is never
refused by the host after the card and the PIN were used.
"""

from __future__ import annotations

import re

from agent.errors import AgentError
from agent.i18n import _

__all__ = ["MAX_EMAIL", "checked_email"]

MAX_EMAIL = 254
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# local@domain: a dot-atom local part (64 characters at most), two domain labels at least.
_EMAIL = re.compile(rf"(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")
# C0, DEL, C1, the line and paragraph separators, the bidirectional controls (as the host).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SEPARATORS = re.compile(r"[\s,;]")


def _bad(reason: str) -> AgentError:
    return AgentError(_("The patient's email address: {reason}").format(reason=reason),
                      code="bad-email", status=400, usage=True)


def checked_email(value: str | None) -> str | None:
    """``value`` trimmed when it is one valid address, None when none was given; else an
    `AgentError` ``bad-email`` (a misuse: exit 2, HTTP 400). The message never repeats the
    address (it would land in logs and terminals)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise _bad(_("empty, give an address or none"))
    if _CONTROL.search(text):
        raise _bad(_("control character not allowed"))
    if _SEPARATORS.search(text):
        raise _bad(_("one address only, no spaces"))
    if len(text) > MAX_EMAIL:
        raise _bad(_("{count} characters at most").format(count=MAX_EMAIL))
    if _EMAIL.fullmatch(text) is None:
        raise _bad(_("not a valid address (expected: name@domain.tld)"))
    return text
