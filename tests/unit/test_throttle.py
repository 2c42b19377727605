"""The DMP's pace (issue 18): fewer than 5 deposits per second per establishment and
software. The limiter alone, on a fake monotonic clock (`agent.outbox.throttle`), and the
configuration key that sets it (`outbox.max_deposits_per_second`)."""

from __future__ import annotations

import itertools
import math
import threading
import time
from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, load_config, render_config
from agent.outbox.throttle import SLICE, Throttle, process_throttle, throttle_text


class FakeTime:
    """A monotonic clock that moves only when the limiter pauses."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        assert 0 < seconds <= SLICE  # never a long sleep: a stop is seen within a slice
        self.pauses.append(seconds)
        self.now += seconds


def burst(throttle: Throttle, fake: FakeTime, key: str, n: int) -> list[float]:
    """Start ``n`` for ``key`` back to back; the fake time of each start."""
    starts = []
    for _ in range(n):
        assert throttle.acquire(key, pause=fake.pause)
        starts.append(fake.now)
    return starts


def most_in_one_second(starts: list[float]) -> int:
    """The most starts in any window of one second, [t, t + 1)."""
    return max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts)


def test_a_burst_of_20_at_the_default_pace_is_spread_over_4_75_seconds() -> None:
    fake = FakeTime()
    throttle = Throttle(clock=fake)
    assert throttle.per_second == 4.0
    starts = burst(throttle, fake, "structure-A", 20)
    assert starts[-1] - starts[0] >= 4.75 - 1e-9
    assert most_in_one_second(starts) <= 4
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(starts))
    assert starts[-1] - starts[0] < 4.75 + 0.01  # and not slower than asked


@pytest.mark.parametrize("per_second", [0.5, 1, 2.5, 3, 4, 4.5, 4.9, 4.999])
def test_no_window_of_one_second_ever_holds_5_starts_whatever_the_pace(
        per_second: float) -> None:
    fake = FakeTime()
    throttle = Throttle(per_second, clock=fake)
    starts = burst(throttle, fake, "s", 30)
    assert most_in_one_second(starts) <= 4
    # Never faster than asked, on average either.
    assert (len(starts) - 1) / (starts[-1] - starts[0]) <= per_second + 1e-9


def test_each_structure_has_its_own_pace() -> None:
    fake = FakeTime()
    throttle = Throttle(4, clock=fake)
    burst(throttle, fake, "A", 8)
    # Another establishment is not held back by A's burst...
    assert throttle.try_start("B") == 0.0
    # ...while A still is: its next start is a quarter second after its last one.
    assert throttle.try_start("A") == pytest.approx(0.25)
    # Interleaved, each keeps its own spacing and the pair goes twice as fast as one alone.
    fake2 = FakeTime()
    both = Throttle(4, clock=fake2)
    times: dict[str, list[float]] = {"A": [], "B": []}
    for _ in range(8):
        for key in ("A", "B"):
            assert both.acquire(key, pause=fake2.pause)
            times[key].append(fake2.now)
    for starts in times.values():
        assert most_in_one_second(starts) <= 4
        assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(starts))
    assert fake2.now - 100.0 == pytest.approx(7 * 0.25)  # 16 starts in 1.75 s, not 3.75 s


def test_a_refused_start_records_nothing_and_says_how_long_to_wait() -> None:
    fake = FakeTime()
    throttle = Throttle(2, clock=fake)
    assert throttle.try_start("A") == 0.0
    assert throttle.try_start("A") == pytest.approx(0.5)
    assert throttle.try_start("A") == pytest.approx(0.5)  # asking again does not push it back
    fake.now += 0.5
    assert throttle.try_start("A") == 0.0


def test_stop_ends_a_wait_and_nothing_is_started() -> None:
    fake = FakeTime()
    throttle = Throttle(4, clock=fake)
    assert throttle.acquire("A", pause=fake.pause)
    stopped = False

    def pause(seconds: float) -> None:
        nonlocal stopped
        stopped = True  # the agent is told to stop during the wait
        fake.pause(seconds)

    assert throttle.acquire("A", stop=lambda: stopped, pause=pause) is False
    assert fake.pauses == [SLICE]  # seen after one slice at most
    assert throttle.rate("A") == 1  # the stopped one was not counted as a start


def test_a_wait_on_the_stop_event_ends_at_once_in_real_time() -> None:
    frozen = Throttle(4, clock=lambda: 0.0)  # time never moves: it would wait forever
    assert frozen.try_start("A") == 0.0
    stopping = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(
        frozen.acquire("A", stop=stopping.is_set, pause=stopping.wait)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and frozen.status() is not None  # held back, and says so
    told = time.monotonic()
    stopping.set()
    waiter.join(1.0)
    assert not waiter.is_alive() and result == [False]
    assert time.monotonic() - told < 0.2


def test_the_lock_is_never_held_while_waiting() -> None:
    fake = FakeTime()
    throttle = Throttle(4, clock=fake)
    throttle.try_start("A")
    seen: list[float] = []

    def pause(seconds: float) -> None:
        # Another thread (here: the same one) may use the throttle during the wait.
        seen.append(throttle.try_start("B"))
        assert throttle.status() is not None
        fake.pause(seconds)

    assert throttle.acquire("A", pause=pause)
    assert seen[0] == 0.0


def test_status_says_when_the_pace_holds_deposits_back_then_nothing() -> None:
    fake = FakeTime()
    throttle = Throttle(4, clock=fake)
    assert throttle.status() is None
    burst(throttle, fake, "A", 1)
    assert throttle.status() is None  # the first of a burst is not held back
    seen = []

    def pause(seconds: float) -> None:
        seen.append(throttle.status())
        fake.pause(seconds)

    for _ in range(4):
        assert throttle.acquire("A", pause=pause)
    assert seen and all(s is not None and s.per_second == 4.0 and 1 <= s.rate <= 4
                        and s.structures == 1 for s in seen)
    assert throttle.status() is not None  # between two deposits of the burst: still held
    throttle.settle(["A"])  # the sender's pass ended: nothing more waits
    assert throttle.status() is None
    fake.now += 10
    assert throttle.acquire("A", pause=fake.pause) and throttle.status() is None


def test_the_message_names_the_rule_and_the_pace() -> None:
    text = throttle_text(4.0, 12)
    assert "4 dépôt(s) par seconde au plus" in text and "règle du DMP" in text
    assert "moins de 5 par seconde et par établissement" in text and "12 en attente" in text


def test_one_throttle_per_process_takes_the_configured_pace() -> None:
    shared = process_throttle(3)
    try:
        assert process_throttle(3) is shared and shared.per_second == 3
        assert process_throttle(2) is shared and shared.per_second == 2
    finally:
        process_throttle(4)


# -- the configuration ------------------------------------------------------------------------


def test_the_default_pace_is_4_per_second_and_the_key_is_documented() -> None:
    assert AgentConfig().max_deposits_per_second == 4.0
    rendered = render_config()
    assert "[outbox]" in rendered and "max_deposits_per_second = 4.0" in rendered
    assert "moins de 5 par seconde par établissement" in " ".join(rendered.split())


@pytest.mark.parametrize("value", [5, 5.0, 6, 100])
def test_5_or_more_per_second_is_refused_naming_the_dmp_rule(value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig(max_deposits_per_second=value)
    error = caught.value
    assert error.key == "outbox.max_deposits_per_second"
    assert "fewer than 5 deposits per second per establishment and software" in str(error)
    assert "règle du DMP" in str(error)
    with pytest.raises(ConfigError):
        Throttle(value)


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, math.nan, math.inf, "4", True, None])
def test_zero_negative_or_not_a_number_is_refused(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig(max_deposits_per_second=value)  # type: ignore[arg-type]
    assert caught.value.key == "outbox.max_deposits_per_second"


@pytest.mark.parametrize("value", [0.1, 1, 2.5, 4, 4.9, 4.99])
def test_a_pace_under_5_is_accepted(value: float) -> None:
    assert AgentConfig(max_deposits_per_second=value).max_deposits_per_second == value
    assert Throttle(value).per_second == value


def test_the_file_names_itself_and_the_key_when_the_pace_breaks_the_rule(
        tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text("[outbox]\nmax_deposits_per_second = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    message = str(caught.value)
    assert message.startswith(f"{file}: outbox.max_deposits_per_second: the DMP accepts "
                              "fewer than 5 deposits per second")
    file.write_text("[outbox]\nmax_deposits_per_second = 2\n")
    assert load_config(file).max_deposits_per_second == 2
