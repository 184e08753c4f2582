"""How well the forecast of today's peak warns: a backtest on simulated months.

    .venv/bin/python -m benchmarks.forecast_backtest [--seeds 5] [--months 6] [--every 5]

Each simulated org has a weekly curve (Monday busier, Friday quieter, small weekends; a morning
ramp, a lunch dip and an afternoon peak), a level that grows by about 1.5 % a month, a random
level per day (sd 5 %) plus an afternoon-only one (sd 3 %, which the morning cannot tell), the
afternoon peak drifting by up to half an hour, noise from minute to minute, and one public
holiday a month on a weekday (a quarter of the usual level). The concurrency of every minute is
the ground truth; the monitor's samples are what a check every `--every` minutes stores (the
highest concurrency of its 15-minute window). Capacity 500 against a usual peak of about 470 at
the start: about one weekday in three ends over it over three months (more as the level grows).

Every check runs the product's forecast (`license_monitor.forecast.forecast_today`) and the
product's rule for `forecast_breach` (the forecast peak over capacity while the level is ok,
once a day), and the same with the naive forecast "the rest of the day as last week's same
weekday". It prints, per method: the mean absolute error of the forecast made at 08:00 local of
the rest of the day's peak; of the days whose concurrency went over capacity, the share warned
at all and at least 60 minutes before, with the median lead time; false forecast alerts (sent
on a day that stayed within capacity) per month.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from license_monitor import alerting
from license_monitor.forecast import (
    SLOT_MINUTES,
    Forecast,
    NoForecast,
    Sample,
    WeekdayHistory,
    breach_expected,
    day_bounds,
)

ZONE = ZoneInfo("America/Chicago")
FIRST_DAY = date(2026, 1, 5)  # a Monday; four weeks of history before the first scored day
WARMUP_DAYS = 28
CAPACITY = 500
LEAD_GOAL = timedelta(minutes=60)
# (hour, share of the day's peak) knots of a weekday; linear in between.
WEEKDAY_KNOTS = ((0, 0.04), (6, 0.05), (7, 0.3), (8.5, 0.8), (11.5, 0.88), (12.25, 0.74),
                 (13.25, 0.8), (14.5, 1.0), (15.5, 0.97), (17, 0.6), (19, 0.3), (21, 0.1),
                 (24, 0.04))
WEEKEND_KNOTS = ((0, 0.04), (8, 0.05), (10, 0.8), (15, 1.0), (18, 0.4), (20, 0.06), (24, 0.04))
DAY_LEVEL = (1.04, 1.0, 1.0, 0.99, 0.93, 0.35, 0.15)  # Monday .. Sunday


def _interpolate(knots: tuple[tuple[float, float], ...], hour: float) -> float:
    for (h0, v0), (h1, v1) in itertools.pairwise(knots):
        if h0 <= hour <= h1:
            return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
    return knots[-1][1]


@dataclass
class Day:
    """One simulated day: the concurrency of each minute from local midnight (UTC start)."""

    day: date
    start: datetime
    minutes: list[int]
    holiday: bool
    level: float  # the day's usual peak: its level before the afternoon's own variation

    def at(self, moment: datetime) -> int:
        return self.minutes[int((moment - self.start).total_seconds() // 60)]


def simulate(seed: int, days: int, base_peak: float, afternoon_sd: float = 0.03) -> list[Day]:
    """`days` days from FIRST_DAY of minute concurrency (see the module docstring)."""
    rng = random.Random(seed)
    holidays: set[date] = set()
    for month_start in range(0, days, 30):
        weekday_days = [FIRST_DAY + timedelta(days=d) for d in range(month_start + 7,
                                                                       min(days, month_start + 30))]
        weekday_days = [d for d in weekday_days if d.weekday() < 5]
        if weekday_days and month_start >= WARMUP_DAYS - 21:
            holidays.add(rng.choice(weekday_days))
    simulated = []
    noise = 0.0
    for offset in range(days):
        day = FIRST_DAY + timedelta(days=offset)
        start, end = day_bounds(day, ZONE)
        weekend = day.weekday() >= 5
        knots = WEEKEND_KNOTS if weekend else WEEKDAY_KNOTS
        level = base_peak * DAY_LEVEL[day.weekday()] * (1.015 ** (offset / 30))
        level *= math.exp(rng.gauss(0, 0.05))
        afternoon = math.exp(rng.gauss(0, afternoon_sd))
        shift = rng.gauss(0, 0.25)  # hours the afternoon peak drifts
        holiday = day in holidays
        if holiday:
            level *= 0.25
        values = []
        for minute in range(int((end - start).total_seconds() // 60)):
            local = (start + timedelta(minutes=minute)).astimezone(ZONE)
            hour = local.hour + local.minute / 60
            if hour >= 13:
                share = _interpolate(knots, min(24, max(13, hour - shift))) * afternoon
            else:
                share = _interpolate(knots, hour)
            noise = 0.9 * noise + rng.gauss(0, 0.006)
            values.append(max(0, round(level * share * (1 + noise) + rng.gauss(0, 1.5))))
        simulated.append(Day(day, start, values, holiday, level))
    return simulated


def samples_of(day: Day, every: int) -> list[Sample]:
    """What checks every `every` minutes store: the highest concurrency of each 15-minute window."""
    found = []
    for minute in range(0, len(day.minutes), every):
        window = day.minutes[max(0, minute - 14):minute + 1]
        found.append(Sample(day.start + timedelta(minutes=minute), max(window)))
    return found


def naive_forecast(last_week: list[Sample], now: datetime) -> Forecast | NoForecast:
    """The rest of today as last week's same weekday, from the same time of day."""
    rest = last_week[bisect.bisect_left(last_week, now - timedelta(days=7), key=_time):]
    if not rest:
        return NoForecast("no last week")
    top = max(rest, key=lambda s: s.concurrent)
    at = top.at + timedelta(days=7)
    day = at.astimezone(ZONE).date()
    # The naive forecast alerts as soon as it says "over" (it has no notion of evidence).
    return Forecast(top.concurrent, top.concurrent, top.concurrent, at, 1, "", day, evidence=1.0)


_time = attrgetter("at")


@dataclass
class Score:
    """What one method achieved over the scored days."""

    errors: list[float] = field(default_factory=list)
    breaches: int = 0
    warned: int = 0
    warned_ahead: int = 0
    leads: list[float] = field(default_factory=list)
    false_alerts: int = 0
    days: int = 0


def backtest(seed: int, months: int, every: int, score: dict[str, Score], *,
             afternoon_sd: float = 0.03, margin_percent: float = 0.0) -> None:
    """Score the methods on one simulated org ("forecast": the product's, "naive", "bound")."""
    total_days = WARMUP_DAYS + round(months * 30.44)
    days = simulate(seed, total_days, base_peak=470, afternoon_sd=afternoon_sd)
    stored = [samples_of(day, every) for day in days]
    policy = alerting.Policy(capacity=CAPACITY)
    for index in range(WARMUP_DAYS, total_days):
        day = days[index]
        over = [m for m, value in enumerate(day.minutes) if value > CAPACITY]
        breach_at = None if not over else day.start + timedelta(minutes=over[0])
        history = WeekdayHistory.of([s for back in range(1, 5) for s in stored[index - 7 * back]],
                                    day.day, ZONE)
        eight = datetime.combine(day.day, datetime.min.time().replace(hour=8), tzinfo=ZONE)
        eight = eight.astimezone(UTC)
        actual_rest = max(day.at(eight + timedelta(minutes=m)) for m in range(
            int((day.start + timedelta(minutes=len(day.minutes)) - eight).total_seconds() // 60)))
        for name, result in score.items():
            result.days += 1
            if breach_at is not None:
                result.breaches += 1
            if name == "bound":
                # Knows at 08:00 the day's own level exactly (what no forecast can know):
                # only the afternoon's own variation and the noise are left unknown.
                result.errors.append(abs(day.level - actual_rest))
                warned = day.level > CAPACITY * (1 + margin_percent / 100)
                _count(result, eight if warned else None, breach_at)
                continue
            level: alerting.Level = "ok"
            alerted: datetime | None = None
            for seen, sample in enumerate(stored[index], start=1):
                now = sample.at
                if breach_at is not None and now > breach_at + LEAD_GOAL:
                    break  # too late to matter for the score
                if name == "forecast":
                    forecast = history.forecast(stored[index][:seen], now)
                else:
                    forecast = naive_forecast(stored[index - 7], now)
                if now == eight + timedelta(minutes=(-eight.minute) % every) and isinstance(
                        forecast, Forecast):
                    result.errors.append(abs(forecast.peak - actual_rest))
                level = alerting.level_for(sample.concurrent, level, policy)
                if alerted is None and level == "ok" and breach_expected(
                        forecast, CAPACITY, margin_percent=margin_percent):
                    alerted = now
                if alerted is not None and now >= eight:
                    break  # the 08:00 figure is taken and the day's alert is out
            _count(result, alerted, breach_at)


def _count(result: Score, alerted: datetime | None, breach_at: datetime | None) -> None:
    """Score one day's alert (or none) against its first minute over capacity (or none)."""
    if alerted is not None and breach_at is None:
        result.false_alerts += 1
    if alerted is not None and breach_at is not None and alerted <= breach_at:
        result.warned += 1
        lead = breach_at - alerted
        result.leads.append(lead.total_seconds() / 60)
        if lead >= LEAD_GOAL:
            result.warned_ahead += 1


# (label, method, alert margin over capacity in percent, afternoon-only level sd)
ROWS = (
    ("product: same-weekday shape scaled to today", "forecast", 0.0, 0.03),
    ("naive: last week's same weekday", "naive", 0.0, 0.03),
    ("product, FORECAST_ALERT_MARGIN_PERCENT=1", "forecast", 1.0, 0.03),
    ("product, FORECAST_ALERT_MARGIN_PERCENT=2", "forecast", 2.0, 0.03),
    ("product, afternoon level sd 1.5 % instead of 3 %", "forecast", 0.0, 0.015),
    ("bound: knows each day's level at 08:00, alerts if over capacity", "bound", 0.0, 0.03),
    ("bound, alerts if over 99 % of capacity", "bound", -1.0, 0.03),
    ("bound, alerts if over 98 % of capacity", "bound", -2.0, 0.03),
    ("bound, alerts if over 97 % of capacity", "bound", -3.0, 0.03),
)


def main() -> None:
    """Run the backtest and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--every", type=int, default=5, help="minutes between checks")
    parser.add_argument("--rows", default=",".join(str(i) for i in range(len(ROWS))),
                        help="which rows of the table to run (0 = the product, 1 = naive)")
    args = parser.parse_args()
    started = time.perf_counter()
    results = []
    for index in [int(item) for item in args.rows.split(",")]:
        label, method, margin, afternoon_sd = ROWS[index]
        score = {method: Score()}
        for seed in range(1, args.seeds + 1):
            backtest(seed, args.months, args.every, score, afternoon_sd=afternoon_sd,
                     margin_percent=margin)
        results.append((label, score[method]))
    elapsed = time.perf_counter() - started
    print(f"Forecast backtest: {args.seeds} simulated orgs x {args.months} months, a check every "
          f"{args.every} min, capacity {CAPACITY}, zone {ZONE.key}, {SLOT_MINUTES}-minute slots "
          f"({elapsed:.0f} s)")
    print()
    print("| method | MAE at 08:00 | days over capacity | warned | warned >= 60 min ahead "
          "| median lead | false alerts / month |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, result in results:
        months = result.days / 30.44
        mae = statistics.fmean(result.errors) if result.errors else float("nan")
        lead = statistics.median(result.leads) if result.leads else float("nan")
        share = result.warned_ahead / result.breaches if result.breaches else float("nan")
        print(f"| {label} | {mae:.1f} | {result.breaches} | {result.warned} "
              f"| {result.warned_ahead} ({share:.0%}) | {lead:.0f} min "
              f"| {result.false_alerts / months:.2f} |", flush=True)
    print()
    print("Goal: at least 80 % of days over capacity warned >= 60 min ahead, at most 1 false "
          "alert per month.")


if __name__ == "__main__":
    main()
