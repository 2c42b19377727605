"""An ISO 7816-4 file system for card emulators: SELECT, READ BINARY, READ RECORD.

The CPS and Vitale emulators build their file trees with `DedicatedFile` and `ElementaryFile`
and inherit the command handling of `FileSystemCard`; they add their own instructions
(VERIFY, MSE, PSO...) by overriding `handle`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .. import tlv

log = logging.getLogger(__name__)

OK = b"\x90\x00"


def sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


class CardStatus(Exception):
    """Raised inside an emulator handler to answer with a status word and no data."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{status:04X}")
        self.status = status


@dataclass
class ElementaryFile:
    fid: int
    data: bytes = b""
    records: list[bytes] | None = None  # a record file when set
    sfi: int | None = None
    # A callable that says whether reading is allowed now (e.g. "PIN verified").
    read_allowed: Callable[[], bool] | None = None

    def fcp(self) -> bytes:
        size = len(self.data) if self.records is None else sum(map(len, self.records))
        descriptor = b"\x01" if self.records is None else b"\x02"
        return tlv.encode(
            0x62,
            tlv.encode(0x80, size.to_bytes(2, "big"))
            + tlv.encode(0x82, descriptor)
            + tlv.encode(0x83, self.fid.to_bytes(2, "big")),
        )


@dataclass
class DedicatedFile:
    fid: int
    aid: bytes | None = None
    children: dict[int, ElementaryFile | DedicatedFile] = field(default_factory=dict)
    parent: DedicatedFile | None = field(default=None, repr=False)

    def add(self, node: ElementaryFile | DedicatedFile) -> ElementaryFile | DedicatedFile:
        if isinstance(node, DedicatedFile):
            node.parent = self
        self.children[node.fid] = node
        return node

    def fcp(self) -> bytes:
        body = tlv.encode(0x82, b"\x38") + tlv.encode(0x83, self.fid.to_bytes(2, "big"))
        if self.aid:
            body += tlv.encode(0x84, self.aid)
        return tlv.encode(0x62, body)

    def walk(self) -> Iterator[ElementaryFile | DedicatedFile]:
        yield self
        for child in self.children.values():
            if isinstance(child, DedicatedFile):
                yield from child.walk()
            else:
                yield child


class FileSystemCard:
    """A card with a file tree rooted at the MF (3F00) and the basic ISO commands.

    ``max_read`` is the largest READ BINARY answer (the CPS3 reads at most 0xE7 bytes at once).
    """

    atr: bytes = b""

    def __init__(self, mf: DedicatedFile, *, max_read: int = 0xE7) -> None:
        self.mf = mf
        self.max_read = max_read
        self.current_df: DedicatedFile = mf
        self.current_ef: ElementaryFile | None = None

    # -- VirtualCard ------------------------------------------------------------------------
    def power_on(self) -> None:
        self.current_df = self.mf
        self.current_ef = None

    def process(self, apdu: bytes) -> bytes:
        try:
            if len(apdu) < 4:
                raise CardStatus(0x6700)
            cla, ins, p1, p2 = apdu[:4]
            data, le = parse_command_body(apdu[4:])
            return self.handle(cla, ins, p1, p2, data, le)
        except CardStatus as status:
            return sw(status.status)
        except Exception:  # an emulator bug must look like a card error, never kill the link
            log.exception("virtual card failed on %s", apdu.hex())
            return sw(0x6F00)

    # -- commands ---------------------------------------------------------------------------
    def handle(self, cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if cla & 0xF0 not in (0x00, 0x80):
            raise CardStatus(0x6E00)
        if ins == 0xA4:
            return self.select(p1, p2, data)
        if ins == 0xB0:
            return self.read_binary(p1, p2, le)
        if ins == 0xB2:
            return self.read_record(p1, p2, le)
        raise CardStatus(0x6D00)

    def select(self, p1: int, p2: int, data: bytes) -> bytes:
        node = self.resolve(p1, data)
        if isinstance(node, DedicatedFile):
            self.current_df, self.current_ef = node, None
        else:
            self.current_ef = node
        if p2 & 0x0C == 0x0C:
            return OK
        return node.fcp() + OK

    def resolve(self, p1: int, data: bytes) -> ElementaryFile | DedicatedFile:
        if p1 == 0x04:  # by AID
            for node in self.mf.walk():
                if isinstance(node, DedicatedFile) and node.aid and data and (
                    node.aid.startswith(data)
                ):
                    return node
            raise CardStatus(0x6A82)
        if len(data) % 2 or (not data and p1 != 0x00):
            raise CardStatus(0x6A87 if data else 0x6700)
        fids = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        if p1 in (0x00, 0x01, 0x02):  # by file id (MF when empty or 3F00)
            if not fids or fids == [0x3F00]:
                return self.mf
            if len(fids) != 1:
                raise CardStatus(0x6A87)
            return self._child(self.current_df, fids[0], search_parent=(p1 == 0x00))
        if p1 in (0x08, 0x09):  # by path, from the MF or from the current DF
            node = self.mf if p1 == 0x08 else self.current_df
            if fids and fids[0] == 0x3F00:
                node, fids = self.mf, fids[1:]
            for fid in fids:
                if not isinstance(node, DedicatedFile):
                    raise CardStatus(0x6A82)
                node = self._child(node, fid)
            return node
        raise CardStatus(0x6A86)

    def _child(
        self, df: DedicatedFile, fid: int, *, search_parent: bool = False
    ) -> ElementaryFile | DedicatedFile:
        if fid in df.children:
            return df.children[fid]
        if search_parent and df.parent is not None and fid in df.parent.children:
            return df.parent.children[fid]
        if fid == df.fid:
            return df
        raise CardStatus(0x6A82)

    def _ef_for_read(self, p1: int) -> tuple[ElementaryFile, int | None]:
        """The EF to read: by short file id in P1 (bit 8 set) or the current EF."""
        if p1 & 0x80:
            sfi = p1 & 0x1F
            for child in self.current_df.children.values():
                if isinstance(child, ElementaryFile) and child.sfi == sfi:
                    self.current_ef = child
                    return child, sfi
            # Short ids are also looked for from the MF (EF.SN.ICC is read this way).
            for child in self.mf.children.values():
                if isinstance(child, ElementaryFile) and child.sfi == sfi:
                    self.current_ef = child
                    return child, sfi
            raise CardStatus(0x6A82)
        if self.current_ef is None:
            raise CardStatus(0x6986)
        return self.current_ef, None

    def read_binary(self, p1: int, p2: int, le: int | None) -> bytes:
        ef, sfi = self._ef_for_read(p1)
        offset = p2 if sfi is not None else ((p1 & 0x7F) << 8) | p2
        if ef.records is not None:
            raise CardStatus(0x6981)
        if ef.read_allowed is not None and not ef.read_allowed():
            raise CardStatus(0x6982)
        if offset > len(ef.data):
            raise CardStatus(0x6B00)
        want = self.max_read if le in (None, 0) else min(le, self.max_read)
        chunk = ef.data[offset : offset + want]
        if le not in (None, 0, 256) and len(chunk) < le:
            return chunk + sw(0x6282)  # end of file reached before Le bytes
        return chunk + OK

    def read_record(self, p1: int, p2: int, le: int | None) -> bytes:
        ef, _ = self._ef_for_read((0x80 | (p2 >> 3)) if p2 >> 3 else 0)
        if ef.records is None:
            raise CardStatus(0x6981)
        if ef.read_allowed is not None and not ef.read_allowed():
            raise CardStatus(0x6982)
        if p2 & 0x07 != 0x04 or not 1 <= p1 <= len(ef.records):
            raise CardStatus(0x6A83)
        return ef.records[p1 - 1] + OK


def parse_command_body(body: bytes) -> tuple[bytes, int | None]:
    """Split what follows the 4 header bytes into (data, Le); Le is None when absent.

    Handles the four ISO cases in short and extended form; anything else is 6700.
    """
    n = len(body)
    if n == 0:
        return b"", None
    if n == 1:
        return b"", body[0] or 256
    if body[0] == 0 and n >= 3:  # extended
        if n == 3:
            return b"", int.from_bytes(body[1:3], "big") or 65536
        lc = int.from_bytes(body[1:3], "big")
        if n == 3 + lc:
            return body[3:], None
        if n == 5 + lc:
            return body[3 : 3 + lc], int.from_bytes(body[-2:], "big") or 65536
        raise CardStatus(0x6700)
    lc = body[0]
    if n == 1 + lc:
        return body[1:], None
    if n == 2 + lc:
        return body[1 : 1 + lc], body[-1] or 256
    raise CardStatus(0x6700)
