"""The virtual CPS3 (IAS-ECC contact): an emulator that answers what the CPS profile and
OpenSC's iasecc driver send.

File tree (public facts from shared/CARDS.md, file ids under 0001 are ours, docs/cps.md):

    3F00 MF
      2F01 EF.ATR      80 | 46 pre-issuing data | E0 I/O buffer sizes
      2F00 EF.DIR      record 61 { 4F PKCS#15 AID, 50 label, 51 3F00 0001 }
      D003 EF.SN.ICC   5A 0A 80 25 00 00 01 <5-byte serial>   (short id 1C)
      0001 DF PKCS#15  AID E8 28 BD 08 0F 80 25 00 00 01 FF 00 10
        5031 ODF, 5032 TokenInfo, 7001 AODF, 7002 PrKDF, 7004 CDF, 7005 DODF
        A001 authentication certificate, A002 signature certificate
        D121 CPS_ID_CARD, D122 CPS_NAME_PS, D123 CPS_INFO_PS   (readable always)
        D131.. CPS_ACTIVITY_01_PS..                              (after the PIN)

Security objects (IAS-ECC SDOs, answered to GET DATA ``00 CB 3F FF``): the PIN (class 01,
reference 01, 3 tries, PUK 8 digits), the two RSA private keys (class 10, references 01 and
02, used as 81/82 with the local bit), the security environments 1 and 2 (their AT names the
PIN). Signing: MSE + PSO HASH + PSO CDS with the signature key, MSE + INTERNAL AUTHENTICATE
with the authentication key; both need the PIN (6982 otherwise).

With ``state_dir`` the keys, certificates and the PIN/PUK counters live on disk (files
0600), so a blocked card stays blocked when it is inserted again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from .. import cps_data, pkcs15, tlv
from ..cps import (
    ALGO_RSA_PKCS,
    ALGO_RSA_PKCS_SHA256,
    ALGO_SHA256,
    CRT_AT,
    CRT_DST,
    CRT_HT,
    PAN_PREFIX,
    PKCS15_AID,
    CpsIdentity,
    sha256_finish,
)
from ..cps_data import PracticeSituation
from ..errors import MalformedResponseError
from .atomic import write_atomic
from .filesystem import OK, CardStatus, DedicatedFile, ElementaryFile, FileSystemCard, sw
from .pki import (
    CertificateSubject,
    TestHealthCA,
    new_rsa_key,
    read_private_key,
    write_private_key,
)

log = logging.getLogger(__name__)

CPS3_ATR = bytes.fromhex("3BAC00402A001225006480000310009000")
PIN_REFERENCE = 0x01
AUTH_KEY_REF, SIGN_KEY_REF = 0x81, 0x82  # PrKDF keyReference (local bit set, as MSE sends it)
AUTH_KEY_ID, SIGN_KEY_ID = b"\x11", b"\x12"
PIN_AUTH_ID = b"\x01"
MAX_PIN_TRIES, MAX_PUK_TRIES = 3, 10
PIN_LENGTH, PUK_LENGTH = 4, 8
MAX_SITUATIONS = 16

SDO_CHV, SDO_RSA_PRIVATE, SDO_RSA_PUBLIC, SDO_SE = 0x01, 0x10, 0x20, 0x7B

APP = bytes.fromhex("3F000001")
ODF, TOKEN_INFO, AODF, PRKDF, CDF, DODF = 0x5031, 0x5032, 0x7001, 0x7002, 0x7004, 0x7005
AUTH_CERT, SIGN_CERT = 0xA001, 0xA002
ID_CARD, NAME_PS, INFO_PS, FIRST_ACTIVITY = 0xD121, 0xD122, 0xD123, 0xD131

# IAS-ECC access rules in the FCP (tag 8C: access-mode byte then one condition per bit set).
ACL_PUBLIC = b"\x03\xff\x00"  # update never, read always
ACL_PIN = b"\x03\xff\x12"  # update never, read after user authentication (SE 2 -> PIN)


class CpsFile(ElementaryFile):
    """A transparent or record EF whose FCP carries the IAS-ECC access rules (8C)."""

    def __init__(self, fid: int, data: bytes = b"", *, acl: bytes = ACL_PUBLIC, **kw: object):
        super().__init__(fid, data, **kw)  # type: ignore[arg-type]
        self.acl = acl

    def fcp(self) -> bytes:
        if self.records is None:
            size, descriptor = len(self.data), b"\x01"
        else:
            longest = max((len(r) for r in self.records), default=0)
            size = sum(map(len, self.records))
            descriptor = b"\x02\x41\x00" + bytes((longest, len(self.records)))
        return tlv.encode(
            0x62,
            tlv.encode(0x80, size.to_bytes(2, "big"))
            + tlv.encode(0x82, descriptor)
            + tlv.encode(0x83, self.fid.to_bytes(2, "big"))
            + tlv.encode(0x8A, b"\x05")
            + tlv.encode(0xA1, tlv.encode(0x8C, self.acl)),
        )


class CpsDirectory(DedicatedFile):
    def fcp(self) -> bytes:
        body = tlv.encode(0x82, b"\x38") + tlv.encode(0x83, self.fid.to_bytes(2, "big"))
        if self.aid:
            body += tlv.encode(0x84, self.aid)
        body += tlv.encode(0x8A, b"\x05") + tlv.encode(0xA1, tlv.encode(0x8C, b"\x00"))
        return tlv.encode(0x62, body)


@dataclasses.dataclass
class _Counters:
    """What survives a removal: the PIN, its try counter and the PUK's."""

    pin: str
    puk: str
    pin_tries: int = MAX_PIN_TRIES
    puk_tries: int = MAX_PUK_TRIES


class VirtualCps(FileSystemCard):
    """A CPS3 card in memory (plug it into vpcd with `VpcdLink`)."""

    atr = CPS3_ATR

    def __init__(
        self,
        identity: CpsIdentity,
        situations: Sequence[PracticeSituation] = (),
        *,
        pin: str = "1234",
        puk: str = "12345678",
        ca: TestHealthCA | None = None,
        state_dir: Path | None = None,
        on_apdu: Callable[[bytes, bytes], None] | None = None,
    ) -> None:
        if len(situations) > MAX_SITUATIONS:
            raise ValueError(f"a CPS holds at most {MAX_SITUATIONS} practice situations")
        if len(pin) != PIN_LENGTH or not pin.isdigit() or len(puk) != PUK_LENGTH:
            raise ValueError("the PIN is 4 digits and the PUK 8 digits")
        if len(identity.serial_number) != 10 or not identity.serial_number.isdigit():
            raise ValueError("serial_number is 10 digits (the end of the card's PAN)")
        self.identity = identity
        self.situations = tuple(situations)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.on_apdu = on_apdu
        self._counters = self._load_counters(_Counters(pin, puk))
        self.ca = ca
        self.auth_key, self.sign_key, self.auth_cert, self.sign_cert = self._load_keys()
        # Volatile state, cleared by power_on.
        self.verified = False
        self._env: dict[int, tuple[int, int | None]] = {}
        self._hash: bytes | None = None
        super().__init__(self._build_tree())

    @classmethod
    def from_profile(
        cls,
        name: str,
        *,
        ca: TestHealthCA | None = None,
        state_dir: Path | None = None,
        **changes: object,
    ) -> VirtualCps:
        """A ready card from `cps_profiles` ("gp", "pharmacist", ...); ``changes`` replace
        identity fields (e.g. ``not_after=...`` for an expired card, ``is_test_card=False``)."""
        from .cps_profiles import PROFILES

        profile = PROFILES[name]
        identity = dataclasses.replace(profile.identity, **changes)  # type: ignore[arg-type]
        return cls(
            identity, profile.situations, pin=profile.pin, puk=profile.puk, ca=ca,
            state_dir=state_dir,
        )

    # -- persistent state --
    def _load_counters(self, default: _Counters) -> _Counters:
        if self.state_dir is None:
            return default
        path = self.state_dir / "state.json"
        if path.exists():
            return _Counters(**json.loads(path.read_text()))
        self._save_counters(default)
        return default

    def _save_counters(self, counters: _Counters | None = None) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = dataclasses.asdict(counters or self._counters)
        write_atomic(self.state_dir / "state.json", json.dumps(state).encode())

    def _load_keys(
        self,
    ) -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, x509.Certificate, x509.Certificate]:
        d = self.state_dir
        names = ("auth.key", "sign.key", "auth.pem", "sign.pem")
        if d is not None and all((d / n).exists() for n in names):
            auth, sign = read_private_key(d / names[0]), read_private_key(d / names[1])
            auth_cert = x509.load_pem_x509_certificate((d / names[2]).read_bytes())
            sign_cert = x509.load_pem_x509_certificate((d / names[3]).read_bytes())
            return auth, sign, auth_cert, sign_cert
        auth, sign = new_rsa_key(), new_rsa_key()
        if self.ca is None:
            self.ca = TestHealthCA.create()
        who = self.identity
        subject = CertificateSubject(
            who.id_nat_ps, who.last_name, who.first_name, who.profession_code,
            who.specialty_code, who.is_test_card, who.not_before, who.not_after,
            tuple(situation.structure_id for situation in self.situations),
        )
        auth_cert, sign_cert = self.ca.issue_card_certificates(subject, auth, sign)
        if d is not None:
            d.mkdir(parents=True, exist_ok=True)
            write_private_key(d / names[0], auth)
            write_private_key(d / names[1], sign)
            for name, cert in ((names[2], auth_cert), (names[3], sign_cert)):
                write_atomic(d / name, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return auth, sign, auth_cert, sign_cert

    @property
    def pin_tries_left(self) -> int:
        return self._counters.pin_tries

    # -- the file tree --
    def _build_tree(self) -> DedicatedFile:
        who = self.identity
        mf = CpsDirectory(0x3F00)
        mf.add(CpsFile(0x2F01, ef_atr()))
        dir_record = tlv.encode(
            0x61,
            tlv.encode(0x4F, PKCS15_AID) + tlv.encode(0x50, b"CPS3 PKCS#15")
            + tlv.encode(0x51, APP),
        )
        mf.add(CpsFile(0x2F00, records=[dir_record]))
        serial = bytes.fromhex(who.serial_number)
        mf.add(CpsFile(0xD003, tlv.encode(0x5A, PAN_PREFIX + serial), sfi=0x1C))
        app = CpsDirectory(0x0001, aid=PKCS15_AID)
        mf.add(app)

        def path(fid: int) -> bytes:
            return APP + fid.to_bytes(2, "big")

        data_objects = [
            pkcs15.DataObjectInfo("CPS_ID_CARD", "CPS", path(ID_CARD)),
            pkcs15.DataObjectInfo("CPS_NAME_PS", "CPS", path(NAME_PS)),
            pkcs15.DataObjectInfo("CPS_INFO_PS", "CPS", path(INFO_PS)),
        ]
        for number, _situation in enumerate(self.situations, start=1):
            data_objects.append(
                pkcs15.DataObjectInfo(
                    f"CPS_ACTIVITY_{number:02d}_PS", "CPS", path(FIRST_ACTIVITY + number - 1),
                    PIN_AUTH_ID, True,
                )
            )
        key_access = frozenset({"sensitive", "alwaysSensitive", "neverExtractable", "local"})
        files = {
            ODF: pkcs15.encode_odf(
                [
                    pkcs15.OdfRecord("private_keys", path(PRKDF)),
                    pkcs15.OdfRecord("certificates", path(CDF)),
                    pkcs15.OdfRecord("data_objects", path(DODF)),
                    pkcs15.OdfRecord("auth_objects", path(AODF)),
                ],
                size=64,
            ),
            TOKEN_INFO: pkcs15.encode_token_info(
                pkcs15.TokenInfo(
                    0, serial, "ANS (carte virtuelle)", "CPS", frozenset({"readonly"}),
                    SUPPORTED_ALGORITHMS,
                )
            ),
            AODF: pkcs15.encode_aodf(
                [
                    pkcs15.PinInfo(
                        "Code porteur", PIN_AUTH_ID, frozenset({"initialized"}),
                        "ascii-numeric", PIN_LENGTH, PIN_LENGTH, PIN_LENGTH, PIN_REFERENCE,
                    )
                ]
            ),
            PRKDF: pkcs15.encode_prkdf(
                [
                    pkcs15.PrivateKeyInfo(
                        "CPS_PRIV_AUT", AUTH_KEY_ID, frozenset({"sign"}), AUTH_KEY_REF, APP,
                        self.auth_key.key_size, PIN_AUTH_ID, key_access,
                    ),
                    pkcs15.PrivateKeyInfo(
                        "CPS_PRIV_SIG", SIGN_KEY_ID, frozenset({"sign", "nonRepudiation"}),
                        SIGN_KEY_REF, APP, self.sign_key.key_size, PIN_AUTH_ID, key_access,
                    ),
                ]
            ),
            CDF: pkcs15.encode_cdf(
                [
                    pkcs15.CertificateInfo(
                        "Certificat d'Authentification CPS", AUTH_KEY_ID, path(AUTH_CERT)
                    ),
                    pkcs15.CertificateInfo(
                        "Certificat de Signature CPS", SIGN_KEY_ID, path(SIGN_CERT)
                    ),
                ]
            ),
            DODF: pkcs15.encode_dodf(data_objects),
            AUTH_CERT: self.auth_cert.public_bytes(serialization.Encoding.DER),
            SIGN_CERT: self.sign_cert.public_bytes(serialization.Encoding.DER),
            ID_CARD: cps_data.encode_id_card(
                cps_data.CardInfo(
                    who.category_code, who.is_test_card, who.not_before, who.not_after
                )
            ),
            NAME_PS: cps_data.encode_name(cps_data.HolderName(who.last_name, who.first_name)),
            INFO_PS: cps_data.encode_info(
                cps_data.HolderInfo(who.id_nat_ps, who.profession_code, who.specialty_code)
            ),
        }
        for fid, data in files.items():
            app.add(CpsFile(fid, data))
        for number, situation in enumerate(self.situations):
            app.add(
                CpsFile(
                    FIRST_ACTIVITY + number, cps_data.encode_activity(situation), acl=ACL_PIN,
                    read_allowed=lambda: self.verified,
                )
            )
        return mf

    # -- VirtualCard --
    def power_on(self) -> None:
        super().power_on()
        self.verified = False
        self._env.clear()
        self._hash = None

    def process(self, apdu: bytes) -> bytes:
        response = super().process(apdu)
        if self.on_apdu is not None:
            self.on_apdu(apdu, response)
        return response

    def handle(self, cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if cla & 0xF0 not in (0x00, 0x80) or cla & 0x0C:
            raise CardStatus(0x6E00 if cla & 0xF0 not in (0x00, 0x80) else 0x6882)
        handler = {
            0x20: self._verify,
            0x2C: self._reset_retry_counter,
            0xCB: self._get_data,
            0x22: self._mse,
            0x2A: self._pso,
            0x88: self._internal_authenticate,
            0x84: self._get_challenge,
        }.get(ins)
        if handler is None:
            return super().handle(cla, ins, p1, p2, data, le)
        return handler(p1, p2, data)

    # -- PIN --
    def _verify(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 != 0x00:
            raise CardStatus(0x6A86)
        if p2 & 0x7F != PIN_REFERENCE:
            raise CardStatus(0x6A88)
        counters = self._counters
        if counters.pin_tries == 0:
            raise CardStatus(0x6983)
        if not data:  # status only: no try used
            if self.verified:
                return OK
            raise CardStatus(0x63C0 | counters.pin_tries)
        if hmac.compare_digest(data, counters.pin.encode("ascii")):
            counters.pin_tries = MAX_PIN_TRIES
            self.verified = True
            self._save_counters()
            return OK
        counters.pin_tries -= 1
        self.verified = False
        self._save_counters()
        raise CardStatus(0x63C0 | counters.pin_tries)

    def _reset_retry_counter(self, p1: int, p2: int, data: bytes) -> bytes:
        if p2 & 0x7F != PIN_REFERENCE:
            raise CardStatus(0x6A88)
        if p1 not in (0x00, 0x01):
            raise CardStatus(0x6A86)
        counters = self._counters
        if counters.puk_tries == 0:
            raise CardStatus(0x6983)
        puk, new_pin = data[:PUK_LENGTH], data[PUK_LENGTH:]
        if (p1 == 0x00 and len(new_pin) != PIN_LENGTH) or (p1 == 0x01 and new_pin):
            raise CardStatus(0x6A80)
        if not hmac.compare_digest(puk, counters.puk.encode("ascii")):
            counters.puk_tries -= 1
            self._save_counters()
            raise CardStatus(0x63C0 | counters.puk_tries)
        counters.puk_tries = MAX_PUK_TRIES
        counters.pin_tries = MAX_PIN_TRIES
        if new_pin:
            if not new_pin.isdigit():
                raise CardStatus(0x6A80)
            counters.pin = new_pin.decode("ascii")
        self._save_counters()
        return OK

    # -- security data objects --
    def _get_data(self, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) != (0x3F, 0xFF):
            raise CardStatus(0x6A86)
        try:
            outer, _ = tlv.parse_one(data)
            # 4D (extended header list) is a primitive tag: parse its value by hand.
            template = tlv.parse_all(outer.value, padding=False)[0] if outer.tag == 0x4D else None
            sdo = template.children()[0] if template and template.tag == 0x70 else None
        except Exception:  # any malformed request is "wrong data", as a card answers
            raise CardStatus(0x6A80) from None
        if sdo is None or sdo.tag >> 16 != 0xBF:
            raise CardStatus(0x6A80)
        sdo_class, ref = (sdo.tag >> 8) & 0x7F, sdo.tag & 0x3F
        wanted = sdo.value[:-1] if sdo.value.endswith(b"\x80") else sdo.value
        header = bytes((0xBF, sdo_class | 0x80, ref))
        content = self._sdo_content(sdo_class, ref, wanted)
        return tlv.encode(int.from_bytes(header, "big"), content) + OK

    def _sdo_content(self, sdo_class: int, ref: int, wanted: bytes) -> bytes:
        if sdo_class == SDO_CHV and ref == PIN_REFERENCE:
            if wanted == b"\x7f\x41":
                return tlv.encode(
                    0x7F41, tlv.encode(0x80, bytes((PIN_LENGTH,)))
                    + tlv.encode(0x81, bytes((PIN_LENGTH,)))
                )
            if wanted == b"\xa0":
                # Access modes: change, verify, reset retry counter, get data: all free.
                return tlv.encode(
                    0xA0,
                    tlv.encode(0xA1, tlv.encode(0x8C, b"\x71\x00\x00\x00\x00"))
                    + tlv.encode(0x9A, bytes((MAX_PIN_TRIES,)))
                    + tlv.encode(0x9B, bytes((self._counters.pin_tries,)))
                    + tlv.encode(0x80, bytes((PIN_LENGTH,))),
                )
        keys = {AUTH_KEY_REF & 0x3F: self.auth_key, SIGN_KEY_REF & 0x3F: self.sign_key}
        if sdo_class == SDO_RSA_PRIVATE and ref in keys:
            if wanted == b"\xa0":
                signature = ref == SIGN_KEY_REF & 0x3F
                # PSO signature (sign key) or internal authenticate (auth key) after the PIN
                # through SE 2; GET DATA free.
                acl = b"\x41\x12\x00" if signature else b"\x21\x12\x00"
                return tlv.encode(
                    0xA0,
                    tlv.encode(0xA1, tlv.encode(0x8C, acl))
                    + tlv.encode(0x80, (keys[ref].key_size // 8).to_bytes(2, "big"))
                    + tlv.encode(0x9E, b"\x01" if signature else b"\x00"),
                )
            raise CardStatus(0x6A86)  # a private key has no public data
        if sdo_class == SDO_RSA_PUBLIC and ref in keys and wanted == b"\x7f\x49":
            numbers = keys[ref].public_key().public_numbers()
            n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
            e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
            return tlv.encode(0x7F49, tlv.encode(0x81, n) + tlv.encode(0x82, e))
        if sdo_class == SDO_SE and ref in (1, 2) and wanted == b"\x7b":
            # The AT of the environment: user password (95 08) = the PIN.
            at = tlv.encode(0xA4, b"\x83\x01" + bytes((PIN_REFERENCE,)) + b"\x95\x01\x08")
            return tlv.encode(0x7B, at)
        raise CardStatus(0x6A88)

    # -- cryptography --
    def _mse(self, p1: int, p2: int, data: bytes) -> bytes:
        if p1 == 0xF3:  # RESTORE SE: back to the default (empty) environment
            self._env.clear()
            return OK
        if p1 != 0x41 or p2 not in (CRT_HT, CRT_DST, CRT_AT):
            raise CardStatus(0x6A86)
        try:
            items = {item.tag: item.value for item in tlv.parse_all(data, padding=False)}
        except MalformedResponseError:
            raise CardStatus(0x6A80) from None
        algo = items.get(0x80, b"")
        key = items.get(0x84)
        expected = {CRT_HT: ALGO_SHA256, CRT_DST: ALGO_RSA_PKCS_SHA256, CRT_AT: ALGO_RSA_PKCS}
        if algo != bytes((expected[p2],)):
            raise CardStatus(0x6A80)
        if p2 != CRT_HT and (key is None or len(key) != 1 or self._key(key[0]) is None):
            raise CardStatus(0x6A88)
        self._env[p2] = (algo[0], key[0] if key else None)
        return OK

    def _key(self, ref: int) -> rsa.RSAPrivateKey | None:
        return {AUTH_KEY_REF & 0x3F: self.auth_key, SIGN_KEY_REF & 0x3F: self.sign_key}.get(
            ref & 0x3F
        )

    def _pso(self, p1: int, p2: int, data: bytes) -> bytes:
        if (p1, p2) == (0x90, 0xA0):
            return self._pso_hash(data)
        if (p1, p2) == (0x9E, 0x9A):
            return self._pso_cds(data)
        raise CardStatus(0x6A86)

    def _pso_hash(self, data: bytes) -> bytes:
        if CRT_HT not in self._env:
            raise CardStatus(0x6985)
        try:
            items = tlv.parse_all(data, padding=False)
        except MalformedResponseError:
            raise CardStatus(0x6A80) from None
        fields = {item.tag: item.value for item in items}
        if len(fields) != len(items) or not set(fields) <= {0x90, 0x80}:
            raise CardStatus(0x6A80)
        state = fields.get(0x90, b"")
        tail = fields.get(0x80)
        if len(state) == 32 and tail is None:
            self._hash = state  # the host sent the final hash
        elif len(state) == 40 and tail is not None and len(tail) < 64:
            bits = int.from_bytes(state[32:], "big")
            if bits % 512:
                raise CardStatus(0x6A80)
            self._hash = sha256_finish(state[:32], bits, tail)
        elif not state and tail is not None:
            self._hash = hashlib.sha256(tail).digest()
        else:
            raise CardStatus(0x6A80)
        return OK

    def _pso_cds(self, data: bytes) -> bytes:
        if not self.verified:
            raise CardStatus(0x6982)
        env = self._env.get(CRT_DST)
        if env is None or env[1] is None or env[1] & 0x3F != SIGN_KEY_REF & 0x3F:
            raise CardStatus(0x6985)
        if data:
            if len(data) != 32:
                raise CardStatus(0x6A80)
            digest = data
        elif self._hash is not None:
            digest = self._hash
        else:
            raise CardStatus(0x6985)
        self._hash = None
        signature = self.sign_key.sign(
            digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
        return signature + OK

    def _internal_authenticate(self, p1: int, p2: int, data: bytes) -> bytes:
        if not self.verified:
            raise CardStatus(0x6982)
        env = self._env.get(CRT_AT)
        if env is None or env[1] is None or env[1] & 0x3F != AUTH_KEY_REF & 0x3F:
            raise CardStatus(0x6985)
        return rsa_pkcs1_sign_raw(self.auth_key, data) + OK

    def _get_challenge(self, p1: int, p2: int, data: bytes) -> bytes:
        return secrets.token_bytes(8) + OK


SUPPORTED_ALGORITHMS = (
    pkcs15.Algorithm(1, pkcs15.CKM_RSA_PKCS, frozenset({"compute-signature"}), ALGO_RSA_PKCS),
    pkcs15.Algorithm(2, pkcs15.CKM_SHA_1, frozenset({"hash"}), 0x10),
    pkcs15.Algorithm(3, pkcs15.CKM_SHA256, frozenset({"hash"}), ALGO_SHA256),
    pkcs15.Algorithm(4, pkcs15.CKM_SHA1_RSA_PKCS, frozenset({"compute-signature"}), 0x12),
    pkcs15.Algorithm(
        5, pkcs15.CKM_SHA256_RSA_PKCS, frozenset({"compute-signature"}), ALGO_RSA_PKCS_SHA256
    ),
)


def ef_atr() -> bytes:
    """EF.ATR: category byte 80, pre-issuing data (46) and IAS-ECC I/O buffer sizes (E0)."""
    # Buffer sizes: four DO 02 of 2 bytes (send, send SM, receive, receive SM); OpenSC reads
    # the receive size as the largest READ BINARY: 0xE7 as on a real CPS3.
    sizes = b"".join(tlv.encode(0x02, (0xE7).to_bytes(2, "big")) for _ in range(4))
    return b"\x80" + tlv.encode(0x46, bytes.fromhex("8025000003")) + tlv.encode(0xE0, sizes)


_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rsa_pkcs1_sign_raw(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """RSA with PKCS#1 type-1 padding of ``data`` as given (the card adds no DigestInfo)."""
    k = (key.key_size + 7) // 8
    if len(data) > k - 11:
        raise CardStatus(0x6700)
    # A SHA-256 DigestInfo (what the agent sends) signs through OpenSSL, with the very same
    # result as the raw operation below and 20 times faster; anything else goes the long way.
    if len(data) == len(_SHA256_DIGEST_INFO) + 32 and data.startswith(_SHA256_DIGEST_INFO):
        return key.sign(data[len(_SHA256_DIGEST_INFO):], padding.PKCS1v15(),
                        utils.Prehashed(hashes.SHA256()))
    block = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
    numbers = key.private_numbers()
    value = pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n)
    return value.to_bytes(k, "big")


def sw_of(response: bytes) -> int:
    """The status word at the end of an emulator response (tests)."""
    return int.from_bytes(response[-2:], "big")


__all__ = ["CPS3_ATR", "VirtualCps", "sw", "sw_of"]
