"""Peak attribution: which pool users make up a day's (or a period's) billed peak.

Genesys's rule (Resource Center 372782): the peak P is the highest level held for 30 minutes
in total, not necessarily contiguous, so more than P distinct users may have been logged in
while the count was at P or above. Genesys ranks users by the time slices they were present
in among the slices at a count >= P and keeps the top P. Here the same is done exactly, to the
millisecond: users are ranked by time logged in while concurrency was >= P (ties: total time
logged in over the span, then user id), and the top P are attributed.

Pure: segments in, figures out; no clock, no I/O. Segments may be added query by query
(`Tally.add`), each clipped to the interval its query covered, so a period read in 7-day
queries never counts a record twice and memory follows the merged logins, not the records.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from license_monitor.billing import Histogram
from license_monitor.genesys.models import OFFLINE, PresenceSegment, RoutingSegment

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch (floored), the unit every sum here is kept in."""
    return (moment - EPOCH) // _MILLISECOND


def from_ms(milliseconds: int) -> datetime:
    """Inverse of to_ms()."""
    return EPOCH + timedelta(milliseconds=milliseconds)


@dataclass(frozen=True)
class UserTime:
    """One user's figures over the span: what the attribution ranks and shows."""

    user_id: str
    ms_at_level: int  # logged in while concurrency was >= the level
    ms_logged_in: int
    first_login: datetime
    last_logout: datetime | None  # None: still logged in when the span ends
    presence_ms: Mapping[str, int]  # non-OFFLINE system presence -> milliseconds
    routing_ms: Mapping[str, int]  # routing status -> milliseconds

    def sort_key(self) -> tuple[int, int, str]:
        """Genesys's order: most time at the level first, then most time logged in, then id."""
        return (-self.ms_at_level, -self.ms_logged_in, self.user_id)


@dataclass(frozen=True)
class Attribution:
    """The level attributed and the users it is attributed to, best ranked first."""

    start: datetime
    end: datetime
    level: int
    held_level: int  # the 30-minute rule's level over the span (== level unless one was given)
    ms_at_or_above_level: int
    histogram: Histogram
    users: tuple[UserTime, ...]  # at most `level` users
    present_at_level: int  # distinct users logged in at some instant with concurrency >= level


@dataclass
class _Login:
    spans: list[tuple[int, int]] = field(default_factory=list)
    presence_ms: dict[str, int] = field(default_factory=dict)
    routing_ms: dict[str, int] = field(default_factory=dict)
    open_at_end: bool = False


class Tally:
    """Presence and routing records of one span, added query by query, then attributed."""

    def __init__(
        self, start: datetime, end: datetime, include: Callable[[str], bool] | None = None
    ) -> None:
        if end <= start:
            raise ValueError(f"the span must end after it starts ({start} .. {end})")
        self.start, self.end = start, end
        self._start_ms, self._end_ms = to_ms(start), to_ms(end)
        self._include = include
        self._users: dict[str, _Login] = {}
        # The query being added page by page, and the users its earlier pages held: a user
        # the platform lists again on a later page is not counted twice.
        self._chunk: tuple[int, int] | None = None
        self._chunk_users: set[str] = set()

    def _clip(
        self, start: datetime, end: datetime | None, chunk: tuple[int, int]
    ) -> tuple[int, int] | None:
        low = max(to_ms(start), chunk[0])
        high = chunk[1] if end is None else min(to_ms(end), chunk[1])
        return (low, high) if low < high else None

    def add(
        self,
        presence: Iterable[PresenceSegment],
        routing: Iterable[RoutingSegment] = (),
        *,
        chunk_start: datetime | None = None,
        chunk_end: datetime | None = None,
    ) -> None:
        """Add the records of one page of a query for [chunk_start, chunk_end) (default: the
        span); pages of one query are added one after the other.

        Records are clipped to that interval: a record that overlaps two queries is counted
        once in each part, and a row or record the platform repeats is counted once.
        """
        chunk = (max(self._start_ms, to_ms(chunk_start or self.start)),
                 min(self._end_ms, to_ms(chunk_end or self.end)))
        if chunk[0] >= chunk[1]:
            return
        if chunk != self._chunk:
            self._chunk, self._chunk_users = chunk, set()
        earlier = self._chunk_users
        added: set[str] = set()
        seen: set[tuple[str, int, str]] = set()
        seen_routing: set[tuple[str, int, str]] = set()
        logged_in: dict[str, list[tuple[int, int]]] = {}  # this page's logins, per user
        for segment in presence:
            if segment.presence == OFFLINE or segment.user_id in earlier:
                continue
            if self._include is not None and not self._include(segment.user_id):
                continue
            key = (segment.user_id, to_ms(segment.start), segment.presence)
            clipped = self._clip(segment.start, segment.end, chunk)
            if key in seen or clipped is None:
                continue
            seen.add(key)
            added.add(segment.user_id)
            login = self._users.setdefault(segment.user_id, _Login())
            login.spans.append(clipped)
            logged_in.setdefault(segment.user_id, []).append(clipped)
            login.presence_ms[segment.presence] = (
                login.presence_ms.get(segment.presence, 0) + clipped[1] - clipped[0])
            if clipped[1] == self._end_ms and (segment.end is None or segment.end > self.end):
                login.open_at_end = True
        unions = {user_id: _union(spans) for user_id, spans in logged_in.items()}
        for record in routing:
            if record.user_id in earlier or record.user_id not in unions:
                continue
            key = (record.user_id, to_ms(record.start), record.status)
            clipped = self._clip(record.start, record.end, chunk)
            if key in seen_routing or clipped is None:
                continue
            seen_routing.add(key)
            # Routing time only while logged in: a logged-out user is OFF_QUEUE, never idle.
            overlap = _overlap(unions[record.user_id], clipped)
            if overlap:
                login = self._users[record.user_id]
                login.routing_ms[record.status] = login.routing_ms.get(record.status, 0) + overlap
        earlier |= added

    def attribute(self, level: int | None = None) -> Attribution:
        """Attribute `level` (default: the highest level held 30 minutes over the span)."""
        if level is not None and level < 1:
            raise ValueError(f"the level must be at least 1, not {level}")
        merged = {user_id: _union(login.spans) for user_id, login in self._users.items()}
        times, levels = _sweep(merged.values())
        histogram = _histogram(times, levels, self._end_ms - self._start_ms)
        held = histogram.billable_peak
        chosen = held if level is None else level
        # at_level[i]: milliseconds with concurrency >= chosen in [times[0], times[i]).
        at_level = [0]
        for index in range(len(times) - 1):
            width = times[index + 1] - times[index] if levels[index] >= chosen else 0
            at_level.append(at_level[-1] + width)

        def ms_at_level(spans: list[tuple[int, int]]) -> int:
            return sum(at_level[bisect_left(times, high)] - at_level[bisect_left(times, low)]
                       for low, high in spans)

        ranked: list[UserTime] = []
        for user_id, spans in merged.items():
            if not spans:
                continue
            login = self._users[user_id]
            ranked.append(UserTime(
                user_id=user_id,
                ms_at_level=ms_at_level(spans) if chosen > 0 else 0,
                ms_logged_in=sum(high - low for low, high in spans),
                first_login=from_ms(spans[0][0]),
                last_logout=None if login.open_at_end else from_ms(spans[-1][1]),
                presence_ms=dict(sorted(login.presence_ms.items())),
                routing_ms=dict(sorted(login.routing_ms.items())),
            ))
        ranked.sort(key=UserTime.sort_key)
        present = [user for user in ranked if user.ms_at_level > 0]
        return Attribution(
            start=self.start, end=self.end, level=chosen, held_level=held,
            ms_at_or_above_level=histogram.ms_at_or_above(chosen) if chosen > 0 else 0,
            histogram=histogram, users=tuple(present[:chosen]),
            present_at_level=len(present),
        )


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One user's spans as a sorted union; touching spans are one login (no drop to zero)."""
    union: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if union and low <= union[-1][1]:
            if high > union[-1][1]:
                union[-1] = (union[-1][0], high)
            continue
        union.append((low, high))
    return union


def _overlap(union: list[tuple[int, int]], span: tuple[int, int]) -> int:
    """Milliseconds of `span` inside a sorted union of spans."""
    total = 0
    index = max(0, bisect_left(union, (span[0], span[0])) - 1)
    while index < len(union) and union[index][0] < span[1]:
        low, high = max(union[index][0], span[0]), min(union[index][1], span[1])
        total += max(0, high - low)
        index += 1
    return total


def _sweep(logins: Iterable[list[tuple[int, int]]]) -> tuple[list[int], list[int]]:
    """Distinct change instants and the concurrency just after each (ends before starts)."""
    events: list[tuple[int, int]] = []
    for spans in logins:
        for low, high in spans:
            events.append((low, 1))
            events.append((high, -1))
    events.sort()
    times: list[int] = []
    levels: list[int] = []
    level = 0
    for moment, change in events:
        level += change
        if times and times[-1] == moment:
            levels[-1] = level
        else:
            times.append(moment)
            levels.append(level)
    return times, levels


def _histogram(times: list[int], levels: list[int], span_ms: int) -> Histogram:
    """Milliseconds at exactly each level (level 0: the rest of the span)."""
    exact: dict[int, int] = {}
    for index in range(len(times) - 1):
        width = times[index + 1] - times[index]
        if width and levels[index]:
            exact[levels[index]] = exact.get(levels[index], 0) + width
    rest = span_ms - sum(exact.values())
    if rest > 0:
        exact[0] = rest
    return Histogram(exact_ms=exact)
