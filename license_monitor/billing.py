"""Billing rule: the period's billable peak, ignoring peaks held for under 30 minutes in total."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime


def _anchor_in_month(year: int, month: int, anchor_day: int) -> date:
    """The anchor day in a month, moved to the month's last day when the month is shorter."""
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def billing_period_start(now: datetime, anchor_day: int) -> date:
    """First day (UTC) of the billing period containing `now`; anchor 31 in April -> April 30."""
    if not 1 <= anchor_day <= 31:
        raise ValueError(f"the billing anchor day must be between 1 and 31, not {anchor_day}")
    today = now.astimezone(UTC).date() if now.tzinfo is not None else now.date()
    this_month = _anchor_in_month(today.year, today.month, anchor_day)
    if today >= this_month:
        return this_month
    if today.month == 1:
        return _anchor_in_month(today.year - 1, 12, anchor_day)
    return _anchor_in_month(today.year, today.month - 1, anchor_day)


def merge_minutes(
    recorded: Mapping[datetime, int], measured: Mapping[datetime, int]
) -> tuple[dict[datetime, int], dict[int, int]]:
    """Merge newly measured minute levels into the recorded ones.

    Returns the rows to write (minute -> new level) and the histogram delta (level -> +/-
    minutes). A minute measured again keeps the maximum of both measurements, so processing the
    same minutes twice changes nothing. Only `measured` is iterated: `recorded` needs to hold
    just the rows already stored for those minutes.
    """
    rows: dict[datetime, int] = {}
    delta: dict[int, int] = {}
    for minute, level in measured.items():
        if level < 0:
            raise ValueError(f"a concurrency level cannot be negative ({level} at {minute})")
        previous = recorded.get(minute)
        if previous is not None and previous >= level:
            continue
        rows[minute] = level
        delta[level] = delta.get(level, 0) + 1
        if previous is not None:
            delta[previous] = delta.get(previous, 0) - 1
    return rows, {level: minutes for level, minutes in delta.items() if minutes}


def apply_histogram_delta(histogram: Mapping[int, int], delta: Mapping[int, int]) -> dict[int, int]:
    """Return the histogram (level -> minutes) with the delta applied; empty levels dropped."""
    result = dict(histogram)
    for level, minutes in delta.items():
        updated = result.get(level, 0) + minutes
        if updated < 0:
            # Only a histogram that disagrees with its minute rows can get here; carrying on
            # would silently misstate the bill.
            raise ValueError(
                f"the histogram would hold {updated} minutes at level {level}: "
                "it does not match the recorded minutes"
            )
        if updated:
            result[level] = updated
        else:
            result.pop(level, None)
    return result


def minutes_at_or_above(histogram: Mapping[int, int], level: int) -> int:
    """Minutes of the period with concurrency of at least `level`."""
    return sum(minutes for at, minutes in histogram.items() if at >= level)


def billable_peak(histogram: Mapping[int, int], min_minutes: int = 30) -> int:
    """The highest level N with at least `min_minutes` minutes at N or above; 0 when none.

    Genesys disregards peaks shorter than 30 minutes and the 30 minutes need not be contiguous,
    so the bill is the level the period held (in total) for 30 minutes.
    """
    accumulated = 0
    for level in sorted((at for at, minutes in histogram.items() if minutes > 0), reverse=True):
        if level <= 0:
            break
        accumulated += histogram[level]
        if accumulated >= min_minutes:
            return level
    return 0
