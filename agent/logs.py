"""The agent's log files: rotated, owner-only, and never a PIN or a patient's identity.

Nothing of ours logs a PIN, a NIR, an INS or a patient's name; as a second line of defence
every record passes a filter that masks runs of 13 to 15 digits (a NIR or an INS with or
without its key) before it reaches a file.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

from .config import AgentConfig

LOG_FILE = "agent.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 5
_IDENTIFIER = re.compile(r"(?<![0-9])[0-9]{5}(?:[0-9]{2}|2[ABab])[0-9]{6,8}(?![0-9])")


class RedactingFilter(logging.Filter):
    """Masks NIR/INS-shaped numbers in the final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _IDENTIFIER.sub("[masqué]", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(config: AgentConfig, *, console: bool = False) -> Path:
    """Log to ``log_dir/agent.log`` (rotated at 2 MiB, 5 kept, mode 0600); returns the path."""
    directory = Path(config.log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / LOG_FILE
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES,
                                                   backupCount=BACKUPS, encoding="utf-8")
    os.chmod(path, 0o600)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "dmp_agent", False)]:
        root.removeHandler(old)
        old.close()
    handler.dmp_agent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if console:
        stream = logging.StreamHandler()
        stream.addFilter(RedactingFilter())
        stream.dmp_agent = True  # type: ignore[attr-defined]
        root.addHandler(stream)
    root.setLevel(config.log_level)
    # httpx logs every URL at INFO, and ours carry the patient's INS: keep it to warnings.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return path
