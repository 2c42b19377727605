"""PC/SC calls with a time limit.

PC/SC has no timeout on a command: `SCardTransmit` to a card that stops answering without
leaving the reader blocks until the reader's driver gives up, which vpcd (and some readers)
never do. Each `PcscConnection` therefore makes its PC/SC calls on a helper thread of its
own and waits for each at most ``timeout`` seconds; past that the caller is told the card
does not answer.

The call left blocked cannot be cancelled, and must not be disturbed: pcsc-lite locks a
context for the length of a call, and another thread's call on that context waits for it
while holding the library's global lock, which freezes every PC/SC call of the process, the
card monitor's included (seen through vpcd). So a connection whose call overran is *stuck*:
nothing touches its handles any more, and the helper thread releases them itself once the
blocked call returns (the card taken out), then ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

COMMAND_TIMEOUT = 5.0  # seconds for one PC/SC call; a CPS signature takes well under 1 s


class Overrun(Exception):
    """The call did not return in time (or an earlier one did not): the connection is stuck."""


class Closed(Exception):
    """The caller was closed: its handles are released, or about to be."""


class _Job:
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except BaseException as error:  # handed to the waiting caller
            self.error = error


class BoundedCaller:
    """One daemon thread running calls one at a time; ``release`` runs on it at the end
    (after `close`, or once a call that overran has returned)."""

    def __init__(self, name: str, release: Callable[[], None],
                 timeout: float = COMMAND_TIMEOUT) -> None:
        self.timeout = timeout
        self.stuck = False
        self._closed = False
        self._release = release
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # A daemon thread: a process exiting must not wait for a card that never answers.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the helper thread; `Overrun` when it takes longer than the
        timeout, or when an earlier call did; `Closed` after `close`."""
        job = _Job(fn, args)
        with self._lock:  # with close(): no call is queued behind the end
            if self.stuck:
                raise Overrun()
            if self._closed:
                raise Closed()
            self._jobs.put(job)
        if not job.done.wait(self.timeout):
            with self._lock:
                if not job.done.is_set():
                    self.stuck = True
                    raise Overrun()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Release the handles on the helper thread, which then ends; returns at once when a
        call is stuck: the release then waits for that call."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        if not self.stuck and self._thread is not threading.current_thread():
            self._thread.join(self.timeout)

    def _run(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                job.run()
                with self._lock:
                    job.done.set()
                    if self.stuck:  # nobody waits for this one any more: release and end
                        break
        finally:
            self._release()
