"""The billing ledger is one contiguous span: no minute lost where checks meet, no gap left by
a catch-up that fails part way, the previous period's overage announced, a rebuild that keeps
purged days, a gauge that keeps to the check's deadline, a claim leased from when it is made.

Each test runs the license_check orchestration through the replay host against the Genesys
simulator, Azurite and a webhook receiver, with checks at sub-second times as in Azure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from license_monitor import runtime
from license_monitor.state import StateStore
from orchestrators.starters import singleton_id
from simulator import Fault
from simulator.azurite import Azurite, connection_string
from tests.fixtures.monitor import World, at, check_at, online_from
from tests.fixtures.storage_proxy import StorageProxy
from tests.integration.test_billing_rebuild import rebuild

DETAILS = "/api/v2/analytics/users/details/query"
PERIOD = date(2026, 11, 1)


def odd(moment: datetime, index: int) -> datetime:
    """A check time as a real schedule gives it: some hundreds of milliseconds past the tick."""
    return moment + timedelta(milliseconds=(137 + 389 * index) % 1000)


def delivered(w: World, event: str) -> list[dict[str, Any]]:
    return [item.body for item in w.receiver.delivered if item.body["event"] == event]


def test_checks_as_far_apart_as_their_window_bill_every_second(
    world: Callable[..., World],
) -> None:
    w = world(WINDOW_MINUTES="5")  # every 5 minutes, 5-minute windows: the windows only touch
    online_from(w, 50, at(7, 30))
    online_from(w, 105, at(8, 10) + timedelta(seconds=30))
    online_from(w, 50, at(8, 45) + timedelta(seconds=30))  # 35 minutes at 105

    reports = [check_at(w, odd(at(8, 0) + timedelta(minutes=5 * i), i)) for i in range(13)]

    final = reports[-1]["billing"]
    assert final["seconds_over_capacity"] == 35 * 60
    assert final["billable_peak"] == 105
    assert len(delivered(w, "overage_locked_in")) == 1
    assert all("unmeasured_from" not in report for report in reports)


def test_a_failed_check_loses_no_minute(world: Callable[..., World]) -> None:
    w = world()  # every 5 minutes, 15-minute windows
    online_from(w, 50, at(7, 30))
    online_from(w, 105, at(8, 3) + timedelta(seconds=20))
    online_from(w, 50, at(8, 34) + timedelta(seconds=20))  # 31 minutes at 105
    reports = []
    for i in range(12):
        if i in (4, 5):  # two failed checks, fewer than FAILURE_ALERT_AFTER
            w.simulator.inject(Fault(kind="status", status=503, path=DETAILS, times=None))
        reports.append(check_at(w, odd(at(8, 0) + timedelta(minutes=5 * i), i)))
        w.simulator.clear_faults()

    assert [report["level"] for report in reports][4:6] == ["unknown", "unknown"]
    assert reports[-1]["billing"]["seconds_over_capacity"] == 31 * 60
    assert reports[-1]["billing"]["billable_peak"] == 105
    assert len(delivered(w, "overage_locked_in")) == 1


def test_a_catch_up_that_fails_part_way_leaves_its_gap_owed_not_lost(
    world: Callable[..., World],
) -> None:
    w = world()
    online_from(w, 50, at(7, 30))
    check_at(w, odd(at(8, 0), 0))
    # Two hours of failed checks; meanwhile 105 users for 35 minutes.
    w.simulator.inject(Fault(kind="status", status=503, path=DETAILS, times=None))
    online_from(w, 105, at(8, 40))
    online_from(w, 50, at(9, 15))
    for i in range(1, 24):
        check_at(w, odd(at(8, 0) + timedelta(minutes=5 * i), i))
    w.simulator.clear_faults()

    # The first check back: the window's read and two chunks of the catch-up answer, then
    # Genesys fails (retries exhausted) for the rest of this check.
    w.simulator.inject(Fault(kind="status", status=500, path=DETAILS, times=None, after=3))
    partial = check_at(w, odd(at(10, 0), 24))
    w.simulator.clear_faults()
    back = check_at(w, odd(at(10, 5), 25))

    assert partial["level"] == "ok"  # its window is measured and decided all the same
    assert "backfill_error" in partial
    assert partial["unmeasured_from"] < "2026-11-26T09:45"
    assert "unmeasured_from" not in back
    assert back["billing"]["seconds_over_capacity"] == 35 * 60
    assert back["billing"]["billable_peak"] == 105
    assert len(delivered(w, "overage_locked_in")) == 1


def test_an_overage_completed_by_the_last_minutes_of_a_period_is_announced_once(
    world: Callable[..., World],
) -> None:
    w = world(BILLING_ANCHOR_DAY="27")  # a period ends at 2026-11-27 00:00 UTC
    online_from(w, 50, at(21, 0))
    online_from(w, 105, at(23, 25))
    midnight = at(23, 0) + timedelta(hours=1)
    online_from(w, 50, midnight)  # 35 minutes at 105, the period's last
    reports = [check_at(w, odd(at(23, 5 * i), i)) for i in range(8)]  # up to 23:35
    # Genesys is unavailable across the boundary, 23:40 to 00:30.
    w.simulator.inject(Fault(kind="status", status=503, path=DETAILS, times=None))
    for i in range(8, 19):
        reports.append(check_at(w, odd(at(23, 0) + timedelta(minutes=5 * i), i)))
    w.simulator.clear_faults()
    after = [check_at(w, odd(midnight + timedelta(minutes=35 + 5 * i), i)) for i in range(3)]

    assert reports[7]["billing"]["seconds_over_capacity"] < 30 * 60  # not yet an overage
    overages = delivered(w, "overage_locked_in")
    assert len(overages) == 1
    assert overages[0]["billing"]["period_start"] == "2026-10-27"
    assert overages[0]["billing"]["billable_peak"] == 105
    assert overages[0]["billing"]["seconds_over_capacity"] == 35 * 60
    assert "period from 2026-10-27" in overages[0]["message"]
    assert after[0]["billing"]["period_start"] == "2026-11-27"
    assert "overage_locked_in" in after[0]["events"]
    assert all("overage_locked_in" not in report["events"] for report in after[1:])


def test_a_rebuild_keeps_the_days_retention_purged(
    world: Callable[..., World], azurite: Azurite, table_name: str,
) -> None:
    w = world()
    online_from(w, 50, at(8, 0))
    online_from(w, 105, at(8, 20))
    online_from(w, 50, at(8, 51))  # 31 minutes at 105 on the 26th
    for i in range(12):
        check_at(w, odd(at(8, 0) + timedelta(minutes=5 * i), i))
    next_day = at(8, 0) + timedelta(days=1)
    check_at(w, next_day)
    assert w.services.state is not None
    assert w.services.state.billing.summary(PERIOD).billable_peak == 105
    # Retention shorter than the period purges the 26th's minute rows; the histogram stays.
    assert w.services.state.retention.purge_older_than(next_day.replace(hour=0)) > 0
    assert w.services.state.billing.summary(PERIOD).billable_peak == 105

    w.simulator.org.now = next_day + timedelta(hours=1)
    done = rebuild(w, azurite, table_name, "--since", "2026-11-27", "--until", "2026-11-28",
                   "--json")

    assert done.returncode == 0, done.stderr
    stored = w.services.state.billing.summary(PERIOD)
    assert (stored.billable_peak, stored.seconds_over(100)) == (105, 31 * 60)
    # Among the purged days their share is not known: refused with one sentence, nothing lost.
    refused = rebuild(w, azurite, table_name, "--since", "2026-11-26", "--until", "2026-11-27")
    assert refused.returncode == 3
    purged = ("were purged by retention (RETENTION_DAYS): rebuild from the period's first day "
              "(--since 2026-11-01)")
    assert purged in refused.stderr
    assert w.services.state.billing.summary(PERIOD).billable_peak == 105


def test_a_stalled_gauge_costs_the_check_a_share_of_its_deadline_not_its_result(
    world: Callable[..., World], storage_proxy: StorageProxy,
) -> None:
    w = world()
    w.services.check_timeout_seconds = 8.0
    w.services.state = StateStore.from_connection_string(
        connection_string(storage_proxy.port), w.settings.state_table, w.settings.client_key,
        by_client=True)
    online_from(w, 60, at(7, 50))
    assert check_at(w, at(8, 0))["level"] == "ok"

    def stall_the_gauge(name: str, _: Any) -> None:
        # No presence event was ever received: only the gauge's counters are read, and stall.
        storage_proxy.swallow_matching = b"gauge" if name == "measure_usage" else None

    w.now = at(8, 5)
    w.simulator.org.now = w.now
    started = time.monotonic()
    report = w.check(host=w.host(activity_hook=stall_the_gauge))
    elapsed = time.monotonic() - started

    assert report["level"] == "ok"
    assert "gauge" not in report
    assert elapsed < 8.0  # the SDK's own retries would take about 85 s


def test_a_claim_made_late_in_a_check_is_leased_from_when_it_was_made(
    world: Callable[..., World],
) -> None:
    w = world()
    online_from(w, 92, at(7, 50))  # a breach
    start = at(8, 0)
    w.now = start
    w.simulator.org.now = start

    def long_catch_up_then_crash(name: str, _: Any) -> None:
        if name == "evaluate":  # the measurement took 50 s (a long catch-up)
            w.services.clock = runtime.clock_from(start + timedelta(seconds=50))
        if name == "notify":
            raise RuntimeError("the worker died mid-delivery")

    crashed = w.host(activity_hook=long_catch_up_then_crash).run(
        "license_check", {"dry_run": False, "trigger": "test"},
        instance_id=singleton_id(w.settings.client_key))
    assert crashed.runtime_status == "Failed"

    sent = []
    for seconds in (80, 110, 125):  # claimed at +50 s: its 70 s lease runs to +120 s
        w.now = start + timedelta(seconds=seconds)
        w.simulator.org.now = w.now
        sent.append(len(w.check()["notifications"]))

    assert sent == [0, 0, 1]
    assert [item.body["event"] for item in w.receiver.delivered] == ["breach"]
