"""The span `peak-users` reads: a UTC day or a whole billing period, never past now."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from license_monitor.peak_users import day_span, highest_license, period_span

NOW = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("any_day", "anchor", "start", "end"),
    [
        (date(2026, 11, 17), 1, utc(2026, 11, 1), utc(2026, 12, 1)),
        (date(2026, 11, 1), 1, utc(2026, 11, 1), utc(2026, 12, 1)),
        (date(2026, 11, 20), 21, utc(2026, 10, 21), utc(2026, 11, 21)),
        (date(2026, 2, 10), 31, utc(2026, 1, 31), utc(2026, 2, 28)),  # a short month
        (date(2026, 3, 1), 31, utc(2026, 2, 28), utc(2026, 3, 31)),
        (date(2026, 12, 1), 1, utc(2026, 12, 1), NOW),  # still running: up to now
    ],
)
def test_period_span(any_day: date, anchor: int, start: datetime, end: datetime) -> None:
    span = period_span(any_day, anchor, NOW)
    assert (span.start, span.end, span.period_start) == (start, end, start.date())


def test_day_span_and_days_not_begun() -> None:
    assert day_span(date(2026, 11, 25), NOW).end == utc(2026, 11, 26)
    assert day_span(date(2026, 12, 2), NOW).end == NOW
    with pytest.raises(ValueError, match="2026-12-03 has not begun yet"):
        day_span(date(2026, 12, 3), NOW)
    with pytest.raises(ValueError, match="has not begun yet"):
        period_span(date(2027, 1, 5), 10, NOW)


@pytest.mark.parametrize(
    ("licenses", "expected"),
    [
        (("cloudCX1", "cloudCX4", "communicate"), "cloudCX4"),
        (("communicate",), ""),
        (("cloudCX2",), "cloudCX2"),
        ((), ""),
    ],
)
def test_highest_license(licenses: tuple[str, ...], expected: str) -> None:
    assert highest_license(licenses, re.compile(r"(?i)^cloudcx\d")) == expected
