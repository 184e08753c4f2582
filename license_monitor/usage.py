"""Pure measurement: presence segments -> concurrency now/peak, aggregates -> window distinct."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from license_monitor.genesys.models import OFFLINE, PresenceSegment, normalise_presence

MINUTE = timedelta(minutes=1)
MILLISECOND = timedelta(milliseconds=1)
MINUTE_MS = 60_000


@dataclass(frozen=True)
class MinuteProfile:
    """One whole minute's concurrency as a step function: milliseconds at each level.

    `ms_at` maps every level the minute held (0 included) to how long it held it; the values
    add up to 60,000. `peak` is the minute's highest level, however briefly held.
    """

    ms_at: Mapping[int, int]

    @property
    def peak(self) -> int:
        """The highest level of the minute."""
        return max((level for level, ms in self.ms_at.items() if ms > 0), default=0)

    def ms_at_or_above(self, level: int) -> int:
        """Milliseconds of this minute with concurrency of at least `level`."""
        return sum(ms for at, ms in self.ms_at.items() if at >= level)

    def encode(self) -> str:
        """Compact text for storage and activity results: 'level:ms,level:ms' by level."""
        return ",".join(f"{level}:{ms}" for level, ms in sorted(self.ms_at.items()) if ms)

    @classmethod
    def decode(cls, text: str) -> MinuteProfile:
        """Inverse of encode(); refuses anything that is not a whole minute."""
        ms_at: dict[int, int] = {}
        for part in filter(None, text.split(",")):
            level, _, ms = part.partition(":")
            ms_at[int(level)] = ms_at.get(int(level), 0) + int(ms)
        if sum(ms_at.values()) != MINUTE_MS or any(
                level < 0 or ms < 0 for level, ms in ms_at.items()):
            raise ValueError(f"not a minute's concurrency profile: {text[:80]!r}")
        return cls(ms_at)

    @classmethod
    def flat(cls, level: int) -> MinuteProfile:
        """A minute held at one level throughout."""
        return cls({level: MINUTE_MS})


def logged_in_during(seconds_by_presence: Mapping[str, int]) -> bool:
    """Whether a user had any non-OFFLINE time (tSystemPresence sums per presence, any spelling)."""
    return any(
        amount > 0 and normalise_presence(presence) != OFFLINE
        for presence, amount in seconds_by_presence.items()
    )


@dataclass(frozen=True)
class Concurrency:
    """Exact concurrency of one window: who is logged in at its end, and its peak."""

    now_users: frozenset[str]
    peak: int
    peak_users: frozenset[str]
    peak_at: datetime
    minutes: dict[datetime, MinuteProfile]


# A logged-in span of one user after merging and clipping: [start, end), end None = past the
# window's end (the user is still logged in at `end`).
_Span = tuple[datetime, datetime | None]


def _logged_in_spans(
    segments: Iterable[PresenceSegment],
    start: datetime,
    end: datetime,
    include: Callable[[str], bool] | None,
) -> dict[str, list[_Span]]:
    """Clip every non-OFFLINE segment to the window and merge each user's spans into a union."""
    raw: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for segment in segments:
        if normalise_presence(segment.presence) == OFFLINE:
            continue
        if include is not None and not include(segment.user_id):
            continue
        seg_end = segment.end
        if seg_end is not None and seg_end <= segment.start:
            continue  # empty or malformed segment: no time logged in
        if segment.start >= end or (seg_end is not None and seg_end <= start):
            continue  # outside the window, or no time inside it
        clipped_end = None if seg_end is None or seg_end > end else seg_end
        raw.setdefault(segment.user_id, []).append((max(segment.start, start), clipped_end))

    merged: dict[str, list[_Span]] = {}
    for user_id, spans in raw.items():
        spans.sort(key=lambda span: span[0])
        union: list[_Span] = []
        for span_start, span_end in spans:
            if union:
                last_start, last_end = union[-1]
                # Touching or overlapping spans are one login: a user switching presence at
                # instant t (a.end == b.start) never drops to zero at t.
                if last_end is None or span_start <= last_end:
                    if last_end is not None and (span_end is None or span_end > last_end):
                        union[-1] = (last_start, span_end)
                    continue
            union.append((span_start, span_end))
        merged[user_id] = union
    return merged


def measure_concurrency(
    segments: Iterable[PresenceSegment],
    start: datetime,
    end: datetime,
    include: Callable[[str], bool] | None = None,
) -> Concurrency:
    """Measure who is logged in at `end`, the window's peak, and per-minute maxima.

    The window's instants are [start, end); a segment [s, e) is logged in at t when s <= t < e
    (open segments run past `end`). `now_users` are the users whose login covers `end` and
    began before it: a session starting exactly at `end` has no time in the window yet and is
    counted by the next check, which keeps now <= peak <= window distinct exact.
    """
    if end <= start:
        raise ValueError(f"the window must end after it starts ({start} .. {end})")
    spans_by_user = _logged_in_spans(segments, start, end, include)

    # Sweep line: +1 at each span start, -1 at each span end; within one instant the ends go
    # first, so users handing over at t are not counted together.
    events: list[tuple[datetime, int]] = []
    now_users: set[str] = set()
    for user_id, spans in spans_by_user.items():
        for span_start, span_end in spans:
            events.append((span_start, 1))
            if span_end is None:
                now_users.add(user_id)
            else:
                events.append((span_end, -1))
    events.sort()

    times: list[datetime] = []  # distinct event instants, ascending
    levels: list[int] = []  # concurrency just after all events of that instant
    level = 0
    for moment, change in events:
        level += change
        if times and times[-1] == moment:
            levels[-1] = level
        else:
            times.append(moment)
            levels.append(level)

    # The first instant of the highest level; with nobody logged in, the window's start (no
    # span covers it then: every kept span has time in the window, so the level rose above 0).
    peak = max(levels, default=0)
    peak_at = times[levels.index(peak)] if peak else start
    peak_users = frozenset(
        user_id
        for user_id, spans in spans_by_user.items()
        if any(s <= peak_at and (e is None or e > peak_at) for s, e in spans)
    )

    return Concurrency(
        now_users=frozenset(now_users),
        peak=peak,
        peak_users=peak_users,
        peak_at=peak_at,
        minutes=_minute_profiles(times, levels, start, end),
    )


def _minute_profiles(
    times: list[datetime], levels: list[int], start: datetime, end: datetime
) -> dict[datetime, MinuteProfile]:
    """The step function of each whole minute [m, m+1) lying inside [start, end)."""
    first = start.replace(second=0, microsecond=0)
    if first < start:
        first += MINUTE
    result: dict[datetime, MinuteProfile] = {}
    minute = first
    while minute + MINUTE <= end:
        at = bisect_right(times, minute) - 1
        level = levels[at] if at >= 0 else 0
        stop = bisect_left(times, minute + MINUTE)
        ms_at: dict[int, int] = {}
        offset = 0  # milliseconds into the minute, floored: the parts add up to 60,000
        for index in range(at + 1, stop):
            changes_at = (times[index] - minute) // MILLISECOND
            ms_at[level] = ms_at.get(level, 0) + changes_at - offset
            offset, level = changes_at, levels[index]
        ms_at[level] = ms_at.get(level, 0) + MINUTE_MS - offset
        result[minute] = MinuteProfile({lvl: ms for lvl, ms in ms_at.items() if ms})
        minute += MINUTE
    return result
