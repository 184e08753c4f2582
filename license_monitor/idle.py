"""Idle license holders: pool users logged in for IDLE_AFTER_MINUTES or more without working.

What counts as working, from Genesys's presence documentation ("Agent presence, status, and
activity indicators" and "Presence, status, and activity indicators", Resource Center):

- Anybody handling an interaction works, whatever the presence: routing status INTERACTING
  (an ACD interaction) or COMMUNICATING (a non-queue call).
- An **agent** works while On Queue ("idle and available to accept new interactions"), unless
  the routing status is NOT_RESPONDING (alerts go unanswered: the lid is closed), and while
  Busy, Meeting or Training: Genesys reports those as time spent "participating in meetings or
  training", work that holds a license by design. Available (logged in but off queue), Away,
  Break, Meal and Idle are not working for an agent.
- An **admin** (back-office user) works while Available ("your default status" at the desk),
  Busy, Meeting, Training or On Queue. Only Away, Break, Meal and Idle are not working.

A user is idle when every moment from `since` to the check time is not working, the user is
logged in at the check time, and `since` lies IDLE_AFTER_MINUTES or more before it. What the
records cannot tell: a supervisor watching dashboards while Available looks like work, and an
admin whose laptop is shut while Available is indistinguishable from one at the desk.

Pure: records in, figures out; no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from license_monitor.genesys.models import OFFLINE, PresenceSegment, RoutingSegment
from license_monitor.times import clock_time, format_time, parse_time

AGENT_NOT_WORKING = frozenset({"AVAILABLE", "AWAY", "BREAK", "MEAL", "IDLE"})
ADMIN_NOT_WORKING = frozenset({"AWAY", "BREAK", "MEAL", "IDLE"})
HANDLING = frozenset({"INTERACTING", "COMMUNICATING"})
NOT_RESPONDING = "NOT_RESPONDING"
LISTED = 20  # users named in the check JSON


def working(is_agent: bool, presence: str, routing: str | None) -> bool:
    """Whether a moment in `presence` with `routing` (None: no routing record) is work."""
    if routing in HANDLING:
        return True
    if is_agent:
        if presence == "ON_QUEUE":
            return routing != NOT_RESPONDING
        return presence not in AGENT_NOT_WORKING
    return presence not in ADMIN_NOT_WORKING


@dataclass(frozen=True)
class IdleUser:
    """A pool user holding a license without working since `since`, in `presence` now."""

    user_id: str
    is_agent: bool
    since: datetime
    presence: str

    def to_dict(self, name: str | None = None) -> dict[str, Any]:
        """The JSON row: id, name (None where unknown), class, since, presence."""
        return {"id": self.user_id, "name": name,
                "class": "agent" if self.is_agent else "admin",
                "since": format_time(self.since), "presence": self.presence}


def _at(records: list[tuple[datetime, datetime | None, str]], moment: datetime) -> str | None:
    """The value of the record covering `moment` ([start, end)), or None."""
    for start, end, value in reversed(records):
        if start <= moment and (end is None or moment < end):
            return value
    return None


def idle_since(
    presence: list[tuple[datetime, datetime | None, str]],
    routing: list[tuple[datetime, datetime | None, str]],
    *, is_agent: bool, now: datetime,
) -> datetime | None:
    """When the user's stretch without work that reaches `now` began; None when the user is
    not logged in at `now` or is working then.

    Walks back over the instants where presence or routing changes; a moment with no presence
    record is unknown, and the stretch is never made longer than the records show.
    """
    current = _at(presence, now)
    if current is None or current == OFFLINE or working(is_agent, current, _at(routing, now)):
        return None
    changes = sorted({t for start, end, _ in presence + routing for t in (start, end)
                      if t is not None and t < now}, reverse=True)
    since = now
    for moment in changes:
        state = _at(presence, moment)
        if state is None or state == OFFLINE or working(is_agent, state, _at(routing, moment)):
            break
        since = moment
    return since


def find_idle(
    presence: Iterable[PresenceSegment],
    routing: Iterable[RoutingSegment],
    *,
    now: datetime,
    idle_after: timedelta,
    is_agent: Callable[[str], bool],
    in_pool: Callable[[str], bool],
) -> list[IdleUser]:
    """Pool users idle for `idle_after` or more at `now`, longest idle first (then by id)."""
    by_user: dict[str, tuple[list[tuple[datetime, datetime | None, str]],
                             list[tuple[datetime, datetime | None, str]]]] = {}
    for segment in presence:
        if in_pool(segment.user_id):
            by_user.setdefault(segment.user_id, ([], []))[0].append(
                (segment.start, segment.end, segment.presence))
    for record in routing:
        if record.user_id in by_user:
            by_user[record.user_id][1].append((record.start, record.end, record.status))
    found = []
    for user_id, (presence_records, routing_records) in by_user.items():
        presence_records.sort(key=lambda record: record[0])
        routing_records.sort(key=lambda record: record[0])
        agent = is_agent(user_id)
        since = idle_since(presence_records, routing_records, is_agent=agent, now=now)
        if since is not None and now - since >= idle_after:
            found.append(IdleUser(user_id, agent, since, _at(presence_records, now) or ""))
    found.sort(key=lambda user: (user.since, user.user_id))
    return found


@dataclass(frozen=True)
class IdleSummary:
    """The `idle` object of the check JSON."""

    count: int
    agents: int
    admins: int
    users: tuple[IdleUser, ...]  # the longest idle first, at most LISTED
    after_minutes: int

    @classmethod
    def of(cls, idle: list[IdleUser], after_minutes: int) -> IdleSummary:
        """Summarise find_idle()'s answer."""
        agents = sum(1 for user in idle if user.is_agent)
        return cls(len(idle), agents, len(idle) - agents, tuple(idle[:LISTED]), after_minutes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IdleSummary:
        """Inverse of to_dict() (names are not kept)."""
        return cls(
            count=int(data["count"]), agents=int(data["agents"]), admins=int(data["admins"]),
            users=tuple(IdleUser(str(row["id"]), row.get("class") == "agent",
                                 parse_time(str(row["since"])), str(row.get("presence", "")))
                        for row in data.get("users", ())),
            after_minutes=int(data.get("after_minutes", 60)))

    def line(self, logged_in: int, now: datetime, names: Mapping[str, str] | None = None,
             top: int = 3) -> str | None:
        """One sentence for alerts: '14 of the 512 logged in have not worked for 60+ minutes
        (top 3: ...)'; None when nobody is idle."""
        if not self.count:
            return None
        names = names or {}
        shown = ", ".join(
            f"{names.get(user.user_id) or user.user_id} {user.presence.replace('_', ' ').lower()} "
            f"since {clock_time(user.since, now)}" for user in self.users[:top])
        return (f"{self.count} of the {logged_in} logged in have not worked for "
                f"{self.after_minutes}+ minutes (top {min(top, len(self.users))}: {shown})")

    def to_dict(self, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """JSON form: count, agents, admins, after_minutes, users."""
        names = names or {}
        return {"count": self.count, "agents": self.agents, "admins": self.admins,
                "after_minutes": self.after_minutes,
                "users": [user.to_dict(names.get(user.user_id)) for user in self.users]}
