"""The professional session: a card-rooted mutual-TLS client to the host.

Python's `ssl` cannot make a TLS handshake sign with a key that stays on a smart card, so the
card signs once, at opening, a statement binding a fresh in-memory session key to the host's
challenge, this workstation's certificate and the time (`wire.session`). The host answers a
short-lived session certificate for that key; every later call is mutual TLS with it, on one
kept-alive connection. The session key never reaches the disk in clear: `ssl` only loads keys
from files, so it is written encrypted under a random password that lives in memory, loaded,
and the file removed at once.

A session that ends is revoked at the host in the background (`agent.client.revocations`):
the session's own client tries first, the workstation's (`workstation_client`) retries, and
an `Opening` sends what is still pending before its challenge.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import os
import secrets
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes

from agent.errors import AgentError

# httpx, cryptography.x509 and the host clock's probe (which imports both) load at the first
# host call: `dmp-agent run` imports this module before it is ready, and never calls the
# host until a session opens (issue 11).
if TYPE_CHECKING:
    import httpx

    from agent.client.host_clock import ClockReading

Signer = Callable[[bytes], bytes]  # the card's authentication key: bytes -> RSA signature
# Called with the workstation's client before its first request (`Opening`): the pending
# session revocations go first (`Revoker.flush`).
BeforeOpening = Callable[["httpx.Client"], None]


class SessionError(AgentError):
    """The host refused the session, or could not be reached; ``code`` says why and
    ``status`` is the host's HTTP status (None: no answer)."""

    status: int | None  # type: ignore[assignment]  # the host's, not the local API's

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message, code=code or "host-refused")
        self.status = status

    @property
    def http_status(self) -> int:
        # The host's refusals a person can act on keep their status; the rest is a bad
        # gateway: the local API is not the one that failed.
        return self.status if self.status in (400, 403, 404, 409, 412, 413) else 502


class ClockSkewError(SessionError):
    """The workstation's clock is off: certificates and the session statement are judged
    against a wrong time. Named before any certificate is blamed (agent/client/host_clock.py)."""

    def __init__(self, reading: ClockReading) -> None:
        from agent.client.host_clock import clock_fix

        super().__init__("clock-skew", f"{reading.describe()}. {clock_fix()}")
        self.reading = reading

    @property
    def http_status(self) -> int:
        return 409  # the workstation's fault, not the host's: not a bad gateway


CLOCK_PROBE_TIMEOUT = 5.0  # seconds, at most, to read the host's time after a failure
# httpx drops a pooled connection idle for 5 s: after any pause the next call would pay a
# new TCP and TLS handshake (issue 18). Kept 280 s instead, under the reference host's 300
# (host.tls.KEEP_ALIVE_SECONDS) so that the agent never reuses one the host is closing; the
# session's keep-alive calls (`host.keepalive_seconds`, 240 s) come within it.
IDLE_CONNECTION_SECONDS = 280.0


@dataclass(frozen=True)
class Workstation:
    """This workstation's establishment certificate and key (PEM), and the host's CA."""

    certificate_pem: bytes
    key_pem: bytes
    key_password: bytes | None
    host_ca: Path  # the CA that issued the host's server certificate
    proxy: str | None = None  # the HTTP proxy to the host (`host.proxy`), if any

    @functools.cached_property
    def fingerprint(self) -> bytes:
        from cryptography import x509  # ~30 ms: at the first opening, not at start
        from cryptography.hazmat.primitives import serialization

        certificate = x509.load_pem_x509_certificate(self.certificate_pem)
        return _sha256(certificate.public_bytes(serialization.Encoding.DER))

    def context(self) -> ssl.SSLContext:
        """The TLS context presenting this workstation's certificate, made once per process
        (and again when the host's CA file changes): every opening and renewal reuses it."""
        try:
            stat = self.host_ca.stat()
            ca_state: tuple[int, ...] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            ca_state = ()
        key = (self, ca_state)
        with _CONTEXTS_LOCK:
            context = _CONTEXTS.get(key)
        if context is None:
            context = tls_context(self.host_ca, self.certificate_pem, self.key_pem,
                                  self.key_password)
            with _CONTEXTS_LOCK:
                if len(_CONTEXTS) >= 4:
                    _CONTEXTS.clear()
                _CONTEXTS[key] = context
        return context


_CONTEXTS: dict[tuple[Workstation, tuple[int, ...]], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def tls_context(
    host_ca: Path, certificate_pem: bytes, key_pem: bytes, key_password: bytes | None
) -> ssl.SSLContext:
    """A TLS 1.3 client context presenting this certificate.

    `ssl` only loads a key from a file: on Linux the key goes, as it is (encrypted when it has
    a password), into an anonymous memory file (memfd, never on a disk) that OpenSSL opens;
    elsewhere into a temporary file, encrypted under a random password held in memory, that
    exists only for the instant `load_cert_chain` reads it. The key is parsed once, by
    OpenSSL: cryptography's RSA consistency check alone costs ~45 ms per load.
    """
    context = ssl.create_default_context(cafile=str(host_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if sys.platform == "linux" and Path("/proc/self/fd").is_dir():
        _load_from_memory(context, certificate_pem, key_pem, key_password)
        return context
    from cryptography.hazmat.primitives import serialization  # not at start

    # Our own key (enrolment, or the session key made here): no RSA consistency check again.
    key = serialization.load_pem_private_key(key_pem, password=key_password,
                                             unsafe_skip_rsa_key_validation=True)
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


def _load_from_memory(context: ssl.SSLContext, certificate_pem: bytes, key_pem: bytes,
                      key_password: bytes | None = None) -> None:
    if sys.platform != "linux":  # memfd is Linux's: the caller checked
        raise OSError("no memfd on this platform")
    descriptors = []
    try:
        for name, data in (("dmp-cert", certificate_pem), ("dmp-key", key_pem)):
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
            descriptors.append(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        cert_fd, key_fd = descriptors
        context.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}",
                                password=key_password)
    finally:
        for fd in descriptors:
            os.close(fd)


def outcome_of(response: httpx.Response) -> tuple[str, str]:
    """The code of the host's OperationOutcome and its refusal in the agent's words, in the
    user's language (`agent.client.refusals`); the raw text when it is not one."""
    from agent.client.refusals import refusal_text

    try:
        issue = response.json()["issue"][0]
        code, text = issue["details"]["coding"][0]["code"], issue["details"]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "host-error", response.text[:300]
    if not isinstance(code, str) or not isinstance(text, str):
        return "host-error", response.text[:300]
    return code, refusal_text(code, text)


def _error(response: httpx.Response) -> SessionError:
    return SessionError(*outcome_of(response), response.status_code)


def _refusal(response: httpx.Response, sent: dt.datetime) -> SessionError:
    """The host's refusal of a session; a clock refusal with its amount, from ``Date``."""
    from agent.client.host_clock import reading_from

    refusal = _error(response)
    reading = reading_from(response.headers.get("date"), sent, dt.datetime.now(dt.UTC))
    if refusal.code == "clock-skew" and reading is not None:
        return ClockSkewError(reading)
    return refusal


def clock_skew(base_url: str, workstation: Workstation,
               timeout: float = CLOCK_PROBE_TIMEOUT) -> ClockSkewError | None:
    """The error to raise when the host's ``Date`` shows this clock off, else None: asked
    when a certificate looks out of its validity, before blaming the certificate."""
    from agent.client.host_clock import read_host_clock

    try:
        context = workstation.context()
    except (ssl.SSLError, ValueError, OSError):
        return None  # the caller's own error says what is wrong with these
    reading = read_host_clock(base_url, context, workstation.host_ca,
                              min(timeout, CLOCK_PROBE_TIMEOUT))
    return ClockSkewError(reading) if reading is not None and reading.significant else None


def workstation_client(base_url: str, workstation: Workstation,
                       timeout: float = 30.0) -> httpx.Client:
    """An httpx client to the host presenting this workstation's certificate (mutual TLS):
    what asks for a challenge, opens a session, and revokes the sessions it opened."""
    return host_client(base_url, workstation.context(), timeout, workstation.proxy)


def host_client(base_url: str, verify: ssl.SSLContext, timeout: float,
                proxy: str | None) -> httpx.Client:
    """An httpx client to the host: through ``proxy`` (an HTTP proxy: the TLS session, mutual
    authentication included, goes through its CONNECT tunnel) when one is set, its idle
    connections kept `IDLE_CONNECTION_SECONDS`."""
    import httpx  # the first host call: not at start

    from agent.client.link import linked_client

    # Each call's outcome goes to the host link the views show (reachable, unreachable...).
    return linked_client(base_url=base_url, verify=verify, timeout=timeout,
                         proxy=proxy or None,
                         limits=httpx.Limits(keepalive_expiry=IDLE_CONNECTION_SECONDS))


def shutdown_sockets(client: httpx.Client) -> None:
    """Shut down every socket of ``client``'s pool so that a thread blocked reading a
    response wakes up now: closing a socket from another thread does not wake it on Linux.

    httpx has no public handle on its sockets; this walks httpcore's pool and is a no-op if
    that shape changes (the call then fails at its own timeout instead).
    """
    import socket

    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    for connection in list(getattr(pool, "connections", ())):
        stream = getattr(getattr(connection, "_connection", None), "_network_stream", None)
        if stream is None:
            continue
        with contextlib.suppress(Exception):
            sock = stream.get_extra_info("socket")
            if sock is not None:
                # The plain-socket method: SSLSocket.shutdown would also drop its SSL object
                # under the reading thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


CHALLENGE_MARGIN = 5.0  # seconds: a challenge this close to its expiry is fetched again


class Opening:
    """The first half of an opening, done ahead: the workstation's TLS connection to the host
    and a one-time challenge, fetched on a thread (`start`) while the card is read and the
    PIN asked. `HostSession.open` then needs one round trip (POST /session). The host's
    rules are unchanged: the challenge is the host's, one use, short-lived; a challenge
    that expired while the PIN was being typed is fetched again (docs/agent-session.md).

    ``before`` (`Revoker.flush`) runs on the same connection before each challenge: the
    revocations of sessions this workstation ended go to the host before anything else.
    """

    def __init__(self, base_url: str, workstation: Workstation, timeout: float = 30.0, *,
                 before: BeforeOpening | None = None, ahead: bool = False) -> None:
        self.base_url, self.workstation, self.timeout = base_url, workstation, timeout
        self._before = before
        # Fetched well ahead (at the CPS's insertion): a network failure then is no answer
        # for the opening, which tries again when it comes.
        self._ahead = ahead
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._challenge: bytes | None = None
        self._deadline = 0.0  # time.monotonic() after which the challenge is stale
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> Opening:
        """Fetch the challenge on a thread; returns at once."""
        self._thread = threading.Thread(target=self._prefetch, name="session-challenge",
                                        daemon=True)
        self._thread.start()
        return self

    def _prefetch(self) -> None:
        try:
            self._fetch()
        except BaseException as error:  # given to the opening, which raises it
            self._error = error
        with self._lock:
            closed = self._closed
        if closed:
            self._drop()

    def _fetch(self) -> None:
        with self._lock:
            if self._client is None:
                self._client = workstation_client(self.base_url, self.workstation,
                                                  self.timeout)
            client = self._client
        if self._before is not None:
            self._before(client)  # the pending revocations: before any other request
        asked = time.monotonic()
        answer = client.post("/session/challenge")
        if answer.status_code != 200:
            raise _error(answer)
        body = answer.json()
        # The host says how long the challenge lives; an older host only says until when,
        # by its clock: then assume its default (2 minutes).
        lifetime = body.get("expiresIn")
        lifetime = float(lifetime) if isinstance(lifetime, (int, float)) else 120.0
        self._challenge = base64.b64decode(body["challenge"])
        self._deadline = asked + lifetime - CHALLENGE_MARGIN

    def take(self) -> tuple[httpx.Client, bytes]:
        """The connection and a fresh challenge (used once: the next take fetches again).
        Raises what fetching raised (httpx.HTTPError, SessionError)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._error is not None:
                import httpx  # loaded by the fetch already

                error, self._error = self._error, None
                if not (self._ahead and isinstance(error, httpx.TransportError)):
                    raise error
                self._challenge = None  # the host may be back: fetched again below
        if self._challenge is None or time.monotonic() >= self._deadline:
            self._fetch()
        challenge, self._challenge = self._challenge, None
        assert self._client is not None and challenge is not None
        return self._client, challenge

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        """Drop the connection (now, or when the fetch still running ends)."""
        with self._lock:
            self._closed = True
            running = self._thread is not None and self._thread.is_alive()
        if not running:
            self._drop()


class HostSession:
    """An open session: `client` is the httpx client every call goes through; `context`
    (the TLS context holding the session key) lets the session's end be told to the host on
    a client of its own once `client` is closed (`agent.client.revocations`)."""

    def __init__(
        self, base_url: str, client: httpx.Client, session_id: str, not_after: dt.datetime,
        access_modes: tuple[str, ...] = ("normal", "bris_de_glace"),
        context: ssl.SSLContext | None = None, proxy: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.client = client
        self.session_id = session_id
        self.not_after = not_after
        # What the host's registry lets this structure use (centre_15: regulation centres).
        self.access_modes = access_modes
        self.context = context
        self.proxy = proxy

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
        opening: Opening | None = None,
    ) -> HostSession:
        """Open a session: challenge, card signature over the statement, session certificate.

        ``sign`` is the card's authentication key (`CpsCard.sign(CpsKey.AUTHENTICATION, ...)`
        after the PIN); nothing of the card's PIN passes here. ``opening`` (`Opening(...)
        .start()`, made when the card came in) has the connection and the challenge ready:
        the opening is then one round trip. It is closed here, whatever happens.
        """
        import httpx  # the first host call: not at start
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from agent.client.host_clock import certificate_rejected
        from wire.session import SessionStatement

        opening = opening or Opening(base_url, workstation, timeout)
        try:
            with contextlib.closing(opening):
                bootstrap, challenge = opening.take()
                # EC P-256: made in well under a millisecond (an RSA key: tens to hundreds).
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
        return cls._established(base_url, workstation, opened, session_key, timeout)

    @classmethod
    def _established(cls, base_url: str, workstation: Workstation, opened: dict[str, Any],
                     session_key: Any, timeout: float) -> HostSession:
        """The session the host opened (``opened``: its 201 answer) on ``session_key``."""
        from cryptography.hazmat.primitives import serialization

        # The session key goes from this object to the TLS context and is then dropped.
        key_pem = session_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        session_context = tls_context(
            workstation.host_ca, opened["certificate"].encode(), key_pem, None
        )
        del key_pem, session_key
        client = host_client(base_url, session_context, timeout, workstation.proxy)
        modes = opened.get("accessModes")
        return cls(base_url, client, opened["sessionId"],
                   dt.datetime.fromisoformat(opened["notAfter"]),
                   tuple(str(m) for m in modes) if isinstance(modes, list)
                   else ("normal", "bris_de_glace"), session_context, workstation.proxy)

    @classmethod
    def open_ecps(
        cls,
        base_url: str,
        workstation: Workstation,
        *,
        authenticate: Callable[[str], tuple[str, str]],
        timeout: float = 30.0,
        opening: Opening | None = None,
    ) -> HostSession:
        """Open a session with the e-CPS (docs/psc.md): challenge, session key, then
        ``authenticate(nonce)`` (the CIBA login at Pro Santé Connect, approved on the phone)
        returns the ID token bound to that nonce and the structure chosen; POST /session/ecps.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from wire.session import ecps_nonce

        opening = opening or Opening(base_url, workstation, timeout)
        with contextlib.closing(opening):
            bootstrap, challenge = opening.take()
            session_key = ec.generate_private_key(ec.SECP256R1())
            public_der = session_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            id_token, structure_id = authenticate(ecps_nonce(challenge, public_der))
            sent = dt.datetime.now(dt.UTC)
            answer = bootstrap.post("/session/ecps", json={
                "idToken": id_token, "challenge": base64.b64encode(challenge).decode(),
                "sessionPublicKey": base64.b64encode(public_der).decode(),
                "structureId": structure_id})
            if answer.status_code != 201:
                raise _refusal(answer, sent)
            opened = answer.json()
        return cls._established(base_url, workstation, opened, session_key, timeout)

    def close(self, reason: str = "closed") -> None:
        """Tell the host the session is over, then drop the client (and the key with it)."""
        import httpx  # loaded by the opening already

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
