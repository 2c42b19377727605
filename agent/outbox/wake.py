"""Waking the outbox when what held deposits back changes (docs/agent-outbox.md, "Woken by a
change of state"): a professional session that opens (or is renewed), and the host that
answers again. Both are observed in one place each: the session's "opened" hook, and a
response hook on every host client the session uses, so no call site has to remember it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agent.outbox.sender import HOST_CAUSES, SESSION_CAUSES, OutboxWorker

if TYPE_CHECKING:  # annotations only: httpx loads with the first host call, not at start
    import httpx

log = logging.getLogger(__name__)

# Answers that say the host is in trouble, as `SendResult.from_status` retries them: they
# do not mean it is back.
_TROUBLE = frozenset({408, 429})


def host_is_up(status: int) -> bool:
    """Whether an HTTP answer with ``status`` shows the host working (a refusal does)."""
    return status < 500 and status not in _TROUBLE


class OutboxWake:
    """Tells ``worker`` (None: no outbox, nothing to do) of the changes of state."""

    def __init__(self, worker: OutboxWorker | None = None) -> None:
        self.worker = worker

    def session_opened(self, client: httpx.Client) -> None:
        """A session opened or was renewed on ``client``: the host answered (it issued the
        session), and every call on ``client`` from now on is watched."""
        self.watch(client)
        if self.worker is not None:
            self.worker.wake(SESSION_CAUSES | HOST_CAUSES)

    def watch(self, client: httpx.Client) -> None:
        """Wake the outbox on each answer of the host on ``client`` that shows it up."""
        hooks = client.event_hooks
        if self._answered not in hooks["response"]:
            hooks["response"] = [*hooks["response"], self._answered]
            client.event_hooks = hooks

    def _answered(self, response: httpx.Response) -> None:
        # On the caller's thread, before its body is read: `wake` only records and sets an
        # event, and does nothing at all when no item waits for the host.
        if self.worker is not None and host_is_up(response.status_code):
            self.worker.wake(HOST_CAUSES)


__all__ = ["OutboxWake", "host_is_up"]
