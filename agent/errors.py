"""The root of the agent's errors, and the one place where any failure becomes what a person
reads and what a program gets.

Every error the agent raises on purpose is an `AgentError`: a stable ``code`` for programs,
a message in the agent's language (docs/i18n.md) for people, the HTTP ``status`` the local API
answers and ``extra`` fields (e.g. ``triesLeft``). Failures from below the agent (the card
layer, the network, the disk) are turned into one by `explain`, which the command line, the
local API and the tray all use, so a failure reads the same in every view.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["AgentError", "explain", "explained"]


class AgentError(Exception):
    """A request the agent cannot carry out, said once for every view.

    ``code`` is stable (programs and tests match it), ``status`` is the local API's HTTP
    status, ``usage`` marks a misuse of the command line (exit status 2)."""

    code: str = "failed"
    status: int = 500
    usage: bool = False

    def __init__(self, message: str = "", *, code: str | None = None,
                 status: int | None = None, usage: bool | None = None, **extra: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if usage is not None:
            self.usage = usage
        self.extra: dict[str, Any] = extra

    @property
    def http_status(self) -> int:
        """The local API's status for this error (an error carrying the host's status
        maps it)."""
        return self.status

    def as_json(self) -> dict[str, Any]:
        """The local API's body: ``{"code", "message", **extra}``."""
        return {"code": self.code, "message": str(self), **self.extra}


def _unreachable(error: BaseException) -> AgentError:
    from agent.client.link import classify

    # The same words as the status bar's (the host link), with what to do: no class name.
    state, reason, fix = classify(error)
    return AgentError(f"{reason}. {fix}", code="host-certificate" if state == "certificate"
                      else "host-unreachable", status=503)


def explain(error: BaseException, directory: Path | None = None) -> AgentError:
    """``error`` as an `AgentError`: itself when it is one, else the card's, the network's
    or the disk's failure said in one sentence. An `OSError` of a write in ``directory``
    (the outbox, an upload's spool) is judged as a disk failure there."""
    from agent.card_words import card_error_text
    from agent.i18n import _
    from cardreader.errors import CardError, CardNotAnsweringError

    if isinstance(error, AgentError):
        return error
    if isinstance(error, CardError):
        if isinstance(error, CardNotAnsweringError):  # frozen: only taking it out helps
            return AgentError(card_error_text(error), code="card-not-answering", status=504)
        return AgentError(_("Card: {error}").format(error=card_error_text(error)),
                          code="card-error", status=409)
    if isinstance(error, OSError) and directory is not None:
        from agent.outbox.storage import storage_error

        return explain(storage_error(error, directory))
    if isinstance(error, OSError) or type(error).__module__.startswith("httpx"):
        return _unreachable(error)
    return AgentError(_("Failed: {error}").format(error=type(error).__name__), code="failed",
                      status=500)


def spool_failure(error: BaseException) -> AgentError:
    """A write refused while receiving an upload in the temporary folder."""
    return explain(error, Path(tempfile.gettempdir()))


@contextlib.contextmanager
def explained(directory: Path | None = None) -> Iterator[None]:
    """Run the block with the card's, the network's and the disk's failures raised as an
    `AgentError` (`explain`); an unexpected error goes on as itself, with its traceback."""
    try:
        yield
    except AgentError:
        raise
    except Exception as error:
        found = explain(error, directory)
        if found.code == "failed":
            raise
        raise found from None
