"""The Vitale 2 emulator: the public files and our extra file, built from a `VitaleCard`.

File tree (docs/vitale.md): the MF (also selectable by the AID "MF_VITALE") holds the
identity file, short id 2; the VITALE application (AID D2 50 00 00 02 56 49 54 41 4C 45)
holds the NIR file, short id 2, and our extra file (`EXTRA_FID`, short id `EXTRA_SFI`).
Files end with 00 padding, as on real cards. The file ids of the public files are not
public: ours.
"""

from __future__ import annotations

from ..vitale import (
    AID_MF_VITALE,
    AID_VITALE,
    EXTRA_FID,
    EXTRA_SFI,
    IDENTITY_SFI,
    NIR_SFI,
    VitaleCard,
    encode_extra_file,
    encode_identity_file,
    encode_nir_file,
)
from .filesystem import DedicatedFile, ElementaryFile, FileSystemCard

# One of the public Vitale 2 ATRs (pcsc-tools smartcard_list.txt); byte 5 varies by batch.
VITALE2_ATR = bytes.fromhex("3B75130000470 9EA9000".replace(" ", ""))
IDENTITY_FID = 0x0002  # ours: the real file ids are not public, the short id 2 is
NIR_FID = 0x0002
VITALE_DF_FID = 0x1000
PAD_TO = 32  # files are padded with 00 up to a multiple of this size


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % PAD_TO)


class VirtualVitale(FileSystemCard):
    """A Vitale 2 card answering SELECT and READ BINARY (no authentication, like the public
    part of the real card)."""

    atr = VITALE2_ATR

    def __init__(self, card: VitaleCard) -> None:
        self.card = card
        mf = DedicatedFile(0x3F00, aid=AID_MF_VITALE)
        mf.add(ElementaryFile(IDENTITY_FID, _padded(encode_identity_file(card)), sfi=IDENTITY_SFI))
        app = DedicatedFile(VITALE_DF_FID, aid=AID_VITALE)
        mf.add(app)
        app.add(ElementaryFile(NIR_FID, _padded(encode_nir_file(card)), sfi=NIR_SFI))
        app.add(ElementaryFile(EXTRA_FID, _padded(encode_extra_file(card)), sfi=EXTRA_SFI))
        # READ BINARY with Le 00 returns up to 256 bytes: the public readers read that way.
        super().__init__(mf, max_read=256)

    @classmethod
    def from_profile(cls, name: str) -> VirtualVitale:
        """A ready card of `vitale_profiles.PROFILES` ("single", "family", "test", ...)."""
        from .vitale_profiles import PROFILES

        try:
            return cls(PROFILES[name])
        except KeyError:
            raise KeyError(
                f"no Vitale profile {name!r}; known: {', '.join(sorted(PROFILES))}"
            ) from None
