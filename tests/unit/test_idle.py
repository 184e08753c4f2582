"""The idle rule: what counts as working, per role, and since when a user has not worked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.genesys.models import PresenceSegment, RoutingSegment
from license_monitor.idle import IdleSummary, find_idle, idle_since, working

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("is_agent", "presence", "routing", "expected"),
    [
        (True, "ON_QUEUE", "IDLE", True),  # waiting for interactions is the job
        (True, "ON_QUEUE", "INTERACTING", True),
        (True, "ON_QUEUE", None, True),  # no routing record: cannot tell, so not idle
        (True, "ON_QUEUE", "NOT_RESPONDING", False),  # alerts unanswered: the lid is shut
        (True, "AVAILABLE", "OFF_QUEUE", False),  # logged in but off queue
        (True, "AVAILABLE", "COMMUNICATING", True),  # on a non-queue call
        (True, "AWAY", None, False),
        (True, "BREAK", "OFF_QUEUE", False),
        (True, "MEAL", "OFF_QUEUE", False),
        (True, "IDLE", "OFF_QUEUE", False),
        (True, "BUSY", "OFF_QUEUE", True),
        (True, "MEETING", "OFF_QUEUE", True),
        (True, "TRAINING", "OFF_QUEUE", True),
        (False, "AVAILABLE", "OFF_QUEUE", True),  # an admin at the desk
        (False, "BUSY", None, True),
        (False, "MEETING", None, True),
        (False, "AWAY", "OFF_QUEUE", False),
        (False, "BREAK", None, False),
        (False, "MEAL", None, False),
        (False, "IDLE", None, False),
        (False, "AWAY", "INTERACTING", True),
    ],
)
def test_what_counts_as_working(is_agent: bool, presence: str, routing: str | None,
                                expected: bool) -> None:
    assert working(is_agent, presence, routing) is expected


def p(user: str, start: float, end: float | None, presence: str) -> PresenceSegment:
    return PresenceSegment(user, ago(start), None if end is None else ago(end), presence)


def r(user: str, start: float, end: float | None, status: str) -> RoutingSegment:
    return RoutingSegment(user, ago(start), None if end is None else ago(end), status)


def test_find_idle_by_role_threshold_and_order() -> None:
    presence = [
        p("agent-off", 300, 90, "ON_QUEUE"), p("agent-off", 90, None, "AVAILABLE"),
        p("agent-short", 300, 59, "ON_QUEUE"), p("agent-short", 59, None, "AVAILABLE"),
        p("admin-away", 300, 180, "AVAILABLE"), p("admin-away", 180, 100, "AWAY"),
        p("admin-away", 100, None, "BREAK"),
        p("admin-desk", 300, None, "AVAILABLE"),
        p("left", 300, 200, "AWAY"), p("left", 200, None, "OFFLINE"),
        p("outsider", 300, None, "AWAY"),
    ]
    routing = [r("agent-off", 300, 90, "IDLE"), r("agent-off", 90, None, "OFF_QUEUE")]
    found = find_idle(presence, routing, now=NOW, idle_after=timedelta(minutes=60),
                      is_agent=lambda user: user.startswith("agent"),
                      in_pool=lambda user: user != "outsider")
    assert [(u.user_id, u.since, u.presence) for u in found] == [
        ("admin-away", ago(180), "BREAK"), ("agent-off", ago(90), "AVAILABLE")]
    summary = IdleSummary.of(found, 60)
    assert (summary.count, summary.agents, summary.admins) == (2, 1, 1)
    assert IdleSummary.from_dict(summary.to_dict()) == summary
    assert summary.line(7, NOW, {"agent-off": "Ann"}) == (
        "2 of the 7 logged in have not worked for 60+ minutes (top 2: admin-away break since "
        "09:00 UTC, Ann available since 10:30 UTC)")
    assert IdleSummary.of([], 60).line(7, NOW) is None


def test_an_interaction_breaks_the_stretch_and_unknown_time_is_not_idle() -> None:
    presence = [p("u", 200, None, "AVAILABLE")]
    # Off queue since 200 minutes, but on a call from 70 to 65 minutes ago.
    routing = [r("u", 200, 70, "OFF_QUEUE"), r("u", 70, 65, "COMMUNICATING"),
               r("u", 65, None, "OFF_QUEUE")]
    records = ([(s.start, s.end, s.presence) for s in presence],
               [(s.start, s.end, s.status) for s in routing])
    assert idle_since(*records, is_agent=True, now=NOW) == ago(65)
    # Records that begin 40 minutes ago tell nothing about before: the stretch is 40 minutes.
    assert idle_since([(ago(40), None, "AWAY")], [], is_agent=False, now=NOW) == ago(40)
    assert idle_since([(ago(40), ago(1), "AWAY")], [], is_agent=False, now=NOW) is None


PRESENCES = ["ON_QUEUE", "AVAILABLE", "AWAY", "BREAK", "MEAL", "IDLE", "BUSY", "MEETING",
             "OFFLINE"]
STATUSES = ["OFF_QUEUE", "IDLE", "INTERACTING", "COMMUNICATING", "NOT_RESPONDING", None]


def timeline(values: list[str | None], lengths: list[int]) -> list[tuple[int, int, str | None]]:
    """Consecutive records ending at minute 0 (now), as (start, end) minutes ago."""
    records, end = [], 0
    for value, length in zip(values, lengths, strict=False):
        records.append((end + length, end, value))
        end += length
    return records[::-1]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PRESENCES), st.integers(1, 40)), min_size=1,
                max_size=6),
       st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(1, 40)), max_size=6),
       st.booleans())
def test_idle_since_equals_a_minute_by_minute_walk(
    presence_parts: list[tuple[str, int]], routing_parts: list[tuple[str | None, int]],
    is_agent: bool,
) -> None:
    presence = timeline([v for v, _ in presence_parts], [n for _, n in presence_parts])
    routing = timeline([v for v, _ in routing_parts], [n for _, n in routing_parts])

    def value_at(records: list[tuple[int, int, str | None]], minute: int) -> str | None:
        # minute m = the minute [m, m-1) ago; a record (start, end) covers start > m >= end.
        return next((v for start, end, v in records if start >= minute > end), None)

    # The walk: minutes back from now while logged in, known and not working.
    since = None
    minute = 1
    while True:
        state = value_at(presence, minute)
        if state is None or state == "OFFLINE" or working(is_agent, state,
                                                          value_at(routing, minute)):
            break
        since = minute
        minute += 1
    # The record open at now: the last presence record, made open-ended.
    def as_records(records: list[tuple[int, int, str | None]]
                   ) -> list[tuple[datetime, datetime | None, str]]:
        return [(ago(start), None if end == 0 else ago(end), value)
                for start, end, value in records if value is not None]

    got = idle_since(as_records(presence), as_records(routing), is_agent=is_agent, now=NOW)
    assert got == (None if since is None else ago(since))
