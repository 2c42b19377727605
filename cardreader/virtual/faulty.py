"""Faulty cards for tests: wrappers around a working emulator that misbehave on purpose.

Each wraps any `VirtualCard` and breaks it one way: answers cut short or garbled, a wrong
status word, a card that vanishes from the reader in the middle of a read, a slow card, a card
that freezes (stops answering but stays in the reader), or a card nobody knows. They let the
tests check that every such card gives a specific error, never a crash or a hang.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from .vpcd import VirtualCard


class _Wrapper:
    def __init__(self, inner: VirtualCard) -> None:
        self.inner = inner
        self.atr = inner.atr
        self.count = 0

    def power_on(self) -> None:
        self.inner.power_on()

    def process(self, apdu: bytes) -> bytes | None:
        self.count += 1
        return self.inner.process(apdu)


class VanishingCard(_Wrapper):
    """Pulled out of the reader when it receives command number ``at`` (1-based)."""

    def __init__(self, inner: VirtualCard, at: int) -> None:
        super().__init__(inner)
        self.at = at

    def process(self, apdu: bytes) -> bytes | None:
        self.count += 1
        return None if self.count == self.at else self.inner.process(apdu)


class MangledCard(_Wrapper):
    """Answers command number ``at`` (or every command from ``at`` on, with ``every``) with
    ``mangle(response)`` instead of the real response."""

    def __init__(
        self,
        inner: VirtualCard,
        mangle: Callable[[bytes], bytes],
        at: int = 1,
        *,
        every: bool = False,
    ) -> None:
        super().__init__(inner)
        self.mangle = mangle
        self.at = at
        self.every = every

    def process(self, apdu: bytes) -> bytes | None:
        self.count += 1
        response = self.inner.process(apdu)
        hit = self.count >= self.at if self.every else self.count == self.at
        if response is None or not hit:
            return response
        return self.mangle(response)


def truncate(keep: int) -> Callable[[bytes], bytes]:
    """A mangler keeping the first ``keep`` bytes of the data, with the status word kept."""
    return lambda r: r[:-2][:keep] + r[-2:]


def without_status(r: bytes) -> bytes:
    """A mangler that drops the status word (one byte left: no SW at all)."""
    return r[:1] if r else b"\x90"


def status(value: int) -> Callable[[bytes], bytes]:
    """A mangler answering a fixed status word and no data."""
    return lambda _r: value.to_bytes(2, "big")


def garble(seed: int = 0) -> Callable[[bytes], bytes]:
    """A mangler that flips random bytes of the data but keeps 9000 (a corrupted read)."""
    rng = random.Random(seed)

    def mangle(r: bytes) -> bytes:
        data = bytearray(r[:-2])
        for _ in range(max(1, len(data) // 8)):
            if data:
                data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        return bytes(data) + r[-2:]

    return mangle


class SlowCard(_Wrapper):
    """Takes ``delay`` seconds over every answer."""

    def __init__(self, inner: VirtualCard, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay

    def process(self, apdu: bytes) -> bytes | None:
        time.sleep(self.delay)
        return super().process(apdu)


class FreezingCard(_Wrapper):
    """Stops answering, without leaving the reader, from command number ``at`` on (never by
    default: `freeze()` arms it at once). It stays silent until `thaw()` (or ``dies_after``
    seconds): then it dies, i.e. leaves the reader without answering, as a frozen real card
    ends up doing when the reader or the user gives up."""

    def __init__(self, inner: VirtualCard, at: int | None = None,
                 dies_after: float | None = None) -> None:
        super().__init__(inner)
        self.at = at
        self.dies_after = dies_after
        self.frozen = threading.Event()  # set when the first unanswered command arrives
        self._thawed = threading.Event()

    def freeze(self) -> None:
        """The next command gets no answer."""
        self.at = self.count + 1

    def thaw(self) -> None:
        """End the freeze: the card dies (leaves the reader)."""
        self._thawed.set()

    def process(self, apdu: bytes) -> bytes | None:
        self.count += 1
        if self.at is None or self.count < self.at:
            return self.inner.process(apdu)
        self.frozen.set()
        self._thawed.wait(self.dies_after)
        return None


class UnknownCard:
    """A card this application does not know: a foreign ATR, every command refused."""

    def __init__(self, atr: bytes = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")):
        self.atr = atr  # a PC/SC storage card ATR (not a health card)

    def power_on(self) -> None:
        pass

    def process(self, apdu: bytes) -> bytes | None:
        return b"\x6d\x00"
