"""One usage measurement against Genesys Cloud: window activity, exact concurrency, the split.

`measure()` is the one measurement path: the measure_usage activity runs it, and so do the
tests. Every figure of one check comes from one roster. A check never builds the full roster
(roster_refresh.py does, in the background): without one it reads only the pool (who holds a
concurrent license), and the split is "pending" until the classes are built.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from license_monitor import deadline
from license_monitor.deadline import ContextThreadPoolExecutor
from license_monitor.genesys.models import (
    OFFLINE,
    PresenceSegment,
    RoutingSegment,
    normalise_presence,
)
from license_monitor.idle import IdleSummary, find_idle
from license_monitor.roster import (
    POOL_FROM_LICENSES,
    AgentRule,
    Pool,
    Roster,
    Split,
    keep_classes,
    load_pool,
    split,
)
from license_monitor.times import format_check_time, format_precise, parse_time
from license_monitor.usage import MinuteProfile, measure_concurrency

if TYPE_CHECKING:
    from license_monitor.genesys.client import GenesysClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageReport:
    """The figures of one check over pool users (DESIGN.md §3), JSON-safe via to_dict()."""

    checked_at: datetime
    window_start: datetime
    window_end: datetime
    now: Split
    peak: Split
    window_distinct: int
    peak_at: datetime
    pool_source: str
    unclassified: int
    minutes: dict[datetime, MinuteProfile]
    # Who `now` counts: for the presence gauge's reconciliation inside the activity; never in
    # to_dict() (user ids do not cross the orchestration history).
    now_users: frozenset[str] = dataclasses.field(default=frozenset(), compare=False)
    idle: IdleSummary | None = None  # pool users logged in without working (idle.py)

    @property
    def split_pending(self) -> bool:
        """True while some counted user's class (agent or admin) is not known yet."""
        return bool(self.now.pending or self.peak.pending)

    def to_dict(self) -> dict[str, Any]:
        """JSON form using the CLI's field names (DESIGN.md §9)."""
        return {
            **({"idle": self.idle.to_dict()} if self.idle is not None else {}),
            "checked_at": format_check_time(self.checked_at),
            "window": {"start": format_check_time(self.window_start),
                       "end": format_check_time(self.window_end)},
            "concurrent": {"now": self.now.to_dict(), "peak": self.peak.to_dict()},
            "window_distinct": self.window_distinct,
            "peak_at": format_check_time(self.peak_at),
            "pool_source": self.pool_source,
            "unclassified": self.unclassified,
            "minutes": {
                format_precise(minute): profile.encode()
                for minute, profile in sorted(self.minutes.items())
            },
            **({"split": "pending"} if self.split_pending else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageReport:
        """Rebuild a report from to_dict() output."""
        return cls(
            checked_at=parse_time(data["checked_at"]),
            window_start=parse_time(data["window"]["start"]),
            window_end=parse_time(data["window"]["end"]),
            now=Split.from_dict(data["concurrent"]["now"]),
            peak=Split.from_dict(data["concurrent"]["peak"]),
            window_distinct=int(data["window_distinct"]),
            peak_at=parse_time(data["peak_at"]),
            pool_source=str(data["pool_source"]),
            unclassified=int(data["unclassified"]),
            minutes={
                parse_time(minute): MinuteProfile.decode(str(profile))
                for minute, profile in (data.get("minutes") or {}).items()
            },
            idle=IdleSummary.from_dict(data["idle"]) if data.get("idle") else None,
        )


# ------------------------------------------------------------------ pure helpers


def online_users(segments: Iterable[PresenceSegment], start: datetime, end: datetime) -> set[str]:
    """Users with non-OFFLINE time inside [start, end), whoever they are."""
    return {
        s.user_id
        for s in segments
        if normalise_presence(s.presence) != OFFLINE
        and s.start < end
        and (s.end is None or (s.end > start and s.end > s.start))
    }


def pool_segments(segments: Iterable[PresenceSegment], roster: Roster) -> list[PresenceSegment]:
    """The segments billing counts: pool users', and those of users who have left the pool,
    up to when the roster first missed them (Genesys bills whoever held a licence then)."""
    kept = []
    for segment in segments:
        if roster.in_pool(segment.user_id):
            kept.append(segment)
            continue
        left = roster.departed.get(segment.user_id)
        if left is None or segment.start >= left:
            continue
        clipped = segment.end is None or segment.end > left
        kept.append(dataclasses.replace(segment, end=left) if clipped else segment)
    return kept


def strangers(user_ids: Iterable[str], roster: Roster) -> frozenset[str]:
    """Logged-in users the roster has never seen (new hires), ignoring known unresolved ones."""
    return frozenset(
        user_id
        for user_id in user_ids
        if not roster.knows(user_id) and user_id not in roster.unresolved
    )


# ------------------------------------------------------------------ Genesys reads


def fetch_segments(
    client: GenesysClient, start: datetime, end: datetime, parallel_pages: int = 4
) -> list[PresenceSegment]:
    """Presence segments of every user not OFFLINE at some point of the window."""
    return list(client.iter_presence_details(start, end, parallel=parallel_pages))


def fetch_details(
    client: GenesysClient, start: datetime, end: datetime, parallel_pages: int = 4
) -> tuple[list[PresenceSegment], list[RoutingSegment]]:
    """Presence and routing status records of every user not OFFLINE at some point of the
    window (one read: the same pages)."""
    presence: list[PresenceSegment] = []
    routing: list[RoutingSegment] = []
    for page in client.iter_details_pages(start, end, parallel=parallel_pages):
        presence.extend(page.segments)
        routing.extend(page.routing)
    return presence, routing


def measure_minutes(
    client: GenesysClient, start: datetime, end: datetime, roster: Roster, *,
    window: timedelta, parallel_pages: int = 4,
) -> dict[datetime, MinuteProfile]:
    """Each whole minute of [start, end) as its step function, in window-sized queries.

    For minutes no check measured (an outage) and for rebuilding a period: only the user
    details are read (the aggregates add nothing to the billing minutes), with `roster`.
    """
    minutes: dict[datetime, MinuteProfile] = {}
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + window, end)
        segments = fetch_segments(client, chunk_start, chunk_end, parallel_pages)
        minutes.update(measure_concurrency(
            pool_segments(segments, roster), chunk_start, chunk_end).minutes)
        chunk_start = chunk_end
    return minutes


def refresh_for_strangers(
    client: GenesysClient,
    roster: Roster,
    logged_in: Iterable[str],
    *,
    license_pattern: re.Pattern[str],
    now: datetime,
    concurrent_pool: Pool = POOL_FROM_LICENSES,
    full_roster: Callable[[], Roster | None] | None = None,
    rule: AgentRule | None = None,  # unused: the classes are read in the background
) -> Roster:
    """Read the pool again when logged-in users are unknown to the roster (new hires), else
    return it. The full roster if `full_roster` gives one in its short wait (a small org's),
    else only the pool (one listing): the known users keep their classes, the new pool users
    are unclassified until the background refresh.

    Users still unknown after the read are kept in `unresolved` so later checks do not read
    it again for them.
    """
    logged_in = set(logged_in)
    unknown = strangers(logged_in, roster)
    if not unknown:
        return roster
    logger.info("%d logged-in users are not in the roster: reading it again", len(unknown))
    built = full_roster() if full_roster is not None else None
    if built is not None and built.pool_source == roster.pool_source:
        reread = built.succeeding(roster)
    else:
        reread = keep_classes(
            read_pool(client, license_pattern, now, concurrent_pool, previous=roster), roster)
    still_unknown = frozenset(user_id for user_id in logged_in if not reread.knows(user_id))
    if still_unknown:
        logger.warning(
            "%d logged-in users are not in the license listing; they are not counted",
            len(still_unknown),
        )
    return dataclasses.replace(reread, unresolved=still_unknown)


def read_pool(
    client: GenesysClient, license_pattern: re.Pattern[str], now: datetime,
    concurrent_pool: Pool, *, on_roster: Callable[[Roster], None] | None = None,
    previous: Roster | None = None,
) -> Roster:
    """Read who is in the pool under a deadline of its own (deadline.ROSTER_BUILD_SECONDS) and
    hand it to `on_roster` at once, so a check that runs out of time later keeps it. Who left
    the pool since `previous` is remembered (Roster.succeeding)."""
    with deadline.allowing(deadline.ROSTER_BUILD_SECONDS, "reading the license pool"):
        roster = load_pool(client, license_pattern, now,
                           concurrent_pool=concurrent_pool).succeeding(previous)
    if on_roster is not None:
        on_roster(roster)
    return roster


def _roster_now(
    client: GenesysClient, license_pattern: re.Pattern[str], now: datetime,
    concurrent_pool: Pool, *, on_roster: Callable[[Roster], None] | None,
    full_roster: Callable[[], Roster | None] | None, previous: Roster | None,
) -> Roster:
    """The full roster if built within its short wait, else the pool read now."""
    built = full_roster() if full_roster is not None else None
    if built is not None and built.pool_source == concurrent_pool:
        built = built.succeeding(previous)
        if on_roster is not None:
            on_roster(built)
        return built
    return read_pool(client, license_pattern, now, concurrent_pool, on_roster=on_roster,
                     previous=previous)


# ------------------------------------------------------------------ one whole measurement


def measure(
    client: GenesysClient,
    *,
    now: datetime,
    window_minutes: int,
    license_pattern: re.Pattern[str],
    roster: Roster | None,
    parallel_pages: int = 4,
    concurrent_pool: Pool = POOL_FROM_LICENSES,
    on_roster: Callable[[Roster], None] | None = None,
    full_roster: Callable[[], Roster | None] | None = None,
    idle_after_minutes: int = 60,
) -> tuple[UsageReport, Roster]:
    """Measure usage over [now - window, now] and return the report and the roster used.

    The report's `minutes` are the step functions of every whole minute from the one holding
    the window's start to the last one ended before `now`.

    The roster is used whatever its age (roster_refresh.py keeps it fresh in the background)
    when built for the same `concurrent_pool`. Without one, or when logged-in users are
    unknown to it (new hires), `full_roster` starts the background build and gives it a few
    seconds (None when it is not done by then); failing that, the pool alone is read, at the
    same time as the usage queries (and handed to `on_roster` as soon as read).
    """
    if window_minutes <= 0:
        raise ValueError(f"the window must be at least one minute, not {window_minutes}")
    start = now - timedelta(minutes=window_minutes)
    # The details are read from the minute holding the window's start, so the report's
    # minutes are every whole minute the window touches: the billing ledger's span ends on
    # minute boundaries and never loses the minute where the window begins.
    first_minute = start.replace(second=0, microsecond=0)
    # A roster built on another counting basis (or an older wording of it) is never reused.
    cached = roster if (
        roster is not None and roster.pool_source == concurrent_pool) else None

    # The three reads are independent: run them side by side (the client is thread-safe and
    # every request still goes through its request budget).
    # The pool's threads carry the check's deadline (a context variable) to their requests.
    with ContextThreadPoolExecutor(max_workers=3) as pool:
        active_future = pool.submit(client.users_logged_in, start, now)
        details_future = pool.submit(fetch_details, client, first_minute, now, parallel_pages)
        if cached is None:
            current = pool.submit(_roster_now, client, license_pattern, now, concurrent_pool,
                                  on_roster=on_roster, full_roster=full_roster,
                                  previous=roster).result()
        else:
            current = cached
        active = active_future.result()
        segments, routing = details_future.result()

    # Anyone logged in per the details was active in the window, whatever the aggregates say
    # (they are computed apart and may lag): so window_distinct >= peak, always.
    logged_in = active | online_users(segments, start, now)
    if cached is not None:
        current = refresh_for_strangers(
            client, current, logged_in, license_pattern=license_pattern, now=now,
            concurrent_pool=concurrent_pool, full_roster=full_roster,
        )
    else:
        # Read during this very check: reading it again would see the same listing.
        unknown = frozenset(user_id for user_id in logged_in if not current.knows(user_id))
        current = dataclasses.replace(current, unresolved=unknown)

    concurrency = measure_concurrency(segments, start, now, include=current.in_pool)
    report = UsageReport(
        checked_at=now,
        window_start=start,
        window_end=now,
        now=split(concurrency.now_users, current),
        peak=split(concurrency.peak_users, current),
        window_distinct=split(logged_in, current).total,
        peak_at=concurrency.peak_at,
        pool_source=current.pool_source,
        unclassified=len(current.unresolved & logged_in),
        minutes=measure_concurrency(
            pool_segments(segments, current), first_minute, now).minutes,
        now_users=concurrency.now_users,
        idle=IdleSummary.of(find_idle(
            segments, routing, now=now, idle_after=timedelta(minutes=idle_after_minutes),
            is_agent=current.agents.__contains__, in_pool=current.in_pool), idle_after_minutes),
    )
    _log_report(report)
    return report, current


def _log_report(report: UsageReport) -> None:
    logger.info(
        "Concurrent licenses: now %d (%d agents, %d admins), peak %d at %s, "
        "window distinct %d, pool from %s",
        report.now.total,
        report.now.agents,
        report.now.admins,
        report.peak.total,
        format_precise(report.peak_at),
        report.window_distinct,
        report.pool_source,
    )
