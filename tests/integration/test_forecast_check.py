"""The forecast in real checks: the replay host, Azurite, the simulator and a webhook receiver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from license_monitor.cli import summary_line
from license_monitor.state import StateStore
from tests.fixtures.monitor import WORLD_START, World, at, check_at, online_from

THURSDAY = WORLD_START.date()  # 26 Nov 2026


def usual_thursday(minute: int, peak: int) -> int:
    """Night 5, a ramp from 07:00 to 80 % at 09:00, the peak at 14:00, back down by 20:00."""
    hour = minute / 60
    if hour < 7 or hour >= 20:
        return 5
    if hour < 9:
        return round(5 + (0.8 * peak - 5) * (hour - 7) / 2)
    if hour < 14:
        return round(0.8 * peak + 0.2 * peak * (hour - 9) / 5)
    if hour < 15:
        return peak
    return max(5, round(peak - (peak - 5) * (hour - 15) / 5))


def store_history(store: StateStore, days: list[datetime], peak: int, until: datetime) -> None:
    """What earlier checks stored: a sample every 15 minutes of each day up to `until`."""
    for start in days:
        for minute in range(0, 24 * 60, 15):
            moment = start + timedelta(minutes=minute)
            if moment >= until:
                break
            store.samples.save({"checked_at": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                "concurrent": {"peak": {"total": usual_thursday(minute, peak)}}},
                               moment)


def past_thursdays(weeks: int) -> list[datetime]:
    midnight = WORLD_START.replace(hour=0)
    return [midnight - timedelta(days=7 * week) for week in range(1, weeks + 1)]


def test_a_forecast_breach_is_sent_once_in_a_day_of_checks(world: Callable[..., World]) -> None:
    w = world()  # capacity 100; 200 pool users
    assert w.services.state is not None
    # Four Thursdays that peaked at 106 in the afternoon, and this morning as usual so far.
    store_history(w.services.state, past_thursdays(4), 106, at(9, 50))
    store_history(w.services.state, [WORLD_START.replace(hour=0)], 106, at(9, 50))
    reports = []
    for moment, online in ((at(10, 0), 86), (at(10, 20), 87), (at(10, 40), 87), (at(11, 0), 88)):
        online_from(w, online, moment - timedelta(minutes=14))
        reports.append(check_at(w, moment))
    assert [r["level"] for r in reports] == ["ok"] * 4  # below the warning line (90)
    first = reports[0]
    assert first["forecast"]["peak"] > 100
    assert first["forecast"]["low"] <= first["forecast"]["peak"] <= first["forecast"]["high"]
    assert first["forecast"]["at"] == "2026-11-26T14:00:00Z"
    assert first["forecast"]["based_on_days"] == 4
    assert first["events"] == ["forecast_breach"]
    assert [r["events"] for r in reports[1:]] == [[], [], []]
    assert all("forecast" in r for r in reports)
    [delivered] = w.receiver.delivered
    body = delivered.body
    assert body["event"] == "forecast_breach"
    assert body["alert_id"] == "forecast-20261126"
    assert body["forecast"] == first["forecast"]
    assert body["message"].startswith(
        f"Forecast: about {first['forecast']['peak']} of 100 around 14:00 UTC today, from the "
        "last 4 Thursdays")
    assert body["level"] == "ok"  # it warns; the usage level is untouched
    assert w.services.state.alerts.load_state().episode_id is None
    line = summary_line(first)
    assert f"forecast {first['forecast']['peak']} (" in line
    assert "at 14:00 UTC" in line


def test_a_day_without_enough_history_has_no_forecast_and_sends_nothing(
        world: Callable[..., World]) -> None:
    w = world()
    assert w.services.state is not None
    store_history(w.services.state, past_thursdays(1), 130, at(9, 50))  # one Thursday only
    reports = []
    for moment in (at(10, 0), at(10, 30), at(11, 0)):
        online_from(w, 88, moment - timedelta(minutes=14))
        reports.append(check_at(w, moment))
    for report in reports:
        assert report["level"] == "ok"
        assert "forecast" not in report
        assert report["no_forecast"] == "1 of the last 4 Thursdays recorded, 2 needed"
        assert report["events"] == []
    assert w.receiver.delivered == []
    assert summary_line(reports[0]).endswith(
        "no forecast: 1 of the last 4 Thursdays recorded, 2 needed")


def test_the_forecast_alert_margin_holds_back_a_forecast_just_over_capacity(
        world: Callable[..., World]) -> None:
    # The same Thursdays and morning as above (a forecast of about 106 of 100), with
    # FORECAST_ALERT_MARGIN_PERCENT=10: the forecast is reported, and nothing is sent.
    w = world(FORECAST_ALERT_MARGIN_PERCENT="10")
    assert w.services.state is not None
    store_history(w.services.state, past_thursdays(4), 106, at(9, 50))
    store_history(w.services.state, [WORLD_START.replace(hour=0)], 106, at(9, 50))
    reports = []
    for moment in (at(10, 0), at(10, 30)):
        online_from(w, 86, moment - timedelta(minutes=14))
        reports.append(check_at(w, moment))
    assert [r["forecast"]["peak"] > 100 for r in reports] == [True, True]
    assert [r["events"] for r in reports] == [[], []]
    assert w.receiver.delivered == []
