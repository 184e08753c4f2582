"""Billing rule: the period's billable peak, ignoring peaks held for under 30 minutes in total.

Exact to the millisecond: billable_peak = max{N : time in the period with concurrency >= N is
at least 30 minutes}. The per-minute maximum gives only an upper bound (billable_peak_upper).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from license_monitor.usage import MinuteProfile


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


BILLABLE_MS = 30 * 60_000  # peaks held for less than 30 minutes in total are not billed
BILLABLE_MINUTES = 30


@dataclass(frozen=True)
class MinuteRecord:
    """One minute as measured: its step function and the check time that measured it."""

    profile: MinuteProfile
    measured_at: datetime


@dataclass(frozen=True)
class Histogram:
    """A period's time at each level: exact (milliseconds at exactly a level) and coarse
    (minutes whose highest level is exactly a level). As a delta, counts may be negative."""

    exact_ms: Mapping[int, int] = field(default_factory=dict)
    peak_minutes: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def of_minute(cls, profile: MinuteProfile, sign: int = 1) -> Histogram:
        """One minute's contribution (sign -1: taking it away)."""
        return cls({level: sign * ms for level, ms in profile.ms_at.items() if ms},
                   {profile.peak: sign})

    def plus(self, other: Histogram, *, strict: bool = False) -> Histogram:
        """The sum; with `strict`, a negative count means the histogram and its rows disagree."""
        def add(mine: Mapping[int, int], theirs: Mapping[int, int]) -> dict[int, int]:
            result = dict(mine)
            for level, amount in theirs.items():
                updated = result.get(level, 0) + amount
                if strict and updated < 0:
                    # Carrying on would silently misstate the bill.
                    raise ValueError(
                        f"the histogram would hold {updated} at level {level}: "
                        "it does not match the recorded minutes")
                if updated:
                    result[level] = updated
                else:
                    result.pop(level, None)
            return result
        return Histogram(add(self.exact_ms, other.exact_ms),
                         add(self.peak_minutes, other.peak_minutes))

    def ms_at_or_above(self, level: int) -> int:
        """Milliseconds of the period with concurrency of at least `level`."""
        return sum(ms for at, ms in self.exact_ms.items() if at >= level)

    @property
    def minutes_recorded(self) -> int:
        """Whole minutes measured in the period."""
        return sum(self.peak_minutes.values())

    @property
    def billable_peak(self) -> int:
        """max{N >= 1 : milliseconds with concurrency >= N reach 30 minutes}; 0 when none."""
        return _highest_held(self.exact_ms, BILLABLE_MS)

    @property
    def billable_peak_upper(self) -> int:
        """The same rule over each minute's highest level: what coarse sampling could bill."""
        return _highest_held(self.peak_minutes, BILLABLE_MINUTES)


def _highest_held(amount_at: Mapping[int, int], needed: int) -> int:
    """The highest level N >= 1 whose amount at N or above reaches `needed`; 0 when none.

    Genesys disregards peaks shorter than 30 minutes and the 30 minutes need not be contiguous,
    so the bill is the level the period held, in total, for 30 minutes.
    """
    accumulated = 0
    for level in sorted((at for at, amount in amount_at.items() if amount > 0), reverse=True):
        if level <= 0:
            break
        accumulated += amount_at[level]
        if accumulated >= needed:
            return level
    return 0


def merge_minutes(
    recorded: Mapping[datetime, MinuteRecord], measured: Mapping[datetime, MinuteRecord]
) -> tuple[dict[datetime, MinuteRecord], Histogram]:
    """Merge newly measured minutes into the recorded ones.

    Returns the rows to write and the histogram delta. The newest measurement of a minute wins
    (ties: the one stored stays): Genesys analytics only becomes more complete with time, so a
    later look at the same minute knows at least as much, while an older, retried check never
    overwrites a newer one. Measuring the same minutes again changes nothing, and no minute is
    ever counted twice. Only `measured` is iterated: `recorded` needs just those minutes' rows.
    """
    rows: dict[datetime, MinuteRecord] = {}
    delta = Histogram()
    for minute, record in measured.items():
        previous = recorded.get(minute)
        if previous is not None and (
                previous.measured_at >= record.measured_at or previous.profile == record.profile):
            continue
        rows[minute] = record
        delta = delta.plus(Histogram.of_minute(record.profile))
        if previous is not None:
            delta = delta.plus(Histogram.of_minute(previous.profile, -1))
    return rows, delta
