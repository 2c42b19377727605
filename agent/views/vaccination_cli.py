"""The command line's vaccination record: ``dmp-agent vaccinate`` (docs/cda.md "The
vaccination record"). The same core call as the local API and the page
(`VaccinationPart.record_vaccination`, in this process or in the running agent); the note is
signed by the card and sent through the outbox like any deposit."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable

from agent.i18n import _
from agent.views.command_session import EXIT_OK, open_agent


def cmd_vaccinate(args: argparse.Namespace) -> int:
    from agent.core.vaccination import ROUTES, SITES, VACCINES
    from agent.views.commands import _patient_line, _say, _sent

    if args.list_vaccines:
        for vaccine in VACCINES.values():
            _say(f"{vaccine.cis}  {vaccine.disease} — {vaccine.label}")
        _say(_("Routes:") + " " + ", ".join(f"{c} {label}" for c, label in ROUTES.items()))
        _say(_("Sites:") + " " + ", ".join(f"{c} {label}" for c, label in SITES.items()))
        return EXIT_OK
    with open_agent(args, with_outbox=True) as agent:
        _say(_patient_line(agent.snapshot()["patient"]["patient"]))
        queued = agent.record_vaccination(
            vaccine=args.vaccine, date=args.date or dt.date.today().isoformat(), lot=args.lot,
            dose=args.dose, route=args.route, site=args.site)
        _say(_("Vaccination note signed by the card and queued for sending (no. {id})").format(
            id=queued["id"]))
        return _sent(agent, queued)


def add_vaccinate_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    """``dmp-agent vaccinate``, made with the workflow commands' own ``add``."""
    vaccinate = add("vaccinate", cmd_vaccinate,
                    _("record a vaccination you gave (a CI-SIS vaccination note)"),
                    _("Records a vaccination given to the patient in the reader as a CI-SIS "
                      "vaccination note, signed by your card and deposited through the outbox "
                      "(doctors, pharmacists, midwives and nurses)."))
    vaccinate.add_argument("--list-vaccines", action="store_true",
                           help=_("list the vaccines, routes and sites (no PIN needed)"))
    vaccinate.add_argument("--vaccine", metavar="CIS",
                           help=_("the vaccine's CIS code (see --list-vaccines)"))
    vaccinate.add_argument("--date", metavar=_("YYYY-MM-DD"),
                           help=_("the day it was given (default: today)"))
    vaccinate.add_argument("--lot", help=_("the lot number on the box"))
    vaccinate.add_argument("--dose", type=int, help=_("the dose rank (optional)"))
    vaccinate.add_argument("--route", metavar=_("CODE"),
                           help=_("route of administration, EDQM code (optional)"))
    vaccinate.add_argument("--site", metavar=_("CODE"),
                           help=_("injection site, SNOMED CT code (optional)"))
