"""The virtual CPS3's file tree and the constants of its layout (docs/cps.md).

    3F00 MF
      2F01 EF.ATR      80 | 46 pre-issuing data | E0 I/O buffer sizes
      2F00 EF.DIR      record 61 { 4F PKCS#15 AID, 50 label, 51 3F00 0001 }
      D003 EF.SN.ICC   5A 0A 80 25 00 00 01 <5-byte serial>   (short id 1C)
      0001 DF PKCS#15  AID E8 28 BD 08 0F 80 25 00 00 01 FF 00 10
        5031 ODF, 5032 TokenInfo, 7001 AODF, 7002 PrKDF, 7004 CDF, 7005 DODF
        A001 authentication certificate, A002 signature certificate
        D121 CPS_ID_CARD, D122 CPS_NAME_PS, D123 CPS_INFO_PS   (readable always)
        D131.. CPS_ACTIVITY_01_PS..                              (after the PIN)

`cardreader.virtual.cps.VirtualCps` serves this tree and answers the commands on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import cps_data, pkcs15, tlv
from ..cps import (
    ALGO_RSA_PKCS,
    ALGO_RSA_PKCS_SHA256,
    ALGO_SHA256,
    PAN_PREFIX,
    PKCS15_AID,
    CpsIdentity,
)
from ..cps_data import PracticeSituation
from .filesystem import DedicatedFile, ElementaryFile

CPS3_ATR = bytes.fromhex("3BAC00402A001225006480000310009000")
PIN_REFERENCE = 0x01
AUTH_KEY_REF, SIGN_KEY_REF = 0x81, 0x82  # PrKDF keyReference (local bit set, as MSE sends it)
AUTH_KEY_ID, SIGN_KEY_ID = b"\x11", b"\x12"
PIN_AUTH_ID = b"\x01"
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


def build_file_tree(
    who: CpsIdentity,
    situations: Sequence[PracticeSituation],
    *,
    auth_key: rsa.RSAPrivateKey,
    sign_key: rsa.RSAPrivateKey,
    auth_cert: x509.Certificate,
    sign_cert: x509.Certificate,
    pin_verified: Callable[[], bool],
) -> DedicatedFile:
    """The card's MF; the activity files are readable while ``pin_verified()`` holds."""
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
    for number, _situation in enumerate(situations, start=1):
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
                    auth_key.key_size, PIN_AUTH_ID, key_access,
                ),
                pkcs15.PrivateKeyInfo(
                    "CPS_PRIV_SIG", SIGN_KEY_ID, frozenset({"sign", "nonRepudiation"}),
                    SIGN_KEY_REF, APP, sign_key.key_size, PIN_AUTH_ID, key_access,
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
        AUTH_CERT: auth_cert.public_bytes(serialization.Encoding.DER),
        SIGN_CERT: sign_cert.public_bytes(serialization.Encoding.DER),
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
    for number, situation in enumerate(situations):
        app.add(
            CpsFile(
                FIRST_ACTIVITY + number, cps_data.encode_activity(situation), acl=ACL_PIN,
                read_allowed=pin_verified,
            )
        )
    return mf
