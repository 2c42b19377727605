"""What a virtual CPS keeps on disk with ``state_dir``: its PIN and PUK counters, its keys and
its certificates.

So that a blocked card stays blocked when it is inserted again, and a card keeps its keys (and
the certificates the test CA issued for them) from one run to the next. Key files are 0600.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..cps import CpsIdentity
from ..cps_data import PracticeSituation
from .atomic import write_atomic
from .pki import (
    CertificateSubject,
    TestHealthCA,
    new_rsa_key,
    read_private_key,
    write_private_key,
)

MAX_PIN_TRIES, MAX_PUK_TRIES = 3, 10

# The authentication key, the signature key, and their certificates.
CardKeys = tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, x509.Certificate, x509.Certificate]


@dataclasses.dataclass
class Counters:
    """What survives a removal: the PIN, its try counter and the PUK's."""

    pin: str
    puk: str
    pin_tries: int = MAX_PIN_TRIES
    puk_tries: int = MAX_PUK_TRIES


def load_counters(state_dir: Path | None, default: Counters) -> Counters:
    """The counters saved in ``state_dir``; ``default`` (saved there) for a new card."""
    if state_dir is None:
        return default
    path = state_dir / "state.json"
    if path.exists():
        return Counters(**json.loads(path.read_text()))
    save_counters(state_dir, default)
    return default


def save_counters(state_dir: Path | None, counters: Counters) -> None:
    if state_dir is None:
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    state = dataclasses.asdict(counters)
    write_atomic(state_dir / "state.json", json.dumps(state).encode())


def load_keys(
    state_dir: Path | None,
    who: CpsIdentity,
    situations: Sequence[PracticeSituation],
    ca: TestHealthCA | None,
) -> tuple[CardKeys, TestHealthCA | None]:
    """The card's keys and certificates from ``state_dir``, else new ones issued by ``ca``
    (a new test CA when None; saved in ``state_dir`` when given). Returns them with the CA
    that issued them (``ca`` as given when they were read from disk)."""
    d = state_dir
    names = ("auth.key", "sign.key", "auth.pem", "sign.pem")
    if d is not None and all((d / n).exists() for n in names):
        auth, sign = read_private_key(d / names[0]), read_private_key(d / names[1])
        auth_cert = x509.load_pem_x509_certificate((d / names[2]).read_bytes())
        sign_cert = x509.load_pem_x509_certificate((d / names[3]).read_bytes())
        return (auth, sign, auth_cert, sign_cert), ca
    auth, sign = new_rsa_key(), new_rsa_key()
    if ca is None:
        ca = TestHealthCA.create()
    subject = CertificateSubject(
        who.id_nat_ps, who.last_name, who.first_name, who.profession_code,
        who.specialty_code, who.is_test_card, who.not_before, who.not_after,
        tuple(situation.structure_id for situation in situations),
    )
    auth_cert, sign_cert = ca.issue_card_certificates(subject, auth, sign)
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
        write_private_key(d / names[0], auth)
        write_private_key(d / names[1], sign)
        for name, cert in ((names[2], auth_cert), (names[3], sign_cert)):
            write_atomic(d / name, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return (auth, sign, auth_cert, sign_cert), ca
