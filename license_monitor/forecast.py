"""Forecast of today's remaining peak from the stored usage samples: pure, no clock, no I/O.

Contact centres are weekly: the same weekday has the same shape (ramp, lunch dip, afternoon
peak). The forecast takes the last `WEEKS` same weekdays' curves in the org's zone (15-minute
slots, the highest window peak of each) and scales each to today's level so far (today's recent
slots against the same slots of that day; with little of today seen, the scale stays near 1).
Each scaled day gives the highest slot from now to the end of the day: their median is the
forecast, their lowest and highest its range, and the peak's time is the first slot of the peak
on the median curve. A day with too little history gives no forecast, with the reason.

The backtest (`python -m benchmarks.forecast_backtest`) compares it with the naive "same as last
week's same weekday" on simulated months (docs/forecast.md).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from license_monitor.times import clock_time, format_time, utc

WEEKS = 4  # same weekdays looked back at
MIN_DAYS = 2  # same weekdays with a usable curve needed for a forecast
SLOT_MINUTES = 15
MIN_COVERAGE = 0.8  # share of a past day's hours that must hold a sample for it to count
RECENT_SLOTS = 16  # today's level is read over its last 4 hours
# Weight of "no change" in the scale, as a number of slots at the shape's typical level: with
# one slot of today seen the scale barely moves; with three hours it follows today.
PRIOR_SLOTS = 1.0
MIN_EVIDENCE = 0.7  # see breach_expected
SCALE_LIMITS = (0.5, 2.0)  # a day half or twice its usual level is as far as the shape is bent
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Sample:
    """One stored check: its time and the window's concurrent peak."""

    at: datetime
    concurrent: int


@dataclass(frozen=True)
class Forecast:
    """Today's remaining peak: the point forecast, its range, when, and from how many days."""

    peak: int
    low: int
    high: int
    at: datetime  # start of the 15-minute slot the peak is expected in (UTC)
    based_on_days: int
    weekday: str  # the weekday the history is of, in the org's zone ("Tuesday")
    day: date  # today in the org's zone
    # How much of the scale is today's own level (0: the usual shape as it is, towards 1:
    # scaled by hours of today): not in the JSON; the alert waits for enough of it.
    evidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The check JSON's `forecast` object (DESIGN.md §9)."""
        return {"peak": self.peak, "low": self.low, "high": self.high,
                "at": format_time(self.at), "based_on_days": self.based_on_days}

    def describe(self, capacity: int, now: datetime) -> str:
        """'about 512 of 500 around 14:00 UTC today, from the last 4 Tuesdays (range 498-530)'."""
        when = clock_time(self.at, now) + (" today" if utc(now).date() == self.at.date() else "")
        return (f"about {self.peak} of {capacity} around {when}, from the last "
                f"{self.based_on_days} {self.weekday}s (range {self.low}-{self.high})")


@dataclass(frozen=True)
class NoForecast:
    """Why there is no forecast now (one clause for the CLI line)."""

    reason: str


def samples_from_reports(reports: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """The samples of stored check reports that measured (failed checks hold no figures)."""
    found = []
    for report in reports:
        try:
            total = report["concurrent"]["peak"]["total"]
            found.append(Sample(_parse(str(report["checked_at"])), int(total)))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def _parse(text: str) -> datetime:
    return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start and end of a calendar day in `zone` (23 or 25 hours on DST days)."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return utc(start), utc(end)


def _slot(moment: datetime, zone: ZoneInfo) -> int:
    local = moment.astimezone(zone)
    return (local.hour * 60 + local.minute) // SLOT_MINUTES


class _Day:
    """One calendar day in the zone: its UTC bounds and how to find a moment's slot quickly."""

    def __init__(self, day: date, zone: ZoneInfo) -> None:
        self.start, self.end = day_bounds(day, zone)
        self.zone = zone
        # On days without a clock change the slot is the time since local midnight.
        self.steady = self.end - self.start == timedelta(days=1)

    def slot(self, moment: datetime) -> int:
        if self.steady:
            return int((moment - self.start).total_seconds()) // (SLOT_MINUTES * 60)
        return _slot(moment, self.zone)

    def curve(self, ordered: Sequence[Sample], until: datetime) -> dict[int, int]:
        """The highest sample of each 15-minute slot of the day, up to `until` (`ordered` is in
        time order)."""
        first = bisect.bisect_left(ordered, self.start, key=_time)
        last = bisect.bisect_right(ordered, min(until, self.end - _TICK), key=_time)
        curve: dict[int, int] = {}
        for sample in ordered[first:last]:
            slot = self.slot(sample.at)
            if sample.concurrent > curve.get(slot, -1):
                curve[slot] = sample.concurrent
        return curve


_time = attrgetter("at")
_TICK = timedelta(microseconds=1)


def _covered(curve: Mapping[int, int]) -> bool:
    hours = {slot * SLOT_MINUTES // 60 for slot in curve}
    return len(hours) >= MIN_COVERAGE * 24


def _scale(today: Mapping[int, int], shape: Mapping[int, float], current: int,
           ) -> tuple[float, float]:
    """Today's level against the shape's over today's recent slots, shrunk towards 1; and how
    much of it is today's evidence (0: none, the shape as it is; towards 1: today's level)."""
    recent = [slot for slot in today if current - RECENT_SLOTS <= slot <= current
              and slot in shape]
    seen = sum(today[slot] for slot in recent)
    usual = sum(shape[slot] for slot in recent)
    prior = PRIOR_SLOTS * max(shape.values(), default=0.0) / 2
    if usual + prior <= 0:
        return 1.0, 0.0
    low, high = SCALE_LIMITS
    return min(high, max(low, (seen + prior) / (usual + prior))), usual / (usual + prior)


@dataclass(frozen=True)
class WeekdayHistory:
    """The curves of the same weekday in the last weeks, for forecasting one day.

    Built once per day (past days do not change); each check then needs only today's samples.
    """

    day: date
    zone: ZoneInfo
    curves: tuple[dict[int, int], ...]
    weeks: int = WEEKS

    @classmethod
    def of(cls, samples: Sequence[Sample], day: date, zone: ZoneInfo, *, weeks: int = WEEKS,
           ) -> WeekdayHistory:
        """The usable curves (a sample in most hours) of `day`'s weekday in the `weeks` before."""
        ordered = sorted(samples, key=_time)
        curves = []
        for week in range(1, weeks + 1):
            past = _Day(day - timedelta(days=7 * week), zone)
            curve = past.curve(ordered, past.end)
            if _covered(curve):
                curves.append(curve)
        return cls(day, zone, tuple(curves), weeks)

    @property
    def weekday(self) -> str:
        """'Tuesday'."""
        return WEEKDAYS[self.day.weekday()]

    def forecast(self, today: Sequence[Sample], now: datetime, *, min_days: int = MIN_DAYS,
                 ) -> Forecast | NoForecast:
        """Forecast the rest of the day's peak at `now` from today's samples so far."""
        past = self.curves
        if len(past) < min_days:
            return NoForecast(f"{len(past)} of the last {self.weeks} {self.weekday}s recorded, "
                              f"{min_days} needed")
        now = utc(now)
        day = _Day(self.day, self.zone)
        if not day.start <= now < day.end:
            raise ValueError(f"{format_time(now)} is not on {self.day} in {self.zone.key}")
        current = day.slot(now)
        today_curve = day.curve(sorted(today, key=_time), now)
        slots = sorted({slot for curve in past for slot in curve})
        shape = {slot: float(statistics.median([c[slot] for c in past if slot in c]))
                 for slot in slots}
        remaining = [slot for slot in slots if slot >= current]
        if not remaining:
            return NoForecast(f"no recorded {self.weekday} reaches past this time of day")

        def peak_of(curve: Mapping[int, float]) -> tuple[float, int, float]:
            scale, evidence = _scale(today_curve, curve, current)
            # The first slot at the highest level: when the peak is reached.
            value, slot = max((scale * curve[slot], -slot) for slot in remaining
                               if slot in curve)
            slot = -slot
            return value, slot, evidence

        # Each week's own scaled peak, then their median: a per-slot median shape alone would
        # flatten a peak that comes a little earlier or later from week to week.
        _, slot, evidence = peak_of(shape)
        alone = [peak_of(curve)[0] for curve in past if any(s in curve for s in remaining)]
        peak = round(statistics.median(alone))
        return Forecast(peak=peak, low=min(peak, round(min(alone))),
                        high=max(peak, round(max(alone))), at=_slot_start(self.day, slot,
                                                                          self.zone),
                        based_on_days=len(past), weekday=self.weekday, day=self.day,
                        evidence=evidence)


def _slot_start(day: date, slot: int, zone: ZoneInfo) -> datetime:
    minutes = slot * SLOT_MINUTES
    local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
    return utc(local)


def breach_expected(forecast: Forecast | NoForecast | None, capacity: int, *,
                    margin_percent: float = 0.0) -> bool:
    """The forecast says today's remaining peak goes over the purchased count by more than
    `margin_percent` of it (FORECAST_ALERT_MARGIN_PERCENT), and it rests on enough of today's
    own level (MIN_EVIDENCE): the usual shape alone does not alert."""
    return (isinstance(forecast, Forecast)
            and forecast.peak > capacity * (1 + margin_percent / 100)
            and forecast.evidence >= MIN_EVIDENCE)
