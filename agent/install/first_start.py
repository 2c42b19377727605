"""First-start enrolment from what the administrator provisioned (docs/installer.md).

`dmp-agent run` calls `enrol_if_needed` before anything else. When this user's agent is not
enrolled yet, it looks in the provisioning directory (``/etc/dmp-agent``, or
``$DMP_AGENT_PROVISIONING``) for, in this order:

    workstation.p12     the workstation's certificate and key (production), with
    workstation.pass    its password on one line (absent: a PKCS#12 without password), and
    host-ca.pem         optionally, the CA of the host's server certificate
    pki/                a sandbox test PKI made by ``dmp-host pki init DIR/pki`` (its
                        ``sandbox`` workstation)

and enrols from it. It never raises for what is missing or wrong: the agent starts anyway and
the sentence it returns (also shown by the page and ``dmp-agent doctor``) says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import AgentConfig, ConfigError, load_config, write_private_file
from agent.i18n import _
from agent.install.enrol import (
    HOST_CA_FILE,
    Enrolment,
    EnrolmentError,
    current_enrolment,
    enrol_from_pkcs12,
    enrol_from_pki,
)

PROVISIONING_ENV = "DMP_AGENT_PROVISIONING"
DEFAULT_PROVISIONING = Path("/etc/dmp-agent")
PKCS12_FILE = "workstation.p12"
PASSWORD_FILE = "workstation.pass"
PROVISIONED_HOST_CA = "host-ca.pem"
PKI_DIR = "pki"
PKI_WORKSTATION = "sandbox"  # the workstation `dmp-host pki init` issues


def provisioning_dir(default: Path = DEFAULT_PROVISIONING) -> Path:
    """``$DMP_AGENT_PROVISIONING`` when set, else ``default``."""
    named = os.environ.get(PROVISIONING_ENV)
    return Path(named).expanduser() if named else default


def enrol_if_needed(
    config: AgentConfig | None = None, provisioning: Path = DEFAULT_PROVISIONING
) -> str | None:
    """Enrol this workstation from the provisioning directory if it is not enrolled.

    Returns None when it already was (nothing done), else one sentence: what was done, or
    what is missing and how to fix it.
    """
    if config is None:
        try:
            config = load_config()
        except ConfigError as error:
            return _("Configuration unreadable: {error}").format(error=error)
    try:
        current_enrolment(config)
        return None
    except EnrolmentError:
        pass  # not enrolled, or an unusable record: enrolling again is the fix either way
    directory = provisioning_dir(provisioning)
    p12, pki = directory / PKCS12_FILE, directory / PKI_DIR
    try:
        if p12.exists():
            return _from_pkcs12(config, directory, p12)
        if pki.is_dir():
            enrolment = enrol_from_pki(pki, PKI_WORKSTATION, config=config)
            return _done(enrolment, pki)
    except EnrolmentError as error:
        return _("Could not enrol from {folder}: {error}. Fix the provisioned files, then "
                 "restart the agent (docs/installer.md).").format(folder=directory, error=error)
    except OSError as error:
        return _("Could not enrol: {file}: {error}. The administrator must make {folder} "
                 "readable by this user (group dmp, mode 0640).").format(
            file=error.filename, error=error.strerror, folder=directory)
    try:
        where = (str(directory) if directory.is_dir()
                 else _("{folder} (absent)").format(folder=directory))
    except OSError:
        where = _("{folder} (unreadable)").format(folder=directory)
    return _("Workstation not enrolled: nothing to enrol from in {where}. The administrator "
             "drops {p12} and {password} there (or a test PKI in {pki}/, `dmp-host pki init "
             "{pki_path}`), or run `dmp-agent enrol --pkcs12 FILE`; then restart the "
             "agent.").format(where=where, p12=PKCS12_FILE, password=PASSWORD_FILE,
                              pki=PKI_DIR, pki_path=directory / PKI_DIR)


def _from_pkcs12(config: AgentConfig, directory: Path, p12: Path) -> str:
    password_file = directory / PASSWORD_FILE
    password: str | None = None
    if password_file.exists():
        lines = password_file.read_text("utf-8").splitlines()
        password = lines[0] if lines else ""
    host_ca = directory / PROVISIONED_HOST_CA
    if host_ca.exists():
        from cryptography import x509  # ~30 ms: only when enrolling from a PKCS#12

        pem = host_ca.read_bytes()
        try:
            x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise EnrolmentError(_("{file}: not a PEM certificate").format(file=host_ca)
                                 ) from None
        # Where `load_workstation` looks when the configuration names no host.ca; written
        # before the enrolment record (its commit point), so an enrolled agent always has it.
        write_private_file(config.credentials_dir / HOST_CA_FILE, pem)
    try:
        enrolment = enrol_from_pkcs12(p12, password, config=config)
    except EnrolmentError as error:
        if password is None:
            raise EnrolmentError(_("{error} ({file} is missing)").format(
                error=error, file=password_file)) from None
        raise
    sentence = _done(enrolment, p12)
    if (config.host_ca is None and not host_ca.exists()
            and not (config.credentials_dir / HOST_CA_FILE).is_file()):
        sentence += " " + _("The host's CA is missing: drop {file} in {folder} or set "
                            "host.ca in the configuration.").format(file=PROVISIONED_HOST_CA,
                                                                    folder=directory)
    return sentence


def _done(enrolment: Enrolment, source: Path) -> str:
    return _("Workstation enrolled from {source}: {subject}, valid until {date}.").format(
        source=source, subject=enrolment.subject, date=f"{enrolment.not_after:%Y-%m-%d}")


__all__ = ["PROVISIONING_ENV", "enrol_if_needed", "provisioning_dir"]
