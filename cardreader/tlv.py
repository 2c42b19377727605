"""BER-TLV reading (ISO 7816-4 templates), on top of asn1crypto's BER parser.

Card files carry simple templates (`65 { 80 name, 81 first name }`, FCP `62 { 80 size, 83 fid }`).
`parse_all` reads a run of TLVs and stops at `00`/`FF` padding, which real cards use to fill
the end of a file. Every malformed input raises `MalformedResponseError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import parser

from .errors import MalformedResponseError


@dataclass(frozen=True)
class Tlv:
    """One BER-TLV: ``tag`` as the integer of its encoded tag bytes (e.g. 0x5F20, 0x65)."""

    tag: int
    value: bytes
    constructed: bool

    def children(self) -> list[Tlv]:
        if not self.constructed:
            raise MalformedResponseError(f"tag {self.tag:X} is not a constructed template")
        return parse_all(self.value, padding=False)

    def find(self, tag: int) -> Tlv | None:
        """The first direct child with this tag, or None."""
        return next((c for c in self.children() if c.tag == tag), None)

    def require(self, tag: int) -> bytes:
        child = self.find(tag)
        if child is None:
            raise MalformedResponseError(f"tag {tag:X} missing in template {self.tag:X}")
        return child.value


def _tag_number(header: bytes) -> int:
    # The tag bytes are the header minus the length bytes; read them back as ISO does.
    first = header[0]
    end = 1
    if first & 0x1F == 0x1F:
        while end < len(header) and header[end] & 0x80:
            end += 1
        end += 1
    return int.from_bytes(header[:end], "big")


def parse_one(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Parse the TLV at ``offset``; return it and the offset just after it."""
    try:
        _cls, method, _num, header, contents, trailer = parser.parse(data[offset:])
    except (ValueError, TypeError, IndexError, RecursionError) as exc:
        raise MalformedResponseError(f"malformed TLV at offset {offset}: {exc}") from None
    if trailer:
        raise MalformedResponseError("indefinite lengths are not used by these cards")
    end = offset + len(header) + len(contents)
    return Tlv(_tag_number(header), bytes(contents), bool(method)), end


def parse_all(data: bytes, *, padding: bool = True) -> list[Tlv]:
    """Parse consecutive TLVs; with ``padding``, stop at the first 00 or FF filler byte."""
    items: list[Tlv] = []
    offset = 0
    while offset < len(data):
        if padding and data[offset] in (0x00, 0xFF):
            if data[offset:].strip(bytes((data[offset],))):
                raise MalformedResponseError("data found after the padding of a card file")
            break
        item, offset = parse_one(data, offset)
        items.append(item)
    return items


def encode(tag: int, value: bytes) -> bytes:
    """Encode one TLV with a definite length (the emulators and tests build files with it)."""
    tag_bytes = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    n = len(value)
    if n < 0x80:
        length = bytes((n,))
    elif n < 0x100:
        length = b"\x81" + bytes((n,))
    elif n < 0x10000:
        length = b"\x82" + n.to_bytes(2, "big")
    else:
        raise ValueError("TLV value too long for a card file")
    return tag_bytes + length + value
