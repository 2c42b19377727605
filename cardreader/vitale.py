"""The Vitale card (patient card): the Vitale 2 profile that reads it, behind `VitaleReader`.

Only part of a Vitale 2 card is publicly documented (shared/CARDS.md): the persons' names and
birth dates in short file 2 of the MF, and their NIRs in short file 2 of the "VITALE"
application, read with plain ISO 7816 commands. Everything else the reading library knows
(régime, caisse, centre, quality, birth rank, birth name, certified NIR, category, serial
number) sits behind protected files whose layout is not public; this project keeps it in an
extra file of its own layout in the VITALE application (`EXTRA_FID` / `EXTRA_SFI`, described
in docs/vitale.md). `VitaleReader` is the interface the agent uses, so a licensed
SESAM-Vitale reading library can replace `Vitale2Profile` without touching the callers.

The data model is in `cardreader.vitale_model`, the files' layout, parsers and encoders in
`cardreader.vitale_files`; their public names are importable from here too.
NIRs are personal data: no error message, ``repr`` or log line of these modules shows one.
"""

from __future__ import annotations

from typing import Protocol

from . import tlv
from .apdu import SW, ApduProtocol, CommandApdu, Ins, error_for_status
from .errors import FileNotFoundOnCardError, MalformedResponseError
from .iso7816 import MAX_FILE_SIZE
from .vitale_files import (
    AID_MF_VITALE,
    AID_VITALE,
    DEMO_MARKER,
    EXTRA_FID,
    EXTRA_LAYOUT_VERSION,
    EXTRA_SFI,
    IDENTITY_SFI,
    MF_PATH,
    NIR_SFI,
    encode_extra_file,
    encode_identity_file,
    encode_nir_file,
    parse_card,
    parse_extra_file,
    parse_identity_file,
    parse_nir_file,
)
from .vitale_model import (
    MAX_BENEFICIARIES,
    MAX_NAME_LENGTH,
    MAX_SERIAL_LENGTH,
    QUALITY_CHILD,
    QUALITY_INSURED,
    QUALITY_LABELS,
    QUALITY_SPOUSE,
    Beneficiary,
    BirthDate,
    Sex,
    VitaleCard,
    VitaleCategory,
    category_for,
    check_nir,
    nir_key,
)

READ_LE = 256  # the largest short READ BINARY: one APDU per file on every card seen


class VitaleReader(Protocol):
    """Reads a whole Vitale card: ours (`Vitale2Profile`) or a licensed reading library."""

    def read(self) -> VitaleCard: ...


# -- the profile ----------------------------------------------------------------------------
def _complete(data: bytes) -> bool:
    """Whether ``data`` holds whole TLVs followed by padding: then the rest of the file is
    filler and need not be read. At an exact TLV boundary nothing tells, so read on."""
    offset = 0
    while offset < len(data):
        if data[offset] in (0x00, 0xFF):
            return True
        try:
            offset = tlv.parse_one(data, offset)[1]
        except MalformedResponseError:
            return False  # truncated by the read, or malformed: more data settles it
    return False


class Vitale2Profile(VitaleReader):
    """Reads a Vitale 2 card: the public files, then our extra file (5 APDUs in all).

    A real card has no extra file: `read` then raises `FileNotFoundOnCardError`, and the
    licensed reading library is needed (it implements `VitaleReader` too).
    """

    def __init__(self, protocol: ApduProtocol) -> None:
        self.protocol = protocol

    def read(self) -> VitaleCard:
        p = self.protocol
        p.send(0x00, Ins.SELECT, 0x00, 0x00, MF_PATH)
        identity = self._read_sfi(IDENTITY_SFI)
        p.send(0x00, Ins.SELECT, 0x04, 0x00, AID_VITALE)
        nirs = self._read_sfi(NIR_SFI)
        try:
            extra = self._read_sfi(EXTRA_SFI)
        except FileNotFoundOnCardError as exc:
            raise FileNotFoundOnCardError(
                exc.sw,
                "this Vitale card has no extra file of this project: a real card needs the "
                "licensed reading library (SESAM-Vitale)",
            ) from None
        return parse_card(identity, nirs, extra)

    def _read_sfi(self, sfi: int) -> bytes:
        """Read an EF by short id with the largest reads, stopping at the padding."""
        out = bytearray()
        while True:
            offset = len(out)
            if offset == 0:
                p1, p2 = 0x80 | sfi, 0x00  # `00 B0 8x 00 00`, as the public readers do
            else:
                if offset > MAX_FILE_SIZE:
                    raise MalformedResponseError("card file larger than READ BINARY addresses")
                p1, p2 = offset >> 8, offset & 0xFF
            response = self.protocol.transmit(
                CommandApdu(0x00, Ins.READ_BINARY, p1, p2, le=READ_LE)
            )
            if response.sw == SW.WRONG_P1P2 and offset:
                break  # the file ended exactly at the previous read
            if response.sw not in (SW.OK, SW.END_OF_FILE_WARNING):
                raise error_for_status(response.sw, response.data)
            data = response.data
            if len(data) > READ_LE:
                raise MalformedResponseError("the card returned more bytes than asked for")
            out += data
            short = response.sw == SW.END_OF_FILE_WARNING or len(data) < READ_LE
            if short or _complete(bytes(out)):
                break
        return bytes(out)


def read_vitale(protocol: ApduProtocol) -> VitaleCard:
    """Shorthand: read the card with our profile."""
    return Vitale2Profile(protocol).read()


__all__ = [
    "AID_MF_VITALE",
    "AID_VITALE",
    "DEMO_MARKER",
    "EXTRA_FID",
    "EXTRA_LAYOUT_VERSION",
    "EXTRA_SFI",
    "IDENTITY_SFI",
    "MAX_BENEFICIARIES",
    "MAX_NAME_LENGTH",
    "MAX_SERIAL_LENGTH",
    "MF_PATH",
    "NIR_SFI",
    "QUALITY_CHILD",
    "QUALITY_INSURED",
    "QUALITY_LABELS",
    "QUALITY_SPOUSE",
    "READ_LE",
    "Beneficiary",
    "BirthDate",
    "Sex",
    "Vitale2Profile",
    "VitaleCard",
    "VitaleCategory",
    "VitaleReader",
    "category_for",
    "check_nir",
    "encode_extra_file",
    "encode_identity_file",
    "encode_nir_file",
    "nir_key",
    "parse_card",
    "parse_extra_file",
    "parse_identity_file",
    "parse_nir_file",
    "read_vitale",
]
