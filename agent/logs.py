"""The agent's log files: rotated, owner-only, and never a PIN or a patient's identity.

Nothing of ours logs a PIN, a NIR, an INS or a patient's name; as a second line of defence
every record passes a filter that masks runs of 13 to 15 digits (a NIR or an INS with or
without its key) before it reaches a file.

A log file that cannot be written (a full or read-only disk) never silences the agent: each
record it refuses goes to standard error instead (the journal, under systemd), with one
line saying why, and the file is used again as soon as it takes a record.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from pathlib import Path

from agent.config import AgentConfig

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


class FallbackFileHandler(logging.handlers.RotatingFileHandler):
    """The rotated log file; a record the file refuses (OSError: full, read-only) goes to
    ``fallback`` instead (standard error), the first one with a line saying why. With
    ``forward`` false only that line goes there (records already reach standard error)."""

    def __init__(self, path: Path, fallback: logging.Handler, *, forward: bool = True) -> None:
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        self.fallback, self.forward = fallback, forward
        self.failing: OSError | None = None
        self._refused = False

    def emit(self, record: logging.LogRecord) -> None:
        self._refused = False
        super().emit(record)  # calls handleError on a failure
        if not self._refused and self.failing is not None:
            self.failing = None
            self._say(f"log file {self.baseFilename} writable again")

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        self._refused = True
        if self.failing is None:
            self.failing = error
            self._say(f"log file {self.baseFilename} cannot be written ({error.strerror}): "
                      "logging to standard error until it can")
        if self.forward:
            self.fallback.handle(record)

    def _say(self, text: str) -> None:
        self.fallback.handle(logging.makeLogRecord(
            {"name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
             "msg": text}))


def _stream() -> logging.Handler:
    # pythonw (Windows, no console) has no standard error: nowhere else to write.
    handler: logging.Handler = (logging.StreamHandler() if sys.stderr is not None
                                else logging.NullHandler())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler.dmp_agent = True  # type: ignore[attr-defined]
    return handler


def setup_logging(config: AgentConfig, *, console: bool = False) -> Path:
    """Log to ``log_dir/agent.log`` (rotated at 2 MiB, 5 kept, mode 0600); returns the
    path. A log directory or file that cannot be written: standard error instead."""
    directory = Path(config.log_dir)
    path = directory / LOG_FILE
    stream = _stream()
    unwritable: OSError | None = None
    handler: logging.Handler
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # born 0600
        os.chmod(path, 0o600)
        # `dmp-agent` (agent/cli.py) already sends every record to standard error.
        echoed = console or any(getattr(h, "stream", None) is sys.stderr
                                for h in logging.getLogger().handlers)
        handler = FallbackFileHandler(path, stream, forward=not echoed)
    except OSError as error:
        handler, unwritable = stream, error
    if handler is not stream:
        handler.setFormatter(stream.formatter)
        handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "dmp_agent", False)]:
        root.removeHandler(old)
        old.close()
    handler.dmp_agent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if console and handler is not stream:
        root.addHandler(stream)
    root.setLevel(config.log_level)
    # httpx logs every URL at INFO, and ours carry the patient's INS: keep it to warnings.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    if unwritable is not None:
        logging.getLogger(__name__).warning(
            "log file %s cannot be written (%s): logging to standard error", path,
            unwritable.strerror)
    return path
