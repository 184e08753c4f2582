"""No lost minutes: after failed checks (or an app that was down) the next successful check
measures the minutes nobody measured, so an outage never hides time over capacity."""

from __future__ import annotations

from collections.abc import Callable

from simulator import Fault
from tests.fixtures.monitor import WORLD_START, World, at, check_at, online_from

DETAILS = "/api/v2/analytics/users/details/query"








def test_an_outage_of_40_minutes_hides_no_time_over_capacity(
    world: Callable[..., World],
) -> None:
    w = world()  # capacity 100, checks every 5 minutes, 15-minute windows
    online_from(w, 50, at(8, 0))
    assert check_at(w, at(8, 15))["level"] == "ok"

    # Genesys answers 503 for 40 minutes; meanwhile 105 users are logged in for 35 of them.
    w.simulator.inject(Fault(kind="status", status=503, path=DETAILS, times=None))
    online_from(w, 105, at(8, 18))
    failed = [check_at(w, at(8, minute)) for minute in range(20, 56, 5)]
    online_from(w, 50, at(8, 53))
    w.simulator.clear_faults()
    assert {report["level"] for report in failed} == {"unknown"}

    report = check_at(w, at(9, 0))

    # The window (08:45-09:00) saw 8 of the 35 minutes; the other 27 were measured too.
    assert report["backfilled_minutes"] == 30  # 08:15 .. 08:44
    assert report["billing"]["seconds_over_capacity"] == 35 * 60
    assert report["billing"]["billable_peak"] == 105
    assert "overage_locked_in" in report["events"]
    overage = [item.body for item in w.receiver.delivered
               if item.body["event"] == "overage_locked_in"]
    assert len(overage) == 1
    assert check_at(w, at(9, 5))["backfilled_minutes"] == 0  # nothing left to catch up


def test_backfill_reaches_back_at_most_a_day(world: Callable[..., World]) -> None:
    w = world()
    online_from(w, 50, at(8, 0))
    check_at(w, at(8, 15))
    later = WORLD_START.replace(day=WORLD_START.day + 2)  # two days without a check
    online_from(w, 50, later)

    report = check_at(w, later)

    assert report["backfilled_minutes"] == 24 * 60 - 15  # a day, up to this window


def test_a_long_gap_is_caught_up_over_several_checks_within_their_deadline(
    world: Callable[..., World],
) -> None:
    w = world()
    w.services.check_timeout_seconds = 4.0  # as CHECK_TIMEOUT_SECONDS, smaller than allowed
    online_from(w, 50, at(8, 0))
    check_at(w, at(8, 15))  # then nothing for three hours
    # Each details request takes 0.25 s: a chunk costs about half a second, so one check can
    # measure only a few of the eleven 15-minute chunks before half its deadline is used.
    w.simulator.inject(Fault(kind="slow", delay_seconds=0.25, path=DETAILS, times=None))

    caught_up = []
    for minute in range(15, 30):
        report = check_at(w, at(11, minute))
        assert report["level"] == "ok"  # the check's own window always decides
        caught_up.append(report["backfilled_minutes"])
        if "unmeasured_from" not in report:  # the ledger reaches this check's window
            break

    assert len(caught_up) > 1  # not all at once
    assert caught_up[0] < 165
    # 08:15 up to the last check's window (which it measured itself), each minute once.
    assert sum(caught_up) == 165 + minute - 15
    assert isinstance(w.results[-2].output, dict)
    assert w.results[-2].output["unmeasured_from"] > "2026-11-26T08:15"
    assert check_at(w, at(11, minute + 1))["backfilled_minutes"] == 0  # nothing left
