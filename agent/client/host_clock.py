"""The workstation's clock against the host's, read before any certificate is judged.

A clock off by ten minutes makes a freshly issued host certificate "not yet valid", and one
off by a year makes a good CPS "expired": the TLS or card error then hides the real cause.
So `doctor` and the session, before blaming a certificate, read the host's time from the
``Date`` header of its answer, and name a skew as a skew, with its fix.

When the certificate check itself fails, `read_host_clock` still gets that header, safely:

- the TLS 1.3 handshake is made without the library's verification, presenting the
  workstation certificate (the host asks for one; it is public, and the handshake signature
  that goes with it is bound to this one connection);
- before a byte of HTTP is sent, the server's certificate is verified as usual except for
  the dates: it must chain to the configured host CA and name the host, checked at the time
  it was issued (`cryptography`'s verifier). The handshake proved the server holds its key.
  A certificate that fails this is not the host's: nothing is sent, no time is read;
- then ``GET /session`` without any credential (the host answers 401) and only its ``Date``
  header is kept.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.x509 import verification

from agent.i18n import _

# Beyond the Date header's one-second resolution and a slow network: a skew this large can
# explain a certificate judged out of its validity, and the user must hear about it.
SIGNIFICANT_SKEW = dt.timedelta(minutes=1)
MAX_HEAD = 16 << 10  # bytes of response head read for the Date header
# Within the Date header's one-second resolution (and half a round trip): on time.
ON_TIME = dt.timedelta(seconds=2)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def clock_fix() -> str:
    """How to set this workstation's clock, one sentence."""
    if sys.platform == "win32":
        return _("Set the workstation's clock: Settings > Time & language > Date & time > "
                 "Sync now")
    return _("Set the workstation's clock (NTP synchronisation: timedatectl set-ntp true)")


def _amount(seconds: float) -> str:
    """A duration in the unit a person would say."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return _("{days} days").format(days=f"{seconds / 86400:.0f}")


@dataclass(frozen=True)
class ClockReading:
    """The workstation's clock minus the host's (positive: the workstation is ahead)."""

    skew: dt.timedelta
    host_time: dt.datetime

    @property
    def significant(self) -> bool:
        return abs(self.skew) >= SIGNIFICANT_SKEW

    def describe(self) -> str:
        """'Workstation clock 10 min behind the host's', in the agent's language."""
        seconds = abs(self.skew.total_seconds())
        if seconds < ON_TIME.total_seconds():
            return _("Workstation clock on time with the host's")
        if self.skew > dt.timedelta(0):
            return _("Workstation clock {amount} ahead of the host's").format(
                amount=_amount(seconds))
        return _("Workstation clock {amount} behind the host's").format(amount=_amount(seconds))


def reading_from(date: str | None, sent: dt.datetime, received: dt.datetime,
                 now: dt.datetime | None = None) -> ClockReading | None:
    """The skew from a ``Date`` header stamped between ``sent`` and ``received`` (the local
    times around the request; ``now`` replaces their middle, for tests)."""
    try:
        host_time = email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None
    if host_time is None or host_time.tzinfo is None:
        return None
    local = now or sent + (received - sent) / 2
    return ClockReading(local - host_time, host_time)


def certificate_rejected(error: BaseException) -> bool:
    """Whether ``error`` (an httpx error, with its causes) is a server certificate that
    failed verification: what a skewed clock produces."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.append(current)
        current = current.__cause__ or current.__context__
    return False


def is_the_hosts(der: bytes, host_ca: Path, host: str) -> bool:
    """Whether ``der`` chains to a CA of ``host_ca`` and names ``host``: every check of the
    usual verification but the dates (made at the certificate's own issuing time)."""
    try:
        leaf = x509.load_der_x509_certificate(der)
        store = verification.Store(x509.load_pem_x509_certificates(host_ca.read_bytes()))
        try:
            name: verification.Subject = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        verifier = (verification.PolicyBuilder().store(store)
                    .time(leaf.not_valid_before_utc).build_server_verifier(name))
        verifier.verify(leaf, [])
    except (ValueError, OSError, verification.VerificationError):
        return False
    return True


def read_host_clock(url: str, context: ssl.SSLContext, host_ca: Path, timeout: float, *,
                    clock: Clock = utc_now) -> ClockReading | None:
    """The host's ``Date`` against this clock, whatever the dates of the host's certificate
    (see the module's notes); ``context`` is the workstation's client context, used without
    its verification. None when the host cannot be reached or proven to be the host."""
    target = httpx.URL(url)
    host, port = target.host, target.port or 443
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the dates cannot be judged yet: checked below
    request = (f"GET /session HTTP/1.1\r\nHost: {target.netloc.decode('ascii')}\r\n"
               "Connection: close\r\n\r\n").encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            if not der or not is_the_hosts(der, host_ca, host):
                return None
            sent = clock()
            tls.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                head += chunk
            received = clock()
    except (OSError, ssl.SSLError):
        return None
    for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"date":
            return reading_from(value.strip().decode("latin-1"), sent, received)
    return None
