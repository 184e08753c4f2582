"""The request budget admits at most N requests in any rolling 60 s window, waiting otherwise."""

from __future__ import annotations

import itertools
import threading

import pytest

from license_monitor.genesys.budget import RequestBudget, background


class FakeClock:
    """A monotonic clock whose sleep advances it instead of waiting; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def max_in_any_window(times: list[float], window: float = 60.0) -> int:
    """The largest number of times inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, sum(1 for t in ordered[i:] if t < start + window))
    return best


def test_requests_within_the_budget_go_without_waiting() -> None:
    clock = FakeClock()
    budget = RequestBudget(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        budget.acquire()
    assert clock.sleeps == []


def test_one_request_over_the_budget_waits_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock()
    budget = RequestBudget(3, clock=clock, sleep=clock.sleep)
    first = budget.acquire()
    clock.advance(10)
    budget.acquire()
    budget.acquire()
    fourth = budget.acquire()
    assert fourth == pytest.approx(first + 60.0)
    assert sum(clock.sleeps) == pytest.approx(50.0)


def test_window_is_rolling_not_fixed_minutes() -> None:
    clock = FakeClock(start=0.0)
    budget = RequestBudget(2, clock=clock, sleep=clock.sleep)
    budget.acquire()  # t = 0
    clock.advance(59)
    budget.acquire()  # t = 59
    clock.advance(2)  # t = 61: the first left the window, the second has not
    assert budget.acquire() == pytest.approx(61.0)
    # A fixed-minute counter would now allow another; the rolling window makes it wait for 119.
    assert budget.acquire() == pytest.approx(119.0)


def test_a_burst_never_puts_more_than_the_budget_in_any_60_second_window() -> None:
    clock = FakeClock()
    budget = RequestBudget(20, clock=clock, sleep=clock.sleep)
    granted = [budget.acquire() for _ in range(50)]
    assert max_in_any_window(granted) == 20
    assert clock.sleeps, "50 requests against 20/min must have waited"
    assert granted[-1] - granted[0] == pytest.approx(120.0)


def test_concurrent_callers_share_one_budget() -> None:
    clock = FakeClock()
    budget = RequestBudget(10, clock=clock, sleep=clock.sleep)
    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            moment = budget.acquire()
            with lock:
                granted.append(moment)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(granted) == 60
    assert max_in_any_window(granted) <= 10


@pytest.mark.parametrize("per_minute", [0, -5])
def test_budget_must_allow_at_least_one_request(per_minute: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestBudget(per_minute)


def test_background_requests_leave_two_thirds_of_the_budget_to_checks() -> None:
    clock = FakeClock()
    budget = RequestBudget(300, clock=clock, sleep=clock.sleep)
    assert budget.background_limit == 100
    with background():
        granted = [budget.acquire() for _ in range(100)]
    # Half of the lane at once, then one every 0.6 s: a third of the window in 30 s.
    assert granted[:50] == [granted[0]] * 50
    assert [round(b - a, 6) for a, b in itertools.pairwise(granted[49:])] == [0.6] * 50
    # The check that starts now sends 200 requests without waiting for the refresh's.
    sleeps = len(clock.sleeps)
    checks = [budget.acquire() for _ in range(200)]
    assert len(clock.sleeps) == sleeps
    # The refresh's next request waits until the window is under a third again, and the
    # window never holds more than the budget.
    with background():
        granted.append(budget.acquire())
    assert clock.now >= granted[0] + 60
    assert max_in_any_window(granted + checks) <= 300


def test_a_long_refresh_never_sends_its_share_at_once_again() -> None:
    """A refresh of several minutes: once its first requests leave the window, it does not
    send the lane's whole share in a burst (beside a check that starts then)."""
    clock = FakeClock()
    budget = RequestBudget(300, clock=clock, sleep=clock.sleep)
    with background():
        granted = [budget.acquire() for _ in range(400)]
    after_first_burst = granted[50:]
    assert min(b - a for a, b in itertools.pairwise(after_first_burst)) >= 0.6 - 1e-9
    assert max_in_any_window(granted) <= 100
    assert max(sum(1 for t in granted if start <= t < start + 5) for start in granted[50:]) <= 9
    # Its pace is still the lane's 100 a minute: 400 requests in four minutes.
    assert granted[-1] - granted[0] == pytest.approx(60 + 299 * 0.6)


def test_a_background_thread_pool_inherits_the_background_lane() -> None:
    from license_monitor.deadline import ContextThreadPoolExecutor  # noqa: PLC0415

    clock = FakeClock()
    budget = RequestBudget(30, clock=clock, sleep=clock.sleep)
    with background(), ContextThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: budget.acquire(), range(5)))
    assert clock.sleeps == []
    with background(), ContextThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(budget.acquire).result()
    assert clock.sleeps  # the 6th background request waited: the lane is paced past half


def test_checks_busy_all_minute_do_not_stop_the_refresh_from_its_third() -> None:
    clock = FakeClock()
    budget = RequestBudget(300, clock=clock, sleep=clock.sleep)
    checks = [budget.acquire() for _ in range(180)]  # a large org's checks, back to back
    with background():
        refresh = [budget.acquire() for _ in range(100)]
    assert refresh[-1] - refresh[0] == pytest.approx(30.0)  # its own pace, not the checks'
    assert max_in_any_window(checks + refresh) <= 300
