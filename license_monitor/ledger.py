"""The billing ledger's one contiguous span per check: no minute lost where checks meet.

The ledger ends where its last recorded minute ends (`BillingLedger.last_recorded_minute`).
Each check records **one span, from where the ledger ends to the last whole minute before the
check time**, oldest minute first, so the ledger's end only ever moves over minutes that are
recorded. Whatever a check could not measure (its time ran out, Genesys or the store failed
part way) stays where the ledger ends: owed, and measured by the next checks, never skipped.

The span's recent part, inside the check's own window, comes from the window's own user
details read (no extra request); the older part (after failed checks, an outage, an app
that was down) is read in window-sized, minute-aligned chunks while at least half the check's
time is left. At most BACKFILL_LIMIT back is measured: what lies before is reported as lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from license_monitor import billing, deadline, measure
from license_monitor.alerting import one_line
from license_monitor.genesys.errors import GenesysError
from license_monitor.roster import Roster
from license_monitor.runtime import Services
from license_monitor.state import BillingSummary, StorageUnavailable
from license_monitor.times import format_check_time, format_time
from license_monitor.usage import MINUTE, MinuteProfile, measure_concurrency

logger = logging.getLogger(__name__)

BACKFILL_LIMIT = timedelta(hours=24)  # how far back a check measures minutes nobody measured
PARALLEL_DETAIL_PAGES = 8


def floor_minute(moment: datetime) -> datetime:
    """The start of the minute holding `moment`."""
    return moment.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class SpanPlan:
    """What one check records: [start, window_from) read in chunks, then the window's minutes
    [window_from, end). `lost` is the part older than BACKFILL_LIMIT, never to be measured."""

    start: datetime
    window_from: datetime
    end: datetime
    lost: tuple[datetime, datetime] | None = None


def plan_span(
    ledger_end: datetime | None, window_from: datetime, checked_at: datetime,
    limit: timedelta = BACKFILL_LIMIT,
) -> SpanPlan:
    """The span a check at `checked_at` records, given where the ledger ends (None: nothing
    recorded yet: from the first minute of the window). Pure.

    Each minute is recorded once, by the first check after it ends, with the pool of that
    time: measured again later, a minute could lose a user who has since left the pool.
    """
    end = floor_minute(checked_at)
    window_from = min(floor_minute(window_from), end)
    start = window_from if ledger_end is None else min(floor_minute(ledger_end), end)
    oldest = floor_minute(checked_at - limit)
    lost = None
    if start < oldest:
        lost = (start, oldest)
        start = oldest
    return SpanPlan(start=start, window_from=max(window_from, start), end=end, lost=lost)


def ledger_end(services: Services, checked_at: datetime) -> datetime | None:
    """Where the org's ledger ends: after its latest minute in this billing period, or else in
    the previous one; the start of a span an older version left to catch up, if earlier."""
    assert services.state is not None  # noqa: S101 (the caller checked)
    anchor = services.settings.billing_anchor_day
    ledger = services.state.billing
    period = billing.billing_period_start(checked_at, anchor)
    last = ledger.last_recorded_minute(period)
    if last is None:  # a new period: the ledger may end in the previous one
        day_before = datetime.combine(period, time(), UTC) - timedelta(days=1)
        last = ledger.last_recorded_minute(billing.billing_period_start(day_before, anchor))
    end = None if last is None else last + MINUTE
    left_over = ledger.unmeasured()  # written by versions that caught up apart from the window
    if left_over is not None and (end is None or left_over[0] < end):
        end = left_over[0]
    return end


def record_by_period(
    services: Services, minutes: dict[datetime, MinuteProfile], measured_at: datetime,
) -> dict[date, BillingSummary]:
    """Record minutes in the billing period each belongs to, oldest period first."""
    assert services.state is not None  # noqa: S101 (the caller checked)
    anchor = services.settings.billing_anchor_day
    by_period: dict[date, dict[datetime, MinuteProfile]] = {}
    for minute, profile in minutes.items():
        by_period.setdefault(billing.billing_period_start(minute, anchor), {})[minute] = profile
    return {start: services.state.billing.record_minutes(start, by_period[start], measured_at)
            for start in sorted(by_period)}


def record_span(
    services: Services, checked_at: datetime, roster: Roster,
    window_minutes: dict[datetime, MinuteProfile], window_start: datetime,
) -> dict[str, Any]:
    """Record this check's span of the ledger (module docstring); never raises for Genesys or
    storage trouble: the span's unrecorded part stays owed, and the result says so.

    Returns the check JSON's ledger fields: `backfilled_minutes` (minutes before the window
    measured now), `ledger_until` (where the ledger ends after this check) and, when not all
    of the span was recorded, `unmeasured_from` with `backfill_error` or the reason.
    """
    assert services.state is not None  # noqa: S101 (the caller checked)
    result: dict[str, Any] = {"backfilled_minutes": 0}
    try:
        plan = plan_span(ledger_end(services, checked_at), window_start, checked_at)
    except StorageUnavailable as err:
        logger.warning("The billing ledger was not read; no minute recorded: %s", err)
        result["backfill_error"] = one_line(str(err))
        return result
    if plan.lost is not None:
        logger.warning("Minutes from %s to %s are more than %s back and were not measured",
                       format_time(plan.lost[0]), format_time(plan.lost[1]), BACKFILL_LIMIT)
        result["lost_minutes"] = (plan.lost[1] - plan.lost[0]) // MINUTE
    window = timedelta(minutes=services.settings.window_minutes)
    limit = deadline.current()
    cursor = plan.start
    try:
        while cursor < plan.window_from:
            if limit is not None and limit.work_left() < limit.seconds / 2:
                # The check's own figures come first: the rest is measured by the next checks.
                logger.warning("Caught up %d minutes; %s to %s is left for the next checks",
                               result["backfilled_minutes"], format_time(cursor),
                               format_time(plan.end))
                result["unmeasured_from"] = format_check_time(cursor)
                return result
            chunk_end = min(cursor + window, plan.window_from)
            minutes, roster = _measure_chunk(services, cursor, chunk_end, roster, checked_at)
            _require_every_minute(minutes, cursor, chunk_end)
            record_by_period(services, minutes, checked_at)
            result["backfilled_minutes"] += len(minutes)
            cursor = chunk_end
        tail = {minute: profile for minute, profile in window_minutes.items()
                if cursor <= minute < plan.end}
        _require_every_minute(tail, cursor, plan.end)
        record_by_period(services, tail, checked_at)
        cursor = plan.end
    except (StorageUnavailable, GenesysError, ValueError) as err:
        # The window is still measured and decided; the ledger ends where it ends, so the next
        # check measures from there. The check JSON says so: never a silent gap.
        logger.warning("Minutes from %s not recorded: %s", format_time(cursor), err)
        result["unmeasured_from"] = format_check_time(cursor)
        result["backfill_error"] = one_line(str(err))
        if isinstance(err, ValueError):
            # Not an outage that the next check rides out: stored figures that disagree with
            # their rows. The check fails with it (and alerts after FAILURE_ALERT_AFTER).
            result["ledger_error"] = one_line(str(err))
        return result
    if result["backfilled_minutes"]:
        logger.warning("Measured %d minutes no check had measured", result["backfilled_minutes"])
    _clear_left_over(services, cursor)
    return result


def _measure_chunk(
    services: Services, start: datetime, end: datetime, roster: Roster, checked_at: datetime,
) -> tuple[dict[datetime, MinuteProfile], Roster]:
    """The minutes of [start, end), with the roster rebuilt (and kept) when someone logged in
    then is unknown to it: a user hired during an outage is counted like any other."""
    settings = services.settings
    segments = measure.fetch_segments(services.client, start, end, PARALLEL_DETAIL_PAGES)
    refreshed = measure.refresh_for_strangers(
        services.client, roster, measure.online_users(segments, start, end),
        rule=settings.agent_rule, license_pattern=settings.concurrent_license_pattern,
        now=checked_at, concurrent_pool=settings.concurrent_pool)
    if refreshed is not roster:
        services.roster = refreshed
        if services.state is not None:
            services.state.roster.save(refreshed.to_dict(), checked_at)
    minutes = measure_concurrency(measure.pool_segments(segments, refreshed), start, end).minutes
    return minutes, refreshed


def _require_every_minute(
    minutes: dict[datetime, MinuteProfile], start: datetime, end: datetime,
) -> None:
    """A span is recorded whole or not at all: a missing minute would be skipped for good."""
    expected = (end - start) // MINUTE if end > start else 0
    if len(minutes) != expected:
        raise ValueError(f"{len(minutes)} of the {expected} minutes from {format_time(start)} "
                         "were measured")


def _clear_left_over(services: Services, recorded_until: datetime) -> None:
    """Forget a catch-up span an older version left, once the ledger has passed its end."""
    assert services.state is not None  # noqa: S101 (the caller checked)
    ledger = services.state.billing
    try:
        left_over = ledger.unmeasured()
        if left_over is not None and left_over[1] <= recorded_until:
            ledger.mark_unmeasured(None)
    except StorageUnavailable as err:
        logger.warning("The old catch-up mark was not cleared: %s", err)

