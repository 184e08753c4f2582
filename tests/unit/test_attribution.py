"""Peak attribution (RC 372782) against hand-made days and an independent slice-by-slice sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.attribution import Tally
from license_monitor.billing import Histogram
from license_monitor.genesys.models import PresenceSegment, RoutingSegment
from license_monitor.usage import measure_concurrency

DAY = datetime(2026, 11, 26, tzinfo=UTC)
MIN = 60


def at(seconds: float) -> datetime:
    return DAY + timedelta(seconds=seconds)


def seg(user: str, start_s: float, end_s: float | None, presence: str = "AVAILABLE"
        ) -> PresenceSegment:
    return PresenceSegment(user, at(start_s), None if end_s is None else at(end_s), presence)


def test_more_users_than_the_peak_top_p_by_time_at_the_peak() -> None:
    # Level 3 is held 20 min (a, b, c) + 15 min (a, b, d) = 35 min: P = 3, and 4 distinct
    # users were present at >= 3. c (20 min at the peak) beats d (15 min); a and b lead.
    segments = [
        seg("a", 0, 60 * MIN),
        seg("b", 0, 60 * MIN, "ON_QUEUE"),
        seg("c", 5 * MIN, 25 * MIN),
        seg("d", 40 * MIN, 55 * MIN),
    ]
    tally = Tally(DAY, at(24 * 3600))
    tally.add(segments)
    result = tally.attribute()
    assert result.level == result.held_level == 3
    assert result.ms_at_or_above_level == 35 * MIN * 1000
    assert result.present_at_level == 4
    assert [(u.user_id, u.ms_at_level // 1000) for u in result.users] == [
        ("a", 35 * MIN), ("b", 35 * MIN), ("c", 20 * MIN)]
    assert result.users[1].presence_ms == {"ON_QUEUE": 60 * MIN * 1000}
    assert result.users[0].first_login == DAY
    assert result.users[0].last_logout == at(60 * MIN)


def test_ties_at_the_peak_go_to_the_longer_login_then_the_user_id() -> None:
    # Level 2 is held 30 min: x throughout, y and z 15 min each; y logged in longer than z
    # that day, so y is attributed. u, v and w tie on everything and are told apart by id.
    segments = [
        seg("x", 0, 30 * MIN),
        seg("y", 0, 15 * MIN), seg("y", 100 * MIN, 130 * MIN),
        seg("z", 15 * MIN, 30 * MIN),
    ]
    tally = Tally(DAY, at(6 * 3600))
    tally.add(segments)
    result = tally.attribute()
    assert result.level == 2
    assert [u.user_id for u in result.users] == ["x", "y"]
    assert result.present_at_level == 3

    twins = Tally(DAY, at(6 * 3600))
    twins.add([seg("w", 0, 40 * MIN), seg("v", 0, 40 * MIN), seg("u", 0, 40 * MIN)])
    assert [u.user_id for u in twins.attribute(level=2).users] == ["u", "v"]


def test_no_level_held_30_minutes_attributes_nobody() -> None:
    tally = Tally(DAY, at(3600))
    tally.add([seg("a", 0, 29 * MIN + 59)])
    result = tally.attribute()
    assert (result.level, result.users, result.present_at_level) == (0, (), 0)


def test_a_given_level_is_attributed_even_when_held_less_than_30_minutes() -> None:
    tally = Tally(DAY, at(3600))
    tally.add([seg("a", 0, 50 * MIN), seg("b", 10 * MIN, 20 * MIN)])
    result = tally.attribute(level=2)
    assert (result.level, result.held_level) == (2, 1)
    assert [(u.user_id, u.ms_at_level) for u in result.users] == [
        ("a", 600_000), ("b", 600_000)]
    with pytest.raises(ValueError, match="at least 1"):
        tally.attribute(level=0)


def test_logged_in_past_the_end_has_no_logout_and_offline_is_not_logged_in() -> None:
    tally = Tally(DAY, at(3600))
    tally.add([seg("a", -600, 1200), seg("a", 1200, None, "AWAY"), seg("b", 0, 3600, "OFFLINE"),
               seg("c", 0, 1800), seg("c", 1800, 3600, "OFFLINE")],
              [RoutingSegment("a", at(-600), None, "OFF_QUEUE")])
    by_id = {u.user_id: u for u in tally.attribute(level=2).users}
    assert set(by_id) == {"a", "c"}
    assert by_id["a"].last_logout is None
    assert by_id["a"].first_login == DAY  # logged in before the span: its start
    assert by_id["a"].presence_ms == {"AVAILABLE": 1_200_000, "AWAY": 2_400_000}
    assert by_id["a"].routing_ms == {"OFF_QUEUE": 3_600_000}
    assert by_id["c"].last_logout == at(1800)


def test_milliseconds_count_exactly() -> None:
    tally = Tally(DAY, at(3600))
    tally.add([seg("a", 0.001, 1800.002), seg("b", 0, 1800.001)])
    result = tally.attribute()
    # Level 2 from 0.001 s to 1800.001 s: exactly 30 minutes.
    assert result.level == 2
    assert result.ms_at_or_above_level == 1_800_000


def test_the_level_is_the_ledgers_rule_over_the_same_minutes() -> None:
    """P is billing.Histogram's 30-minute rule over what usage.py measures minute by minute."""
    segments = [seg(f"u{i}", i * 97.123, i * 97.123 + 40 * MIN + i * 13) for i in range(12)]
    tally = Tally(DAY, at(4 * 3600))
    tally.add(segments)
    minutes = measure_concurrency(segments, DAY, at(4 * 3600)).minutes
    ledger = Histogram()
    for profile in minutes.values():
        ledger = ledger.plus(Histogram.of_minute(profile))
    assert tally.attribute().level == ledger.billable_peak > 0


# --------------------------------------------------------------------- against a brute force

SLICE = 10  # seconds: every boundary below is on a multiple, so slices are exact
SPAN_SLICES = 720  # two hours
NEEDED_SLICES = 1800 // SLICE


def brute_force(logins: dict[str, list[tuple[int, int]]], level: int | None
                ) -> tuple[int, list[tuple[str, int, int]]]:
    """Genesys's procedure literally, slice by slice: (P, [(user, s at >= P, s logged in)])."""
    present = [{user for user, spans in logins.items() if any(a <= s < b for a, b in spans)}
               for s in range(SPAN_SLICES)]
    counts = [len(users) for users in present]
    held = max((n for n in range(1, max(counts, default=0) + 1)
                if sum(1 for c in counts if c >= n) >= NEEDED_SLICES), default=0)
    chosen = held if level is None else level
    rows = []
    for user in logins:
        at_level = sum(1 for s in range(SPAN_SLICES)
                       if user in present[s] and counts[s] >= chosen) if chosen else 0
        total = sum(1 for s in range(SPAN_SLICES) if user in present[s])
        if at_level:
            rows.append((user, at_level * SLICE, total * SLICE))
    rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    return chosen, rows[:chosen]


span = st.tuples(st.integers(0, SPAN_SLICES - 1), st.integers(1, 500))
day_logins = st.dictionaries(
    st.sampled_from([f"user-{c}" for c in "abcdefghij"]),
    st.lists(span, min_size=1, max_size=3), min_size=1, max_size=10)


def as_segments(logins: dict[str, list[tuple[int, int]]]) -> list[PresenceSegment]:
    return [seg(user, a * SLICE, b * SLICE, "ON_QUEUE" if i % 2 else "AVAILABLE")
            for user, spans in logins.items() for i, (a, b) in enumerate(spans)]


def clipped(raw: dict[str, list[tuple[int, int]]]) -> dict[str, list[tuple[int, int]]]:
    return {user: [(a, min(a + length, SPAN_SLICES)) for a, length in spans]
            for user, spans in raw.items()}


@settings(max_examples=150, deadline=None)
@given(day_logins, st.one_of(st.none(), st.integers(1, 6)))
def test_attribution_equals_a_slice_by_slice_sweep(
    raw: dict[str, list[tuple[int, int]]], level: int | None
) -> None:
    logins = clipped(raw)
    tally = Tally(DAY, at(SPAN_SLICES * SLICE))
    tally.add(as_segments(logins))
    result = tally.attribute(level)
    expected_level, expected = brute_force(logins, level)
    assert result.level == expected_level
    assert [(u.user_id, u.ms_at_level // 1000, u.ms_logged_in // 1000)
            for u in result.users] == expected
    assert len(result.users) <= result.level


@settings(max_examples=100, deadline=None)
@given(day_logins, st.lists(st.integers(1, SPAN_SLICES - 1), max_size=4))
def test_adding_query_by_query_with_repeated_rows_changes_nothing(
    raw: dict[str, list[tuple[int, int]]], cuts: list[int]
) -> None:
    logins = clipped(raw)
    segments = as_segments(logins)
    whole = Tally(DAY, at(SPAN_SLICES * SLICE))
    whole.add(segments)
    pieces = Tally(DAY, at(SPAN_SLICES * SLICE))
    bounds = [0, *sorted(set(cuts)), SPAN_SLICES]
    for low, high in pairwise(bounds):
        # Each query returns every record overlapping it, some rows twice.
        overlapping = [s for s in segments
                       if s.start < at(high * SLICE) and (s.end is None or s.end > at(low * SLICE))]
        pieces.add(overlapping + overlapping[:2], chunk_start=at(low * SLICE),
                   chunk_end=at(high * SLICE))
    assert pieces.attribute() == whole.attribute()


def test_a_user_listed_again_on_a_later_page_of_the_same_query_counts_once() -> None:
    rows = [seg("a", 0, 1800, "AWAY"), seg("a", 1800, 3600)]
    once = Tally(DAY, at(3600))
    once.add(rows)
    twice = Tally(DAY, at(3600))
    twice.add(rows[:1] + rows[1:], chunk_start=DAY, chunk_end=at(3600))
    twice.add(rows, chunk_start=DAY, chunk_end=at(3600))  # the platform's repeated row
    assert twice.attribute() == once.attribute()
    assert once.attribute(level=1).users[0].presence_ms == {"AVAILABLE": 1_800_000,
                                                            "AWAY": 1_800_000}
