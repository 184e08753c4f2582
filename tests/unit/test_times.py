"""Check times and minute keys: one format each, always UTC, naive times refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from license_monitor.times import (
    clock_time,
    compact_time,
    format_precise,
    format_time,
    minute_key,
    parse_compact_time,
    parse_minute_key,
    parse_time,
    utc,
)

CET = timezone(timedelta(hours=1))


@pytest.mark.parametrize(("moment", "text"), [
    (datetime(2026, 11, 26, 12, 0, tzinfo=UTC), "2026-11-26T12:00:00Z"),
    (datetime(2026, 11, 26, 13, 0, 5, 999_000, tzinfo=CET), "2026-11-26T12:00:05Z"),
])
def test_check_times_are_whole_seconds_in_utc(moment: datetime, text: str) -> None:
    assert format_time(moment) == text
    assert parse_time(text) == moment.replace(microsecond=0)


def test_precise_times_keep_fractions_only_when_present() -> None:
    assert format_precise(datetime(2026, 11, 26, 12, 0, tzinfo=UTC)) == "2026-11-26T12:00:00Z"
    moment = datetime(2026, 11, 26, 12, 0, 0, 250_000, tzinfo=UTC)
    assert format_precise(moment) == "2026-11-26T12:00:00.250000Z"
    assert parse_time(format_precise(moment)) == moment


def test_minute_keys_and_alert_ids() -> None:
    minute = datetime(2026, 11, 26, 12, 7, tzinfo=UTC)
    assert minute_key(minute) == "2026-11-26T12:07Z"
    assert parse_minute_key("2026-11-26T12:07Z") == minute
    assert compact_time(minute) == "20261126T120700Z"
    assert parse_compact_time("20261126T120700Z") == minute


def test_alert_times_read_as_a_clock_with_the_day_when_not_today() -> None:
    moment = datetime(2026, 11, 26, 10, 40, tzinfo=CET)
    assert clock_time(moment) == "09:40 UTC"
    assert clock_time(moment, datetime(2026, 11, 26, 23, 59, tzinfo=UTC)) == "09:40 UTC"
    assert clock_time(moment, datetime(2026, 11, 27, 0, 1, tzinfo=UTC)) == "26 Nov 09:40 UTC"


@pytest.mark.parametrize("call", [format_time, format_precise, minute_key, compact_time, utc])
def test_naive_times_are_refused(call: object) -> None:
    with pytest.raises(ValueError, match="naive"):
        call(datetime(2026, 11, 26, 12, 0))  # type: ignore[operator]


def test_a_timestamp_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_time("2026-11-26T12:00:00")


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)))
def test_precise_round_trip(moment: datetime) -> None:
    assert parse_time(format_precise(moment)) == moment
