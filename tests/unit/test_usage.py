"""Exact concurrency from presence segments, and window activity from aggregates."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.genesys.models import PresenceSegment
from license_monitor.usage import Concurrency, MinuteProfile, logged_in_during, measure_concurrency

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

def peaks(minutes: dict[datetime, MinuteProfile]) -> dict[datetime, int]:
    """The highest level of each whole minute."""
    return {minute: profile.peak for minute, profile in minutes.items()}



def window_active_users(aggregates: dict[str, dict[str, int]]) -> frozenset[str]:
    """The users a users aggregates answer says were logged in, by the product's rule."""
    return frozenset(user for user, sums in aggregates.items() if logged_in_during(sums))
START = T - timedelta(minutes=15)


def at(minutes: float) -> datetime:
    """An instant `minutes` after the window start (negative: before it)."""
    return START + timedelta(minutes=minutes)


def seg(user: str, start: float, end: float | None, presence: str = "AVAILABLE") -> PresenceSegment:
    return PresenceSegment(user, at(start), None if end is None else at(end), presence)


# ---------------------------------------------------------------- window_active_users


@pytest.mark.parametrize(
    ("aggregates", "expected"),
    [
        ({}, set()),
        ({"u1": {"AVAILABLE": 1000}}, {"u1"}),
        ({"u1": {"OFFLINE": 900000}}, set()),
        ({"u1": {"OFFLINE": 899000, "ON_QUEUE": 1000}}, {"u1"}),
        ({"u1": {"AVAILABLE": 0, "OFFLINE": 900000}}, set()),
        ({"u1": {"Offline": 5}, "u2": {"On Queue": 5}, "u3": {"OnQueue": 1}}, {"u2", "u3"}),
        ({"u1": {"offline": 5, "Busy": 3}, "u2": {}}, {"u1"}),
    ],
    ids=[
        "empty",
        "available",
        "offline-only",
        "any-online-time",
        "zero-sum-not-active",
        "spellings-normalised",
        "lower-case-offline",
    ],
)
def test_window_active_users_counts_non_offline_time(
    aggregates: dict[str, dict[str, int]], expected: set[str]
) -> None:
    assert window_active_users(aggregates) == frozenset(expected)


# ---------------------------------------------------------------- measure_concurrency


def test_shift_change_peak_is_exact_where_window_distinct_overcounts() -> None:
    steady = [seg(f"steady{i}", -120, None, "ON_QUEUE") for i in range(80)]
    leaving = [seg(f"early{i}", -480, 5, "ON_QUEUE") for i in range(50)]  # log out at t-10
    leaving += [seg(f"early{i}", 5, None, "OFFLINE") for i in range(50)]
    arriving = [seg(f"late{i}", 10, None, "AVAILABLE") for i in range(50)]  # log in at t-5
    segments = steady + leaving + arriving
    aggregates = {
        **{f"steady{i}": {"ON_QUEUE": 900_000} for i in range(80)},
        **{f"early{i}": {"ON_QUEUE": 300_000, "OFFLINE": 600_000} for i in range(50)},
        **{f"late{i}": {"OFFLINE": 600_000, "AVAILABLE": 300_000} for i in range(50)},
    }

    result = measure_concurrency(segments, START, T)

    assert len(window_active_users(aggregates)) == 180
    assert result.peak == 130
    assert len(result.now_users) == 130
    assert result.peak_at == START
    assert result.peak_users == frozenset(s.user_id for s in steady + leaving)
    assert peaks(result.minutes)[at(4)] == 130
    assert peaks(result.minutes)[at(7)] == 80
    assert peaks(result.minutes)[at(10)] == 130


@pytest.mark.parametrize(
    ("segments", "now", "peak", "peak_at"),
    [
        ([], set(), 0, 0),
        ([seg("a", -10, None)], {"a"}, 1, 0),
        ([seg("a", -10, -1)], set(), 0, 0),
        ([seg("a", -10, 0)], set(), 0, 0),  # ends exactly at the window start
        ([seg("a", 15, None)], set(), 0, 0),  # starts exactly at the window end
        ([seg("a", 3, 15)], set(), 1, 3),  # logs out exactly at the end
        ([seg("a", 3, 16)], {"a"}, 1, 3),
        ([seg("a", 2, 5), seg("b", 5, 8)], set(), 1, 2),  # hand-over: never 2
        ([seg("a", 2, 5, "AVAILABLE"), seg("a", 5, None, "BUSY")], {"a"}, 1, 2),  # touching
        ([seg("a", 2, 9), seg("a", 2, 9), seg("a", 4, 6)], set(), 1, 2),  # duplicates
        ([seg("a", 2, 9), seg("b", 4, 6), seg("c", 5, 12)], {*()}, 3, 5),
        ([seg("a", 0, None, "OFFLINE"), seg("b", 1, None, "Offline")], set(), 0, 0),
        ([seg("a", 1, None, "On Queue"), seg("b", 2, None, "OnQueue")], {"a", "b"}, 2, 2),
        ([seg("a", 4, 4)], set(), 0, 0),  # zero length
        ([seg("a", 6, 4)], set(), 0, 0),  # malformed (end before start)
    ],
    ids=[
        "nobody",
        "open-from-before",
        "closed-before-window",
        "ends-at-window-start",
        "starts-at-window-end",
        "logs-out-at-end",
        "logs-out-after-end",
        "hand-over-same-instant",
        "touching-segments-one-user",
        "duplicate-segments-count-once",
        "three-overlap",
        "offline-ignored-any-spelling",
        "presence-spellings",
        "zero-length",
        "malformed",
    ],
)
def test_measure_concurrency_table(
    segments: list[PresenceSegment], now: set[str], peak: int, peak_at: float
) -> None:
    result = measure_concurrency(segments, START, T)
    assert result.now_users == frozenset(now)
    assert result.peak == peak
    assert result.peak_at == at(peak_at)
    assert len(result.peak_users) == peak


def test_peak_users_are_those_of_the_first_instant_the_peak_is_reached() -> None:
    segments = [seg("a", 1, 3), seg("b", 2, 4), seg("c", 6, 9), seg("d", 7, 10)]
    result = measure_concurrency(segments, START, T)
    assert result.peak == 2
    assert result.peak_at == at(2)
    assert result.peak_users == {"a", "b"}


def test_include_filters_the_license_pool() -> None:
    segments = [seg("agent", 0, None), seg("communicate-only", 0, None), seg("admin", 5, 7)]
    pool = {"agent", "admin"}
    result = measure_concurrency(segments, START, T, include=pool.__contains__)
    assert result.now_users == {"agent"}
    assert result.peak == 2
    assert result.peak_users == {"agent", "admin"}


def test_minute_levels_hold_the_max_within_each_whole_minute() -> None:
    start = datetime(2026, 11, 26, 11, 45, 30, tzinfo=UTC)  # not on a minute boundary
    end = datetime(2026, 11, 26, 11, 50, 30, tzinfo=UTC)
    minute = datetime(2026, 11, 26, 11, 46, tzinfo=UTC)
    second = timedelta(seconds=1)
    segments = [
        PresenceSegment("a", minute + 20 * second, minute + 40 * second, "BUSY"),
        PresenceSegment("b", minute + 30 * second, minute + 120 * second, "BUSY"),
    ]
    result = measure_concurrency(segments, start, end)
    assert peaks(result.minutes) == {
        minute: 2,
        minute + timedelta(minutes=1): 1,
        minute + timedelta(minutes=2): 0,
        minute + timedelta(minutes=3): 0,
    }


def test_empty_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        measure_concurrency([], T, T)


# ---------------------------------------------------------------- properties

PRESENCES = ["AVAILABLE", "ON_QUEUE", "BUSY", "AWAY", "OFFLINE", "On Queue", "Offline"]


@st.composite
def segment_lists(draw: st.DrawFn) -> list[PresenceSegment]:
    """Segments of a few users on a whole-second grid around a 15-minute window."""
    result = []
    for _ in range(draw(st.integers(0, 25))):
        user = draw(st.sampled_from(["u0", "u1", "u2", "u3", "u4", "u5"]))
        begin = draw(st.integers(-600, 1500))  # seconds from START; window is [0, 900)
        length = draw(st.one_of(st.none(), st.integers(0, 900)))
        result.append(
            PresenceSegment(
                user,
                START + timedelta(seconds=begin),
                None if length is None else START + timedelta(seconds=begin + length),
                draw(st.sampled_from(PRESENCES)),
            )
        )
    return result


def aggregates_of(segments: list[PresenceSegment]) -> dict[str, dict[str, int]]:
    """Presence milliseconds per user inside [START, T), as the platform's aggregates would."""
    result: dict[str, dict[str, int]] = {}
    for s in segments:
        begin = max(s.start, START)
        end = T if s.end is None else min(s.end, T)
        millis = int((end - begin).total_seconds() * 1000)
        if millis > 0:
            by_presence = result.setdefault(s.user_id, {})
            by_presence[s.presence] = by_presence.get(s.presence, 0) + millis
    return result


def summary(r: Concurrency) -> tuple[object, ...]:
    return (r.now_users, r.peak, r.peak_users, r.peak_at, peaks(r.minutes))


@settings(max_examples=200, deadline=None)
@given(segment_lists())
def test_now_never_exceeds_peak_and_peak_never_exceeds_window_distinct(
    segments: list[PresenceSegment],
) -> None:
    result = measure_concurrency(segments, START, T)
    distinct = window_active_users(aggregates_of(segments))
    assert len(result.now_users) <= result.peak <= len(distinct)
    assert result.now_users <= distinct
    assert result.peak_users <= distinct
    assert max(peaks(result.minutes).values(), default=0) <= result.peak


@settings(max_examples=100, deadline=None)
@given(segment_lists(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_segment_order(
    segments: list[PresenceSegment], rng: random.Random
) -> None:
    shuffled = list(segments)
    rng.shuffle(shuffled)
    assert summary(measure_concurrency(shuffled, START, T)) == summary(
        measure_concurrency(segments, START, T)
    )


@settings(max_examples=100, deadline=None)
@given(segment_lists(), st.data())
def test_splitting_a_segment_in_two_changes_nothing(
    segments: list[PresenceSegment], data: st.DataObject
) -> None:
    candidates = [s for s in segments if s.end is None or s.end > s.start]
    if not candidates:
        return
    target = data.draw(st.sampled_from(candidates))
    horizon = (target.end or T + timedelta(minutes=30)) - target.start
    cut = target.start + timedelta(seconds=data.draw(st.integers(0, int(horizon.total_seconds()))))
    split_segments = [s for s in segments if s is not target] + [
        PresenceSegment(target.user_id, target.start, cut, target.presence),
        PresenceSegment(target.user_id, cut, target.end, target.presence),
    ]
    assert summary(measure_concurrency(split_segments, START, T)) == summary(
        measure_concurrency(segments, START, T)
    )


@settings(max_examples=100, deadline=None)
@given(segment_lists())
def test_clipping_to_the_window_changes_nothing(segments: list[PresenceSegment]) -> None:
    clipped = []
    for s in segments:
        begin = max(s.start, START)
        end = s.end if s.end is None or s.end <= T else None  # still logged in past the end
        if end is not None and end <= begin:
            continue
        if begin >= T:
            continue
        clipped.append(PresenceSegment(s.user_id, begin, end, s.presence))
    assert summary(measure_concurrency(clipped, START, T)) == summary(
        measure_concurrency(segments, START, T)
    )


@settings(max_examples=100, deadline=None)
@given(segment_lists())
def test_peak_matches_brute_force_over_every_second(segments: list[PresenceSegment]) -> None:
    result = measure_concurrency(segments, START, T)
    best, best_at = 0, START
    for second in range(900):
        moment = START + timedelta(seconds=second)
        online = {
            s.user_id
            for s in segments
            if s.presence not in ("OFFLINE", "Offline")
            and s.start <= moment
            and (s.end is None or s.end > moment)
        }
        if len(online) > best:
            best, best_at = len(online), moment
    assert (result.peak, result.peak_at) == (best, best_at)


# ---------------------------------------------------------------- minute profiles


def test_profile_time_at_or_above_a_level_includes_the_level_itself() -> None:
    profile = MinuteProfile({0: 10_000, 4: 20_000, 5: 25_000, 7: 5_000})
    assert profile.ms_at_or_above(5) == 30_000
    assert profile.ms_at_or_above(6) == 5_000
    assert profile.ms_at_or_above(0) == 60_000
    assert profile.ms_at_or_above(8) == 0


def test_profile_text_lists_levels_in_order_without_empty_ones() -> None:
    profile = MinuteProfile({7: 5_000, 0: 10_000, 3: 0, 5: 45_000})
    assert profile.encode() == "0:10000,5:45000,7:5000"
    assert MinuteProfile.decode(profile.encode()) == MinuteProfile({0: 10_000, 5: 45_000, 7: 5_000})


def test_a_flat_minute_is_the_whole_minute_at_one_level() -> None:
    assert MinuteProfile.flat(12) == MinuteProfile({12: 60_000})
    assert MinuteProfile.flat(12).peak == 12
    assert MinuteProfile.flat(12).encode() == "12:60000"


@pytest.mark.parametrize(
    ("text", "ms_at"),
    [
        ("5:30000,5:30000", {5: 60_000}),  # a level given twice adds up
        ("3:0,5:60000", {3: 0, 5: 60_000}),  # an empty part is harmless
        ("0:60000", {0: 60_000}),
    ],
    ids=["repeated-level", "zero-part", "idle-minute"],
)
def test_profile_text_is_read_back_as_the_same_minute(text: str, ms_at: dict[int, int]) -> None:
    assert MinuteProfile.decode(text) == MinuteProfile(ms_at)


@pytest.mark.parametrize(
    "text",
    ["-1:60000", "5:-1,6:60001", "100:59000", "", "5:60000,6:1"],
    ids=["negative-level", "negative-time", "short-minute", "empty", "long-minute"],
)
def test_profile_text_that_is_not_a_minute_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a minute's concurrency profile"):
        MinuteProfile.decode(text)


def test_a_refused_profile_quotes_at_most_80_characters_of_it() -> None:
    text = ",".join(["1:1"] * 60)  # 60 ms: far from a minute, and long
    with pytest.raises(ValueError, match="profile") as raised:
        MinuteProfile.decode(text)
    assert repr(text[:80]) in str(raised.value)
    assert repr(text[:81]) not in str(raised.value)


# ---------------------------------------------------------------- instants that are not whole


def test_minute_keys_are_whole_minutes_when_the_window_starts_between_milliseconds() -> None:
    start = datetime(2026, 11, 26, 12, 0, 0, 250_000, tzinfo=UTC)  # 250 ms after the minute
    end = datetime(2026, 11, 26, 12, 3, 0, 250_000, tzinfo=UTC)
    result = measure_concurrency([PresenceSegment("a", start, None, "BUSY")], start, end)
    whole = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    assert list(result.minutes) == [whole, whole + timedelta(minutes=1)]
    assert all(profile == MinuteProfile.flat(1) for profile in result.minutes.values())


def test_a_window_starting_on_the_minute_includes_that_minute() -> None:
    start = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    result = measure_concurrency([], start, start + timedelta(minutes=2))
    assert list(result.minutes) == [start, start + timedelta(minutes=1)]


def test_a_user_who_logs_out_at_the_instant_of_the_peak_is_not_among_its_users() -> None:
    # a logs out at 5 when b and c log in: the peak (2) is reached at 5 without a.
    segments = [seg("a", 1, 5), seg("b", 5, 9), seg("c", 5, 9)]
    result = measure_concurrency(segments, START, T)
    assert (result.peak, result.peak_at) == (2, at(5))
    assert result.peak_users == {"b", "c"}


def test_sub_second_changes_are_kept_to_the_millisecond() -> None:
    minute = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    segments = [PresenceSegment("a", minute + timedelta(milliseconds=1_500),
                                minute + timedelta(milliseconds=2_250), "BUSY")]
    result = measure_concurrency(segments, minute - timedelta(minutes=1),
                                 minute + timedelta(minutes=1))
    assert result.minutes[minute] == MinuteProfile({0: 59_250, 1: 750})


def test_other_time_zones_measure_the_same_instants() -> None:
    # The same window and logins written in UTC+05:30 and UTC-03:00: minutes and peak agree.
    segments = [seg("a", 1.5, 7.25), seg("b", 3, None), seg("c", -2, 4)]
    in_utc = measure_concurrency(segments, START, T)
    for zone in (ZoneInfo("Asia/Kolkata"), ZoneInfo("America/Sao_Paulo")):
        moved = [PresenceSegment(s.user_id, s.start.astimezone(zone),
                                 None if s.end is None else s.end.astimezone(zone), s.presence)
                 for s in segments]
        elsewhere = measure_concurrency(moved, START.astimezone(zone), T.astimezone(zone))
        assert summary(elsewhere) == summary(in_utc)
        assert [profile.encode() for profile in elsewhere.minutes.values()] == [
            profile.encode() for profile in in_utc.minutes.values()]


def test_a_change_between_milliseconds_is_counted_in_whole_milliseconds() -> None:
    minute = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    login = minute + timedelta(microseconds=1_500_500)  # 1.5005 s into the minute
    result = measure_concurrency([PresenceSegment("a", login, None, "BUSY")],
                                 minute - timedelta(minutes=1), minute + timedelta(minutes=1))
    profile = result.minutes[minute]
    assert profile == MinuteProfile({0: 1_500, 1: 58_500})
    assert profile.encode() == "0:1500,1:58500"
    assert MinuteProfile.decode(profile.encode()) == profile


def test_a_level_held_twice_in_one_minute_adds_up() -> None:
    minute = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    second = timedelta(seconds=1)
    segments = [PresenceSegment("a", minute + second, minute + 2 * second, "BUSY"),
                PresenceSegment("a", minute + 3 * second, minute + 5 * second, "BUSY"),
                PresenceSegment("b", minute + 4 * second, minute + 6 * second, "BUSY")]
    result = measure_concurrency(segments, minute, minute + timedelta(minutes=1))
    # 0 for 1 s, 1 for 1 s, 0 for 1 s, 1 for 1 s, 2 for 1 s, 1 for 1 s, then 0 for 54 s.
    assert result.minutes[minute] == MinuteProfile({0: 56_000, 1: 3_000, 2: 1_000})
