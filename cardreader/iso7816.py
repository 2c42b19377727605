"""ISO 7816-4 file commands shared by the card applications: SELECT, READ BINARY, READ RECORD."""

from __future__ import annotations

from .apdu import SW, ApduProtocol, CommandApdu, Ins, error_for_status
from .errors import MalformedResponseError
from .tlv import parse_one

# The largest READ BINARY answer the CPS3 gives (CARDS.md); safe for any short-APDU card.
DEFAULT_CHUNK = 0xE7
MAX_FILE_SIZE = 0x8000  # an offset beyond 15 bits cannot be addressed by READ BINARY anyway


def fcp_size(fcp: bytes) -> int | None:
    """The file size announced in an FCP template (`62 { 80|81 size }`), if any."""
    if not fcp:
        return None
    template, _ = parse_one(fcp)
    if template.tag != 0x62:
        raise MalformedResponseError(f"SELECT answered tag {template.tag:X}, not an FCP (62)")
    for tag in (0x80, 0x81):
        size = template.find(tag)
        if size is not None:
            if not 1 <= len(size.value) <= 2:
                raise MalformedResponseError("FCP file size is not 1 or 2 bytes")
            return int.from_bytes(size.value, "big")
    return None


def select_path(protocol: ApduProtocol, path: bytes, *, fcp: bool = True, cla: int = 0) -> bytes:
    """SELECT by full path from the MF (P1 09, path including 3F00); return the FCP or b''."""
    return protocol.send(cla, Ins.SELECT, 0x09, 0x04 if fcp else 0x0C, path, 256 if fcp else 0)


def select_aid(protocol: ApduProtocol, aid: bytes, *, cla: int = 0, fcp: bool = False) -> bytes:
    return protocol.send(cla, Ins.SELECT, 0x04, 0x04 if fcp else 0x0C, aid, 256 if fcp else 0)


def read_binary(
    protocol: ApduProtocol,
    size: int | None = None,
    *,
    sfi: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    cla: int = 0,
) -> bytes:
    """Read the current EF (or the EF of short id ``sfi``) whole, in chunks of ``chunk`` bytes.

    With a known ``size`` (from the FCP) it reads exactly that; without, it reads until the
    card answers a short chunk or end-of-file (6282 / 6B00).
    """
    if size is not None and not 0 <= size <= MAX_FILE_SIZE:
        raise MalformedResponseError(f"announced file size {size} is out of range")
    out = bytearray()
    limit = MAX_FILE_SIZE if size is None else size
    while len(out) < limit:
        offset = len(out)
        want = min(chunk, limit - offset)
        if sfi is not None and offset == 0:
            p1, p2 = 0x80 | sfi, 0  # the EF becomes the current one after this first read
        else:
            p1, p2 = offset >> 8, offset & 0xFF
        response = protocol.transmit(CommandApdu(cla, Ins.READ_BINARY, p1, p2, le=want))
        data, status = response.data, response.sw
        if status == SW.OK or status == SW.END_OF_FILE_WARNING:
            if len(data) > want:
                raise MalformedResponseError("the card returned more bytes than asked for")
            out += data
            if status == SW.END_OF_FILE_WARNING or len(data) < want or not data:
                break
            continue
        if status == SW.WRONG_P1P2 and offset and size is None:
            break  # offset beyond the end: the file was an exact multiple of the chunk
        raise error_for_status(status, data)
    if size is not None and len(out) != size:
        raise MalformedResponseError(
            f"file shorter than announced: {len(out)} of {size} bytes read"
        )
    return bytes(out)


def read_record(protocol: ApduProtocol, number: int, *, cla: int = 0) -> bytes:
    return protocol.send(cla, Ins.READ_RECORD, number, 0x04, le=256)
