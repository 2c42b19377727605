"""The command line's e-CPS login (docs/psc.md): ``--ecps`` on any command that opens a
session, and ``dmp-agent login --ecps``. The binding message and a countdown on the terminal
while the phone is asked; Ctrl-C cancels the request cleanly (nothing opened, the agent's
polling stopped)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, TextIO

from agent.errors import AgentError
from agent.i18n import _
from agent.safe_text import terminal_text

if TYPE_CHECKING:
    from agent.core.professional import ProfessionalSession
    from agent.core.service import AgentService

LOGIN_WAIT = 700.0  # seconds, at most, for a login (the provider ends it well before)


def situation_argument(args: argparse.Namespace) -> int | str:
    """``--situation``: a small number is a rank (1 = the first), anything else a structure
    id; absent: the first, as with the card (the one used is said)."""
    wanted = getattr(args, "situation", None)
    if not wanted:
        return 0
    return int(wanted) - 1 if wanted.isdigit() and len(wanted) <= 2 else str(wanted)


def _countdown(core: AgentService, out: TextIO) -> None:
    """Show the binding message once, then the seconds left (one line, redrawn on a
    terminal), until the login ends."""
    shown = False
    live = out.isatty()
    while True:
        session = core.snapshot()["session"]
        login = session.get("ecps")
        if login is None:
            break
        if login["phase"] == "waiting":
            if not shown:
                print(terminal_text(_("Approve the login on your phone (e-CPS): it shows "
                                      "\"{message}\"").format(
                                          message=login["bindingMessage"])), file=out)
                shown = True
            if live:
                out.write("\r" + _("Waiting for the phone: {seconds} s left ").format(
                    seconds=login["secondsLeft"]))
                out.flush()
        core.wait_until(lambda: not core.ecps_pending, 1.0)
    if live and shown:
        out.write("\n")


def open_ecps_session(core: AgentService, args: argparse.Namespace,
                      out: TextIO | None = None) -> ProfessionalSession:
    """Log in with the e-CPS through the core (as the page does) and return the session."""
    out = out or sys.stderr
    core.login_ecps(getattr(args, "idnat", None), situation_argument(args), ask=False)
    try:
        _countdown(core, out)
    except KeyboardInterrupt:
        # Ctrl-C: the request is cancelled at once (the provider lets it expire), then the
        # command ends as interrupted.
        with contextlib.suppress(AgentError):  # ended meanwhile
            core.cancel_ecps()
        core.wait_until(lambda: not core.ecps_pending, 5.0)
        raise
    core.wait_ecps(LOGIN_WAIT)
    session = core.session
    if session is None:
        raise AgentError(_("The e-CPS session ended"), code="session-ended", status=409)
    return session


def session_summary(session: ProfessionalSession) -> str:
    identity, situation = session.identity, session.situation
    assert identity is not None and situation is not None
    means = _("card") if session.card_bound else _("e-CPS")
    return terminal_text(_("Session open ({means}): {first} {last}, {structure} ({id}), until "
                           "{until}").format(
        means=means, first=identity.first_name, last=identity.last_name,
        structure=situation.structure_name, id=situation.structure_id,
        until=session.not_after.astimezone().strftime("%H:%M")))


def cmd_login(args: argparse.Namespace) -> int:
    """Open a session (the e-CPS with --ecps, else the card and its PIN), say who, where
    and until when, and close it: the check that this workstation can log in."""
    from agent.views.command_session import EXIT_OK, open_session, start_core

    with start_core(args) as core:
        session = open_session(core, args)
        print(session_summary(session))
        core.lock_session()
    print(_("Session closed"))
    return EXIT_OK
