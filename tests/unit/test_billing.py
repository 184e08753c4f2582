"""The 30-minute billing rule, billing periods and idempotent per-minute recording."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.billing import (
    apply_histogram_delta,
    billable_peak,
    billing_period_start,
    merge_minutes,
    minutes_at_or_above,
)

M0 = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return M0 + timedelta(minutes=n)


@pytest.mark.parametrize(
    ("now", "anchor", "expected"),
    [
        (datetime(2026, 11, 26, 12, tzinfo=UTC), 1, date(2026, 11, 1)),
        (datetime(2026, 11, 1, 0, tzinfo=UTC), 1, date(2026, 11, 1)),
        (datetime(2026, 11, 20, 23, 59, tzinfo=UTC), 21, date(2026, 10, 21)),
        (datetime(2026, 11, 21, 0, tzinfo=UTC), 21, date(2026, 11, 21)),
        (datetime(2026, 1, 5, tzinfo=UTC), 21, date(2025, 12, 21)),
        (datetime(2026, 4, 30, tzinfo=UTC), 31, date(2026, 4, 30)),  # 30-day month
        (datetime(2026, 4, 29, tzinfo=UTC), 31, date(2026, 3, 31)),
        (datetime(2026, 5, 1, tzinfo=UTC), 31, date(2026, 4, 30)),
        (datetime(2026, 3, 1, tzinfo=UTC), 31, date(2026, 2, 28)),  # February
        (datetime(2028, 3, 1, tzinfo=UTC), 30, date(2028, 2, 29)),  # leap year
        (datetime(2026, 3, 30, tzinfo=UTC), 30, date(2026, 3, 30)),
        (datetime(2026, 11, 1, 1, tzinfo=UTC), 31, date(2026, 10, 31)),
    ],
)
def test_billing_period_start(now: datetime, anchor: int, expected: date) -> None:
    assert billing_period_start(now, anchor) == expected


def test_billing_period_uses_utc_date() -> None:
    local = datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # Oct 31 23:30 UTC
    assert billing_period_start(local, 1) == date(2026, 10, 1)


@pytest.mark.parametrize("anchor", [0, 32, -1])
def test_billing_anchor_out_of_range_is_rejected(anchor: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 31"):
        billing_period_start(M0, anchor)


@pytest.mark.parametrize(
    ("histogram", "expected"),
    [
        ({}, 0),
        ({0: 500}, 0),
        ({100: 29}, 0),
        ({100: 30}, 100),
        ({100: 31, 103: 6}, 100),  # Genesys's own example: 500 for 31 min, 503 for 6 min
        ({100: 20, 103: 10}, 100),  # 103 held 10, 100-or-more held 30
        ({100: 10, 103: 20, 104: 10}, 103),  # >=104 held 10 min, >=103 held 30
        ({50: 1000, 120: 29, 130: 1}, 120),  # >=130 held 1 min, >=120 held 30
    ],
    ids=[
        "empty",
        "zeros",
        "under-30",
        "exactly-30",
        "vendor-example",
        "non-contiguous",
        "stacked",
        "sparse-levels",
    ],
)
def test_billable_peak_table(histogram: dict[int, int], expected: int) -> None:
    assert billable_peak(histogram) == expected


def test_billable_peak_honours_min_minutes() -> None:
    assert billable_peak({10: 5, 12: 5}, min_minutes=5) == 12
    assert billable_peak({10: 5, 12: 5}, min_minutes=10) == 10
    assert billable_peak({10: 5, 12: 5}, min_minutes=11) == 0


def test_minutes_at_or_above() -> None:
    histogram = {0: 100, 80: 40, 100: 12, 130: 3}
    assert minutes_at_or_above(histogram, 100) == 15
    assert minutes_at_or_above(histogram, 101) == 3
    assert minutes_at_or_above(histogram, 131) == 0
    assert minutes_at_or_above(histogram, 0) == 155


@pytest.mark.parametrize(
    ("recorded", "measured", "rows", "delta"),
    [
        ({}, {minute(0): 5}, {minute(0): 5}, {5: 1}),
        ({minute(0): 5}, {minute(0): 5}, {}, {}),
        ({minute(0): 5}, {minute(0): 3}, {}, {}),  # lower re-measurement keeps the max
        ({minute(0): 5}, {minute(0): 7}, {minute(0): 7}, {5: -1, 7: 1}),
        ({minute(0): 5, minute(1): 6}, {minute(1): 6, minute(2): 6}, {minute(2): 6}, {6: 1}),
        ({}, {minute(0): 0}, {minute(0): 0}, {0: 1}),
        (
            {minute(0): 4, minute(1): 7},
            {minute(0): 7, minute(1): 9},
            {minute(0): 7, minute(1): 9},
            {4: -1, 9: 1},
        ),  # 7: +1 -1 cancels out
    ],
    ids=["new", "same", "lower", "higher", "overlap", "zero-level", "cancelling"],
)
def test_merge_minutes_table(
    recorded: dict[datetime, int],
    measured: dict[datetime, int],
    rows: dict[datetime, int],
    delta: dict[int, int],
) -> None:
    assert merge_minutes(recorded, measured) == (rows, delta)


def test_merge_minutes_rejects_negative_levels() -> None:
    with pytest.raises(ValueError, match="negative"):
        merge_minutes({}, {minute(0): -1})


def test_apply_histogram_delta_drops_empty_levels_and_refuses_negative_minutes() -> None:
    assert apply_histogram_delta({5: 1, 6: 2}, {5: -1, 7: 1}) == {6: 2, 7: 1}
    with pytest.raises(ValueError, match="does not match"):
        apply_histogram_delta({5: 1}, {5: -2})


# ---------------------------------------------------------------- properties

levels = st.integers(0, 40)
minute_maps = st.dictionaries(st.integers(0, 120).map(minute), levels, max_size=80)


def replay(batches: list[dict[datetime, int]]) -> tuple[dict[datetime, int], dict[int, int]]:
    """Record batches the way the state layer does: rows + histogram, via merge + delta."""
    rows: dict[datetime, int] = {}
    histogram: dict[int, int] = {}
    for batch in batches:
        new_rows, delta = merge_minutes({m: rows[m] for m in batch if m in rows}, batch)
        rows.update(new_rows)
        histogram = apply_histogram_delta(histogram, delta)
    return rows, histogram


@settings(max_examples=150, deadline=None)
@given(st.lists(minute_maps, max_size=6))
def test_histogram_always_matches_the_rows(batches: list[dict[datetime, int]]) -> None:
    rows, histogram = replay(batches)
    expected: dict[int, int] = {}
    for level in rows.values():
        expected[level] = expected.get(level, 0) + 1
    assert histogram == expected
    for m, level in rows.items():
        assert level == max(batch[m] for batch in batches if m in batch)


@settings(max_examples=150, deadline=None)
@given(st.lists(minute_maps, min_size=1, max_size=6), st.data())
def test_merge_minutes_is_idempotent(
    batches: list[dict[datetime, int]], data: st.DataObject
) -> None:
    rows, histogram = replay(batches)
    again = data.draw(st.sampled_from(batches))
    assert merge_minutes(rows, again) == ({}, {})
    assert replay([*batches, again]) == (rows, histogram)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(levels, st.integers(1, 40), max_size=15), st.integers(1, 60))
def test_billable_peak_is_within_the_levels_and_holds_the_minutes(
    histogram: dict[int, int], min_minutes: int
) -> None:
    peak = billable_peak(histogram, min_minutes)
    assert peak <= max(histogram, default=0)
    if peak:
        assert minutes_at_or_above(histogram, peak) >= min_minutes
    assert minutes_at_or_above(histogram, peak + 1) < min_minutes


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(levels, st.integers(1, 40), max_size=15), levels, st.integers(1, 40))
def test_billable_peak_never_falls_as_minutes_are_added(
    histogram: dict[int, int], level: int, minutes: int
) -> None:
    more = apply_histogram_delta(histogram, {level: minutes})
    assert billable_peak(more) >= billable_peak(histogram)
