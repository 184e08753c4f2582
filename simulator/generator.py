"""Generate a realistic organization from a seed: agents in shifts, back office, named users."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simulator.model import (
    SimGroup,
    SimOrg,
    SimQueue,
    SimRole,
    SimSegment,
    SimUser,
)


@dataclass(frozen=True, slots=True)
class Shift:
    """A daily working shift in UTC; end_hour may be past 24 for overnight shifts."""

    start_hour: float
    end_hour: float
    weight: float  # share of agents on this shift


DEFAULT_SHIFTS = (Shift(6, 14, 0.45), Shift(14, 22, 0.4), Shift(22, 30, 0.15))
# Back-office staff keep office hours; these are start hours (UTC) of their working day.
_OFFICE_STARTS = (7.0, 8.0, 8.5, 9.0, 10.0)

# (presence, weight, minimum minutes, maximum minutes) while logged in.
Activity = tuple[str, int, int, int]
_AGENT_ACTIVITIES: tuple[Activity, ...] = (
    ("ON_QUEUE", 66, 15, 90),
    ("AVAILABLE", 8, 1, 10),
    ("AWAY", 5, 2, 10),
    ("BUSY", 5, 5, 20),
    ("BREAK", 7, 10, 15),
    ("MEAL", 4, 30, 30),
    ("MEETING", 3, 30, 60),
    ("TRAINING", 2, 30, 60),
)
_OFFICE_ACTIVITIES: tuple[Activity, ...] = (
    ("AVAILABLE", 45, 10, 90),
    ("BUSY", 20, 10, 60),
    ("MEETING", 15, 30, 60),
    ("AWAY", 8, 2, 15),
    ("MEAL", 5, 30, 45),
    ("BREAK", 4, 10, 15),
    ("IDLE", 3, 5, 20),
)

_FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kofi",
    "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe",
)
_LAST_NAMES = (
    "Andersen", "Baker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Murphy", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva",
    "Tanaka", "Usman", "Vogel", "Walsh", "Yilmaz", "Zhang",
)
_QUEUE_TOPICS = (
    "Sales", "Support", "Billing", "Retention", "Technical", "Claims", "Returns", "VIP",
    "Spanish", "Onboarding",
)
ROLE_NAMES = ("Employee", "Agent", "User", "Supervisor", "Admin", "Quality Evaluator")
GROUP_NAMES = ("Contact Center", "Supervisors", "Back Office", "IT", "Quality Assurance")

# How the non-agent, concurrent-licensed staff split up: (role, group, weight).
_STAFF_KINDS = (
    ("Supervisor", "Supervisors", 0.45),
    ("User", "Back Office", 0.3),
    ("Quality Evaluator", "Quality Assurance", 0.15),
    ("Admin", "IT", 0.1),
)


def generate_org(
    users: int,
    *,
    seed: int,
    now: datetime,
    communicate_share: float = 0.05,
    admin_share: float = 0.15,
    inactive_share: float = 0.02,
    ghost_share: float = 0.01,
    queues: int | None = None,
    history_hours: float = 24,
    future_hours: float = 0,
    shifts: tuple[Shift, ...] = DEFAULT_SHIFTS,
    day_off_share: float = 0.15,
    idle_share: float = 0.05,
) -> SimOrg:
    """Generate an org of `users` users, deterministic from `seed`, with history up to `now`.

    Agents (queue members, role "Agent") work the given shifts with jitter; staff (supervisors,
    back office, QA, IT; no queue) keep office hours; `communicate_share` of users hold only a
    Communicate or Collaborate license but log in too; a few users are inactive and a few
    "ghosts" never log out: they close the lid hours into their first session and keep that
    presence (an On Queue ghost stops answering: NOT_RESPONDING). In `idle_share` of sessions
    someone holds a license without working: an agent Available but off queue for 1-2.5 hours,
    staff Away for 1.5-4 hours. Timelines cover [now - history_hours, now + future_hours]; the last
    segment of every user is open (OFFLINE between shifts). With future_hours > 0 the timeline
    continues past `now` so a live demo can move `now` forward.
    """
    if users < 0:
        raise ValueError("users must be >= 0")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    rng = random.Random(seed)
    now = now.astimezone(UTC).replace(microsecond=0)
    history_start = now - timedelta(hours=history_hours)
    horizon = now + timedelta(hours=future_hours)

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    roles = [SimRole(new_id(), name) for name in ROLE_NAMES]
    groups = [SimGroup(new_id(), name) for name in GROUP_NAMES]
    role_id = {role.name: role.id for role in roles}
    group_id = {group.name: group.id for group in groups}
    queue_count = queues if queues is not None else max(1, round(users / 40))
    queue_list = [
        SimQueue(new_id(), f"{_QUEUE_TOPICS[i % len(_QUEUE_TOPICS)]} {i // len(_QUEUE_TOPICS) + 1}")
        for i in range(queue_count)
    ]

    named = round(users * communicate_share)
    staff = round(users * admin_share)
    inactive = round(users * inactive_share)
    kinds = ["named"] * named + ["staff"] * staff
    kinds += ["agent"] * max(0, users - len(kinds))
    kinds = kinds[:users]
    rng.shuffle(kinds)
    inactive_positions = set(rng.sample(range(users), min(inactive, users)))
    shift_weights = [shift.weight for shift in shifts]
    staff_weights = [kind[2] for kind in _STAFF_KINDS]

    # Generate whole days from before the history start so the first segment straddles it.
    first_day = datetime(history_start.year, history_start.month, history_start.day, tzinfo=UTC)
    first_day -= timedelta(days=1)
    days = (horizon - first_day).days + 1

    org_users: list[SimUser] = []
    for position, kind in enumerate(kinds):
        user_id = new_id()
        name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)} {position + 1}"
        user = SimUser(id=user_id, name=name, role_ids=[role_id["Employee"]])
        if kind == "agent":
            user.licenses = ["cloudCX3"] if rng.random() < 0.8 else ["cloudCX2"]
            user.role_ids.append(role_id["Agent"])
            user.group_ids.append(group_id["Contact Center"])
            if queue_list:
                membership = rng.randint(1, min(3, len(queue_list)))
                user.queue_ids = [q.id for q in rng.sample(queue_list, membership)]
            shift = rng.choices(shifts, shift_weights)[0]
            starts = [shift.start_hour] * days
            hours = [shift.end_hour - shift.start_hour] * days
            activities = _AGENT_ACTIVITIES
        else:
            if kind == "staff":
                role, group, _ = rng.choices(_STAFF_KINDS, staff_weights)[0]
                user.licenses = ["cloudCX3"] if rng.random() < 0.7 else ["cloudCX1"]
            else:
                role, group = "User", "Back Office"
                user.licenses = ["communicate"] if rng.random() < 0.6 else ["collaborate"]
            user.role_ids.append(role_id[role])
            user.group_ids.append(group_id[group])
            office_start = rng.choice(_OFFICE_STARTS)
            starts = [office_start] * days
            hours = [rng.uniform(7.5, 9.5) for _ in range(days)]
            activities = _OFFICE_ACTIVITIES
        if position in inactive_positions:
            user.state = "inactive"
            if rng.random() < 0.5:
                user.licenses = []
        ghost = rng.random() < ghost_share
        user.segments = _timeline(
            rng, first_day=first_day, days=days, starts=starts, hours=hours,
            activities=activities, history_start=history_start, horizon=horizon, ghost=ghost,
            day_off_share=day_off_share,
        )
        if kind != "named":
            # A stream of its own: the logins (and every figure built on them) stay as they
            # were; only what people do while logged in changes.
            _idle_time(user, random.Random(f"{seed}/idle/{position}"),
                       agent=kind == "agent", ghost=ghost, horizon=horizon,
                       share=idle_share)
        org_users.append(user)

    return SimOrg(users=org_users, queues=queue_list, groups=groups, roles=roles, now=now)


def _timeline(
    rng: random.Random,
    *,
    first_day: datetime,
    days: int,
    starts: list[float],
    hours: list[float],
    activities: tuple[Activity, ...],
    history_start: datetime,
    horizon: datetime,
    ghost: bool,
    day_off_share: float,
) -> list[SimSegment]:
    """Build one user's presence timeline: sessions of activities, OFFLINE between them."""
    names = [a[0] for a in activities]
    weights = [a[1] for a in activities]
    bounds = {a[0]: (a[2], a[3]) for a in activities}
    sessions: list[tuple[datetime, datetime]] = []
    for day in range(days):
        if rng.random() < day_off_share:
            continue
        # Jitter in whole seconds: people log in a little early or late and leave likewise.
        # Whole seconds throughout: scenario files keep milliseconds, like the platform.
        login = first_day + timedelta(
            days=day, seconds=round(starts[day] * 3600) + rng.randint(-1200, 900)
        )
        logout = login + timedelta(seconds=round(hours[day] * 3600) + rng.randint(-900, 1500))
        if sessions and login <= sessions[-1][1]:
            continue
        sessions.append((login, logout))
    if ghost and sessions:
        # Closed the laptop without logging out: the session never ends (the "ghost login").
        sessions = sessions[:1]
        sessions[0] = (sessions[0][0], horizon + timedelta(days=365))

    segments: list[SimSegment] = []

    def add(start: datetime, end: datetime | None, presence: str) -> None:
        if segments and segments[-1].presence == presence and segments[-1].end == start:
            segments[-1].end = end
        else:
            segments.append(SimSegment(start, end, presence))

    for login, logout in sessions:
        if login >= horizon:
            break
        if segments or login > first_day:
            previous_end = segments[-1].end if segments else None
            add(previous_end or first_day, login, "OFFLINE")
        if logout <= history_start:
            # Entirely before the history window and dropped below: skip the activity detail.
            add(login, logout, "AVAILABLE")
            continue
        t = login
        first = True
        while t < logout and t < horizon:
            presence = "AVAILABLE" if first else rng.choices(names, weights)[0]
            low, high = (1, 5) if first else bounds[presence]
            first = False
            end = min(t + timedelta(seconds=rng.randint(low * 60, high * 60)), logout)
            add(t, end, presence)
            t = end
    if segments and segments[-1].end is not None and segments[-1].end < horizon:
        add(segments[-1].end, None, "OFFLINE")
    elif segments and segments[-1].end is not None:
        # A session running past the horizon stays open: the user is logged in "now".
        segments[-1].end = None
    elif not segments:
        segments.append(SimSegment(first_day, None, "OFFLINE"))

    # Keep what matters for queries (anything touching the history window).
    while len(segments) > 1 and segments[0].end is not None and segments[0].end <= history_start:
        segments.pop(0)
    return segments


def _idle_time(
    user: SimUser, rng: random.Random, *, agent: bool, ghost: bool, horizon: datetime,
    share: float,
) -> None:
    """Long stretches without work inside the user's sessions, and the ghost's closed lid."""
    sessions: list[tuple[datetime, datetime | None]] = []
    for segment in user.segments:
        if segment.presence == "OFFLINE":
            continue
        if sessions and sessions[-1][1] == segment.start:
            sessions[-1] = (sessions[-1][0], segment.end)
        else:
            sessions.append((segment.start, segment.end))
    for start, end in sessions:
        stop = horizon if end is None else min(end, horizon)
        if rng.random() >= share or stop - start < timedelta(hours=1):
            continue
        if agent:
            presence, minutes = "AVAILABLE", rng.randint(60, 150)
        else:
            presence, minutes = "AWAY", rng.randint(90, 240)
        block_start = start + (stop - start) * rng.uniform(0.1, 0.6)
        block_start = block_start.replace(microsecond=0)
        block_end: datetime | None = block_start + timedelta(minutes=minutes)
        if end is None and block_end is not None and block_end >= stop:
            block_end = None  # still idle at the horizon: no change exactly there
        elif block_end is not None:
            block_end = min(block_end, stop)
        user.segments = _overwrite(user.segments, block_start, block_end, presence)
    if ghost and sessions and sessions[-1][1] is None:
        start = sessions[-1][0]
        closed = start + timedelta(seconds=rng.randint(6 * 3600, 9 * 3600))
        if closed < horizon:
            at_close = next((s.presence for s in reversed(user.segments) if s.start <= closed),
                            "AVAILABLE")
            user.segments = _overwrite(user.segments, closed, None, at_close)
            user.lid_closed_at = closed


def _overwrite(
    segments: list[SimSegment], start: datetime, end: datetime | None, presence: str
) -> list[SimSegment]:
    """The timeline with [start, end) (end None: from start on) in `presence`."""
    result: list[SimSegment] = []

    def add(seg_start: datetime, seg_end: datetime | None, seg_presence: str) -> None:
        if seg_end is not None and seg_end <= seg_start:
            return
        if result and result[-1].presence == seg_presence and result[-1].end == seg_start:
            result[-1].end = seg_end
        else:
            result.append(SimSegment(seg_start, seg_end, seg_presence))

    placed = False
    for segment in segments:
        if segment.start < start:
            add(segment.start, segment.end if segment.end is not None and segment.end <= start
                else start, segment.presence)
        if not placed and (segment.end is None or segment.end > start):
            add(start, end, presence)
            placed = True
        if end is not None and (segment.end is None or segment.end > end):
            add(max(segment.start, end), segment.end, segment.presence)
    if not placed:
        add(start, end, presence)
    return result
