"""The pace of deposits: the DMP accepts fewer than 5 deposits per second per establishment
and software, so the outbox's sender starts at most ``per_second`` of them each second for
one structure (docs/agent-outbox.md, "Pace").

`Throttle` keeps, per key (a structure id: the establishment the deposit is made for), the
times of its last starts on a monotonic clock, and lets a new one start when both hold:

- at least ``1 / per_second`` seconds since the key's previous start (even spacing: a burst
  of 20 at 4 per second takes 4.75 s, its starts 0.25 s apart);
- fewer than `DMP_DEPOSIT_RULE` starts of the key in any window of one second, whatever
  ``per_second`` (so a rate between 4 and 5 never puts a fifth start within one second).

Its lock guards only this bookkeeping: waiting happens outside it, in slices of at most
`SLICE` seconds, checking ``stop`` between them (an agent that stops is never held back
more than a slice, and at once when the wait is on its stop event). A throttle holds a
deposit back, it never fails one.

One throttle serves the whole process (`process_throttle`, which `open_outbox` gives the
outbox): every sender of the process shares its starts per structure. Two agents (two
workstations, or two users) of one establishment share nothing: each keeps its own pace.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.config import DEFAULT_DEPOSITS_PER_SECOND, DMP_DEPOSIT_RULE, check_deposit_rate
from agent.i18n import _

WINDOW = 1.0  # seconds: the DMP's rule counts deposits per second
SLICE = 0.1  # longest single pause of a wait: how late a `stop` may be seen, at worst
UNKNOWN_STRUCTURE = ""  # the key of deposits that do not say their structure (older items)


@dataclass(frozen=True)
class ThrottleStatus:
    """The throttle holds deposits back: ``per_second`` the pace allowed, ``rate`` the starts
    of the busiest held structure in the last second, ``structures`` how many are held."""

    per_second: float
    rate: int
    structures: int


def pace_value(value: float) -> int | float:
    """``value`` deposits per second as people read it: 4, not 4.0."""
    return int(value) if float(value).is_integer() else round(value, 2)


def throttle_text(per_second: float, waiting: int) -> str:
    """What people are told while deposits are held back."""
    return _("Throttled: at most {pace} deposit(s) per second (the DMP's rule: fewer than "
             "{rule} per second per establishment), {waiting} waiting").format(
        pace=pace_value(per_second), rule=DMP_DEPOSIT_RULE, waiting=waiting)


class Throttle:
    """At most ``per_second`` starts per second for each key (see the module); ``clock`` is
    monotonic seconds (injected in tests). Thread-safe."""

    def __init__(self, per_second: float = DEFAULT_DEPOSITS_PER_SECOND, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_deposit_rate(per_second)
        self._per_second = float(per_second)
        self._clock = clock
        self._lock = threading.Lock()
        self._starts: dict[str, deque[float]] = {}  # the last starts of each key, oldest first
        self._held: set[str] = set()  # keys whose last start had to wait

    @property
    def per_second(self) -> float:
        return self._per_second

    @per_second.setter
    def per_second(self, value: float) -> None:
        check_deposit_rate(value)
        with self._lock:
            self._per_second = float(value)

    def _allowed_at(self, starts: deque[float]) -> float:
        if not starts:
            return -math.inf
        spaced = starts[-1] + 1.0 / self._per_second
        if len(starts) >= DMP_DEPOSIT_RULE - 1:  # a further one would be the rule's fifth
            return max(spaced, starts[-(DMP_DEPOSIT_RULE - 1)] + WINDOW)
        return spaced

    def try_start(self, key: str) -> float:
        """Start one for ``key`` now if the pace allows it (recorded: returns 0.0), else the
        seconds to wait before it may (nothing recorded). Never blocks."""
        with self._lock:
            now = self._clock()
            starts = self._starts.get(key)
            if starts is not None:
                wait = self._allowed_at(starts) - now
                if wait > 0:
                    return wait
            else:
                starts = self._starts[key] = deque(maxlen=DMP_DEPOSIT_RULE - 1)
            starts.append(now)
            # Keys idle for longer than any constraint reaches are forgotten: bounded memory.
            horizon = max(WINDOW, 1.0 / self._per_second)
            for other in [k for k, s in self._starts.items() if s[-1] < now - horizon]:
                del self._starts[other]
                self._held.discard(other)
            return 0.0

    def acquire(self, key: str, *, stop: Callable[[], bool] | None = None,
                pause: Callable[[float], object] | None = None) -> bool:
        """Wait until ``key`` may start one, and start it: True. False as soon as ``stop()``
        is true (nothing started). ``pause(seconds)`` waits (default `time.sleep`; the
        sender gives its stop event's ``wait``, which returns at once when it is set); it is
        never called with more than `SLICE` seconds, nor while the lock is held."""
        pause = pause or time.sleep
        waited = False
        while True:
            if stop is not None and stop():
                return False
            wait = self.try_start(key)
            if wait <= 0:
                if not waited:
                    with self._lock:
                        self._held.discard(key)  # not held back: the pace does not apply
                return True
            if not waited:
                waited = True
                with self._lock:
                    self._held.add(key)
            pause(min(wait, SLICE))

    def settle(self, keys: Iterable[str]) -> None:
        """``keys`` have nothing more to send for now (a sender's pass ended)."""
        with self._lock:
            self._held.difference_update(keys)

    def rate(self, key: str) -> int:
        """How many starts ``key`` had in the last second."""
        with self._lock:
            now = self._clock()
            return sum(1 for t in self._starts.get(key, ()) if t > now - WINDOW)

    def status(self) -> ThrottleStatus | None:
        """The pace holds deposits back now (None: it does not)."""
        with self._lock:
            held = list(self._held)
            per_second = self._per_second
        if not held:
            return None
        return ThrottleStatus(per_second, max(self.rate(k) for k in held), len(held))


_process: Throttle | None = None
_process_lock = threading.Lock()


def process_throttle(per_second: float = DEFAULT_DEPOSITS_PER_SECOND) -> Throttle:
    """The process's one throttle, at ``per_second`` from now on (the configuration's
    ``outbox.max_deposits_per_second``); its record of past starts is kept."""
    global _process
    with _process_lock:
        if _process is None:
            _process = Throttle(per_second)
        elif _process.per_second != per_second:
            _process.per_second = per_second
        return _process


__all__ = ["SLICE", "UNKNOWN_STRUCTURE", "WINDOW", "Throttle", "ThrottleStatus", "pace_value",
           "process_throttle", "throttle_text"]
