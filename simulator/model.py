"""The simulated organization: users with presence timelines, queues, groups and roles."""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from license_monitor.genesys.models import (
    OFFLINE,
    format_timestamp,
    normalise_presence,
    parse_timestamp,
)

T = TypeVar("T")

# System presences in the analytics spelling, and how the users API spells each one.
USERS_API_SPELLING = {
    "AVAILABLE": "Available",
    "ON_QUEUE": "On Queue",
    "OFFLINE": "Offline",
    "BUSY": "Busy",
    "AWAY": "Away",
    "MEAL": "Meal",
    "BREAK": "Break",
    "MEETING": "Meeting",
    "TRAINING": "Training",
    "IDLE": "Idle",
}
SYSTEM_PRESENCES = tuple(USERS_API_SPELLING)

# The organization id of a SimOrg built without one: fixed, so scenarios and tests agree.
DEFAULT_ORG_ID = "5a7c2e1d-8f3b-4c6a-9e0d-1b2c3d4e5f60"

# Presence definition ids seen in every org for these three; the others are derived stably.
_WELL_KNOWN_PRESENCE_IDS = {
    "AVAILABLE": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
    "OFFLINE": "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5",
    "ON_QUEUE": "e08eaf1b-ee47-4fa9-a231-1200e284798f",
}
_PRESENCE_NAMESPACE = uuid.UUID("5d1e8a52-3c4f-4b6e-9a0d-2f7c1b9e6a10")


def organization_presence_id(presence: str) -> str:
    """Return the organization presence definition id the simulator uses for a system presence."""
    known = _WELL_KNOWN_PRESENCE_IDS.get(presence)
    return known if known is not None else str(uuid.uuid5(_PRESENCE_NAMESPACE, presence))


@dataclass(slots=True)
class SimSegment:
    """One primary presence record: [start, end); end is None while the user is still in it."""

    start: datetime
    end: datetime | None
    presence: str  # analytics spelling, e.g. "AVAILABLE", "ON_QUEUE", "OFFLINE"


# Ticks whenever a user is made or a user's state or memberships are assigned: SimOrg.members
# rebuilds its index when the tick moved. Change memberships by assigning a new list.
_MEMBERSHIP_FIELDS = frozenset({"state", "queue_ids", "group_ids", "role_ids"})
_membership_ticks = itertools.count()
_membership_tick = [next(_membership_ticks)]


@dataclass(slots=True)
class SimUser:
    """A user of the simulated org, with licenses, memberships and a presence timeline.

    Assign a new list to change `queue_ids`, `group_ids` or `role_ids` once the org serves
    requests: an edit in place is not seen by the member listings' index (SimOrg.members).
    """

    id: str
    name: str
    state: str = "active"
    licenses: list[str] = field(default_factory=list)
    queue_ids: list[str] = field(default_factory=list)
    role_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    segments: list[SimSegment] = field(default_factory=list)  # sorted, non-overlapping
    # False: in a division the OAuth client's directory role does not cover, so absent from
    # GET /api/v2/users, while analytics still reports the user's presence.
    listed: bool = True
    division: str = "Home"
    # Routing status records (status in `presence`: OFF_QUEUE, IDLE, INTERACTING, ...). Empty:
    # derived from presence when asked (SimOrg.routing_between), as most users need no more.
    routing: list[SimSegment] = field(default_factory=list)
    # When a "ghost" closed the lid: from then on an On Queue ghost is NOT_RESPONDING.
    lid_closed_at: datetime | None = None
    # When DELETE /api/v2/tokens/{userId} ended the user's sessions (tests read it).
    signed_out: list[datetime] = field(default_factory=list)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _MEMBERSHIP_FIELDS:
            _membership_tick[0] = next(_membership_ticks)
        object.__setattr__(self, name, value)


@dataclass(slots=True)
class SimQueue:
    """A routing queue."""

    id: str
    name: str


@dataclass(slots=True)
class SimGroup:
    """A directory group."""

    id: str
    name: str


@dataclass(slots=True)
class SimRole:
    """An authorization role."""

    id: str
    name: str


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class SimOrg:
    """A whole organization; `now` is the simulated current time (aware UTC) that tests move."""

    users: list[SimUser] = field(default_factory=list)
    queues: list[SimQueue] = field(default_factory=list)
    groups: list[SimGroup] = field(default_factory=list)
    roles: list[SimRole] = field(default_factory=list)
    now: datetime = field(default_factory=_utc_now)
    # GET /api/v2/organizations/me: what the monitor keys its state by.
    id: str = DEFAULT_ORG_ID
    name: str = "Simulated Org"
    _index: dict[str, SimUser] = field(default_factory=dict, init=False, repr=False, compare=False)
    _latest_query: tuple[Any, Any] | None = field(
        default=None, init=False, repr=False, compare=False)
    # Per membership attribute: (what the users were when built, active users per id).
    _members: dict[str, tuple[tuple[int, int, int], dict[str, list[SimUser]]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    # Per (user, On Queue segment start): the routing draws made so far (see _RoutingDraws).
    _routing_draws: dict[tuple[str, datetime], _RoutingDraws] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def user(self, user_id: str) -> SimUser:
        """Return the user with this id (KeyError if none); an index keeps this O(1)."""
        found = self._index.get(user_id)
        if found is None or found.id != user_id or len(self._index) != len(self.users):
            # The user list is public and tests edit it directly: rebuild on any doubt.
            self._index = {user.id: user for user in self.users}
            found = self._index.get(user_id)
        if found is None:
            raise KeyError(user_id)
        return found

    def members(self, attribute: str) -> dict[str, list[SimUser]]:
        """Active users per queue, group or role id (`attribute`: "queue_ids", ...), in order.

        Kept between requests (a member listing per queue would otherwise scan every user) and
        rebuilt when users were added or replaced, or a user's state or memberships assigned.
        """
        stamp = (id(self.users), len(self.users), _membership_tick[0])
        kept = self._members.get(attribute)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        index: dict[str, list[SimUser]] = {}
        for user in self.active_users():
            for entity_id in dict.fromkeys(getattr(user, attribute)):
                index.setdefault(entity_id, []).append(user)
        self._members[attribute] = (stamp, index)
        return index

    def find_user(self, user_id: str) -> SimUser | None:
        """Return the user with this id, or None."""
        try:
            return self.user(user_id)
        except KeyError:
            return None

    def query_result(self, key: Any, compute: Callable[[], T], *, reuse: bool) -> T:
        """Compute a query's full result, or reuse the latest one when `reuse` and keys match.

        Paged endpoints reuse it for pages 2..N so one paged read does not rescan every user
        per page (quadratic in the org's size); page 1 always recomputes, so edits made
        between two reads are always seen.
        """
        latest = self._latest_query
        if reuse and latest is not None and latest[0] == key:
            result: T = latest[1]
            return result
        result = compute()
        self._latest_query = (key, result)
        return result

    def segment_at(self, user: SimUser, t: datetime) -> SimSegment | None:
        """Return the user's segment containing instant t ([start, end)), or None."""
        for segment in reversed(user.segments):
            if segment.start <= t:
                return segment if segment.end is None or t < segment.end else None
        return None

    def presence_at(self, user: SimUser, t: datetime) -> str:
        """Return the user's presence at instant t (analytics spelling); OFFLINE when no segment."""
        segment = self.segment_at(user, t)
        return OFFLINE if segment is None else segment.presence

    def current_presence(self, user: SimUser) -> str:
        """Return the user's presence at `now`."""
        return self.presence_at(user, self.now)

    def set_presence(self, user_id: str, presence: str, at: datetime) -> None:
        """Close the user's open segment at `at` and open a new one with `presence`."""
        user = self.user(user_id)
        spelled = normalise_presence(presence)
        if spelled not in USERS_API_SPELLING:
            raise ValueError(f"unknown system presence {presence!r}")
        if at.tzinfo is None:
            raise ValueError("set_presence needs an aware datetime")
        if user.segments:
            last = user.segments[-1]
            if at < last.start:
                raise ValueError(
                    f"presence change at {format_timestamp(at)} precedes the user's last "
                    f"segment start {format_timestamp(last.start)}"
                )
            if last.end is None:
                if at == last.start:
                    # A zero-length segment would be noise: the new presence replaces it.
                    last.presence = spelled
                    return
                last.end = at
            elif last.end > at:
                raise ValueError("presence change overlaps the user's last closed segment")
        user.segments.append(SimSegment(start=at, end=None, presence=spelled))
        if user.routing:
            status = "IDLE" if spelled == "ON_QUEUE" else "OFF_QUEUE"
            last_routing = user.routing[-1]
            if last_routing.presence != status:
                if last_routing.end is None or last_routing.end > at:
                    last_routing.end = at
                user.routing.append(SimSegment(at, None, status))

    def segments_between(
        self, user: SimUser, start: datetime, end: datetime
    ) -> list[SimSegment]:
        """Return the user's segments overlapping [start, end) that began by `now`."""
        found: list[SimSegment] = []
        # Walk back from the latest segment: queries are about recent windows, so this touches
        # a handful of segments per user even with long histories.
        for segment in reversed(user.segments):
            if segment.end is not None and segment.end <= start:
                break
            if segment.start < end and segment.start <= self.now:
                found.append(segment)
        found.reverse()
        return found

    def routing_between(self, user: SimUser, start: datetime, end: datetime) -> list[SimSegment]:
        """The user's routing status records overlapping [start, end) that began by `now`.

        Explicit records when the user has them; otherwise derived from presence like the
        platform's: OFF_QUEUE while not On Queue; On Queue alternates IDLE (waiting) and
        INTERACTING (a call or chat of a few minutes), drawn from a seed of the user and the
        segment so every query sees the same; an On Queue ghost whose lid is closed is
        NOT_RESPONDING (alerts go unanswered).
        """
        if user.routing:
            source = user.routing
        else:
            source = []
            for segment in self.segments_between(user, start, end):
                source.extend(
                    _derived_routing(user, segment, self.now, self._routing_draws, since=start))
        found: list[SimSegment] = []
        for record in source:
            if record.start >= end or record.start > self.now:
                continue
            if record.end is not None and record.end <= start:
                continue
            if found and found[-1].presence == record.presence and found[-1].end == record.start:
                found[-1] = SimSegment(found[-1].start, record.end, record.presence)
            else:
                found.append(SimSegment(record.start, record.end, record.presence))
        return found

    def active_users(self) -> Iterator[SimUser]:
        """Yield the users whose state is active."""
        return (user for user in self.users if user.state == "active")

    def to_json(self) -> dict[str, Any]:
        """Return the org as a JSON-compatible dict (the scenario file format)."""
        return {
            "id": self.id,
            "name": self.name,
            "now": format_timestamp(self.now),
            "queues": [{"id": q.id, "name": q.name} for q in self.queues],
            "groups": [{"id": g.id, "name": g.name} for g in self.groups],
            "roles": [{"id": r.id, "name": r.name} for r in self.roles],
            "users": [
                {
                    "id": u.id,
                    "name": u.name,
                    "state": u.state,
                    "licenses": list(u.licenses),
                    "queueIds": list(u.queue_ids),
                    "roleIds": list(u.role_ids),
                    "groupIds": list(u.group_ids),
                    "listed": u.listed,
                    "division": u.division,
                    **({"lidClosedAt": format_timestamp(u.lid_closed_at)}
                       if u.lid_closed_at is not None else {}),
                    **({"routing": [[format_timestamp(s.start),
                                     None if s.end is None else format_timestamp(s.end),
                                     s.presence] for s in u.routing]} if u.routing else {}),
                    "segments": [
                        [
                            format_timestamp(s.start),
                            None if s.end is None else format_timestamp(s.end),
                            s.presence,
                        ]
                        for s in u.segments
                    ],
                }
                for u in self.users
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimOrg:
        """Build an org from to_json() output; raises ValueError on a malformed document."""
        try:
            return cls(
                users=[
                    SimUser(
                        id=str(u["id"]),
                        name=str(u["name"]),
                        state=str(u.get("state", "active")),
                        licenses=[str(x) for x in u.get("licenses", [])],
                        queue_ids=[str(x) for x in u.get("queueIds", [])],
                        role_ids=[str(x) for x in u.get("roleIds", [])],
                        group_ids=[str(x) for x in u.get("groupIds", [])],
                        listed=bool(u.get("listed", True)),
                        division=str(u.get("division", "Home")),
                        lid_closed_at=(parse_timestamp(str(u["lidClosedAt"]))
                                       if u.get("lidClosedAt") else None),
                        routing=[_routing_from_json(s) for s in u.get("routing", [])],
                        segments=[_segment_from_json(s) for s in u.get("segments", [])],
                    )
                    for u in data["users"]
                ],
                queues=[SimQueue(str(q["id"]), str(q["name"])) for q in data.get("queues", [])],
                groups=[SimGroup(str(g["id"]), str(g["name"])) for g in data.get("groups", [])],
                roles=[SimRole(str(r["id"]), str(r["name"])) for r in data.get("roles", [])],
                now=parse_timestamp(str(data["now"])),
                id=str(data.get("id", DEFAULT_ORG_ID)),
                name=str(data.get("name", "Simulated Org")),
            )
        except (KeyError, TypeError, IndexError) as err:
            raise ValueError(f"not a simulator scenario: {err!r}") from err


class _RoutingDraws:
    """The IDLE/INTERACTING boundaries of one On Queue segment, drawn once and extended as the
    clock moves: a details page at 50,000 users renders thousands of segments, and drawing
    them again for every query made the simulator, not the monitor, the slow part of a check.
    The boundaries do not depend on where the segment ends, only on its user and start."""

    __slots__ = ("boundaries", "rng")

    def __init__(self, user_id: str, start: datetime) -> None:
        self.rng = random.Random(f"{user_id}|{format_timestamp(start)}")
        self.boundaries = [start]

    def until(self, stop: datetime) -> list[datetime]:
        """Boundaries from the start up to the first at or after `stop`."""
        boundaries = self.boundaries
        while boundaries[-1] < stop:
            # Waiting 1-8 minutes, then a call, chat or email of 4-20 minutes.
            idle = len(boundaries) % 2 == 1
            minutes = self.rng.uniform(1, 8) if idle else self.rng.uniform(4, 20)
            boundaries.append(boundaries[-1] + timedelta(seconds=round(minutes * 60)))
        return boundaries


def _derived_routing(
    user: SimUser,
    segment: SimSegment,
    now: datetime,
    draws: dict[tuple[str, datetime], _RoutingDraws],
    *,
    since: datetime | None = None,
) -> list[SimSegment]:
    """Routing status records of one presence segment (see SimOrg.routing_between); with
    `since`, records that ended by then may be left out."""
    if segment.presence != "ON_QUEUE":
        return [SimSegment(segment.start, segment.end, "OFF_QUEUE")]
    stop = segment.end if segment.end is not None else max(now, segment.start)
    closed = user.lid_closed_at
    if closed is not None and closed <= segment.start:
        return [SimSegment(segment.start, segment.end, "NOT_RESPONDING")]
    key = (user.id, segment.start)
    drawn = draws.get(key)
    if drawn is None:
        drawn = draws[key] = _RoutingDraws(user.id, segment.start)
    boundaries = drawn.until(stop)
    first = 0
    if since is not None and closed is None:
        # Skip the records that ended by `since`, keeping the last one that started by `stop`.
        first = max(0, min(bisect.bisect_right(boundaries, since),
                           bisect.bisect_left(boundaries, stop)) - 1)
    records: list[SimSegment] = []
    status = "IDLE" if first % 2 == 0 else "INTERACTING"
    for t, drawn_end in zip(boundaries[first:], boundaries[first + 1:], strict=False):
        if t >= stop:
            break
        if closed is not None and t >= closed:
            records.append(SimSegment(t, segment.end, "NOT_RESPONDING"))
            return records
        next_t = min(drawn_end, stop)
        if closed is not None and t < closed < next_t:
            records.append(SimSegment(t, closed, status))
            records.append(SimSegment(closed, segment.end, "NOT_RESPONDING"))
            return records
        records.append(SimSegment(t, next_t, status))
        status = "INTERACTING" if status == "IDLE" else "IDLE"
    if records and segment.end is None:
        records[-1].end = None  # the record in progress has no end yet
    return records or [SimSegment(segment.start, segment.end, "IDLE")]


def _segment_from_json(raw: Any) -> SimSegment:
    """Read a segment written as [start, end|null, presence] or {start, end, presence}."""
    if isinstance(raw, dict):
        start, end, presence = raw["start"], raw.get("end"), raw["presence"]
    else:
        start, end, presence = raw
    return SimSegment(
        start=parse_timestamp(str(start)),
        end=None if end is None else parse_timestamp(str(end)),
        presence=normalise_presence(str(presence)),
    )


def _routing_from_json(raw: Any) -> SimSegment:
    """Read a routing record written as [start, end|null, status]."""
    start, end, status = raw
    return SimSegment(parse_timestamp(str(start)),
                      None if end is None else parse_timestamp(str(end)), str(status).upper())
