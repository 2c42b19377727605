"""The CPS card profile (CPS3, IAS-ECC contact): identity, certificates, PIN, signatures.

Protocol code over `ApduProtocol` only, following the public CPS3 layout (shared/CARDS.md):
the PKCS#15 application at ``3F00 0001`` (AID ``E8 28 BD 08 0F 80 25 00 00 01 FF 00 10``),
its ODF ``5031`` pointing to the PrKDF, CDF, AODF and DODF. PIN reference, key references and
file ids are taken from those PKCS#15 objects, never from constants here. The data objects'
own encoding is ours (`cardreader.cps_data`).

Reads are as few as the card allows: SELECT returns the FCP (size), READ BINARY asks for the
largest chunk (0xE7 bytes), every file read is kept for the life of the `CpsCard` object, and
certificates are read only when asked for.

The PIN (and the PUK) are never logged, stored or kept: they live in a bytearray cleared after
the VERIFY (or the RESET RETRY COUNTER).
Nothing here ever presents a PIN twice on its own.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from cryptography import x509

from . import cps_data, pkcs15
from .apdu import SW, ApduProtocol, CommandApdu, Ins, error_for_status
from .cps_data import PracticeSituation
from .errors import (
    FileNotFoundOnCardError,
    InvalidPinFormatError,
    MalformedResponseError,
    NotSupportedError,
    PinBlockedError,
    PukBlockedError,
    WrongParametersError,
    WrongPinError,
    WrongPukError,
)
from .iso7816 import fcp_size, read_binary, read_record, select_path
from .tlv import Tlv, parse_all, parse_one

__all__ = [
    "PKCS15_AID",
    "CpsCard",
    "CpsIdentity",
    "CpsKey",
    "PracticeSituation",
    "parse_certificate",
    "parse_pin_tries",
    "parse_serial_number",
    "sha256_finish",
    "sha256_partial",
]

MF = bytes.fromhex("3F00")
EF_DIR = bytes.fromhex("3F002F00")
EF_SN_ICC = bytes.fromhex("3F00D003")
EF_SN_ICC_SFI = 0x1C
PKCS15_AID = bytes.fromhex("E828BD080F8025000001FF0010")
PKCS15_PATH = bytes.fromhex("3F000001")  # where CARDS.md says the application lives
ODF_FID = bytes.fromhex("5031")
PAN_PREFIX = bytes.fromhex("8025000001")

# IAS-ECC algorithm identifiers used in the MSE CRTs (tag 80).
ALGO_SHA256 = 0x40
ALGO_RSA_PKCS_SHA256 = 0x42  # DST: PKCS#1 v1.5 over a SHA-256 the card finishes
ALGO_RSA_PKCS = 0x02  # AT: PKCS#1 type-1 padding of the DigestInfo sent
CRT_HT, CRT_DST, CRT_AT = 0xAA, 0xB6, 0xA4
SDO_CHV_CLASS = 0x81  # IAS-ECC SDO class "user PIN" with the local bit, as the GET DATA sends it
DEFAULT_MAX_TRIES = 3  # real CPS cards; used only when the card cannot say
PUK_LENGTH = 8  # the CPS's code de déblocage: 8 digits (docs/cps.md)

SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
ACTIVITY_LABEL = re.compile(r"^CPS_ACTIVITY_(\d{2})_PS$")


class CpsKey(Enum):
    """The two private keys of a CPS."""

    AUTHENTICATION = "authentication"  # CPS_PRIV_AUT: TLS client authentication
    SIGNATURE = "signature"  # CPS_PRIV_SIG: non-repudiation signature of documents


KEY_LABELS = {CpsKey.AUTHENTICATION: "CPS_PRIV_AUT", CpsKey.SIGNATURE: "CPS_PRIV_SIG"}


@dataclass(frozen=True)
class CpsIdentity:
    """Who the card belongs to, readable without the PIN."""

    id_nat_ps: str
    last_name: str
    first_name: str
    profession_code: str
    specialty_code: str | None
    category_code: str
    is_test_card: bool
    not_before: datetime
    not_after: datetime
    serial_number: str


# -- SHA-256 with an exportable state (the card finishes the hash) -----------------------------

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)
_H0 = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
       0x5BE0CD19)
_MASK = 0xFFFFFFFF


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & _MASK


def _compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    w = list(struct.unpack(">16L", block))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & _MASK)
    a, b, c, d, e, f, g, h = state
    for i in range(64):
        t1 = (h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i]
              + w[i]) & _MASK
        t2 = ((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & _MASK
        a, b, c, d, e, f, g, h = (t1 + t2) & _MASK, a, b, c, (d + t1) & _MASK, e, f, g
    return tuple((x + y) & _MASK for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True))


def sha256_partial(data: bytes) -> tuple[bytes, int, bytes]:
    """Hash the whole 64-byte blocks of ``data``; return (state, bits hashed, remaining tail).

    The state is the 32-byte big-endian SHA-256 chaining value; the tail (0..63 bytes) is what
    the card must still hash before padding.
    """
    whole = len(data) - len(data) % 64
    state: tuple[int, ...] = _H0
    for offset in range(0, whole, 64):
        state = _compress(state, data[offset : offset + 64])
    return struct.pack(">8L", *state), whole * 8, bytes(data[whole:])


def sha256_finish(state: bytes, bits_hashed: int, tail: bytes) -> bytes:
    """Finish a SHA-256 from an intermediate state (what an IAS-ECC card does on PSO HASH)."""
    if len(state) != 32 or bits_hashed % 512 or len(tail) >= 64:
        raise ValueError("not a SHA-256 intermediate state")
    h = struct.unpack(">8L", state)
    total = bits_hashed + 8 * len(tail)
    padded = tail + b"\x80" + bytes((55 - len(tail)) % 64) + struct.pack(">Q", total)
    for offset in range(0, len(padded), 64):
        h = _compress(h, padded[offset : offset + 64])
    return struct.pack(">8L", *h)


# -- the profile ------------------------------------------------------------------------------


class CpsCard:
    """A CPS3 card reached through an `ApduProtocol`."""

    def __init__(self, protocol: ApduProtocol) -> None:
        self.protocol = protocol
        self._files: dict[bytes, bytes] = {}
        self._app_path: bytes | None = None
        self._serial: str | None = None
        self._certificates: dict[CpsKey, x509.Certificate] = {}

    @property
    def apdu_count(self) -> int:
        return self.protocol.apdu_count

    # -- files --
    def _read(self, path: bytes) -> bytes:
        """A whole transparent EF by full path, read once per `CpsCard`."""
        if path not in self._files:
            fcp = select_path(self.protocol, path, fcp=True)
            self._files[path] = read_binary(self.protocol, fcp_size(fcp))
        return self._files[path]

    def _odf(self) -> tuple[pkcs15.OdfRecord, ...]:
        if self._app_path is None:
            try:
                self._read(PKCS15_PATH + ODF_FID)
                self._app_path = PKCS15_PATH
            except FileNotFoundOnCardError:
                # Not where CARDS.md says: look the application up in EF.DIR.
                self._app_path = self._app_path_from_dir()
        return pkcs15.parse_odf(self._read(self._app_path + ODF_FID))

    def _app_path_from_dir(self) -> bytes:
        select_path(self.protocol, EF_DIR, fcp=False)
        for number in range(1, 16):
            try:
                record = read_record(self.protocol, number)
            except FileNotFoundOnCardError:
                break
            template, _ = parse_one(record)
            aid = template.find(0x4F) if template.tag == 0x61 else None
            if aid is not None and aid.value == PKCS15_AID:
                path = template.require(0x51)
                return path if path.startswith(MF) else MF + path
        raise FileNotFoundOnCardError(SW.FILE_NOT_FOUND, "PKCS#15 application not found (CPS)")

    def _absolute(self, path: bytes) -> bytes:
        if path.startswith(MF):
            return path
        assert self._app_path is not None
        return self._app_path + path

    def _directory(self, kind: str) -> bytes:
        for record in self._odf():
            if record.kind == kind:
                return self._read(self._absolute(record.path))
        raise MalformedResponseError(f"the card's ODF has no {kind} entry")

    def _data_objects(self) -> tuple[pkcs15.DataObjectInfo, ...]:
        return pkcs15.parse_dodf(self._directory("data_objects"))

    def _data_object(self, label: str) -> bytes:
        for obj in self._data_objects():
            if obj.label == label:
                return self._read(self._absolute(obj.path))
        raise MalformedResponseError(f"data object {label} not found on the card")

    def _pin(self) -> pkcs15.PinInfo:
        for pin in pkcs15.parse_aodf(self._directory("auth_objects")):
            if not pin.flags & {"unblockingPin", "soPin"}:
                return pin
        raise MalformedResponseError("no user PIN in the card's AODF")

    def _key(self, key: CpsKey) -> pkcs15.PrivateKeyInfo:
        keys = pkcs15.parse_prkdf(self._directory("private_keys"))
        for info in keys:
            if info.label == KEY_LABELS[key]:
                return info
        # Labels are ANS names; fall back on the usage the specification gives each key.
        for info in keys:
            if ("nonRepudiation" in info.usage) == (key is CpsKey.SIGNATURE):
                return info
        raise MalformedResponseError(f"no {key.value} key in the card's PrKDF")

    # -- identity --
    def read_identity(self) -> CpsIdentity:
        """The holder and card data, readable without the PIN."""
        serial = self._serial_number()
        card = cps_data.decode_id_card(self._data_object("CPS_ID_CARD"))
        name = cps_data.decode_name(self._data_object("CPS_NAME_PS"))
        info = cps_data.decode_info(self._data_object("CPS_INFO_PS"))
        return CpsIdentity(
            info.id_nat_ps, name.last_name, name.first_name, info.profession_code,
            info.specialty_code, card.category_code, card.is_test_card, card.not_before,
            card.not_after, serial,
        )

    def _serial_number(self) -> str:
        if self._serial is None:
            # By short file id first (no SELECT: one APDU); a card whose current DF is not the
            # MF may not resolve it, so fall back on the full path.
            response = self.protocol.transmit(
                CommandApdu(0, Ins.READ_BINARY, 0x80 | EF_SN_ICC_SFI, 0, le=12)
            )
            if response.sw in (SW.OK, SW.END_OF_FILE_WARNING) and response.data:
                data = response.data
            else:
                data = self._read(EF_SN_ICC)
            self._serial = parse_serial_number(data)
        return self._serial

    # -- certificates --
    def certificate(self, key: CpsKey) -> x509.Certificate:
        if key not in self._certificates:
            key_id = self._key(key).id
            certs = pkcs15.parse_cdf(self._directory("certificates"))
            match = next((c for c in certs if c.id == key_id), None)
            if match is None:
                raise MalformedResponseError(f"no certificate for the {key.value} key")
            self._certificates[key] = parse_certificate(self._read(self._absolute(match.path)))
        return self._certificates[key]

    # -- PIN --
    def pin_tries_left(self) -> int:
        """How many PIN presentations are left, without presenting the PIN."""
        reference = self._pin().reference
        body = bytes((0x70, 0x06, 0xBF, SDO_CHV_CLASS, reference & 0x9F, 0x02, 0xA0, 0x80))
        try:
            answer = self.protocol.send(0, Ins.GET_DATA, 0x3F, 0xFF, bytes((0x4D, 8)) + body, 256)
            return parse_pin_tries(answer, reference)[1]
        except (NotSupportedError, WrongParametersError, FileNotFoundOnCardError):
            pass
        # Fallback (upstream OpenSC): an empty VERIFY answers 63Cx without using a try.
        response = self.protocol.transmit(CommandApdu(0, Ins.VERIFY, 0, reference))
        if response.sw == SW.OK:
            return DEFAULT_MAX_TRIES  # already verified: the counter is full
        if response.sw == SW.AUTH_METHOD_BLOCKED:
            return 0
        if response.sw1 == 0x63 and response.sw2 & 0xF0 == 0xC0:
            return response.sw2 & 0x0F
        raise error_for_status(response.sw, response.data)

    def verify_pin(self, pin: str) -> None:
        """Present the PIN once. Raises WrongPinError (with tries left), PinBlockedError or
        InvalidPinFormatError (not the format the AODF gives: 4 digits on a CPS)."""
        info = self._pin()
        buffer = _pin_bytes(pin, info)
        try:
            self.protocol.send(0, Ins.VERIFY, 0, info.reference, bytes(buffer))
        finally:
            buffer[:] = bytes(len(buffer))

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        """RESET RETRY COUNTER (ISO 7816-4 / IAS-ECC, P1 00: the PUK then the new PIN in the
        data): the card checks the PUK, sets the new PIN and restores its try counter.

        Both formats are checked first (nothing is sent otherwise): InvalidPinFormatError.
        Raises WrongPukError (with the PUK's tries left) or PukBlockedError; the PUK and the
        PIN live in one bytearray, wiped after the command, and are never in a message."""
        if not (isinstance(puk, str) and puk.isascii() and puk.isdigit()
                and len(puk) == PUK_LENGTH):
            raise InvalidPinFormatError(
                f"the PUK is {PUK_LENGTH} digits")
        info = self._pin()
        buffer = _pin_bytes(new_pin, info)
        buffer[:0] = puk.encode("ascii")
        try:
            self.protocol.send(0, Ins.RESET_RETRY_COUNTER, 0, info.reference, bytes(buffer))
        except PinBlockedError as error:  # 63C0 or 6983: about the PUK here, not the PIN
            raise PukBlockedError(error.sw) from None
        except WrongPinError as error:
            raise WrongPukError(error.sw, error.tries_left) from None
        finally:
            buffer[:] = bytes(len(buffer))

    # -- behind the PIN --
    def read_situations(self) -> tuple[PracticeSituation, ...]:
        """The practice situations (needs the PIN: SecurityStatusError otherwise)."""
        slots = []
        for obj in self._data_objects():
            match = ACTIVITY_LABEL.match(obj.label or "")
            if match:
                slots.append((int(match.group(1)), obj))
        situations = []
        for _number, obj in sorted(slots, key=lambda slot: slot[0]):
            situation = cps_data.decode_activity(self._read(self._absolute(obj.path)))
            if situation is not None:
                situations.append(situation)
        return tuple(situations)

    def sign(self, key: CpsKey, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 signature of SHA-256(``data``) with one of the card's keys."""
        info = self._key(key)
        if info.key_reference is None:
            raise MalformedResponseError(f"the {key.value} key has no reference in the PrKDF")
        ref = info.key_reference
        if key is CpsKey.SIGNATURE:
            state, bits, tail = sha256_partial(data)
            self._mse(CRT_HT, bytes((0x80, 0x01, ALGO_SHA256)))
            # 90 00 when nothing was hashed; else 90 28 <state> <bit count on 8 bytes>.
            hashed = b"\x90\x00" if bits == 0 else b"\x90\x28" + state + bits.to_bytes(8, "big")
            self.protocol.send(0, Ins.PSO, 0x90, 0xA0, hashed + bytes((0x80, len(tail))) + tail)
            self._mse(CRT_DST, bytes((0x80, 0x01, ALGO_RSA_PKCS_SHA256, 0x84, 0x01, ref)))
            signature = self.protocol.send(0, Ins.PSO, 0x9E, 0x9A, le=256)
        else:
            self._mse(CRT_AT, bytes((0x80, 0x01, ALGO_RSA_PKCS, 0x84, 0x01, ref)))
            digest_info = SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
            signature = self.protocol.send(0, Ins.INTERNAL_AUTHENTICATE, 0, 0, digest_info, 256)
        if len(signature) != info.modulus_length // 8:
            raise MalformedResponseError(
                f"signature of {len(signature)} bytes for a {info.modulus_length}-bit key"
            )
        return signature

    def _mse(self, crt: int, data: bytes) -> None:
        self.protocol.send(0, Ins.MSE, 0x41, crt, data)


# -- pure parsers -----------------------------------------------------------------------------


def _pin_bytes(pin: str, info: pkcs15.PinInfo) -> bytearray:
    """The VERIFY data for ``pin`` as the AODF describes it (length, type, padding)."""
    max_length = info.max_length or info.stored_length
    if (
        not isinstance(pin, str)
        or not info.min_length <= len(pin) <= max_length
        or (info.pin_type in ("ascii-numeric", "bcd") and not (pin.isascii() and pin.isdigit()))
    ):
        expected = (
            f"{info.min_length}" if info.min_length == max_length
            else f"{info.min_length} to {max_length}"
        )
        raise InvalidPinFormatError(
            f"the PIN has {expected} digits"
        )
    buffer = bytearray(pin.encode("utf-8"))
    if "needs-padding" in info.flags and len(buffer) < info.stored_length:
        pad = info.pad_char or b"\xff"
        buffer += pad * (info.stored_length - len(buffer))
    return buffer


def parse_serial_number(data: bytes) -> str:
    """The card serial number from EF.SN.ICC (``5A 0A`` + PAN ``80 25 00 00 01`` + serial)."""
    item, _ = parse_one(data)
    if item.tag != 0x5A or len(item.value) != 10 or not item.value.startswith(PAN_PREFIX):
        raise MalformedResponseError("EF.SN.ICC is not 5A 0A 80 25 00 00 01 <serial>")
    return item.value[len(PAN_PREFIX) :].hex().upper()


def parse_certificate(data: bytes) -> x509.Certificate:
    """A DER certificate from a card file (the end of the file may be padding)."""
    try:
        _item, end = parse_one(data)
        return x509.load_der_x509_certificate(data[:end])
    except MalformedResponseError:
        raise
    except ValueError as exc:
        raise MalformedResponseError(f"the card's certificate does not parse: {exc}") from None


def parse_pin_tries(answer: bytes, reference: int) -> tuple[int, int]:
    """(maximum, left) from a GET DATA answer on the PIN's DOCP (tags 9A, 9B)."""
    items = parse_all(answer, padding=False)
    if len(items) == 1 and items[0].tag == 0x70:
        items = items[0].children()
    sdo: Tlv | None = next(
        (i for i in items if i.tag >> 8 == 0xBF81 and i.tag & 0x3F == reference & 0x3F), None
    )
    if sdo is None:
        raise MalformedResponseError("GET DATA did not answer the PIN's security object")
    docp = sdo.find(0xA0)
    if docp is None:
        raise MalformedResponseError("GET DATA answer has no DOCP (A0)")
    maximum, left = docp.find(0x9A), docp.find(0x9B)
    if left is None or len(left.value) != 1 or (maximum is not None and len(maximum.value) != 1):
        raise MalformedResponseError("GET DATA answer has no PIN try counter (9B)")
    return (maximum.value[0] if maximum else DEFAULT_MAX_TRIES), left.value[0]

