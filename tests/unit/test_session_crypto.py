"""Opening a card-rooted session (host.session_crypto, wire.session): the statement's bytes,
and every refusal, with a real card: the virtual CPS driven in-process by the CPS profile,
which signs with its authentication key exactly as over PC/SC."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from cardreader.apdu import ApduProtocol
from cardreader.cps import CpsCard, CpsKey
from cardreader.virtual.cps import VirtualCps
from cardreader.virtual.direct import DirectConnection as InProcess
from cardreader.virtual.pki import TestHealthCA
from host import pki
from host.session_crypto import (
    MESSAGES,
    CardHolder,
    SessionRefused,
    issue_session_certificate,
    public_key_sha256,
    subject_fields,
    verify_card_certificate,
    verify_statement,
)
from wire.session import PREFIX, SessionStatement, StatementError, sha256

SKEW = timedelta(minutes=5)




@dataclasses.dataclass
class Card:
    """A virtual CPS seen through the profile, PIN presented."""

    profile: CpsCard

    @classmethod
    def of(cls, virtual: VirtualCps) -> Card:
        profile = CpsCard(ApduProtocol(InProcess(virtual)))
        profile.verify_pin("1234")
        return cls(profile)

    @property
    def auth_cert(self) -> x509.Certificate:
        return self.profile.certificate(CpsKey.AUTHENTICATION)

    @property
    def auth_der(self) -> bytes:
        return self.auth_cert.public_bytes(serialization.Encoding.DER)

    def sign(self, statement: SessionStatement) -> bytes:
        return self.profile.sign(CpsKey.AUTHENTICATION, statement.to_bytes())


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(pki.PASSPHRASE_ENV, raising=False)
        pki.init_pki(directory)
    return directory


@pytest.fixture(scope="module")
def health(pki_dir: Path) -> pki.CertificateAuthority:
    return pki.load_health_ca(pki_dir)


@pytest.fixture(scope="module")
def card_ca(pki_dir: Path) -> TestHealthCA:
    return TestHealthCA.load(pki_dir / "health-ca")


@pytest.fixture(scope="module")
def gp(card_ca: TestHealthCA) -> Card:
    return Card.of(VirtualCps.from_profile("gp", ca=card_ca))


@pytest.fixture(scope="module")
def session_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


WORKSTATION = sha256(b"the workstation certificate DER")


def statement_for(
    card: Card, session_key: ec.EllipticCurvePrivateKey, **changes: object
) -> SessionStatement:
    holder = subject_fields(card.auth_cert)
    fields: dict[str, object] = {
        "challenge": secrets.token_bytes(32),
        "session_public_key_sha256": public_key_sha256(session_key.public_key()),
        "workstation_cert_sha256": WORKSTATION,
        "time": datetime.now(UTC),
        "id_nat_ps": holder.id_nat_ps,
        "structure_id": "581234567800015",
    }
    fields.update(changes)
    return SessionStatement(**fields)  # type: ignore[arg-type]


def known(*challenges: bytes) -> Callable[[bytes], bool]:
    """A one-use challenge store, as the host keeps one."""
    issued = set(challenges)

    def consume(challenge: bytes) -> bool:
        if challenge in issued:
            issued.remove(challenge)
            return True
        return False

    return consume


def refused(code: str, call: Callable[[], object]) -> SessionRefused:
    with pytest.raises(SessionRefused) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert caught.value.code in MESSAGES and " / " in caught.value.message
    return caught.value


# -- the statement's bytes ----------------------------------------------------------------------

BASE = SessionStatement(
    challenge=bytes(range(32)),
    session_public_key_sha256=b"\x01" * 32,
    workstation_cert_sha256=b"\x02" * 32,
    time=datetime(2026, 1, 31, 9, 15, tzinfo=UTC),
    id_nat_ps="810001234565",
    structure_id="581234567800015",
)


def test_statement_bytes_are_the_documented_canonical_json() -> None:
    data = BASE.to_bytes()
    assert data.startswith(PREFIX)
    body = data[len(PREFIX):]
    assert body == json.dumps(
        json.loads(body), sort_keys=True, separators=(",", ":")
    ).encode("ascii")
    assert json.loads(body)["time"] == "2026-01-31T09:15:00.000000Z"
    # Same fields, even through another time zone or the wire: same bytes.
    paris = BASE.time.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert dataclasses.replace(BASE, time=paris).to_bytes() == data
    assert SessionStatement.from_json(BASE.to_json()).to_bytes() == data
    assert SessionStatement.from_json(BASE.to_json()) == BASE


@pytest.mark.parametrize(
    "change",
    [
        {"challenge": bytes(range(1, 33))},
        {"challenge": bytes(range(33))},
        {"session_public_key_sha256": b"\x03" * 32},
        {"workstation_cert_sha256": b"\x03" * 32},
        {"time": datetime(2026, 1, 31, 9, 15, 0, 1, tzinfo=UTC)},
        {"id_nat_ps": "810001234566"},
        {"structure_id": "3750100042"},
    ],
)
def test_any_field_change_changes_the_bytes(change: dict[str, object]) -> None:
    assert dataclasses.replace(BASE, **change).to_bytes() != BASE.to_bytes()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"challenge": b"short"},
        {"session_public_key_sha256": b"\x01" * 31},
        {"time": datetime(2026, 1, 31)},  # naive: which time zone?
        {"id_nat_ps": ""},
        {"structure_id": "a b"},
        {"id_nat_ps": "8" * 65},
    ],
)
def test_malformed_statements_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(StatementError):
        dataclasses.replace(BASE, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "", "[]", "null", "{",
        BASE.to_json().replace('"time":"2026-01-31T09:15:00.000000Z"', '"time":"2026-01-31"'),
        BASE.to_json().replace('"time":"2026-01-31T09:15:00.000000Z"',
                               '"time":"2026-02-30T09:15:00.000000Z"'),
        BASE.to_json().replace("000102", "ABCDEF"),  # uppercase hex: a second spelling
        BASE.to_json()[:-1] + ',"extra":"1"}',
        json.dumps({**BASE.to_dict(), "id_nat_ps": 810001234565}),
    ],
)
def test_malformed_wire_json_raises_statement_error(text: str) -> None:
    with pytest.raises(StatementError):
        SessionStatement.from_json(text)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=30), children, max_size=8),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        _json_values.map(json.dumps),
        st.dictionaries(
            st.sampled_from(sorted(BASE.to_dict())), _json_values | st.text(max_size=70)
        ).map(lambda d: json.dumps({**BASE.to_dict(), **d})),
    )
)
def test_from_json_never_raises_anything_but_statement_error(text: str) -> None:
    try:
        statement = SessionStatement.from_json(text)
    except StatementError:
        return
    assert SessionStatement.from_json(statement.to_json()) == statement


# -- the card certificate -----------------------------------------------------------------------


def test_a_valid_test_card_names_its_holder(gp: Card, health: pki.CertificateAuthority) -> None:
    holder = verify_card_certificate(
        gp.auth_der, health, health.crl(), mode="test", now=datetime.now(UTC)
    )
    assert holder == CardHolder(
        "810001234565", "10", "SM54", "MARTIN", "Claire", True, gp.auth_cert.serial_number,
        ("581234567800015", "3750100042"),  # the card's practice situations, signed
    )


def test_a_card_from_another_ca_is_untrusted(health: pki.CertificateAuthority) -> None:
    stranger = Card.of(VirtualCps.from_profile("gp"))  # its own TestHealthCA, same names
    refused("card-cert-untrusted", lambda: verify_card_certificate(
        stranger.auth_der, health, health.crl(), mode="test", now=datetime.now(UTC)
    ))


def test_expired_and_not_yet_valid_cards(
    card_ca: TestHealthCA, health: pki.CertificateAuthority, gp: Card
) -> None:
    now = datetime.now(UTC)
    expired = Card.of(VirtualCps.from_profile(
        "gp", ca=card_ca, not_before=now - timedelta(days=800), not_after=now - timedelta(days=1)
    ))
    refused("card-cert-expired", lambda: verify_card_certificate(
        expired.auth_der, health, health.crl(), mode="test", now=now
    ))
    early = gp.auth_cert.not_valid_before_utc - timedelta(seconds=1)
    refused("card-cert-not-yet-valid", lambda: verify_card_certificate(
        gp.auth_der, health, health.crl(), mode="test", now=early
    ))


def test_a_revoked_card_is_refused_and_others_are_not(
    card_ca: TestHealthCA, health: pki.CertificateAuthority, gp: Card
) -> None:
    lost = Card.of(VirtualCps.from_profile("pharmacist", ca=card_ca))
    crl = pki.revoke(health.directory, lost.auth_cert)
    now = datetime.now(UTC)
    refused("card-cert-revoked", lambda: verify_card_certificate(
        lost.auth_der, health, crl, mode="test", now=now
    ))
    assert verify_card_certificate(gp.auth_der, health, crl, mode="test", now=now).id_nat_ps


def test_a_missing_stale_or_foreign_crl_refuses_every_card(
    gp: Card, health: pki.CertificateAuthority, pki_dir: Path
) -> None:
    crl = health.crl()
    assert crl.next_update_utc is not None
    stale = crl.next_update_utc + timedelta(seconds=1)
    refused("crl-unavailable", lambda: verify_card_certificate(
        gp.auth_der, health, crl, mode="test", now=stale
    ))
    foreign = pki.load_establishment_ca(pki_dir).crl()
    refused("crl-unavailable", lambda: verify_card_certificate(
        gp.auth_der, health, foreign, mode="test", now=datetime.now(UTC)
    ))


def test_card_categories_follow_the_host_mode(
    card_ca: TestHealthCA, health: pki.CertificateAuthority, gp: Card
) -> None:
    now = datetime.now(UTC)
    refused("test-card-refused", lambda: verify_card_certificate(
        gp.auth_der, health, health.crl(), mode="production", now=now
    ))
    real = Card.of(VirtualCps.from_profile("optician", ca=card_ca, is_test_card=False))
    refused("real-card-refused", lambda: verify_card_certificate(
        real.auth_der, health, health.crl(), mode="test", now=now
    ))
    holder = verify_card_certificate(
        real.auth_der, health, health.crl(), mode="production", now=now
    )
    assert not holder.is_test_card and holder.profession == "28"


def test_the_signature_certificate_or_garbage_is_not_an_authentication_certificate(
    gp: Card, health: pki.CertificateAuthority
) -> None:
    signing = gp.profile.certificate(CpsKey.SIGNATURE).public_bytes(serialization.Encoding.DER)
    now = datetime.now(UTC)
    refused("card-cert-unfit", lambda: verify_card_certificate(
        signing, health, health.crl(), mode="test", now=now
    ))
    refused("card-cert-malformed", lambda: verify_card_certificate(
        gp.auth_der[:-10], health, health.crl(), mode="test", now=now
    ))


# -- the signed statement -----------------------------------------------------------------------


def test_the_card_signed_statement_is_accepted_once(
    gp: Card, session_key: ec.EllipticCurvePrivateKey
) -> None:
    statement = statement_for(gp, session_key)
    signature = gp.sign(statement)
    challenge_known = known(statement.challenge)

    def check() -> None:
        verify_statement(
            statement, signature, gp.auth_cert, tls_client_cert_sha256=WORKSTATION,
            now=datetime.now(UTC), max_skew=SKEW, session_public_key=session_key.public_key(),
            challenge_known=challenge_known,
        )

    check()
    refused("challenge-unknown", check)  # a replay: the challenge was used


def _check(
    card: Card,
    statement: SessionStatement,
    signature: bytes,
    session_key: ec.EllipticCurvePrivateKey,
    *,
    workstation: bytes = WORKSTATION,
    now: datetime | None = None,
    challenge_known: Callable[[bytes], bool] | None = None,
) -> Callable[[], None]:
    return lambda: verify_statement(
        statement, signature, card.auth_cert, tls_client_cert_sha256=workstation,
        now=now or datetime.now(UTC), max_skew=SKEW, session_public_key=session_key.public_key(),
        challenge_known=challenge_known or known(statement.challenge),
    )


def test_a_signature_over_other_fields_is_bad(
    gp: Card, session_key: ec.EllipticCurvePrivateKey
) -> None:
    statement = statement_for(gp, session_key)
    signature = gp.sign(statement)
    tampered = dataclasses.replace(statement, structure_id="3750100042")
    calls: list[bytes] = []

    def challenge_known(challenge: bytes) -> bool:
        calls.append(challenge)
        return True

    refused("bad-signature", _check(
        gp, tampered, signature, session_key, challenge_known=challenge_known
    ))
    assert calls == []  # a refused statement does not use up the challenge
    refused("bad-signature", _check(gp, statement, signature[:-1], session_key))


def test_statement_must_name_the_holder_and_the_session_key(
    gp: Card, session_key: ec.EllipticCurvePrivateKey
) -> None:
    other = statement_for(gp, session_key, id_nat_ps="810009999999")
    refused("identity-mismatch", _check(gp, other, gp.sign(other), session_key))
    statement = statement_for(gp, session_key)
    swapped = ec.generate_private_key(ec.SECP256R1())
    refused("session-key-mismatch", _check(gp, statement, gp.sign(statement), swapped))


def test_statement_must_name_this_connections_workstation(
    gp: Card, session_key: ec.EllipticCurvePrivateKey
) -> None:
    statement = statement_for(gp, session_key)
    refused("workstation-mismatch", _check(
        gp, statement, gp.sign(statement), session_key, workstation=sha256(b"another")
    ))


def test_statement_time_must_be_within_the_skew(
    gp: Card, session_key: ec.EllipticCurvePrivateKey
) -> None:
    now = datetime.now(UTC)
    for offset in (SKEW + timedelta(seconds=1), -SKEW - timedelta(seconds=1)):
        statement = statement_for(gp, session_key, time=now + offset)
        refused("clock-skew", _check(gp, statement, gp.sign(statement), session_key, now=now))
    inside = statement_for(gp, session_key, time=now - SKEW + timedelta(seconds=1))
    _check(gp, inside, gp.sign(inside), session_key, now=now)()


def test_an_unknown_challenge_is_refused(
    gp: Card, session_key: ec.EllipticCurvePrivateKey
) -> None:
    statement = statement_for(gp, session_key)
    refused("challenge-unknown", _check(
        gp, statement, gp.sign(statement), session_key, challenge_known=known(b"\x00" * 32)
    ))


# -- the session certificate --------------------------------------------------------------------


def test_session_certificate_carries_the_professional(
    gp: Card, health: pki.CertificateAuthority, pki_dir: Path,
    session_key: ec.EllipticCurvePrivateKey,
) -> None:
    session_ca = pki.load_session_ca(pki_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    holder = verify_card_certificate(gp.auth_der, health, health.crl(), mode="test", now=now)
    certificate = issue_session_certificate(
        session_ca, session_key.public_key(), holder, "581234567800015", timedelta(hours=8),
        now=now,
    )
    certificate.verify_directly_issued_by(session_ca.certificate)
    assert certificate.not_valid_after_utc == now + timedelta(hours=8)
    assert certificate.not_valid_before_utc <= now
    assert public_key_sha256(certificate.public_key()) == public_key_sha256(  # type: ignore[arg-type]
        session_key.public_key()
    )
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    # One parser reads the card and the session certificate.
    card_fields, session_fields = subject_fields(gp.auth_cert), subject_fields(certificate)
    assert session_fields.organization == "581234567800015"
    assert dataclasses.replace(session_fields, organization="TEST") == card_fields
    with pytest.raises(ValueError):
        issue_session_certificate(
            session_ca, session_key.public_key(), holder, "581234567800015", timedelta(0)
        )
