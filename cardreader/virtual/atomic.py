"""Crash-safe file writes for the virtual cards' persistent state.

A real card commits its EEPROM atomically; the emulator must too, or a process killed
mid-write leaves an empty counters file and the card can no longer be loaded.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` in one step: readers see the old or the new content."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if sys.platform != "win32":  # Windows has no modes: the profile's ACL protects it
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
