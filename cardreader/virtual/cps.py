"""The virtual CPS3 (IAS-ECC contact): an emulator that answers what the CPS profile and
OpenSC's iasecc driver send.

File tree (public facts from shared/CARDS.md, file ids under 0001 are ours, docs/cps.md):
built by `cardreader.virtual.cps_files`, which also holds the layout's constants.

Security objects (IAS-ECC SDOs, answered to GET DATA ``00 CB 3F FF``): the PIN (class 01,
reference 01, 3 tries, PUK 8 digits), the two RSA private keys (class 10, references 01 and
02, used as 81/82 with the local bit), the security environments 1 and 2 (their AT names the
PIN). Signing: MSE + PSO HASH + PSO CDS with the signature key, MSE + INTERNAL AUTHENTICATE
with the authentication key; both need the PIN (6982 otherwise).

With ``state_dir`` the keys, certificates and the PIN/PUK counters live on disk (files
0600, `cardreader.virtual.cps_state`), so a blocked card stays blocked when it is inserted
again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from .. import tlv
from ..cps import (
    ALGO_RSA_PKCS,
    ALGO_RSA_PKCS_SHA256,
    ALGO_SHA256,
    CRT_AT,
    CRT_DST,
    CRT_HT,
    CpsIdentity,
    sha256_finish,
)
from ..cps_data import PracticeSituation
from ..errors import MalformedResponseError
from .cps_files import (
    AUTH_KEY_REF,
    CPS3_ATR,
    MAX_SITUATIONS,
    PIN_LENGTH,
    PIN_REFERENCE,
    PUK_LENGTH,
    SDO_CHV,
    SDO_RSA_PRIVATE,
    SDO_RSA_PUBLIC,
    SDO_SE,
    SIGN_KEY_REF,
    build_file_tree,
)
from .cps_state import (
    MAX_PIN_TRIES,
    MAX_PUK_TRIES,
    Counters,
    load_counters,
    load_keys,
    save_counters,
)
from .filesystem import OK, CardStatus, FileSystemCard, sw
from .pki import TestHealthCA

log = logging.getLogger(__name__)


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
        self._counters = load_counters(self.state_dir, Counters(pin, puk))
        (self.auth_key, self.sign_key, self.auth_cert, self.sign_cert), self.ca = load_keys(
            self.state_dir, identity, self.situations, ca
        )
        # Volatile state, cleared by power_on.
        self.verified = False
        self._env: dict[int, tuple[int, int | None]] = {}
        self._hash: bytes | None = None
        super().__init__(
            build_file_tree(
                identity, self.situations, auth_key=self.auth_key, sign_key=self.sign_key,
                auth_cert=self.auth_cert, sign_cert=self.sign_cert,
                pin_verified=lambda: self.verified,
            )
        )

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
    def _save_counters(self) -> None:
        save_counters(self.state_dir, self._counters)

    @property
    def pin_tries_left(self) -> int:
        return self._counters.pin_tries

    @property
    def puk_tries_left(self) -> int:
        return self._counters.puk_tries

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
        """RESET RETRY COUNTER as an IAS-ECC card answers it (ISO 7816-4): P1 00 = the PUK
        then the new PIN, P1 01 = the PUK alone (the PIN kept). A blocked PUK answers 6983
        whatever is sent; a wrong one uses a try (63Cx, 63C0 at the last); the right one
        restores both counters and sets the new PIN. The PIN is not verified by it."""
        if p2 & 0x7F != PIN_REFERENCE:
            raise CardStatus(0x6A88)
        if p1 not in (0x00, 0x01):
            raise CardStatus(0x6A86)  # 02/03 (no PUK) need a verification we do not offer
        counters = self._counters
        if counters.puk_tries == 0:
            raise CardStatus(0x6983)
        puk, new_pin = data[:PUK_LENGTH], data[PUK_LENGTH:]
        # A malformed command is refused before the PUK is judged: no try used.
        if len(puk) != PUK_LENGTH or (p1 == 0x01 and new_pin) or (
                p1 == 0x00 and (len(new_pin) != PIN_LENGTH or not new_pin.isdigit())):
            raise CardStatus(0x6A80)
        if not hmac.compare_digest(puk, counters.puk.encode("ascii")):
            counters.puk_tries -= 1
            self._save_counters()
            raise CardStatus(0x63C0 | counters.puk_tries)
        counters.puk_tries = MAX_PUK_TRIES
        counters.pin_tries = MAX_PIN_TRIES
        if new_pin:
            counters.pin = new_pin.decode("ascii")
        self.verified = False
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
