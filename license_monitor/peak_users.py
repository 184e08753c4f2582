"""`peak-users`: who made up a day's or a billing period's billed peak (RC 372782).

Reads the user details of the day or period (queries of at most 7 days, the query's interval
limit, paged), adds them to an attribution.Tally query by query, and names the attributed
users from the directory. Every request goes through the Genesys client's request budget.

Cost: the roster when no fresh one is cached (users, licenses and the agent rule's listings),
plus the users and license listings (names, divisions, license ids), plus one details page
per 100 users logged in during each query span.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from license_monitor.attribution import Attribution, Tally, UserTime
from license_monitor.billing import billing_period_start
from license_monitor.roster import Roster, load_roster
from license_monitor.runtime import Services
from license_monitor.state import StorageUnavailable
from license_monitor.times import format_precise

logger = logging.getLogger(__name__)

QUERY_SPAN = timedelta(days=7)  # the user details query's longest interval
PARALLEL_PAGES = 4
_TIER = re.compile(r"(\d+)\D*$")


@dataclass(frozen=True)
class Span:
    """The time attributed: a UTC day, or a billing period, up to now at the latest."""

    start: datetime
    end: datetime
    day: date | None = None
    period_start: date | None = None


def day_span(day: date, now: datetime) -> Span:
    """The UTC day, cut at `now` while it runs.

    Raises:
        ValueError: the day has not begun.
    """
    start = datetime.combine(day, time(), UTC)
    if start >= now:
        raise ValueError(f"{day.isoformat()} has not begun yet (UTC)")
    return Span(start, min(start + timedelta(days=1), now), day=day)


def period_span(any_day: date, anchor_day: int, now: datetime) -> Span:
    """The billing period holding `any_day` (BILLING_ANCHOR_DAY), cut at `now` while it runs.

    Raises:
        ValueError: the period has not begun.
    """
    first = billing_period_start(datetime.combine(any_day, time(), UTC), anchor_day)
    start = datetime.combine(first, time(), UTC)
    if start >= now:
        raise ValueError(f"the billing period of {any_day.isoformat()} has not begun yet")
    # The next period starts at the anchor of a later month: 32 days on is always in it.
    following = billing_period_start(start + timedelta(days=32), anchor_day)
    return Span(start, min(datetime.combine(following, time(), UTC), now), period_start=first)


def highest_license(licenses: tuple[str, ...], pattern: re.Pattern[str]) -> str:
    """The highest concurrent-billed license id held (cloudCX4 > cloudCX3); "" when none.

    Genesys bills the highest CX level a user held in the period.
    """
    matching = [license_id for license_id in licenses if pattern.search(license_id)]

    def tier(license_id: str) -> tuple[int, str]:
        found = _TIER.search(license_id)
        return (int(found.group(1)) if found else -1, license_id)

    return max(matching, key=tier, default="")


@dataclass(frozen=True)
class Directory:
    """What a row shows of a user: name, division, license ids."""

    names: Mapping[str, str]
    divisions: Mapping[str, str]
    licenses: Mapping[str, tuple[str, ...]]


def read_directory(services: Services) -> Directory:
    """Names and divisions of every user (any state: someone counted may have left since) and
    the license ids they hold."""
    names: dict[str, str] = {}
    divisions: dict[str, str] = {}
    for user in services.client.iter_users(state="any", parallel=PARALLEL_PAGES):
        names[user.id] = user.name
        divisions[user.id] = user.division
    licenses = {entry.user_id: entry.licenses
                for entry in services.client.iter_user_licenses(parallel=PARALLEL_PAGES)}
    return Directory(names, divisions, licenses)


def current_roster(services: Services, now: datetime) -> Roster:
    """The stored roster while fresh and of the configured pool, else one read now."""
    settings = services.settings
    try:
        stored = services.state.roster.load() if services.state is not None else None
    except StorageUnavailable as err:  # the roster can be read from Genesys instead
        logger.warning("The stored roster could not be read (%s); reading it from Genesys", err)
        stored = None
    if stored is not None:
        roster = Roster.from_dict(stored)
        if (roster.is_fresh(now, settings.roster_ttl_minutes)
                and roster.pool_source == settings.concurrent_pool):
            return roster
    return load_roster(services.client, settings.agent_rule,
                       settings.concurrent_license_pattern, now,
                       concurrent_pool=settings.concurrent_pool)


def attribute(
    services: Services, span: Span, roster: Roster, *, level: int | None = None,
    on_page: Callable[[str], None] | None = None,
) -> Attribution:
    """Read the span's user details query by query (7 days at most each) and attribute.

    `on_page` is called after each details page with what is being read (a progress bar).
    """
    tally = Tally(span.start, span.end, include=roster.in_pool)
    cursor = span.start
    while cursor < span.end:
        chunk_end = min(cursor + QUERY_SPAN, span.end)
        for page in services.client.iter_details_pages(cursor, chunk_end,
                                                       parallel=PARALLEL_PAGES):
            tally.add(page.segments, page.routing, chunk_start=cursor, chunk_end=chunk_end)
            if on_page is not None:
                on_page(cursor.date().isoformat())
        cursor = chunk_end
    return tally.attribute(level)


def _seconds(milliseconds: int) -> float | int:
    whole, rest = divmod(milliseconds, 1000)
    return whole if not rest else milliseconds / 1000


def user_row(user: UserTime, roster: Roster, directory: Directory,
             pattern: re.Pattern[str]) -> dict[str, Any]:
    """One attributed user as the JSON row (DESIGN.md §9 `peak-users`)."""
    return {
        "id": user.user_id,
        "name": directory.names.get(user.user_id, ""),
        "division": directory.divisions.get(user.user_id, ""),
        "license": highest_license(directory.licenses.get(user.user_id, ()), pattern),
        "class": "agent" if user.user_id in roster.agents else "admin",
        "seconds_at_peak": _seconds(user.ms_at_level),
        "seconds_logged_in": _seconds(user.ms_logged_in),
        "first_login": format_precise(user.first_login),
        "last_logout": None if user.last_logout is None else format_precise(user.last_logout),
        "presence": {name: _seconds(ms) for name, ms in user.presence_ms.items()},
        "routing": {name: _seconds(ms) for name, ms in user.routing_ms.items()},
    }


def peak_users(
    services: Services, span: Span, *, level: int | None = None,
    on_page: Callable[[str], None] | None = None, now: datetime,
) -> dict[str, Any]:
    """The `peak-users` JSON for a span: the level, the users it is attributed to, and cost."""
    settings = services.settings
    requests_before = services.client.request_count
    services.client.ensure_token()
    roster = current_roster(services, now)
    result = attribute(services, span, roster, level=level, on_page=on_page)
    directory = read_directory(services)
    where: dict[str, str] = (
        {"day": span.day.isoformat()} if span.day is not None
        else {"period_start": span.period_start.isoformat()} if span.period_start is not None
        else {})
    return {
        "level": result.level,
        **where,
        "start": format_precise(span.start),
        "end": format_precise(span.end),
        "held_level": result.held_level,
        "seconds_at_or_above_level": _seconds(result.ms_at_or_above_level),
        "present_at_level": result.present_at_level,
        "requests": services.client.request_count - requests_before,
        "users": [user_row(user, roster, directory, settings.concurrent_license_pattern)
                  for user in result.users],
    }
