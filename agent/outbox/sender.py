"""Sending the outbox: the backoff policy, one pass of sends, and the worker thread
(docs/agent-outbox.md, "Order and backoff"); each send paced by the outbox's throttle (the
DMP's rule, "Pace")."""

from __future__ import annotations

import logging
import random as _random
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from agent.config import AgentConfig
from agent.outbox.model import (
    Cause,
    Counts,
    Item,
    OutboxError,
    OutboxStorageError,
    Outcome,
    SendResult,
)
from agent.outbox.store import Outbox
from agent.outbox.throttle import UNKNOWN_STRUCTURE

log = logging.getLogger(__name__)

# The failures a change of state ends: a session that opens, a host that answers again
# (docs/agent-outbox.md, "Woken by a change of state"). A full disk, a damaged copy or a
# refusal are not ended by either.
SESSION_CAUSES = frozenset({Cause.NO_SESSION})
HOST_CAUSES = frozenset({Cause.HOST, Cause.NETWORK})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base * 2**(n-1)`` after the n-th failure, at most ``maximum``,
    spread by ``jitter`` (a fraction) so that workstations do not retry in step."""

    base: float = 5.0
    maximum: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.maximum >= self.base and 0 <= self.jitter <= 1):
            raise ValueError("need base > 0, maximum >= base, 0 <= jitter <= 1")

    @classmethod
    def from_config(cls, config: AgentConfig) -> RetryPolicy:
        return cls(config.retry_base, config.retry_max, config.retry_jitter)

    def delay(self, failures: int, random: Callable[[], float] = _random.random,
              retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (>= 1); a host's
        Retry-After is honoured up to ``maximum``."""
        exponent = min(max(failures, 1) - 1, 60)  # 2**60 * base is past any maximum
        plain = min(self.maximum, self.base * 2.0 ** exponent)
        spread = plain * (1 + self.jitter * (2 * random() - 1))
        wait = min(self.maximum, max(0.0, spread))
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.maximum))
        return wait


@dataclass(frozen=True)
class Progress:
    """One step of the sender, for the tray and the page: ``kind`` is sending, done,
    retry or failed; ``item`` is the item after the step; ``counts`` the whole outbox."""

    kind: str
    item: Item
    counts: Counts


Send = Callable[[Item], SendResult]


def structure_of(item: Item) -> str:
    """The establishment ``item`` is deposited for (its author's structure id, recorded when
    it was queued): the key of the DMP's pace. Older items share `UNKNOWN_STRUCTURE`."""
    structure = item.metadata.get("structure")
    return structure if isinstance(structure, str) and structure else UNKNOWN_STRUCTURE


@dataclass(frozen=True)
class PassReport:
    sent: int = 0  # acknowledged (stored or already stored)
    failed: int = 0  # refused for good
    retried: int = 0  # 0 or 1: a pass stops at the first transient failure


class Sender:
    """Sends an outbox's due items, one at a time, and records what the host said.

    Safe to run again after a crash at any instant: an item is marked done only after the
    host acknowledged it, and the host is idempotent on the document uniqueId. A transient
    failure ends the pass and pauses the whole sender (the host or the network is in
    trouble, so hammering it with the next items helps nobody); the pause grows with
    consecutive transient failures and resets as soon as the host answers anything else.

    Each attempt first waits its turn in ``outbox.throttle`` (none: no pace), keyed by the
    item's structure: the DMP accepts fewer than 5 deposits per second per establishment.
    The wait never fails an item; ``pause(seconds)`` does it, in slices of at most 0.1 s
    with ``stop`` checked between them (`OutboxWorker` gives its stop event's ``wait``, so
    a stop ends it at once).
    """

    def __init__(
        self,
        outbox: Outbox,
        policy: RetryPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        on_progress: Callable[[Progress], None] | None = None,
        pause: Callable[[float], object] | None = None,
    ) -> None:
        self.outbox = outbox
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._random = random
        self._on_progress = on_progress
        self._pause = pause
        self._pass_lock = threading.Lock()  # one pass at a time, whoever calls
        self._host_failures = 0
        self.paused_until = 0.0
        self._pause_cause: Cause | None = None
        # Causes items may be held back by: all of them until a pass says otherwise (items
        # of an earlier run may wait for anything), so the first change of state counts.
        self._held: set[Cause] = set(SESSION_CAUSES | HOST_CAUSES)
        self._held_lock = threading.Lock()

    def holds(self, causes: Iterable[Cause]) -> set[Cause]:
        """Which of ``causes`` may hold an item back now (cheap: in memory)."""
        with self._held_lock:
            return self._held.intersection(causes)

    @property
    def in_pass(self) -> bool:
        return self._pass_lock.locked()

    def make_due(self, causes: Collection[Cause]) -> int:
        """A change of state ended ``causes``: the items they hold back are due now, whatever
        their backoff, and a pause they caused ends. Returns how many items became due."""
        with self._held_lock:
            self._held.difference_update(causes)
        if self._pause_cause in causes:
            self.paused_until, self._pause_cause = 0.0, None
        count = self.outbox._due_now(causes, self._clock()) if causes else 0
        if count:
            log.info("outbox: %d item(s) due now (%s ended)", count,
                     ", ".join(sorted(map(str, causes))))
        return count

    def _report(self, kind: str, item: Item) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(Progress(kind, self.outbox.get(item.id), self.outbox.counts()))
        except Exception:
            log.exception("outbox: progress callback failed")  # a view's bug stops nothing

    @staticmethod
    def _attempt(send: Send, item: Item) -> SendResult:
        """``send(item)``, whatever it raises turned into a result with its cause."""
        try:
            return send(item)
        except OutboxStorageError as error:  # this workstation's disk, not the document
            return SendResult.retry(str(error), cause=Cause.DISK)
        except OutboxError as error:  # the copy on disk is damaged: never sent as is
            return SendResult.refused(f"outbox: {error}", cause=Cause.DAMAGED)
        except Exception as error:
            network = isinstance(error, OSError) or type(error).__module__.split(".")[0] in (
                "httpx", "httpcore", "http")
            return SendResult.retry(f"{type(error).__name__}: {error}",
                                    cause=Cause.NETWORK if network else Cause.ERROR)

    def _paced(self, item: Item, stop: Callable[[], bool] | None, keys: set[str]) -> bool:
        """Wait until the pace lets ``item`` (claimed) go: True; False when ``stop()`` came
        first, the item then pending again as if never claimed."""
        throttle = self.outbox.throttle
        if throttle is None:
            return True
        key = structure_of(item)
        keys.add(key)
        try:
            started = throttle.acquire(key, stop=stop, pause=self._pause)
        except BaseException:
            self.outbox._in_flight.discard(item.id)  # never recorded: pending again
            raise
        if not started:
            self.outbox._release(item)
        return started

    def next_due(self) -> float | None:
        """When the next attempt is due (epoch seconds), or None when nothing is pending."""
        now = self._clock()
        due = self.outbox._next_due(now, self.policy.maximum)
        return None if due is None else max(due, self.paused_until)

    def send_pending(self, send: Send, *, stop: Callable[[], bool] | None = None) -> PassReport:
        """Send every due item in order until none is due, a transient failure, or
        ``stop()``. ``send`` raising counts as a transient failure (never a lost item),
        except `OutboxError` (the bundle on disk is damaged), which fails the item. A write
        of the outbox that the disk refuses raises `OutboxStorageError` and ends the pass."""
        paced: set[str] = set()  # the structures this pass sent for
        with self._pass_lock:
            try:
                return self._pass(send, stop, paced)
            finally:
                if paced and self.outbox.throttle is not None:
                    self.outbox.throttle.settle(paced)  # nothing more held back by this pass

    def _pass(self, send: Send, stop: Callable[[], bool] | None,
              paced: set[str]) -> PassReport:
        sent = failed = retried = 0
        while not (stop and stop()):
            now = self._clock()
            if now < self.paused_until:
                break
            item = self.outbox._claim(now, self.policy.maximum)
            if item is None:
                break
            if not self._paced(item, stop, paced):
                break
            self._report("sending", item)
            try:
                result = self._attempt(send, item)
            except BaseException:
                self.outbox._in_flight.discard(item.id)  # never recorded: pending again
                raise
            now = self._clock()
            reason = f"{result.status} {result.detail}" if result.status else result.detail
            if result.acknowledged:
                self.outbox._acknowledge(item, result, now)
                self._host_failures = 0
                sent += 1
                self._report("done", item)
            elif result.outcome is Outcome.REFUSED:
                self.outbox._fail(item, reason, now, result.why, result.status)
                self._host_failures = 0
                failed += 1
                self._report("failed", item)
            else:
                self._host_failures += 1
                when = now + self.policy.delay(item.attempts, self._random, result.retry_after)
                self.outbox._reschedule(item, reason, when, now, result.why, result.status)
                self.paused_until = now + self.policy.delay(
                    self._host_failures, self._random, result.retry_after)
                self._pause_cause = result.why
                with self._held_lock:
                    self._held.add(result.why)
                retried += 1
                self._report("retry", item)
                break
        return PassReport(sent, failed, retried)


class OutboxWorker:
    """A background thread that sends the outbox: it sleeps until the next due attempt or
    until ``wakeup`` is set (set it after `Outbox.add`), never polling; `wake` when a state
    that held items back changed (a session opened, the host answered); after each pass it
    purges the done items due for it (`Outbox.purge`). ``on_progress`` is called on the
    worker thread."""

    def __init__(
        self,
        outbox: Outbox,
        send: Send,
        wakeup: threading.Event,
        *,
        policy: RetryPolicy | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._stopping = threading.Event()
        # The pace's waits end as soon as the worker is told to stop.
        self.sender = Sender(outbox, policy, on_progress=on_progress, random=random,
                             pause=self._stopping.wait)
        self.send = send
        self.wakeup = wakeup
        self._ended: set[Cause] = set()  # causes `wake` was told of, for the next pass
        self._ended_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dmp-outbox", daemon=True)

    def start(self) -> OutboxWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the current attempt (an attempt in flight is not cut short; a wait
        for the pace is: its item stays pending, that attempt not counted)."""
        self._stopping.set()
        self.wakeup.set()
        if self._thread.ident is not None:  # started: a failed start must stop cleanly too
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self, causes: Iterable[Cause]) -> bool:
        """``causes`` ended (a session opened: `SESSION_CAUSES`; the host answered:
        `HOST_CAUSES`): the items they hold back are sent now, whatever their backoff. Any
        thread; cheap and without a pass when nothing may be held back by them, so it may
        be called on every answer of the host. True when a pass was asked for."""
        causes = set(causes)
        with self._ended_lock:
            self._ended |= causes
        # During a pass too: an attempt in flight may yet fail for a cause that just ended.
        if self.sender.holds(causes) or self.sender.in_pass:
            self.wakeup.set()
            return True
        return False

    def _take_ended(self) -> None:
        # Applied on this thread at the start of a pass, never from the caller's: an item
        # that failed meanwhile (the session opened while its attempt was in flight) was
        # rescheduled before this makes it due again, so it is never left behind.
        with self._ended_lock:
            ended, self._ended = self._ended, set()
        held = self.sender.holds(ended)
        if held:
            self.sender.make_due(held)

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the pass: a wakeup set during the pass triggers another one.
            self.wakeup.clear()
            try:
                self._take_ended()
                self.sender.send_pending(self.send, stop=self._stopping.is_set)
                outbox = self.sender.outbox
                outbox.purge()
                # Woken for the next purge too: exactly when one is due, never polling.
                due = min((t for t in (self.sender.next_due(), outbox.next_purge())
                           if t is not None), default=None)
            except OutboxStorageError as error:
                # The disk refused a write (full...): said once per pass, then try again.
                log.warning("outbox: pass stopped: %s", error)
                due = time.time() + self.sender.policy.base
            except Exception:
                log.exception("outbox: pass failed")
                due = time.time() + self.sender.policy.base
            if self._stopping.is_set():
                break
            self.wakeup.wait(None if due is None else max(0.0, due - time.time()))
