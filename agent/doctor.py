"""`dmp-agent doctor`: what a pharmacy can check alone before calling support.

Each check answers a status (ok, warning, problem), one sentence of what was found and, for a
problem (and most warnings), the fix in one sentence; French first, English after. The checks:
pcscd, the readers, the card in each reader, the workstation enrolment, the host's CA file,
the host (TLS 1.3 with the workstation certificate, then ``GET /session``), the clock against
the host's ``Date`` header, the outbox and the free disk space. Exit status 0 without a
problem, 1 otherwise. Every network step has a short timeout: the whole run takes seconds.
See docs/agent-doctor.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
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

from cardreader.errors import CardError, NoServiceError
from cardreader.inspect import CardStatus, SlotReport, inspect_reader
from cardreader.pcsc import list_readers

from .config import AgentConfig, ConfigError, load_config
from .enrol import HOST_CA_FILE, EnrolmentError, current_enrolment, load_workstation
from .outbox import OutboxKeyError, open_key, outbox_keys
from .safe_text import terminal_lines
from .session import Workstation, tls_context

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
REENROL = "réenrôlez le poste : dmp-agent enrol / enrol the workstation again: dmp-agent enrol"


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``found`` says what was seen, ``fix`` what to do (or "")."""

    name: str
    status: Status
    found: str
    fix: str = ""


# -- card readers -----------------------------------------------------------------------------


def check_readers(inspect: Callable[[str], SlotReport] = inspect_reader) -> list[Check]:
    """pcscd, the readers it sees and the card in each (``inspect``: the running agent
    passes what its monitor already knows, so that a diagnosis never talks to a card in
    the middle of a session's signature)."""
    try:
        readers = list_readers()
    except NoServiceError as error:
        return [Check("pcscd", Status.PROBLEM,
                      f"Le service PC/SC ne répond pas / the PC/SC service does not answer "
                      f"({error}).",
                      "Démarrez le service : systemctl start pcscd.socket / start the "
                      "service: systemctl start pcscd.socket")]
    except CardError as error:
        return [Check("pcscd", Status.PROBLEM,
                      f"Erreur du service PC/SC / PC/SC service error ({error}).",
                      "Redémarrez le service : systemctl restart pcscd / restart the "
                      "service: systemctl restart pcscd")]
    checks = [Check("pcscd", Status.OK, "Service PC/SC actif / PC/SC service running.")]
    if not readers:
        checks.append(Check(
            "readers", Status.PROBLEM, "Aucun lecteur de carte / no card reader seen.",
            "Branchez un lecteur, ou vérifiez son pilote (CCID, ou vpcd pour le lecteur "
            "virtuel) / plug a reader in, or check its driver (CCID, or vpcd for the "
            "virtual reader)"))
        return checks
    checks.append(Check("readers", Status.OK,
                        f"{len(readers)} lecteur(s) / reader(s): {', '.join(readers)}."))
    checks.extend(_card_check(inspect(reader)) for reader in readers)
    return checks


def _card_check(report: SlotReport) -> Check:
    name = f"card:{report.reader}"
    what = report.label or (report.kind.value if report.kind else "carte / card")
    if report.cps is not None:
        what = (f"CPS {report.cps.first_name} {report.cps.last_name}, valable jusqu'au / "
                f"valid until {report.cps.not_after:%Y-%m-%d}")
    status = report.status
    if status in (CardStatus.VALID, CardStatus.CHANGED):
        return Check(name, Status.OK, f"{what}: lisible / readable.")
    if status is CardStatus.NONE:
        return Check(name, Status.OK, "Aucune carte / no card.")
    if status is CardStatus.BLOCKED:
        return Check(name, Status.PROBLEM, f"{what}: code porteur bloqué / PIN blocked.",
                     "Débloquez la carte avec son code PUK (ou demandez une nouvelle carte à "
                     "l'ANS) / unblock the card with its PUK (or ask the ANS for a new card)")
    if status is CardStatus.EXPIRED:
        return Check(name, Status.PROBLEM, f"{what}: carte expirée / card expired.",
                     "Demandez le renouvellement de la carte / ask for the card's renewal")
    if status is CardStatus.READER_ERROR:
        return Check(name, Status.PROBLEM,
                     f"Lecteur en erreur / reader error: {report.message}",
                     "Débranchez et rebranchez le lecteur / unplug the reader and plug it in "
                     "again")
    return Check(name, Status.WARNING,
                 f"Carte non reconnue / card not recognised ({what}): {report.message}",
                 "Vérifiez le sens d'insertion de la carte / check the card is inserted the "
                 "right way")


# -- enrolment and host ---------------------------------------------------------------------


def check_enrolment(config: AgentConfig, now: dt.datetime) -> tuple[Check, Workstation | None]:
    """The enrolment, its certificate's validity; the workstation when its key opens."""
    try:
        enrolment = current_enrolment(config)
        workstation = load_workstation(config)
    except EnrolmentError as error:
        return Check("enrolment", Status.PROBLEM,
                     f"Enrôlement inutilisable / enrolment unusable: {error}.", REENROL), None
    left = enrolment.not_after - now
    until = f"{enrolment.not_after:%Y-%m-%d}"
    if left <= dt.timedelta(0):
        return Check("enrolment", Status.PROBLEM,
                     f"Certificat du poste expiré le / workstation certificate expired on "
                     f"{until} ({enrolment.subject}).", REENROL), workstation
    days = left.days
    if days < CERT_WARNING_DAYS:
        return Check("enrolment", Status.WARNING,
                     f"Certificat du poste valable encore {days} jour(s) / workstation "
                     f"certificate valid for {days} more day(s), until {until}.",
                     "Demandez un nouveau certificat et réenrôlez / ask for a new certificate "
                     "and enrol again: dmp-agent enrol"), workstation
    return Check("enrolment", Status.OK,
                 f"Poste enrôlé / workstation enrolled ({enrolment.subject}), valable "
                 f"{days} jours / valid {days} days, until {until}."), workstation


def check_host_ca(config: AgentConfig) -> Check:
    path = config.host_ca or config.credentials_dir / HOST_CA_FILE
    fix = ("Installez l'AC de l'hôte (host.ca dans la configuration, ou dmp-agent enrol) / "
           "install the host's CA (host.ca in the configuration, or dmp-agent enrol)")
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError:
        return Check("host-ca", Status.PROBLEM,
                     f"Fichier de l'AC de l'hôte absent / host CA file missing: {path}.", fix)
    except ValueError:
        return Check("host-ca", Status.PROBLEM,
                     f"Fichier de l'AC illisible / host CA file not a PEM certificate: {path}.",
                     fix)
    return Check("host-ca", Status.OK, f"AC de l'hôte / host CA: {path} "
                 f"({len(certificates)} certificat(s) / certificate(s)).")


def _causes(error: BaseException) -> list[BaseException]:
    # httpx wraps the socket or ssl error that says what really happened.
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _host_failure(url: str, error: httpx.HTTPError) -> Check:
    chain = _causes(error)
    if isinstance(error, httpx.TimeoutException) or any(
            isinstance(e, TimeoutError | socket.timeout) for e in chain):
        return Check("host", Status.PROBLEM,
                     f"L'hôte ne répond pas à temps / the host did not answer in time ({url}).",
                     "Vérifiez le réseau et le pare-feu vers l'hôte / check the network and the "
                     "firewall towards the host")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Check("host", Status.PROBLEM,
                     f"Connexion refusée par / connection refused by {url}.",
                     "Vérifiez host.url dans la configuration et que l'hôte est en service / "
                     "check host.url in the configuration and that the host is up")
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return Check("host", Status.PROBLEM,
                     f"Certificat de l'hôte non reconnu par l'AC configurée / the host's "
                     f"certificate is not trusted by the configured CA ({url}): {error}.",
                     "Installez la bonne AC de l'hôte (host.ca) / install the right host CA "
                     "(host.ca)")
    # In TLS 1.3 the server checks the client certificate after the client's side of the
    # handshake is done: a refusal shows as an alert or, with uvicorn, as a connection closed
    # before any answer.
    if any(isinstance(e, ssl.SSLError) for e in chain) or isinstance(
            error, httpx.RemoteProtocolError):
        return Check("host", Status.PROBLEM,
                     f"Poignée de main TLS refusée par l'hôte / TLS handshake refused by the "
                     f"host ({url}): {error}.",
                     "Le certificat du poste n'est pas accepté : " + REENROL)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return Check("host", Status.PROBLEM,
                     f"Nom d'hôte inconnu / unknown host name ({url}).",
                     "Vérifiez host.url et le DNS / check host.url and the DNS")
    return Check("host", Status.PROBLEM,
                 f"Hôte injoignable / host unreachable ({url}): {error!r}.",
                 "Vérifiez le réseau et host.url / check the network and host.url")


def check_host(config: AgentConfig, workstation: Workstation | None,
               now: dt.datetime | None = None) -> list[Check]:
    """TLS 1.3 with the workstation certificate, ``GET /session`` (401 is the expected answer
    without a session), then the clock against the answer's ``Date``."""
    url = config.host_url
    if workstation is None:
        return [Check("host", Status.WARNING,
                      "Hôte non vérifié : pas d'enrôlement utilisable / host not checked: no "
                      "usable enrolment.", REENROL)]
    try:
        context = tls_context(workstation.host_ca, workstation.certificate_pem,
                              workstation.key_pem, workstation.key_password)
    except (ssl.SSLError, ValueError, OSError) as error:
        return [Check("host", Status.PROBLEM,
                      f"Certificat du poste ou AC inutilisable / workstation certificate or CA "
                      f"unusable: {error}.", REENROL)]
    timeout = min(config.host_timeout, HOST_TIMEOUT)
    try:
        with httpx.Client(base_url=url, verify=context, timeout=timeout) as client:
            sent = dt.datetime.now(dt.UTC)
            response = client.get("/session")
            received = dt.datetime.now(dt.UTC)
    except httpx.HTTPError as error:
        return [_host_failure(url, error)]
    if response.status_code not in (200, 401):
        host = Check("host", Status.PROBLEM,
                     f"L'hôte répond / the host answers HTTP {response.status_code} to GET "
                     f"/session ({url}).",
                     "Vérifiez host.url (l'adresse de l'hôte DMP) / check host.url (the DMP "
                     "host's address)")
    else:
        host = Check("host", Status.OK,
                     f"Hôte joignable en TLS 1.3 avec le certificat du poste / host reachable "
                     f"over TLS 1.3 with the workstation certificate ({url}).")
    return [host, _clock_check(response.headers.get("date"), sent, received, now)]


def _clock_check(date: str | None, sent: dt.datetime, received: dt.datetime,
                 now: dt.datetime | None) -> Check:
    try:
        host_time = email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        host_time = None
    if host_time is None or host_time.tzinfo is None:
        return Check("clock", Status.WARNING,
                     "L'hôte n'a pas donné son heure / the host gave no usable Date header.")
    # The host stamped its Date between sent and received; its resolution is one second.
    local = (now or sent + (received - sent) / 2)
    skew = local - host_time
    seconds = abs(skew.total_seconds())
    side = "en avance / ahead" if skew > dt.timedelta(0) else "en retard / behind"
    found = f"Horloge du poste {side} de {seconds:.0f} s / workstation clock {side} by " \
            f"{seconds:.0f} s."
    fix = ("Synchronisez l'horloge (NTP) : timedatectl set-ntp true / synchronise the clock "
           "(NTP): timedatectl set-ntp true")
    if abs(skew) > HOST_MAX_SKEW:
        return Check("clock", Status.PROBLEM,
                     found + " L'hôte refuse les sessions au-delà de 5 min / the host refuses "
                     "sessions beyond 5 min.", fix)
    if abs(skew) > SKEW_WARNING:
        return Check("clock", Status.WARNING, found, fix)
    return Check("clock", Status.OK, found)


# -- local state ------------------------------------------------------------------------------


def check_outbox(config: AgentConfig) -> Check:
    """Counts read-only: the running agent owns the outbox (its lock), and a diagnosis must
    not repair nor create anything."""
    path = config.outbox_path
    if not path.exists():
        return Check("outbox", Status.OK, "File d'envoi vide / outbox empty.")
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
                     f"File d'envoi illisible / outbox unreadable ({path}): {error}.",
                     "Contactez le support avec ce message / contact support with this message")
    if "key_id" in meta:  # none yet: an outbox of schema 1, sealed when the agent opens it
        try:
            open_key(outbox_keys(config), meta["key_id"], meta.get("key_check", ""))
        except OutboxKeyError as error:
            return Check("outbox", Status.PROBLEM,
                         f"Clé de la file d'envoi introuvable / outbox key unusable: {error}.",
                         "Restaurez la clé (trousseau du système, ou les dossiers de "
                         "configuration et de données de ce poste) / restore the key (the OS "
                         f"keyring, or this machine's config and data directories); sinon / "
                         f"else: mettez de côté / move aside {path.parent}")
    pending = counts.get("pending", 0) + counts.get("sending", 0)
    failed = counts.get("failed", 0)
    found = (f"{pending} dépôt(s) en attente, {failed} refusé(s) / {pending} deposit(s) "
             f"pending, {failed} refused.")
    if failed:
        return Check("outbox", Status.WARNING, found,
                     "Voyez les dépôts refusés : dmp-agent outbox / see the refused deposits: "
                     "dmp-agent outbox")
    return Check("outbox", Status.OK, found)


def check_disk(config: AgentConfig) -> Check:
    directory = config.data_dir
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # not created yet: its disk is the parent's
    free = shutil.disk_usage(directory).free
    found = (f"{free / (1 << 30):.1f} Gio libres / GiB free ({config.data_dir}).")
    fix = ("Libérez de la place sur ce disque / free some space on this disk")
    if free < DISK_PROBLEM:
        return Check("disk", Status.PROBLEM, found, fix)
    if free < DISK_WARNING:
        return Check("disk", Status.WARNING, found, fix)
    return Check("disk", Status.OK, found)


# -- the command ------------------------------------------------------------------------------


def run_checks(config: AgentConfig, *, now: dt.datetime | None = None,
               inspect: Callable[[str], SlotReport] = inspect_reader) -> list[Check]:
    """Every check, in the order a person would look; ``now`` is for tests."""
    moment = now or dt.datetime.now(dt.UTC)
    checks = check_readers(inspect)
    enrolment, workstation = check_enrolment(config, moment)
    checks += [enrolment, check_host_ca(config)]
    checks += check_host(config, workstation, now)
    checks += [check_outbox(config), check_disk(config)]
    return checks


def render(checks: Sequence[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"[{check.status.value:<7}] {check.name}: {check.found}")
        if check.fix:
            lines.append(f"          → {check.fix}")
    problems = sum(c.status is Status.PROBLEM for c in checks)
    warnings = sum(c.status is Status.WARNING for c in checks)
    lines.append(f"{problems} problème(s), {warnings} avertissement(s) / {problems} "
                 f"problem(s), {warnings} warning(s).")
    return "\n".join(lines)


def run_doctor(*, as_json: bool = False, config: AgentConfig | None = None) -> int:
    """Run the checks, print them, return the exit status (0: no problem, 1: a problem)."""
    try:
        checks = run_checks(config or load_config())
    except ConfigError as error:
        checks = [Check("config", Status.PROBLEM,
                        f"Configuration illisible / configuration unreadable: {error}.",
                        "Corrigez le fichier de configuration / fix the configuration file")]
    failed = any(c.status is Status.PROBLEM for c in checks)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]},
                         ensure_ascii=False, indent=2))
    else:
        print(terminal_lines(render(checks)))  # errors quote the host and the system
    return EXIT_PROBLEM if failed else EXIT_OK


def add_doctor_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor",
        help="check pcscd, readers, cards, enrolment, host, clock, outbox and disk",
        description=(
            "Diagnostic du poste / workstation diagnosis: each check says ok, warning or "
            "problem, what was found and the fix. Exit status 0 without a problem, 1 "
            "otherwise."
        ),
    )
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(run=lambda args: run_doctor(as_json=args.json))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agent.doctor``: the same command without the rest of `dmp-agent`."""
    parser = argparse.ArgumentParser(prog="dmp-agent")
    commands = parser.add_subparsers(dest="command", required=True)
    add_doctor_command(commands)
    args = parser.parse_args(["doctor", *(sys.argv[1:] if argv is None else argv)])
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
