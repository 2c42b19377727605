"""The professional session: a card-rooted mutual-TLS client to the host.

Python's `ssl` cannot make a TLS handshake sign with a key that stays on a smart card, so the
card signs once, at opening, a statement binding a fresh in-memory session key to the host's
challenge, this workstation's certificate and the time (`wire.session`). The host answers a
short-lived session certificate for that key; every later call is mutual TLS with it, on one
kept-alive connection. The session key never reaches the disk in clear: `ssl` only loads keys
from files, so it is written encrypted under a random password that lives in memory, loaded,
and the file removed at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.client.host_clock import (
    ClockReading,
    certificate_rejected,
    clock_fix,
    read_host_clock,
    reading_from,
)
from wire.session import SessionStatement

Signer = Callable[[bytes], bytes]  # the card's authentication key: bytes -> RSA signature


class SessionError(Exception):
    """The host refused the session, or could not be reached; ``code`` says why."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ClockSkewError(SessionError):
    """The workstation's clock is off: certificates and the session statement are judged
    against a wrong time. Named before any certificate is blamed (agent/client/host_clock.py)."""

    def __init__(self, reading: ClockReading) -> None:
        super().__init__("clock-skew", f"{reading.describe()}. {clock_fix()}")
        self.reading = reading


CLOCK_PROBE_TIMEOUT = 5.0  # seconds, at most, to read the host's time after a failure


@dataclass(frozen=True)
class Workstation:
    """This workstation's establishment certificate and key (PEM), and the host's CA."""

    certificate_pem: bytes
    key_pem: bytes
    key_password: bytes | None
    host_ca: Path  # the CA that issued the host's server certificate

    @property
    def fingerprint(self) -> bytes:
        certificate = x509.load_pem_x509_certificate(self.certificate_pem)
        return _sha256(certificate.public_bytes(serialization.Encoding.DER))


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def tls_context(
    host_ca: Path, certificate_pem: bytes, key_pem: bytes, key_password: bytes | None
) -> ssl.SSLContext:
    """A TLS 1.3 client context presenting this certificate.

    `ssl` only loads a key from a file: on Linux the key goes into an anonymous memory file
    (memfd, never on a disk); elsewhere into a temporary file, encrypted under a random
    password held in memory, that exists only for the instant `load_cert_chain` reads it.
    """
    context = ssl.create_default_context(cafile=str(host_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    key = serialization.load_pem_private_key(key_pem, password=key_password)
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        clear = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        _load_from_memory(context, certificate_pem, clear)
        return context
    password = secrets.token_bytes(32)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    with tempfile.TemporaryDirectory(prefix="dmp-tls-") as directory:
        os.chmod(directory, 0o700)
        cert_file, key_file = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_file.write_bytes(certificate_pem)
        key_file.write_bytes(encrypted)
        context.load_cert_chain(cert_file, key_file, password=password)
    return context


def _load_from_memory(context: ssl.SSLContext, certificate_pem: bytes, key_pem: bytes) -> None:
    descriptors = []
    try:
        for name, data in (("dmp-cert", certificate_pem), ("dmp-key", key_pem)):
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
            descriptors.append(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        cert_fd, key_fd = descriptors
        context.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
    finally:
        for fd in descriptors:
            os.close(fd)


def outcome_of(response: httpx.Response) -> tuple[str, str]:
    """The code and the sentence of the host's OperationOutcome (or the raw text)."""
    try:
        issue = response.json()["issue"][0]
        return issue["details"]["coding"][0]["code"], issue["details"]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "host-error", response.text[:300]


def _error(response: httpx.Response) -> SessionError:
    return SessionError(*outcome_of(response), response.status_code)


def _refusal(response: httpx.Response, sent: dt.datetime) -> SessionError:
    """The host's refusal of a session; a clock refusal with its amount, from ``Date``."""
    refusal = _error(response)
    reading = reading_from(response.headers.get("date"), sent, dt.datetime.now(dt.UTC))
    if refusal.code == "clock-skew" and reading is not None:
        return ClockSkewError(reading)
    return refusal


def clock_skew(base_url: str, workstation: Workstation,
               timeout: float = CLOCK_PROBE_TIMEOUT) -> ClockSkewError | None:
    """The error to raise when the host's ``Date`` shows this clock off, else None: asked
    when a certificate looks out of its validity, before blaming the certificate."""
    try:
        context = tls_context(workstation.host_ca, workstation.certificate_pem,
                              workstation.key_pem, workstation.key_password)
    except (ssl.SSLError, ValueError, OSError):
        return None  # the caller's own error says what is wrong with these
    reading = read_host_clock(base_url, context, workstation.host_ca,
                              min(timeout, CLOCK_PROBE_TIMEOUT))
    return ClockSkewError(reading) if reading is not None and reading.significant else None


class HostSession:
    """An open session: `client` is the httpx client every call goes through."""

    def __init__(
        self, base_url: str, client: httpx.Client, session_id: str, not_after: dt.datetime,
        access_modes: tuple[str, ...] = ("normal", "bris_de_glace"),
    ) -> None:
        self.base_url = base_url
        self.client = client
        self.session_id = session_id
        self.not_after = not_after
        # What the host's registry lets this structure use (centre_15: regulation centres).
        self.access_modes = access_modes

    @classmethod
    def open(
        cls,
        base_url: str,
        workstation: Workstation,
        *,
        card_certificate_der: bytes,
        sign: Signer,
        id_nat_ps: str,
        structure_id: str,
        timeout: float = 30.0,
    ) -> HostSession:
        """Open a session: challenge, card signature over the statement, session certificate.

        ``sign`` is the card's authentication key (`CpsCard.sign(CpsKey.AUTHENTICATION, ...)`
        after the PIN); nothing of the card's PIN passes here.
        """
        context = tls_context(workstation.host_ca, workstation.certificate_pem,
                              workstation.key_pem, workstation.key_password)
        try:
            with httpx.Client(base_url=base_url, verify=context, timeout=timeout) as bootstrap:
                answer = bootstrap.post("/session/challenge")
                if answer.status_code != 200:
                    raise _error(answer)
                challenge = base64.b64decode(answer.json()["challenge"])
                session_key = ec.generate_private_key(ec.SECP256R1())
                public_der = session_key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                statement = SessionStatement(
                    challenge=challenge,
                    session_public_key_sha256=_sha256(public_der),
                    workstation_cert_sha256=workstation.fingerprint,
                    time=dt.datetime.now(dt.UTC),
                    id_nat_ps=id_nat_ps,
                    structure_id=structure_id,
                )
                signature = sign(statement.to_bytes())
                sent = dt.datetime.now(dt.UTC)
                answer = bootstrap.post("/session", json={
                    "statement": statement.to_dict(),
                    "signature": base64.b64encode(signature).decode(),
                    "cardCertificate": base64.b64encode(card_certificate_der).decode(),
                    "sessionPublicKey": base64.b64encode(public_der).decode(),
                })
                if answer.status_code != 201:
                    raise _refusal(answer, sent)
                opened = answer.json()
        except httpx.HTTPError as error:
            # Clock first: a host certificate "not yet valid" is most often this clock.
            if certificate_rejected(error) and (
                    skew := clock_skew(base_url, workstation, timeout)) is not None:
                raise skew from error
            raise
        # The session key goes from this object to the TLS context and is then dropped.
        key_pem = session_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        session_context = tls_context(
            workstation.host_ca, opened["certificate"].encode(), key_pem, None
        )
        del key_pem, session_key
        client = httpx.Client(base_url=base_url, verify=session_context, timeout=timeout)
        modes = opened.get("accessModes")
        return cls(base_url, client, opened["sessionId"],
                   dt.datetime.fromisoformat(opened["notAfter"]),
                   *([tuple(str(m) for m in modes)] if isinstance(modes, list) else []))

    def close(self, reason: str = "closed") -> None:
        """Tell the host the session is over, then drop the client (and the key with it)."""
        try:
            self.client.delete("/session", params={"reason": reason})
        except httpx.HTTPError:
            pass  # the host revokes on expiry anyway; the key is gone locally
        finally:
            self.client.close()

    def __enter__(self) -> HostSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
