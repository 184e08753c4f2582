"""The 30-minute billing rule (exact to the second), billing periods, idempotent recording."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.billing import (
    Histogram,
    MinuteRecord,
    billing_period_start,
    merge_minutes,
)
from license_monitor.genesys.models import PresenceSegment
from license_monitor.usage import MinuteProfile, measure_concurrency

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


def by_minutes(minutes_at: dict[int, int]) -> Histogram:
    """A period whose minutes are each held at one level: level -> minutes."""
    return Histogram({level: n * 60_000 for level, n in minutes_at.items()}, dict(minutes_at))


@pytest.mark.parametrize(
    ("minutes_at", "expected"),
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
    ids=["empty", "zeros", "under-30", "exactly-30", "vendor-example", "non-contiguous",
         "stacked", "sparse-levels"],
)
def test_billable_peak_table(minutes_at: dict[int, int], expected: int) -> None:
    histogram = by_minutes(minutes_at)
    assert histogram.billable_peak == expected
    assert histogram.billable_peak_upper == expected  # whole minutes: both rules agree


def test_the_hand_over_example_bills_the_seconds_not_the_minutes() -> None:
    # 100 users all month; three hand-overs of 10 minutes where 10 arrive at second 20 and
    # 10 leave at second 21: 30 seconds at 110 in 30 different minutes.
    hand_over = MinuteProfile({100: 59_000, 110: 1_000})
    histogram = by_minutes({100: 1000})
    for _ in range(30):
        histogram = histogram.plus(Histogram.of_minute(hand_over))
    assert histogram.billable_peak == 100
    assert histogram.billable_peak_upper == 110
    assert histogram.ms_at_or_above(101) == 30_000


def test_thirty_minutes_in_seconds_spread_over_many_minutes_are_billed() -> None:
    half = MinuteProfile({100: 30_000, 105: 30_000})
    histogram = Histogram()
    for count in range(1, 61):
        histogram = histogram.plus(Histogram.of_minute(half))
        assert histogram.billable_peak == (105 if count >= 60 else 100 if count >= 30 else 0)


def record(minute_at: int, levels: dict[int, int], measured_at: int) -> MinuteRecord:
    return MinuteRecord(MinuteProfile(levels), minute(measured_at))


@pytest.mark.parametrize(
    ("recorded", "measured", "changed"),
    [
        ({}, {0: record(0, {5: 60_000}, 10)}, [0]),
        ({0: record(0, {5: 60_000}, 10)}, {0: record(0, {5: 60_000}, 20)}, []),  # same profile
        ({0: record(0, {5: 60_000}, 10)}, {0: record(0, {3: 60_000}, 20)}, [0]),  # newer wins
        ({0: record(0, {5: 60_000}, 20)}, {0: record(0, {9: 60_000}, 10)}, []),  # older loses
        ({0: record(0, {5: 60_000}, 20)}, {0: record(0, {9: 60_000}, 20)}, []),  # tie: stored
    ],
    ids=["new", "same", "newer", "older", "tie"],
)
def test_merge_minutes_table(
    recorded: dict[int, MinuteRecord], measured: dict[int, MinuteRecord], changed: list[int],
) -> None:
    rows, delta = merge_minutes({minute(k): v for k, v in recorded.items()},
                                {minute(k): v for k, v in measured.items()})
    assert sorted(rows) == [minute(k) for k in changed]
    expected = Histogram()
    for k in changed:
        expected = expected.plus(Histogram.of_minute(measured[k].profile))
        if k in recorded:
            expected = expected.plus(Histogram.of_minute(recorded[k].profile, -1))
    assert delta == expected


def test_a_histogram_that_disagrees_with_its_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        by_minutes({5: 1}).plus(by_minutes({5: -2}), strict=True)


def test_profiles_refuse_anything_but_a_whole_minute() -> None:
    assert MinuteProfile.decode("0:20000,100:39000,110:1000").peak == 110
    with pytest.raises(ValueError, match="profile"):
        MinuteProfile.decode("100:59000")


# ---------------------------------------------------------------- against a brute force

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HORIZON = 3 * 3600  # seconds of simulated day


@st.composite
def segment_sets(draw: st.DrawFn) -> list[PresenceSegment]:
    """Logged-in spans of up to 12 users, on whole seconds, overlaps and open ends included."""
    segments = []
    for user in range(draw(st.integers(1, 12))):
        for _ in range(draw(st.integers(0, 4))):
            start = draw(st.integers(0, HORIZON - 1))
            length = draw(st.one_of(st.none(), st.integers(1, 3600)))
            presence = draw(st.sampled_from(["AVAILABLE", "ON_QUEUE", "BUSY", "OFFLINE"]))
            segments.append(PresenceSegment(
                user_id=f"u{user}", start=T0 + timedelta(seconds=start),
                end=None if length is None else T0 + timedelta(seconds=start + length),
                presence=presence))
    return segments


def logged_in_at(segments: list[PresenceSegment], second: int) -> int:
    """Users logged in during [second, second + 1), counted one by one."""
    moment = T0 + timedelta(seconds=second)
    return len({s.user_id for s in segments if s.presence != "OFFLINE" and s.start <= moment
                and (s.end is None or s.end > moment)})


@settings(max_examples=60, deadline=None)
@given(segment_sets(), st.lists(st.integers(0, HORIZON // 60 - 15), min_size=1, max_size=8))
def test_recorded_seconds_equal_a_second_by_second_count(
    segments: list[PresenceSegment], window_starts: list[int],
) -> None:
    # Overlapping 15-minute windows, each measured by a check at its end, in any order.
    rows: dict[datetime, MinuteRecord] = {}
    histogram = Histogram()
    for start_minute in window_starts:
        start = T0 + timedelta(minutes=start_minute)
        end = start + timedelta(minutes=15)
        measured = {m: MinuteRecord(profile, end)
                    for m, profile in measure_concurrency(segments, start, end).minutes.items()}
        changed, delta = merge_minutes({m: rows[m] for m in measured if m in rows}, measured)
        rows.update(changed)
        histogram = histogram.plus(delta, strict=True)

    covered = sorted({start + minute_index for start in window_starts
                      for minute_index in range(15)})
    expected_ms: dict[int, int] = {}
    for minute_index in covered:
        for second in range(minute_index * 60, minute_index * 60 + 60):
            level = logged_in_at(segments, second)
            expected_ms[level] = expected_ms.get(level, 0) + 1000
    assert dict(histogram.exact_ms) == expected_ms
    assert histogram.minutes_recorded == len(covered)
    # The billable peak is the brute-force rule, and the minute rule never reads lower.
    seconds_at_or_above = {n: sum(ms for lvl, ms in expected_ms.items() if lvl >= n) // 1000
                           for n in range(1, 13)}
    brute = max((n for n, secs in seconds_at_or_above.items() if secs >= 1800), default=0)
    assert histogram.billable_peak == brute
    assert histogram.billable_peak_upper >= histogram.billable_peak


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(0, 40), st.integers(1, 40), max_size=15),
       st.integers(0, 40), st.integers(1, 40))
def test_billable_peak_never_falls_as_time_is_added(
    minutes_at: dict[int, int], level: int, minutes: int,
) -> None:
    before = by_minutes(minutes_at)
    more = before.plus(by_minutes({level: minutes}))
    assert more.billable_peak >= before.billable_peak
    assert more.billable_peak_upper >= before.billable_peak_upper


@pytest.fixture
def machine_far_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+14 (Kiritimati), not the UTC test machines run."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("machine_far_east")
def test_billing_periods_are_utc_whatever_the_machine_time_zone() -> None:
    # 12:00 UTC on Oct 31 is already Nov 1 on the machine's clock: still October's period.
    assert billing_period_start(datetime(2026, 10, 31, 12, 0, tzinfo=UTC), 1) == date(2026, 10, 1)
    # A naive time is read as UTC, not as the machine's local time.
    assert billing_period_start(datetime(2026, 11, 1, 5, 0), 1) == date(2026, 11, 1)


def test_time_at_or_above_a_level_includes_the_level_itself() -> None:
    histogram = Histogram({0: 1_000, 3: 2_000, 5: 4_000, 9: 8_000}, {9: 1})
    assert histogram.ms_at_or_above(5) == 12_000
    assert histogram.ms_at_or_above(6) == 8_000
    assert histogram.ms_at_or_above(10) == 0


def test_a_re_measured_minute_that_leaves_a_level_takes_it_out_of_the_histogram() -> None:
    before = Histogram.of_minute(MinuteProfile({5: 60_000}))
    _, delta = merge_minutes({minute(0): MinuteRecord(MinuteProfile({5: 60_000}), minute(1))},
                             {minute(0): MinuteRecord(MinuteProfile({3: 60_000}), minute(2))})
    after = before.plus(delta, strict=True)  # 5 goes to exactly zero: valid, not a mismatch
    assert after == Histogram({3: 60_000}, {3: 1})
    assert after.billable_peak_upper == 0
    assert Histogram().plus(Histogram({5: 0}, {5: 0})) == Histogram()  # a zero adds nothing


def test_a_histogram_below_zero_names_the_level_and_the_count() -> None:
    with pytest.raises(ValueError, match="does not match") as raised:
        by_minutes({5: 1}).plus(by_minutes({5: -2}), strict=True)
    assert str(raised.value) == (
        "the histogram would hold -60000 at level 5: it does not match the recorded minutes")


def test_an_unchanged_minute_does_not_stop_the_merge_of_the_next_ones() -> None:
    recorded = {minute(0): record(0, {5: 60_000}, 10)}
    measured = {minute(0): record(0, {5: 60_000}, 20), minute(1): record(1, {7: 60_000}, 20)}
    rows, delta = merge_minutes(recorded, measured)
    assert rows == {minute(1): measured[minute(1)]}
    assert delta == Histogram({7: 60_000}, {7: 1})
