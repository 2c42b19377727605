"""argparse's own words ("usage:", "options", its errors) in the agent's language.

argparse looks its words up through gettext at the moment it says them (``argparse._``), in
no catalogue of ours: `translate_argparse` points it at the agent's, for the words listed
here; any other stays argparse's English.
"""

from __future__ import annotations

import argparse

from agent.i18n import N_, _, ngettext

WORDS = frozenset((
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("unrecognized arguments: %s"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("can't open '%(filename)s': %(error)s"),
))


def _argparse_gettext(message: str) -> str:
    return _(message) if message in WORDS else message


def translate_argparse() -> None:
    """Make argparse say its words in the language in use (from now on, this process)."""
    argparse._ = _argparse_gettext  # type: ignore[attr-defined]
    argparse.ngettext = ngettext  # type: ignore[attr-defined]
