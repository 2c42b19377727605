"""`BoundedCaller`, the time limit of every PC/SC call, on plain functions: a call that
overruns is given up at the timeout, every later call is refused at once without being
run, and the release happens exactly once, after the overrunning call has returned."""

from __future__ import annotations

import threading
import time

import pytest

from cardreader.pcsc.bounded import BoundedCaller, Closed, Overrun


def test_a_call_within_the_time_returns_its_value_or_raises_its_error() -> None:
    released: list[str] = []
    caller = BoundedCaller("test", lambda: released.append("x"), timeout=1.0)
    assert caller.call(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        caller.call(lambda: 1 / 0)
    caller.close()
    assert released == ["x"]
    with pytest.raises(Closed):
        caller.call(lambda: 1)
    caller.close()
    assert released == ["x"]


def test_an_overrun_is_given_up_then_everything_is_refused_and_released_once_later() -> None:
    released: list[float] = []
    unblock = threading.Event()
    ran: list[int] = []
    caller = BoundedCaller("test", lambda: released.append(time.monotonic()), timeout=0.2)
    started = time.monotonic()
    with pytest.raises(Overrun):
        caller.call(unblock.wait)
    assert 0.15 < time.monotonic() - started < 1.0
    with pytest.raises(Overrun):  # at once, and never run
        caller.call(ran.append, 1)
    caller.close()  # does not wait for the blocked call
    assert released == [] and ran == []
    unblock.set()  # the card finally leaves: the blocked call returns
    deadline = time.monotonic() + 2
    while not released and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(released) == 1 and ran == []
