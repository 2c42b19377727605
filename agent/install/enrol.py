"""Workstation enrolment: install this workstation's establishment certificate and key.

Two sources: the sandbox's test PKI (``DIR/workstations/NAME.pem`` and ``.key``, made by
``dmp-host pki issue-workstation``) and, in production, a PKCS#12 file. Either way the agent
keeps, in the credentials directory (0700; files 0600)::

    enrolment.json           which files are current, the certificate's subject and dates
    workstation-<id>.pem     the certificate (then any chain certificates)
    workstation-<id>.key     the private key, PKCS#8 PEM ENCRYPTED (BestAvailableEncryption)
    host-ca.pem              the host's server CA (from the PKI; with PKCS#12, host.ca)

and, in the data directory, ``keys/workstation-<id>.secret``: 32 random bytes from which the
key's password is derived, bound to this machine's identity (``/etc/machine-id`` or Windows'
MachineGuid) when there is one. The agent can then open the key after a restart with nobody
typing anything; the key file alone, or the config directory copied elsewhere, or the whole
home directory restored on another machine, does not open it. Anyone running as this user
(or root) on this machine can: docs/agent-enrolment.md states the threat model.

``enrolment.json`` is written last, atomically: it is the commit point, so a crash during a
(re-)enrolment leaves the previous enrolment intact and usable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import secrets
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import AgentConfig, ConfigError, load_config, private_dir, write_private_file
from agent.errors import AgentError
from agent.i18n import N_, _
from agent.sealing import binding_digest, derive_key, machine_id

# cryptography.x509 (~30 ms), its serialization (~15 ms) and the host client (httpx) are for
# enrolling and for the first host call: `dmp-agent run` imports this module and loads the
# workstation before it is ready (issue 11).
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from agent.client.session import Workstation

    PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

ENROLMENT_FILE = "enrolment.json"
HOST_CA_FILE = "host-ca.pem"
PKI_PASSPHRASE_ENV = "DMP_PKI_PASSPHRASE"  # the convention of `dmp-host pki` (host.pki)
PKCS12_PASSWORD_ENV = "DMP_AGENT_PKCS12_PASSWORD"
_KDF_INFO = b"dmp-agent workstation key password v1"


class EnrolmentError(AgentError):
    """Enrolment could not be done, or the stored enrolment cannot be used; the message says
    what to do."""

    code, status = "not-enrolled", 409


@dataclass(frozen=True)
class Enrolment:
    """What is installed: the certificate's subject, validity and SHA-256 fingerprint."""

    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str  # SHA-256 of the DER certificate, lowercase hex
    source: str
    certificate_path: Path
    key_path: Path


# -- the machine binding and the key password --------------------------------------------------


def _password(secret: bytes, identity: str | None) -> bytes:
    # The sealing scheme shared with the outbox key (agent/sealing.py), as a PEM password.
    return derive_key(secret, identity, _KDF_INFO).hex().encode("ascii")


def _secret_path(config: AgentConfig, key_id: str) -> Path:
    return config.data_dir / "keys" / f"workstation-{key_id}.secret"


# -- installing --------------------------------------------------------------------------------


def _check_pair(certificate: x509.Certificate, key: object, now: dt.datetime) -> PrivateKey:
    """``key`` as a TLS client key of ``certificate``, or `EnrolmentError` saying why not."""
    from cryptography import x509  # enrolling only, not at start
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise EnrolmentError(_("The private key is neither RSA nor EC: not a TLS client key"))
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != certificate.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise EnrolmentError(_("The private key does not belong to the certificate"))
    if now > certificate.not_valid_after_utc:
        raise EnrolmentError(_("The certificate expired on {date}: ask for a new one").format(
            date=f"{certificate.not_valid_after_utc:%Y-%m-%d}"))
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return key
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise EnrolmentError(_("The certificate is not a TLS client certificate (no "
                               "clientAuth)"))
    return key


def _install(
    config: AgentConfig,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
    key: object,
    source: str,
    host_ca_pem: bytes | None,
    now: dt.datetime,
) -> Enrolment:
    from cryptography.hazmat.primitives import hashes, serialization  # enrolling only

    key = _check_pair(certificate, key, now)
    directory = private_dir(config.credentials_dir)
    try:
        previous: dict[str, object] | None = _read_record(config)
    except EnrolmentError:
        previous = None  # none, or unreadable: this enrolment replaces it either way
    key_id = secrets.token_hex(8)
    identity = machine_id()
    secret = secrets.token_bytes(32)
    # Order matters: every new file first, enrolment.json last (the commit point).
    write_private_file(_secret_path(config, key_id), secret)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(_password(secret, identity)),
    )
    cert_path, key_path = (directory / f"workstation-{key_id}.pem",
                           directory / f"workstation-{key_id}.key")
    write_private_file(key_path, key_pem)
    write_private_file(cert_path, b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in [certificate, *chain]))
    if host_ca_pem is not None:
        write_private_file(directory / HOST_CA_FILE, host_ca_pem)
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
    record = {
        "version": 1,
        "key_id": key_id,
        "source": source,
        "subject": certificate.subject.rfc4514_string(),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "fingerprint_sha256": fingerprint,
        "machine_binding": binding_digest(identity),
        "enrolled_at": now.isoformat(),
    }
    write_private_file(directory / ENROLMENT_FILE,
                       json.dumps(record, indent=2).encode("utf-8") + b"\n")
    if previous is not None and previous.get("key_id") != key_id:
        _forget(config, str(previous.get("key_id", "")))
    return _enrolment(config, record)


def _forget(config: AgentConfig, key_id: str) -> None:
    """Remove a superseded enrolment's files (after the new one is committed)."""
    if not key_id.isalnum():
        return
    for path in (config.credentials_dir / f"workstation-{key_id}.pem",
                 config.credentials_dir / f"workstation-{key_id}.key",
                 _secret_path(config, key_id)):
        path.unlink(missing_ok=True)


def _enrolment(config: AgentConfig, record: dict[str, object]) -> Enrolment:
    key_id = str(record["key_id"])
    return Enrolment(
        subject=str(record["subject"]),
        not_before=dt.datetime.fromisoformat(str(record["not_before"])),
        not_after=dt.datetime.fromisoformat(str(record["not_after"])),
        fingerprint=str(record["fingerprint_sha256"]),
        source=str(record["source"]),
        certificate_path=config.credentials_dir / f"workstation-{key_id}.pem",
        key_path=config.credentials_dir / f"workstation-{key_id}.key",
    )


def _config(config: AgentConfig | None) -> AgentConfig:
    if config is not None:
        return config
    try:
        return load_config()
    except ConfigError as error:
        raise EnrolmentError(str(error)) from None


def enrol_from_pki(
    pki_dir: Path | str,
    name: str = "sandbox",
    *,
    config: AgentConfig | None = None,
    pki_password: bytes | None = None,
    now: dt.datetime | None = None,
) -> Enrolment:
    """Install ``DIR/workstations/NAME.pem`` and ``.key`` (from ``dmp-host pki
    issue-workstation``) and the host's CA ``DIR/server/ca.pem``.

    A PKI key encrypted under ``DMP_PKI_PASSPHRASE`` is read with ``pki_password`` or that
    variable. The PKI's own files are left as they are.
    """
    from cryptography import x509  # enrolling only, not at start
    from cryptography.hazmat.primitives import serialization

    config = _config(config)
    pki = Path(pki_dir)
    cert_file = pki / "workstations" / f"{name}.pem"
    key_file = pki / "workstations" / f"{name}.key"
    for file in (cert_file, key_file):
        if not file.is_file():
            raise EnrolmentError(
                _("{file} not found: run `dmp-host pki issue-workstation {pki} {name}` first")
                .format(file=file, pki=pki, name=name))
    if pki_password is None and os.environ.get(PKI_PASSPHRASE_ENV):
        pki_password = os.environ[PKI_PASSPHRASE_ENV].encode("utf-8")
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError as error:
        raise EnrolmentError(_("{file}: not a PEM certificate ({error})").format(
            file=cert_file, error=error)) from None
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=pki_password)
    except TypeError:
        raise EnrolmentError(_("{file} is encrypted: set {variable}").format(
            file=key_file, variable=PKI_PASSPHRASE_ENV)) from None
    except ValueError as error:
        raise EnrolmentError(_("{file}: cannot read the key ({error})").format(
            file=key_file, error=error)) from None
    host_ca = pki / "server" / "ca.pem"
    host_ca_pem = host_ca.read_bytes() if host_ca.is_file() else None
    if host_ca_pem is not None:
        try:
            x509.load_pem_x509_certificates(host_ca_pem)
        except ValueError:
            raise EnrolmentError(_("{file}: not a PEM certificate").format(file=host_ca)
                                 ) from None
    return _install(config, certificate, [], key, f"pki:{pki.resolve()}/{name}", host_ca_pem,
                    now or dt.datetime.now(dt.UTC))


def enrol_from_pkcs12(
    path: Path | str,
    password: bytes | str | None,
    *,
    config: AgentConfig | None = None,
    now: dt.datetime | None = None,
) -> Enrolment:
    """Install the key and certificate (with its chain) of a PKCS#12 file.

    The host's CA comes from the configuration (``host.ca``): a PKCS#12 carries the
    workstation's chain, not necessarily the CA of the host's server certificate.
    """
    from cryptography.hazmat.primitives.serialization import pkcs12  # enrolling only

    config = _config(config)
    file = Path(path)
    secret = password.encode("utf-8") if isinstance(password, str) else password
    try:
        data = file.read_bytes()
    except OSError as error:
        raise EnrolmentError(_("{file}: cannot read it ({error})").format(
            file=file, error=error.strerror)) from None
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(data, secret or None)
    except ValueError:
        raise EnrolmentError(_("{file}: wrong password, or not a PKCS#12 file").format(
            file=file)) from None
    if key is None or certificate is None:
        raise EnrolmentError(_("{file} does not hold both a private key and its "
                               "certificate").format(file=file))
    return _install(config, certificate, list(chain), key, f"pkcs12:{file.resolve()}",
                    None, now or dt.datetime.now(dt.UTC))


# -- using -------------------------------------------------------------------------------------


def _read_record(config: AgentConfig) -> dict[str, object]:
    file = config.credentials_dir / ENROLMENT_FILE
    try:
        record = json.loads(file.read_text("utf-8"))
    except FileNotFoundError:
        raise EnrolmentError(
            _("This workstation is not enrolled: the administrator provisions it, or run "
              "`dmp-agent enrol` to see the three ways")) from None
    except (OSError, ValueError) as error:
        raise EnrolmentError(_("{file}: unreadable ({error}): enrol again").format(
            file=file, error=error)) from None
    if not isinstance(record, dict) or record.get("version") != 1 or not str(
            record.get("key_id", "")).isalnum():
        raise EnrolmentError(_("{file}: not an enrolment record of this agent: enrol "
                               "again").format(file=file))
    return record


def current_enrolment(config: AgentConfig | None = None) -> Enrolment:
    """What is installed (without opening the key); `EnrolmentError` when nothing is."""
    config = _config(config)
    return _enrolment(config, _read_record(config))


def load_workstation(config: AgentConfig | None = None) -> Workstation:
    """What `HostSession.open` needs: the certificate, the encrypted key and its password
    (derived again from the secret file and the machine identity), the host's CA.

    The key is opened once here so that a missing secret or another machine is reported
    now, in one clear sentence, rather than as an SSL error later.
    """
    config = _config(config)
    record = _read_record(config)
    enrolment = _enrolment(config, record)
    identity = machine_id()
    if record.get("machine_binding") != binding_digest(identity):
        raise EnrolmentError(
            _("The enrolment was made on another machine (or this machine's identity "
              "changed): its key cannot be opened here; enrol this workstation again"))
    try:
        secret = _secret_path(config, str(record["key_id"])).read_bytes()
        certificate_pem = enrolment.certificate_path.read_bytes()
        key_pem = enrolment.key_path.read_bytes()
    except OSError as error:
        raise EnrolmentError(
            _("Enrolment incomplete ({file}: {error}): enrol again").format(
                file=error.filename, error=error.strerror)) from None
    password = _password(secret, identity)
    try:
        # Only whether the password opens it, by OpenSSL as the TLS context will: the key is
        # ours (made or checked at enrolment); cryptography's RSA validation would add ~40 ms
        # to every start, its serialization module ~15 ms (issue 11).
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            enrolment.certificate_path, enrolment.key_path, password=password)
    except (ssl.SSLError, OSError, ValueError, TypeError):
        raise EnrolmentError(
            _("{file} cannot be opened with this workstation's secret: enrol again").format(
                file=enrolment.key_path)) from None
    host_ca = config.host_ca or config.credentials_dir / HOST_CA_FILE
    if not host_ca.is_file():
        raise EnrolmentError(
            _("No CA for the host's certificate: set host.ca in {file} (looked for "
              "{path})").format(file=config.source or _("the configuration"), path=host_ca))
    from agent.client.session import Workstation  # light: httpx loads at the first host call

    return Workstation(certificate_pem=certificate_pem, key_pem=key_pem,
                       key_password=password, host_ca=host_ca, proxy=config.host_proxy)


# -- command line ------------------------------------------------------------------------------


def add_enrol_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``dmp-agent enrol``; the parsed namespace's ``run(args) -> int`` runs it."""
    enrol = subparsers.add_parser(
        "enrol",
        help=_("install this workstation's certificate and key (sandbox PKI or PKCS#12)"),
        description=_(
            "Workstation enrolment: installs the establishment certificate the host requires "
            "on every connection, its key encrypted, in the user's configuration directory "
            "(see docs/agent-enrolment.md)."
        ),
    )
    source = enrol.add_mutually_exclusive_group()
    source.add_argument("--from-pki", type=Path, metavar=_("DIR"),
                        help=_("the sandbox's test PKI (made by `dmp-host pki init DIR`)"))
    source.add_argument("--pkcs12", type=Path, metavar=_("FILE"),
                        help=_("a PKCS#12 file (.p12/.pfx) holding the key and certificate"))
    enrol.add_argument("--name", default="sandbox",
                       help=_("with --from-pki: the workstation name (default %(default)s)"))
    enrol.add_argument("--password-stdin", action="store_true",
                       help=_("with --pkcs12: read the password from stdin (else ${variable}, "
                              "else a prompt)").format(variable=PKCS12_PASSWORD_ENV))
    enrol.set_defaults(run=run_enrol)
    return enrol


ENROL_WAYS = N_("""\
Enrol this workstation: three ways.

1. By the administrator (recommended): they drop workstation.p12 and workstation.pass (and
   host-ca.pem if needed) in /etc/dmp-agent (or $DMP_AGENT_PROVISIONING); each user's
   agent enrols by itself at its next start.
2. With the workstation's PKCS#12 file, from the establishment:
     dmp-agent enrol --pkcs12 workstation.p12      (the password is asked)
3. Sandbox or trials, with a test PKI:
     dmp-agent enrol --from-pki DIR                (DIR: `dmp-host pki init DIR`)

See docs/agent-enrolment.md; `dmp-agent doctor` tells where the workstation stands.""")


def run_enrol(args: argparse.Namespace) -> int:
    if args.from_pki is None and args.pkcs12 is None:
        print(_(ENROL_WAYS), file=sys.stderr)
        return 2
    try:
        if args.from_pki is not None:
            enrolment = enrol_from_pki(args.from_pki, args.name)
        else:
            if args.password_stdin:
                password: str | None = sys.stdin.readline().rstrip("\r\n")
            else:
                password = os.environ.get(PKCS12_PASSWORD_ENV)
                if password is None:
                    password = getpass.getpass(_("Password of {file}: ").format(
                        file=args.pkcs12))
            enrolment = enrol_from_pkcs12(args.pkcs12, password)
    except EnrolmentError as error:
        print(f"dmp-agent enrol: {error}", file=sys.stderr)
        return 1
    print(_("Workstation enrolled: {subject}\n  valid until {date}, SHA-256 {fingerprint}\n"
            "  {folder}").format(subject=enrolment.subject,
                                 date=f"{enrolment.not_after:%Y-%m-%d}",
                                 fingerprint=enrolment.fingerprint,
                                 folder=enrolment.certificate_path.parent))
    return 0


__all__ = [
    "Enrolment",
    "EnrolmentError",
    "add_enrol_command",
    "current_enrolment",
    "enrol_from_pkcs12",
    "enrol_from_pki",
    "load_workstation",
    "machine_id",
    "run_enrol",
]
