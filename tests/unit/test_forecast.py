"""The forecast of today's remaining peak: same-weekday shape scaled to today's level."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor import alerting
from license_monitor.forecast import (
    Forecast,
    NoForecast,
    Sample,
    WeekdayHistory,
    breach_expected,
    day_bounds,
    samples_from_reports,
)

UTC_ZONE = ZoneInfo("UTC")
CHICAGO = ZoneInfo("America/Chicago")
TUESDAY = date(2026, 11, 24)


def shape(minute: int) -> float:
    """A weekday: 20 at night, ramp 07-09 to 80 %, peak 100 % at 14:00-15:00, down by 20:00."""
    hour = minute / 60
    if hour < 7 or hour >= 20:
        return 0.05
    if hour < 9:
        return 0.05 + 0.75 * (hour - 7) / 2
    if hour < 14:
        return 0.8 + 0.2 * (hour - 9) / 5
    if hour < 15:
        return 1.0
    return 1.0 - 0.95 * (hour - 15) / 5


def forecast_today(samples: list[Sample], now: datetime, zone: ZoneInfo) -> Forecast | NoForecast:
    """Today's forecast from samples of any days, as the check builds it."""
    today = now.astimezone(zone).date()
    return WeekdayHistory.of(samples, today, zone).forecast(
        [s for s in samples if s.at.astimezone(zone).date() == today], now)


def day_samples(day: date, level: float, zone: ZoneInfo = UTC_ZONE, every: int = 5,
                until: datetime | None = None) -> list[Sample]:
    start, end = day_bounds(day, zone)
    found = []
    moment = start
    while moment < end and (until is None or moment <= until):
        local = moment.astimezone(zone)
        found.append(Sample(moment, round(level * shape(local.hour * 60 + local.minute))))
        moment += timedelta(minutes=every)
    return found


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = UTC_ZONE) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def history(levels: list[float], zone: ZoneInfo = UTC_ZONE) -> list[Sample]:
    """The same weekday 1..n weeks before TUESDAY at these peak levels (newest first)."""
    return [s for week, level in enumerate(levels, start=1)
            for s in day_samples(TUESDAY - timedelta(days=7 * week), level, zone)]


def test_an_ordinary_day_forecasts_the_usual_peak_and_its_time() -> None:
    now = at(TUESDAY, 10)
    samples = history([500, 500, 500, 500]) + day_samples(TUESDAY, 500, until=now)
    forecast = forecast_today(samples, now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert (forecast.peak, forecast.low, forecast.high) == (500, 500, 500)
    assert forecast.at == at(TUESDAY, 14)
    assert forecast.based_on_days == 4
    assert forecast.to_dict() == {"peak": 500, "low": 500, "high": 500,
                                  "at": "2026-11-24T14:00:00Z", "based_on_days": 4}


def test_a_busier_morning_scales_the_afternoon_up() -> None:
    now = at(TUESDAY, 11)
    samples = history([400, 400, 400, 400]) + day_samples(TUESDAY, 440, until=now)
    forecast = forecast_today(samples, now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert 430 <= forecast.peak <= 440  # 10 % above the usual 400, shrunk a little towards it


def test_the_range_spans_what_each_week_alone_would_say() -> None:
    now = at(TUESDAY, 10)
    samples = history([420, 400, 380, 500]) + day_samples(TUESDAY, 400, until=now)
    forecast = forecast_today(samples, now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert forecast.low < forecast.peak < forecast.high
    assert 390 <= forecast.peak <= 415


def test_growth_over_the_weeks_is_followed_by_todays_level() -> None:
    now = at(TUESDAY, 12)
    samples = history([480, 460, 440, 420]) + day_samples(TUESDAY, 500, until=now)
    forecast = forecast_today(samples, now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert forecast.peak >= 490


@pytest.mark.parametrize(("weeks_recorded", "reason"), [
    (0, "0 of the last 4 Tuesdays recorded, 2 needed"),
    (1, "1 of the last 4 Tuesdays recorded, 2 needed"),
])
def test_too_little_history_gives_no_forecast_with_the_reason(
        weeks_recorded: int, reason: str) -> None:
    now = at(TUESDAY, 10)
    samples = history([500] * weeks_recorded) + day_samples(TUESDAY, 500, until=now)
    assert forecast_today(samples, now, UTC_ZONE) == NoForecast(reason)


def test_a_day_with_most_hours_missing_does_not_count() -> None:
    now = at(TUESDAY, 10)
    patchy = [s for s in day_samples(TUESDAY - timedelta(days=7), 500)
              if s.at.hour < 12]  # the monitor was down from noon
    samples = patchy + history([500, 500])[len(day_samples(TUESDAY, 1)):]  # weeks 2 only
    assert isinstance(forecast_today(samples, now, UTC_ZONE), NoForecast)


def test_other_weekdays_and_the_future_are_ignored() -> None:
    now = at(TUESDAY, 10)
    monday = day_samples(TUESDAY - timedelta(days=1), 9_000)
    later_today = [s for s in day_samples(TUESDAY, 9_000) if s.at > now]
    samples = history([500, 500]) + monday + later_today + day_samples(TUESDAY, 500, until=now)
    forecast = forecast_today(samples, now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert forecast.peak == 500


def test_the_day_is_the_zones_day_across_a_clock_change() -> None:
    # Sunday 2026-11-01: US clocks go back; the shape is by wall-clock time in Chicago.
    sunday = date(2026, 11, 8)
    samples = [s for week in (1, 2) for s in day_samples(sunday - timedelta(days=7 * week), 300,
                                                         CHICAGO)]
    now = at(sunday, 10, zone=CHICAGO)
    samples += day_samples(sunday, 300, CHICAGO, until=now)
    forecast = forecast_today(samples, now, CHICAGO)
    assert isinstance(forecast, Forecast)
    assert forecast.at == at(sunday, 14, zone=CHICAGO)
    assert forecast.peak == 300
    assert forecast.describe(310, now) == (
        "about 300 of 310 around 20:00 UTC today, from the last 2 Sundays (range 300-300)")


def test_a_history_is_for_its_day_only() -> None:
    built = WeekdayHistory.of(history([500, 500]), TUESDAY, UTC_ZONE)
    with pytest.raises(ValueError, match="not on 2026-11-24"):
        built.forecast([], at(TUESDAY + timedelta(days=1), 10))


def test_samples_from_reports_skip_failed_checks() -> None:
    reports = [
        {"checked_at": "2026-11-24T10:00:00.000Z", "concurrent": {"peak": {"total": 7}}},
        {"checked_at": "2026-11-24T10:05:00.000Z", "level": "unknown", "error": "x"},
    ]
    assert samples_from_reports(reports) == [Sample(at(TUESDAY, 10), 7)]


def test_the_usual_shape_alone_never_alerts_before_today_is_seen() -> None:
    # 01:00: the forecast says over capacity from history alone; too early to warn.
    now = at(TUESDAY, 1)
    samples = history([520, 520, 520]) + day_samples(TUESDAY, 520, until=now)
    forecast = forecast_today(samples, now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert forecast.peak > 500
    assert not breach_expected(forecast, 500)
    later = at(TUESDAY, 10)
    forecast = forecast_today(history([520, 520, 520]) + day_samples(TUESDAY, 520, until=later),
                              later, UTC_ZONE)
    assert breach_expected(forecast, 500)


def test_the_alert_margin_holds_back_a_forecast_only_just_over_capacity() -> None:
    # About 510 of 500 (2 % over): alerts with no margin or 1 %, not with 2 % or 5 %.
    now = at(TUESDAY, 10)
    forecast = forecast_today(history([510, 510, 510]) + day_samples(TUESDAY, 510, until=now),
                              now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert forecast.peak == 510
    assert breach_expected(forecast, 500)
    assert breach_expected(forecast, 500, margin_percent=1)
    assert not breach_expected(forecast, 500, margin_percent=2)
    assert not breach_expected(forecast, 500, margin_percent=5)


@settings(max_examples=60, deadline=None)
@given(levels=st.lists(st.integers(0, 2_000), min_size=2, max_size=4),
       today=st.integers(0, 2_000), hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_the_forecast_is_ordered_and_in_the_rest_of_the_day(
        levels: list[int], today: int, hour: int, minute: int) -> None:
    now = at(TUESDAY, hour, minute)
    samples = history([float(x) for x in levels]) + day_samples(TUESDAY, today, until=now)
    forecast = forecast_today(samples, now, UTC_ZONE)
    assert isinstance(forecast, Forecast)
    assert 0 <= forecast.low <= forecast.peak <= forecast.high
    assert now - timedelta(minutes=15) < forecast.at < at(TUESDAY + timedelta(days=1), 0)
    assert forecast.based_on_days == len(levels)
    # Never beyond what twice the busiest week would reach.
    assert forecast.high <= 2 * max(levels) + 1


# ---- forecast_breach in the alert policy -------------------------------------------------------

POLICY = alerting.Policy(capacity=500)


def usage(concurrent: int) -> alerting.Usage:
    return alerting.Usage(concurrent=concurrent, agents=concurrent, admins=0,
                          window_distinct=concurrent)


def over(peak: int = 512, day: date = TUESDAY) -> Forecast:
    return Forecast(peak=peak, low=peak - 10, high=peak + 10, at=at(day, 14), based_on_days=4,
                    weekday="Tuesday", day=day, evidence=0.9)


def test_forecast_breach_once_a_day_with_its_message() -> None:
    state = alerting.AlertState()
    sent = []
    for minute in range(0, 60, 5):
        decision = alerting.decide(usage(300), state, POLICY, at(TUESDAY, 10, minute),
                                   forecast=over())
        state = decision.state
        sent += decision.events
    assert [event.event for event in sent] == ["forecast_breach"]
    event = sent[0]
    assert event.alert_id == "forecast-20261124"
    assert event.message == ("Forecast: about 512 of 500 around 14:00 UTC today, from the last 4 "
                             "Tuesdays (range 502-522); now 300 of 500 in use (60.0%)")
    assert event.to_payload()["forecast"]["peak"] == 512
    assert alerting.AlertEvent.from_payload(event.to_payload()) == event
    # The next Tuesday is another day.
    next_week = TUESDAY + timedelta(days=7)
    decision = alerting.decide(usage(300), state, POLICY, at(next_week, 10),
                               forecast=over(day=next_week))
    assert [e.event for e in decision.events] == ["forecast_breach"]


@pytest.mark.parametrize(("concurrent", "forecast", "quiet"), [
    (450, over(), False),  # at the warning line: the breach alert speaks, not the forecast
    (300, over(500), False),  # reaching capacity exactly is no overage
    (300, None, False),  # no forecast
    (300, over(), True),  # quiet hours: not held for later either
])
def test_no_forecast_breach(concurrent: int, forecast: Forecast | None, quiet: bool) -> None:
    decision = alerting.decide(usage(concurrent), alerting.AlertState(), POLICY,
                               at(TUESDAY, 10), forecast=forecast, quiet=quiet)
    assert "forecast_breach" not in [e.event for e in decision.events]
    assert "forecast_breach" not in [e.event for e in decision.state.held]
    assert decision.state.forecast_day is None


def test_forecast_breach_changes_no_level_or_episode() -> None:
    decision = alerting.decide(usage(300), alerting.AlertState(), POLICY, at(TUESDAY, 10),
                               forecast=over())
    plain = alerting.decide(usage(300), alerting.AlertState(), POLICY, at(TUESDAY, 10))
    assert decision.level == plain.level == "ok"
    assert decision.state.episode_id is None
    assert alerting.AlertState.from_dict(decision.state.to_dict()) == decision.state


def test_forecast_breach_on_each_channel_names_the_forecast() -> None:
    from license_monitor.notify.message import compose  # noqa: PLC0415
    from license_monitor.notify.pagerduty import event_body  # noqa: PLC0415

    decision = alerting.decide(usage(300), alerting.AlertState(), POLICY, at(TUESDAY, 10),
                               forecast=over())
    payload = decision.events[0].to_payload()
    message = compose(payload, org_name="Contoso")
    assert message.title == "Contoso: Breach forecast for today"
    assert message.subject == "Contoso: Breach forecast for today: about 512 of 500 expected"
    assert message.tone == "warning"
    body = event_body(payload, "routing-key", source="contoso")
    assert body["event_action"] == "trigger"  # never a resolve
    assert body["dedup_key"] == "forecast-20261124"
    assert body["payload"]["severity"] == "warning"
    assert body["payload"]["custom_details"]["forecast"]["peak"] == 512
