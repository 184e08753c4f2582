"""The measurement the Function App runs (measure_usage through the replay host): one roster
per check, rebuilt at most once, new hires counted in the check that first sees them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from simulator import SimSegment, SimUser
from tests.fixtures.monitor import WORLD_START, World


def users_listings(world: World) -> int:
    """Pages of GET /api/v2/users (the active-users listing) the simulator answered."""
    return sum(1 for r in world.simulator.requests
               if r.method == "GET" and r.path == "/api/v2/users")


def hire(world: World, user_id: str, *, agent: bool, listed: bool = True) -> None:
    """A concurrent-licensed user the cached roster has never seen, OFFLINE until told.

    `listed=False`: in a division the OAuth client cannot list (analytics still sees them).
    """
    world.simulator.org.users.append(SimUser(
        id=user_id, name=user_id, listed=listed,
        licenses=["cloudCX2"], queue_ids=["q-sales"] if agent else [],
        segments=[SimSegment(WORLD_START - timedelta(days=1), None, "OFFLINE")]))


def assert_consistent(output: dict[str, Any]) -> None:
    """What every successful check promises: now <= peak <= window distinct, split adds up."""
    now, peak = output["concurrent"]["now"], output["concurrent"]["peak"]
    assert now["total"] <= peak["total"] <= output["window_distinct"]
    for figures in (now, peak):
        assert figures["agents"] + figures["admins"] == figures["total"]


def test_new_hires_are_counted_in_every_figure_of_the_check_that_first_sees_them(
    world: Callable[..., World],
) -> None:
    w = world(pool_users=50)
    w.at_level(10)
    before = w.check()
    assert_consistent(before)
    assert before["concurrent"]["peak"]["total"] == 10
    listed = users_listings(w)
    assert listed == 1  # the cold check built the roster once

    # Two people hired after the roster was cached log in before the next check.
    hire(w, "hire-agent", agent=True)
    hire(w, "hire-admin", agent=False)
    w.at_level(10)
    w.simulator.org.set_presence("hire-agent", "ON_QUEUE", w.now - timedelta(minutes=12))
    w.simulator.org.set_presence("hire-admin", "AVAILABLE", w.now - timedelta(minutes=12))
    after = w.check()

    assert_consistent(after)
    for figure in ("now", "peak"):
        old, new = before["concurrent"][figure], after["concurrent"][figure]
        assert new["total"] == old["total"] + 2
        assert new["agents"] == old["agents"] + 1
        assert new["admins"] == old["admins"] + 1
    assert after["window_distinct"] == before["window_distinct"] + 2
    assert after["unclassified"] == 0
    assert users_listings(w) == listed + 1  # one rebuild, shared by every figure

    # The rebuilt roster was kept: the next check lists nobody again.
    w.at_level(12)
    w.simulator.org.set_presence("hire-agent", "ON_QUEUE", w.now - timedelta(minutes=12))
    w.simulator.org.set_presence("hire-admin", "AVAILABLE", w.now - timedelta(minutes=12))
    third = w.check()
    assert_consistent(third)
    assert third["concurrent"]["now"]["total"] == 14
    assert users_listings(w) == listed + 1


def test_a_logged_in_user_missing_from_the_listing_costs_one_listing_per_check_at_most(
    world: Callable[..., World],
) -> None:
    w = world(pool_users=50)
    # Someone in another division (absent from the active-users listing) is logged in.
    hire(w, "elsewhere", agent=True, listed=False)
    w.at_level(10)
    w.simulator.org.set_presence("elsewhere", "ON_QUEUE", w.now - timedelta(minutes=12))

    cold = w.check()
    assert users_listings(w) == 1  # cold: built once, never rebuilt for the stranger
    assert cold["unclassified"] == 1
    assert cold["concurrent"]["peak"]["total"] == 10  # not counted, and reported as such
    assert_consistent(cold)

    for _ in range(3):
        w.at_level(10, minutes_later=10)  # within ROSTER_TTL_MINUTES (60) of the cold check
        # (set_online logs every other pool user out 8 minutes ago, the stranger too)
        w.simulator.org.set_presence("elsewhere", "ON_QUEUE", w.now - timedelta(minutes=7))
        output = w.check()
        assert_consistent(output)
        assert output["unclassified"] == 1
    assert users_listings(w) == 1  # remembered as unresolved: no rebuild for them


def test_a_stranger_appearing_in_a_warm_check_rebuilds_once(
    world: Callable[..., World],
) -> None:
    w = world(pool_users=50)
    w.at_level(10)
    w.check()
    assert users_listings(w) == 1

    hire(w, "elsewhere", agent=True, listed=False)
    w.at_level(10)
    w.simulator.org.set_presence("elsewhere", "ON_QUEUE", w.now - timedelta(minutes=12))
    output = w.check()
    assert users_listings(w) == 2
    assert output["unclassified"] == 1

    w.at_level(10)
    w.check()
    assert users_listings(w) == 2


def test_dry_runs_measure_through_the_same_path(world: Callable[..., World]) -> None:
    w = world(pool_users=50)
    w.at_level(10)
    hire(w, "hire-agent", agent=True)
    w.simulator.org.set_presence("hire-agent", "ON_QUEUE", w.now - timedelta(minutes=12))
    output = w.check(dry_run=True)
    assert output["dry_run"] is True
    assert_consistent(output)
    assert output["concurrent"]["peak"]["total"] == 11
    assert output["concurrent"]["peak"]["agents"] >= 1
    assert list(w.results[-1].activity_calls) == [
        "begin_check", "acquire_token", "measure_usage", "evaluate"]
