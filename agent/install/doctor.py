"""`dmp-agent doctor`: what a pharmacy can check alone before calling support.

Each check answers a status (ok, warning, problem), one sentence of what was found and, for a
problem (and most warnings), the fix in one sentence, in the agent's language. The checks:
pcscd, the readers, the card in each reader, the workstation enrolment, the host's CA file,
the clock against the host's ``Date`` header, the host (TLS 1.3 with the workstation
certificate, then ``GET /session``), the outbox and the free disk space. Clock first: the
host's time is read before certificates and cards are judged (even when the host's
certificate fails on dates, `host_clock`), and a skew is named as such. Exit status 0
without a problem, 1 otherwise. Every network step has a short timeout: the whole run takes
seconds. See docs/agent-doctor.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import json
import shutil
import socket
import sqlite3
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import httpx
from cryptography import x509

from agent.card_words import card_error_text, localized
from agent.client.host_clock import (
    ClockReading,
    certificate_rejected,
    clock_fix,
    read_host_clock,
    reading_from,
    utc_now,
)
from agent.client.link import causes
from agent.client.session import Workstation, host_client, tls_context
from agent.config import AgentConfig, ConfigError, load_config
from agent.i18n import N_, _
from agent.install.enrol import (
    HOST_CA_FILE,
    Enrolment,
    EnrolmentError,
    current_enrolment,
    load_workstation,
)
from agent.outbox import OutboxKeyError, open_key, outbox_keys, quarantine_report
from agent.outbox.report import quarantine_text
from agent.safe_text import terminal_lines
from cardreader.errors import CardError, NoServiceError
from cardreader.inspect import CardStatus, SlotReport, inspect_reader
from cardreader.pcsc import list_readers

__all__ = ["Check", "Status", "add_doctor_command", "main", "run_checks", "run_doctor"]

EXIT_OK, EXIT_PROBLEM = 0, 1
HOST_TIMEOUT = 5.0  # seconds; a diagnosis must answer fast even when the host does not
CERT_WARNING_DAYS = 30
SKEW_WARNING = dt.timedelta(minutes=2)
# The host refuses a session statement more than 5 minutes off (host.settings.max_clock_skew;
# `agent` does not import `host`, so the value is repeated here).
HOST_MAX_SKEW = dt.timedelta(minutes=5)
DISK_WARNING = 1 << 30  # 1 GiB
DISK_PROBLEM = 100 << 20  # 100 MiB
REENROL = N_("Enrol the workstation again: dmp-agent enrol")
# Each check's name in words (`Check.title`); its ``name`` stays the same in every language.
TITLES = {
    "pcscd": N_("Smart-card service (pcscd)"), "readers": N_("Card readers"),
    "enrolment": N_("Workstation enrolment"), "host-ca": N_("The host's CA"),
    "clock": N_("Clock"), "host": N_("DMP host"), "outbox": N_("Outbox"),
    "disk": N_("Disk space"), "config": N_("Configuration"),
    "cda": N_("CDA documents (PDF/A, CI-SIS checks)"),
}


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``found`` says what was seen, ``fix`` what to do (or "");
    ``name`` is the check's stable id (scripts, the JSON), ``title`` its name in words."""

    name: str
    status: Status
    found: str
    fix: str = ""

    @property
    def title(self) -> str:
        if self.name.startswith("card:"):
            return _("Card in {reader}").format(reader=self.name.removeprefix("card:"))
        return _(TITLES[self.name]) if self.name in TITLES else self.name

    def as_json(self) -> dict[str, str]:
        return {**asdict(self), "status": self.status.value, "title": self.title}


# -- card readers -----------------------------------------------------------------------------


def read_here(reader: str) -> SlotReport:
    """The card in ``reader`` read by this process, its message in the user's words (the
    running agent's reports are worded already)."""
    return localized(inspect_reader(reader))


def check_readers(inspect: Callable[[str], SlotReport] = read_here,
                  clock: ClockReading | None = None) -> list[Check]:
    """pcscd, the readers it sees and the card in each (``inspect``: the running agent
    passes what its monitor already knows, so that a diagnosis never talks to a card in
    the middle of a session's signature; ``clock``: the host's time, when known)."""
    try:
        readers = list_readers()
    except NoServiceError as error:
        return [Check("pcscd", Status.PROBLEM,
                      card_error_text(error) + ".",  # one sentence, by the error's type
                      _("Start the service: systemctl start pcscd.socket"))]
    except CardError as error:
        return [Check("pcscd", Status.PROBLEM,
                      _("PC/SC service error ({error}).").format(error=card_error_text(error)),
                      _("Restart the service: systemctl restart pcscd"))]
    checks = [Check("pcscd", Status.OK, _("PC/SC service running."))]
    if not readers:
        checks.append(Check(
            "readers", Status.PROBLEM, _("No card reader seen."),
            _("Plug a reader in, or check its driver (CCID, or vpcd for the virtual "
              "reader)")))
        return checks
    checks.append(Check("readers", Status.OK, _("{count} reader(s): {names}.").format(
        count=len(readers), names=", ".join(readers))))
    checks.extend(_card_check(inspect(reader), clock) for reader in readers)
    return checks


def _card_check(report: SlotReport, clock: ClockReading | None = None) -> Check:
    name = f"card:{report.reader}"
    what = report.label or (report.kind.value if report.kind else _("card"))
    if report.cps is not None:
        what = _("CPS {first} {last}, valid until {date}").format(
            first=report.cps.first_name, last=report.cps.last_name,
            date=f"{report.cps.not_after:%Y-%m-%d}")
    status = report.status
    if status in (CardStatus.VALID, CardStatus.CHANGED):
        return Check(name, Status.OK, _("{card}: readable.").format(card=what))
    if status is CardStatus.NONE:
        return Check(name, Status.OK, _("No card."))
    if status is CardStatus.BLOCKED:
        return Check(name, Status.PROBLEM, _("{card}: PIN blocked.").format(card=what),
                     _("Unblock the card with its PUK: dmp-agent unblock (or ask the ANS for "
                       "a new card)"))
    cps = report.cps
    if status is CardStatus.EXPIRED and clock is not None and clock.significant and \
            cps is not None and cps.not_before <= clock.host_time <= cps.not_after:
        # Clock first: valid at the host's time, the card is not what needs fixing.
        return Check(name, Status.WARNING,
                     _("{card}: outside its validity by this workstation's clock, valid by "
                       "the host's.").format(card=what),
                     _("Set the workstation's clock (see Clock)"))
    if status is CardStatus.EXPIRED:
        return Check(name, Status.PROBLEM, _("{card}: card expired.").format(card=what),
                     _("Ask for the card's renewal"))
    if status is CardStatus.READER_ERROR:
        return Check(name, Status.PROBLEM,
                     _("Reader error: {reason}").format(reason=report.message),
                     _("Unplug the reader and plug it in again"))
    return Check(name, Status.WARNING,
                 _("Card not recognised ({card}): {reason}").format(card=what,
                                                                    reason=report.message),
                 _("Check that the card is inserted the right way"))


# -- enrolment and host ---------------------------------------------------------------------


def _enrolled(config: AgentConfig) -> tuple[Enrolment, Workstation] | Check:
    """The enrolment and the workstation when its key opens; else the problem."""
    try:
        return current_enrolment(config), load_workstation(config)
    except EnrolmentError as error:
        return Check("enrolment", Status.PROBLEM,
                     _("Enrolment unusable: {error}.").format(error=error), _(REENROL))


def check_enrolment(config: AgentConfig, now: dt.datetime) -> tuple[Check, Workstation | None]:
    """The enrolment, its certificate's validity; the workstation when its key opens."""
    found = _enrolled(config)
    if isinstance(found, Check):
        return found, None
    return _enrolment_check(found[0], now), found[1]


def _enrolment_check(enrolment: Enrolment, now: dt.datetime) -> Check:
    left = enrolment.not_after - now
    until = f"{enrolment.not_after:%Y-%m-%d}"
    if left <= dt.timedelta(0):
        return Check("enrolment", Status.PROBLEM,
                     _("Workstation certificate expired on {date} ({subject}).").format(
                         date=until, subject=enrolment.subject), _(REENROL))
    days = left.days
    if days < CERT_WARNING_DAYS:
        return Check("enrolment", Status.WARNING,
                     _("Workstation certificate valid for {days} more day(s), until "
                       "{date}.").format(days=days, date=until),
                     _("Ask for a new certificate and enrol again: dmp-agent enrol"))
    return Check("enrolment", Status.OK,
                 _("Workstation enrolled ({subject}), valid {days} days, until {date}.").format(
                     subject=enrolment.subject, days=days, date=until))


def check_host_ca(config: AgentConfig) -> Check:
    path = config.host_ca or config.credentials_dir / HOST_CA_FILE
    fix = _("Install the host's CA (host.ca in the configuration, or dmp-agent enrol)")
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError:
        return Check("host-ca", Status.PROBLEM,
                     _("The host's CA file is missing: {path}.").format(path=path), fix)
    except ValueError:
        return Check("host-ca", Status.PROBLEM,
                     _("The host's CA file is not a PEM certificate: {path}.").format(
                         path=path), fix)
    return Check("host-ca", Status.OK, _("{path} ({count} certificate(s)).").format(
        path=path, count=len(certificates)))


def _host_failure(url: str, error: httpx.HTTPError) -> Check:
    chain = causes(error)
    if isinstance(error, httpx.TimeoutException) or any(
            isinstance(e, TimeoutError | socket.timeout) for e in chain):
        return Check("host", Status.PROBLEM,
                     _("The host did not answer in time ({url}).").format(url=url),
                     _("Check the network and the firewall towards the host"))
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Check("host", Status.PROBLEM,
                     _("Connection refused by {url}.").format(url=url),
                     _("Check host.url in the configuration and that the host is up"))
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return Check("host", Status.PROBLEM,
                     _("The host's certificate is not trusted by the configured CA ({url}): "
                       "{error}.").format(url=url, error=error),
                     _("Install the right host CA (host.ca)"))
    # In TLS 1.3 the server checks the client certificate after the client's side of the
    # handshake is done: a refusal shows as an alert or, with uvicorn, as a connection closed
    # before any answer.
    if any(isinstance(e, ssl.SSLError) for e in chain) or isinstance(
            error, httpx.RemoteProtocolError):
        return Check("host", Status.PROBLEM,
                     _("TLS handshake refused by the host ({url}): {error}.").format(
                         url=url, error=error),
                     _("The workstation certificate is not accepted: {fix}").format(
                         fix=_(REENROL)))
    if any(isinstance(e, socket.gaierror) for e in chain):
        return Check("host", Status.PROBLEM,
                     _("Unknown host name ({url}).").format(url=url),
                     _("Check host.url and the DNS"))
    return Check("host", Status.PROBLEM,
                 _("Host unreachable ({url}): {error}.").format(url=url, error=error),
                 _("Check the network and host.url"))


def check_host(config: AgentConfig, workstation: Workstation | None,
               now: dt.datetime | None = None) -> list[Check]:
    """TLS 1.3 with the workstation certificate, ``GET /session`` (401 is the expected answer
    without a session), then the clock against the answer's ``Date``."""
    host, clock, _reading = _host_and_clock(config, workstation, now)
    return [host] if clock is None else [host, clock]


def _host_and_clock(config: AgentConfig, workstation: Workstation | None,
                    now: dt.datetime | None) -> tuple[Check, Check | None, ClockReading | None]:
    """The host check, the clock check (None when the host did not answer) and the host's
    time (None when unknown)."""
    url = config.host_url
    if workstation is None:
        return Check("host", Status.WARNING,
                     _("Host not checked: no usable enrolment."), _(REENROL)), None, None

    def context() -> ssl.SSLContext:
        return tls_context(workstation.host_ca, workstation.certificate_pem,
                           workstation.key_pem, workstation.key_password)

    try:
        verified = context()
    except (ssl.SSLError, ValueError, OSError) as error:
        return Check("host", Status.PROBLEM,
                     _("Workstation certificate or CA unusable: {error}.").format(error=error),
                     _(REENROL)), None, None
    timeout = min(config.host_timeout, HOST_TIMEOUT)
    try:
        with host_client(url, verified, timeout, config.host_proxy) as client:
            sent = utc_now()
            response = client.get("/session")
            received = utc_now()
    except httpx.HTTPError as error:
        # Clock first: the host's time, read even though its certificate was refused.
        reading = None
        if certificate_rejected(error):
            reading = read_host_clock(url, context(), workstation.host_ca, timeout,
                                      clock=utc_now if now is None else _fixed(now))
        if reading is not None and reading.significant:
            return (Check("host", Status.PROBLEM,
                          _("This workstation's clock makes the host's certificate look "
                            "outside its validity; the host answers and its CA is the right "
                            "one ({url}).").format(url=url),
                          _("Set the workstation's clock first (see Clock)")),
                    _clock_check(reading, blamed=True), reading)
        return _host_failure(url, error), None, None
    if response.status_code not in (200, 401):
        host = Check("host", Status.PROBLEM,
                     _("The host answers HTTP {status} to GET /session ({url}).").format(
                         status=response.status_code, url=url),
                     _("Check host.url (the DMP host's address)"))
    else:
        host = Check("host", Status.OK,
                     _("Host reachable over TLS 1.3 with the workstation certificate "
                       "({url}).").format(url=url))
    reading = reading_from(response.headers.get("date"), sent, received, now)
    return host, _clock_check(reading), reading


def _fixed(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


def _clock_check(reading: ClockReading | None, *, blamed: bool = False) -> Check:
    """The clock against the host's; ``blamed``: it made the host's certificate fail."""
    if reading is None:
        return Check("clock", Status.WARNING,
                     _("The host gave no usable time (Date header)."))
    skew = abs(reading.skew)
    found = f"{reading.describe()}."
    if blamed:
        return Check("clock", Status.PROBLEM,
                     found + " " + _("The host's certificate then looks outside its "
                                     "validity."), clock_fix())
    if skew > HOST_MAX_SKEW:
        return Check("clock", Status.PROBLEM,
                     found + " " + _("The host refuses sessions beyond 5 min, and "
                                     "certificates are judged at a wrong time."), clock_fix())
    if skew > SKEW_WARNING:
        return Check("clock", Status.WARNING, found, clock_fix())
    return Check("clock", Status.OK, found)


# -- local state ------------------------------------------------------------------------------


def check_outbox(config: AgentConfig) -> Check:
    """Counts read-only: the running agent owns the outbox (its lock), and a diagnosis must
    not repair nor create anything."""
    path = config.outbox_path
    if not path.exists():
        return Check("outbox", Status.OK, _("Empty."))
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            counts = dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state"))
            has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            meta = dict(db.execute("SELECT name, value FROM meta")) if has_meta else {}
        finally:
            db.close()
    except sqlite3.Error as error:
        return Check("outbox", Status.PROBLEM,
                     _("Outbox unreadable ({path}): {error}.").format(path=path, error=error),
                     _("Restart the agent: it sets the database aside and rebuilds the queue "
                       "from its files (or: dmp-agent outbox --recover)"))
    if "key_id" in meta:  # none yet: an outbox of schema 1, sealed when the agent opens it
        try:
            open_key(outbox_keys(config), meta["key_id"], meta.get("key_check", ""))
        except OutboxKeyError as error:
            return Check("outbox", Status.PROBLEM,
                         _("Outbox key unusable: {error}.").format(error=error),
                         _("Restore the key (the system keyring, or this machine's "
                           "configuration and data directories); else move {path} aside")
                         .format(path=path.parent))
    pending = counts.get("pending", 0) + counts.get("sending", 0)
    failed = counts.get("failed", 0)
    found = _("{pending} deposit(s) waiting, {failed} refused.").format(pending=pending,
                                                                       failed=failed)
    held = quarantine_report(path.parent)
    if held is not None:  # what the outbox could not account for: a person looks at it
        return Check("outbox", Status.WARNING,
                     found + " " + _("Quarantine: {what}.").format(what=quarantine_text(held)),
                     _("Once the key is restored: dmp-agent outbox --recover; else look, then "
                       "delete the folder"))
    if failed:
        return Check("outbox", Status.WARNING, found,
                     _("See the refused deposits: dmp-agent outbox"))
    return Check("outbox", Status.OK, found)


def check_disk(config: AgentConfig) -> Check:
    directory = config.data_dir
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # not created yet: its disk is the parent's
    free = shutil.disk_usage(directory).free
    found = _("{size} GiB free ({path}).").format(size=f"{free / (1 << 30):.1f}",
                                                   path=config.data_dir)
    fix = _("Free some space on this disk")
    if free < DISK_PROBLEM:
        return Check("disk", Status.PROBLEM, found, fix)
    if free < DISK_WARNING:
        return Check("disk", Status.WARNING, found, fix)
    return Check("disk", Status.OK, found)


# -- the command ------------------------------------------------------------------------------


def run_checks(config: AgentConfig, *, now: dt.datetime | None = None,
               inspect: Callable[[str], SlotReport] = read_here) -> list[Check]:
    """Every check, in the order a person would look; ``now`` is for tests. The host's
    time is read first: with the clock off, certificates and cards are judged at the
    host's time, and the clock is named instead of them."""
    moment = now or utc_now()
    enrolled = _enrolled(config)
    workstation = None if isinstance(enrolled, Check) else enrolled[1]
    host, clock, reading = _host_and_clock(config, workstation, now)
    if reading is not None and reading.significant:
        moment -= reading.skew
    checks = check_readers(inspect, reading)
    checks.append(enrolled if isinstance(enrolled, Check)
                  else _enrolment_check(enrolled[0], moment))
    checks.append(check_host_ca(config))
    checks += [clock] if clock is not None else []
    checks += [host, check_outbox(config), check_disk(config), check_cda()]
    if config.ignored:
        checks.append(check_locked(config))
    return checks


def check_cda() -> Check:
    """What a deposit needs to become a checked CDA document (docs/cda.md): Ghostscript for
    the PDF/A, the CI-SIS files for the schema and schematrons; without these, the mode says
    whether deposits are refused ("required") or go with those checks skipped ("optional")."""
    from agent.core.pdfa import ghostscript
    from wire import cda

    state = cda.cisis_state()
    fix = _("Install the CI-SIS files: dmp-cisis-data as the administrator (docs/cda.md)")
    if ghostscript() is None:
        return Check("cda", Status.PROBLEM, _("Ghostscript not found: PDF deposits are "
                                              "refused (they are converted to PDF/A)."),
                     _("Install Ghostscript (package ghostscript)"))
    if state.installed:
        return Check("cda", Status.OK, _("Ghostscript found; CI-SIS files installed: full "
                                         "CDA checks."))
    if state.skipping:
        return Check("cda", Status.WARNING, _("CI-SIS files absent, {variable}=optional: the "
                                              "CDA schema and schematron checks are skipped."
                                              ).format(variable=cda.CISIS_MODE_VARIABLE), fix)
    return Check("cda", Status.PROBLEM, _("CI-SIS files absent: every deposit is refused "
                                          "(cisis-data-missing)."), fix)


def check_locked(config: AgentConfig) -> Check:
    """The user's file sets keys the administrator locked: ignored, and said."""
    keys = ", ".join(config.ignored)
    return Check("config", Status.WARNING,
                 _("Values ignored, set by the administrator ({file}): {keys}.").format(
                     file=config.system_source, keys=keys),
                 _("Remove them from {file}").format(file=config.source))


STATUS_WORDS = {Status.OK: N_("ok"), Status.WARNING: N_("warning"),
                Status.PROBLEM: N_("problem")}


def render(checks: Sequence[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"[{_(STATUS_WORDS[check.status]):<9}] "
                     + _("{title}: {found}").format(title=check.title, found=check.found))
        if check.fix:
            lines.append(f"            → {check.fix}")
    problems = sum(c.status is Status.PROBLEM for c in checks)
    warnings = sum(c.status is Status.WARNING for c in checks)
    lines.append(_("{problems} problem(s), {warnings} warning(s).").format(
        problems=problems, warnings=warnings))
    return "\n".join(lines)


def run_doctor(*, as_json: bool = False, config: AgentConfig | None = None) -> int:
    """Run the checks, print them, return the exit status (0: no problem, 1: a problem)."""
    try:
        checks = run_checks(config or load_config())
    except ConfigError as error:
        checks = [Check("config", Status.PROBLEM,
                        _("Configuration unreadable: {error}.").format(error=error),
                        _("Fix the configuration file"))]
    failed = any(c.status is Status.PROBLEM for c in checks)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [c.as_json() for c in checks]},
                         ensure_ascii=False, indent=2))
    else:
        print(terminal_lines(render(checks)))  # errors quote the host and the system
    return EXIT_PROBLEM if failed else EXIT_OK


def add_doctor_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor",
        help=_("check pcscd, readers, cards, enrolment, host, clock, outbox and disk"),
        description=_(
            "Workstation diagnosis: each check says ok, warning or problem, what was found "
            "and the fix. Exit status 0 without a problem, 1 otherwise."
        ),
    )
    parser.add_argument("--json", action="store_true", help=_("one JSON document"))
    parser.set_defaults(run=lambda args: run_doctor(as_json=args.json))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agent.install.doctor``: the same command without the rest of `dmp-agent`."""
    parser = argparse.ArgumentParser(prog="dmp-agent")
    commands = parser.add_subparsers(dest="command", required=True)
    add_doctor_command(commands)
    args = parser.parse_args(["doctor", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
