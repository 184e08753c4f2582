"""Checks are ordered by their time, so a machine whose clock runs fast (a laptop running the
CLI against the app's storage) must neither block every later check nor be obeyed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from license_monitor.alerting import Policy, Usage
from tests.fixtures.monitor import World


def events_received(w: World) -> list[str]:
    return [item.body["event"] for item in w.receiver.delivered]


def near_now(w: World) -> None:
    """Put the world's clock 20 minutes before the machine's, so at_level() lands on now."""
    w.now = datetime.now(UTC) - timedelta(minutes=20)


def test_a_check_30_minutes_fast_fails_naming_the_skew_and_blocks_nothing(
    world: Callable[..., World],
) -> None:
    w = world()
    near_now(w)
    w.at_level(50)
    assert w.check()["level"] == "ok"

    w.now += timedelta(minutes=30)  # the same storage, a clock 30 minutes fast
    w.simulator.org.now = w.now
    fast = w.check()

    assert fast["level"] == "unknown"
    assert "s ahead of Table Storage's" in fast["error"]  # about 1800: the test takes time
    assert fast["cause"] == "clock_skew"
    assert fast["events"] == []
    assert events_received(w) == []

    # The right clock again, a minute later: the breach is decided and sent at once.
    near_now(w)
    w.at_level(93)
    right = w.check()
    assert right["events"] == ["breach"]
    assert events_received(w) == ["breach"]


def test_a_state_stamped_in_the_future_is_repaired_not_obeyed(
    world: Callable[..., World],
) -> None:
    w = world()
    assert w.services.state is not None
    near_now(w)
    w.at_level(50)
    w.check()
    # What a version without the clock check left: a state decided 30 minutes ahead.
    w.services.state.alerts.evaluate(
        Usage(concurrent=50, agents=40, admins=10, window_distinct=55), Policy(capacity=100),
        datetime.now(UTC) + timedelta(minutes=30), [])

    near_now(w)
    w.at_level(93)
    repaired = w.check()

    assert repaired["events"] == ["breach"]  # decided now, not after 30 minutes
    assert events_received(w) == ["breach"]
    assert w.services.state.alerts.load_state().last_checked_at <= datetime.now(UTC)
