"""The billing period on one page: `python -m license_monitor report --out report.html`.

One self-contained HTML file (charts as inline SVG drawn by pygal, no script or style fetched
from anywhere) from the stored billing ledger (every minute's step function and the period's
histogram) and the usage samples (one per check, with its forecast): the daily peaks and the
period's curve against capacity and the warning line, the billable peak and its upper bound,
time over capacity, the top days, and each day's forecast against what happened. The billing
figures are `BillingSummary.figures`, the same function that writes the check JSON's `billing`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pygal
from pygal.style import Style

from license_monitor.billing import MinuteRecord, billing_period_start
from license_monitor.forecast import day_bounds
from license_monitor.settings import Settings
from license_monitor.state import StateStore
from license_monitor.state.billing import BillingSummary
from license_monitor.times import format_time, parse_time, utc

TOP_DAYS = 5
FORECAST_HOUR = 8  # the forecast shown for a day is the one of its first check from 08:00 local
CHART_STYLE = Style(
    background="white", plot_background="white", foreground="#333", foreground_strong="#111",
    foreground_subtle="#999", opacity=".9", opacity_hover="1",
    colors=("#1f6fb2", "#c0392b", "#e67e22", "#7f8c8d", "#27ae60"),
    font_family="Segoe UI, Helvetica, Arial, sans-serif",
)


@dataclass(frozen=True)
class DayFigures:
    """One UTC day of the period, from the ledger's minutes."""

    day: date
    peak: int  # the highest concurrency reached, however briefly
    seconds_over: int  # seconds with more users logged in than the capacity
    minutes: int  # minutes recorded


@dataclass(frozen=True)
class ForecastOutcome:
    """A day's forecast (as its first check from 08:00 local saw it) and what happened."""

    day: date
    made_at: datetime
    peak: int
    low: int
    high: int
    at: datetime
    based_on_days: int
    actual: int | None  # the highest concurrency from `made_at` to the day's end (ledger)
    warned: bool  # forecast_breach was sent that day


@dataclass(frozen=True)
class PeriodReport:
    """Everything the page shows, computed from stored rows (pure)."""

    period_start: date
    period_end: date  # the next period's first day
    capacity: int
    warning_line: float
    billing: dict[str, Any]  # BillingSummary.figures(capacity)
    minutes_recorded: int
    days: tuple[DayFigures, ...]
    hourly: tuple[tuple[datetime, int], ...]  # each recorded hour's highest level
    busiest: tuple[tuple[datetime, int], ...]  # the busiest day, minute by minute
    forecasts: tuple[ForecastOutcome, ...]
    zone: str
    org_name: str | None = None
    generated_at: datetime | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def top_days(self) -> tuple[DayFigures, ...]:
        """The days with the highest peaks (then the most time over capacity), at most 5."""
        ranked = sorted(self.days, key=lambda d: (-d.peak, -d.seconds_over, d.day))
        return tuple(ranked[:TOP_DAYS])

    @property
    def busiest_day(self) -> date | None:
        """The day the minute curve shows."""
        return self.top_days[0].day if self.days else None


def next_period_start(period_start: date, anchor_day: int) -> date:
    """The first day of the billing period after the one starting on `period_start`."""
    later = datetime.combine(period_start + timedelta(days=32), time(0), tzinfo=UTC)
    return billing_period_start(later, anchor_day)


def period_report(
    *, period_start: date, period_end: date, capacity: int, warning_percent: float,
    summary: BillingSummary, records: Mapping[datetime, MinuteRecord],
    reports: Sequence[Mapping[str, Any]], zone: ZoneInfo, org_name: str | None = None,
    generated_at: datetime | None = None,
) -> PeriodReport:
    """The page's figures from the period's ledger rows and check reports."""
    by_day: dict[date, list[tuple[datetime, MinuteRecord]]] = {}
    for minute, record in sorted(records.items()):
        by_day.setdefault(utc(minute).date(), []).append((utc(minute), record))
    days = tuple(
        DayFigures(day, max(r.profile.peak for _, r in rows),
                   sum(r.profile.ms_at_or_above(capacity + 1) for _, r in rows) // 1000,
                   len(rows))
        for day, rows in sorted(by_day.items()))
    hours: dict[datetime, int] = {}
    for minute, record in records.items():
        hour = utc(minute).replace(minute=0, second=0, microsecond=0)
        hours[hour] = max(hours.get(hour, 0), record.profile.peak)
    ranked = sorted(days, key=lambda d: (-d.peak, -d.seconds_over, d.day))
    busiest = () if not ranked else tuple(
        (minute, record.profile.peak) for minute, record in by_day[ranked[0].day])
    return PeriodReport(
        period_start=period_start, period_end=period_end, capacity=capacity,
        warning_line=capacity * warning_percent / 100, billing=summary.figures(capacity),
        minutes_recorded=summary.minutes_recorded, days=days,
        hourly=tuple(sorted(hours.items())), busiest=busiest,
        forecasts=_forecast_outcomes(reports, records, zone), zone=zone.key,
        org_name=org_name, generated_at=generated_at,
    )


def _forecast_outcomes(
    reports: Sequence[Mapping[str, Any]], records: Mapping[datetime, MinuteRecord],
    zone: ZoneInfo,
) -> tuple[ForecastOutcome, ...]:
    firsts: dict[date, Mapping[str, Any]] = {}
    warned: set[date] = set()
    for report in reports:
        try:
            moment = parse_time(str(report["checked_at"]))
        except (KeyError, ValueError):
            continue
        local = moment.astimezone(zone)
        if "forecast_breach" in (report.get("events") or ()):
            warned.add(local.date())
        if (isinstance(report.get("forecast"), Mapping) and local.hour >= FORECAST_HOUR
                and local.date() not in firsts):
            firsts[local.date()] = report
    outcomes = []
    for day, report in sorted(firsts.items()):
        made_at = parse_time(str(report["checked_at"]))
        _, end = day_bounds(day, zone)
        # The minute of the check onwards: the forecast is of the rest of the day.
        start = made_at.replace(second=0, microsecond=0)
        levels = [record.profile.peak for minute, record in records.items()
                  if start <= utc(minute) < end]
        forecast = report["forecast"]
        outcomes.append(ForecastOutcome(
            day=day, made_at=made_at, peak=int(forecast["peak"]), low=int(forecast["low"]),
            high=int(forecast["high"]), at=parse_time(str(forecast["at"])),
            based_on_days=int(forecast["based_on_days"]),
            actual=max(levels) if levels else None, warned=day in warned))
    return tuple(outcomes)


# ---- the page ---------------------------------------------------------------------------------

def _chart(kind: type[pygal.graph.graph.Graph], title: str, **config: Any) -> Any:
    settings: dict[str, Any] = {
        "title": title, "style": CHART_STYLE, "js": [], "disable_xml_declaration": True,
        "width": 1000, "height": 360, "show_dots": False, "legend_at_bottom": True,
        "truncate_legend": -1, "x_label_rotation": 0, "print_values": False,
        "explicit_size": False, "include_x_axis": True}
    return kind(**{**settings, **config})


def _svg(chart: Any) -> str:
    return str(chart.render(is_unicode=True))


def _daily_chart(report: PeriodReport) -> str:
    points = [(datetime.combine(d.day, time(12), tzinfo=UTC), d.peak) for d in report.days]
    return _time_chart("Daily peak against capacity (UTC days; each day's dot at noon)", points,
                       report, "daily peak", "%d %b", step=timedelta(hours=12),
                       dots=True)


def _time_chart(title: str, points: Sequence[tuple[datetime, int]], report: PeriodReport,
                label: str, fmt: str, *, step: timedelta, dots: bool = False) -> str:
    """A curve over time with capacity and the warning line across the whole span."""
    chart = _chart(pygal.DateTimeLine, title, x_value_formatter=lambda x: x.strftime(fmt),
                   x_labels_major_count=8, show_minor_x_labels=False)
    span = [points[0][0] - (step if dots else timedelta(0)), points[-1][0] + step]
    chart.add(label, list(points), show_dots=dots, dots_size=4,
              stroke_style={"width": 3 if dots else 1})
    chart.add("capacity", [(x, report.capacity) for x in span])
    chart.add("warning line", [(x, report.warning_line) for x in span],
              stroke_style={"dasharray": "6,4"})
    return _svg(chart)


def _forecast_chart(report: PeriodReport) -> str:
    outcomes = report.forecasts
    chart = _chart(pygal.Line, f"Forecast at {FORECAST_HOUR:02d}:00 ({report.zone}) against "
                   "the day's actual peak", x_labels=[o.day.strftime("%d %b") for o in outcomes],
                   show_dots=True, dots_size=3)
    chart.add("forecast", [o.peak for o in outcomes])
    chart.add("actual", [o.actual for o in outcomes])
    chart.add("forecast low", [o.low for o in outcomes], stroke_style={"dasharray": "4,4"})
    chart.add("forecast high", [o.high for o in outcomes], stroke_style={"dasharray": "4,4"})
    chart.add("capacity", [report.capacity] * len(outcomes))
    return _svg(chart)


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60} s"


_CSS = """
body{font-family:"Segoe UI",Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1060px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.sub{color:#666;margin-top:0}
.figures{display:grid;grid-template-columns:repeat(4,1fr);gap:.8rem;margin:1.2rem 0}
.figures div{border:1px solid #ddd;border-radius:6px;padding:.7rem}
.figures dt{font-size:.8rem;color:#666}.figures dd{margin:0;font-size:1.6rem;font-weight:600}
.over{color:#c0392b}
figure{margin:1rem 0}figure svg{width:100%;height:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:right;padding:.3rem .6rem;
border-bottom:1px solid #eee}th:first-child,td:first-child{text-align:left}
.note{color:#666;font-size:.85rem}
"""

# Marks each chart once the browser has laid it out with a drawn series (a test reads it).
_DRAWN = """
for (const figure of document.querySelectorAll('figure[data-chart]')) {
  const svg = figure.querySelector('svg');
  const series = svg ? [...svg.querySelectorAll('.series')] : [];
  const drawn = series.filter(s => { const b = s.getBBox(); return b.width > 0 || b.height > 0; });
  figure.dataset.drawn = String(drawn.length);
}
"""


def render(report: PeriodReport) -> str:
    """The page: one HTML document, self-contained (inline SVG, inline CSS, no fetches)."""
    billing = report.billing
    e = html.escape
    peak = billing["billable_peak"]
    over = peak > report.capacity

    def figure(key: str, label: str, value: Any, shown: str | None = None,
               css: str = "") -> str:
        return (f'<div><dt>{e(label)}</dt><dd class="{css}" data-figure="{e(key)}" '
                f'data-value="{e(str(value))}">{e(shown if shown is not None else str(value))}'
                "</dd></div>")

    seconds = int(billing["seconds_over_capacity"])
    figures = "".join((
        figure("billable_peak", "Billable peak (30-minute rule, exact)", peak,
               css="over" if over else ""),
        figure("billable_peak_upper", "Upper bound (by whole minutes)",
               billing["billable_peak_upper"]),
        figure("capacity", "Licenses purchased", report.capacity),
        figure("seconds_over_capacity", "Time over capacity", seconds, _duration(seconds),
               css="over" if seconds else ""),
        figure("minutes_over_capacity", "Whole minutes over capacity",
               billing["minutes_over_capacity"]),
        figure("highest_peak", "Highest peak (however brief)",
               max((d.peak for d in report.days), default=0)),
        figure("days_recorded", "Days with minutes recorded", len(report.days)),
        figure("minutes_recorded", "Minutes recorded", report.minutes_recorded),
    ))
    rows = "".join(
        f'<tr data-day="{d.day.isoformat()}"><td>{d.day:%a %d %b %Y}</td>'
        f'<td data-figure="peak">{d.peak}</td>'
        f'<td data-figure="seconds_over">{_duration(d.seconds_over)}</td>'
        f"<td>{d.minutes}</td></tr>" for d in report.top_days)
    forecast_rows = "".join(
        f'<tr data-day="{o.day.isoformat()}"><td>{o.day:%a %d %b}</td>'
        f"<td>{o.made_at.astimezone(ZoneInfo(report.zone)):%H:%M}</td>"
        f'<td data-figure="forecast">{o.peak} ({o.low}-{o.high})</td>'
        f"<td>{o.at:%H:%M} UTC</td><td>{o.based_on_days}</td>"
        f'<td data-figure="actual">{"-" if o.actual is None else o.actual}</td>'
        f"<td>{'yes' if o.warned else ''}</td>"
        f"<td>{_verdict(o, report.capacity)}</td></tr>" for o in report.forecasts)
    busiest = report.busiest_day
    charts = [("daily", "Daily peaks", _daily_chart(report) if report.days else "")]
    charts.append(("period", "The period hour by hour", _time_chart(
        "Highest concurrency of each hour (UTC)", report.hourly, report, "hourly peak",
        "%d %b", step=timedelta(hours=1)) if report.hourly else ""))
    charts.append(("busiest", f"The busiest day, minute by minute"
                   f"{'' if busiest is None else f' ({busiest:%a %d %b})'}", _time_chart(
        "Highest concurrency of each minute (UTC)", report.busiest, report, "minute peak",
        "%H:%M", step=timedelta(minutes=1)) if report.busiest else ""))
    charts.append(("forecast", "Forecast against what happened",
                   _forecast_chart(report) if report.forecasts else ""))
    sections = "".join(
        f'<h2>{e(title)}</h2><figure data-chart="{key}">{svg}</figure>' if svg else
        f'<h2>{e(title)}</h2><p class="note" data-empty-chart="{key}">Nothing recorded yet.</p>'
        for key, title, svg in charts)
    title = f"Concurrent licenses, billing period {report.period_start:%d %b %Y}"
    generated = ("" if report.generated_at is None
                 else f", generated {format_time(report.generated_at)}")
    last_day = report.period_end - timedelta(days=1)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{e((report.org_name + ": ") if report.org_name else "")}{e(title)}</h1>
<p class="sub">{report.period_start:%d %b %Y} to {last_day:%d %b %Y} (UTC days, as Genesys
bills){e(generated)}. Capacity {report.capacity}, warning line {report.warning_line:g}.</p>
<dl class="figures">{figures}</dl>
<p class="note">Genesys bills the period's highest level held for 30 minutes in total (not
necessarily in one go). The billable peak is that figure exact to the second; the upper bound
applies the same rule to each minute's highest level, what coarse sampling could bill.</p>
<h2>Top days</h2>
<table><thead><tr><th>day</th><th>peak</th><th>time over capacity</th><th>minutes recorded</th>
</tr></thead><tbody>{rows}</tbody></table>
{sections}
<h2>Each day's forecast</h2>
<table><thead><tr><th>day</th><th>made at</th><th>forecast (range)</th><th>expected at</th>
<th>from days</th><th>actual</th><th>warned</th><th>outcome</th></tr></thead>
<tbody>{forecast_rows}</tbody></table>
<script>{_DRAWN}</script>
</body></html>
"""


def _verdict(outcome: ForecastOutcome, capacity: int) -> str:
    if outcome.actual is None:
        return "no minutes recorded"
    went_over = outcome.actual > capacity
    if outcome.warned:
        return "warned, went over" if went_over else "warned, stayed within (a wrong forecast)"
    return "went over, not warned" if went_over else ""


def load_period_report(
    state: StateStore, settings: Settings, now: datetime, period: date | None = None,
) -> PeriodReport:
    """Read the period's ledger and samples (the period containing `period`, else the current
    one) and compute the page's figures."""
    anchor = settings.billing_anchor_day
    day = period if period is not None else utc(now).date()
    start = billing_period_start(datetime.combine(day, time(0), tzinfo=UTC), anchor)
    end = next_period_start(start, anchor)
    bounds = (datetime.combine(start, time(0), tzinfo=UTC),
              datetime.combine(end, time(0), tzinfo=UTC))
    return period_report(
        period_start=start, period_end=end, capacity=settings.license_capacity,
        warning_percent=settings.warning_percent, summary=state.billing.summary(start),
        records=state.billing.records(start), reports=state.samples.reports(*bounds),
        zone=ZoneInfo(settings.forecast_timezone), org_name=settings.org_name,
        generated_at=now)
