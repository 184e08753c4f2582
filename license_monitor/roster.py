"""The license pool (who is concurrent-billed) and the agent/admin classification of its users."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from license_monitor.deadline import ContextThreadPoolExecutor
from license_monitor.genesys.errors import PermissionDenied
from license_monitor.genesys.models import User, format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from license_monitor.genesys.client import GenesysClient

logger = logging.getLogger(__name__)

# Who can hold a concurrent license (CONCURRENT_POOL): the concurrent-tier license holders, or,
# set deliberately, every active user. Never a fallback: the counting basis does not change
# because a read failed.
Pool = Literal["licenses", "all_users"]
POOL_FROM_LICENSES: Pool = "licenses"
POOL_ALL_USERS: Pool = "all_users"
ALL_USERS_NOTE = "counting every user (CONCURRENT_POOL=all_users)"

LICENSE_LISTING = "GET /api/v2/license/users"
LICENSE_PERMISSION = "authorization:license:view"

# Requests in flight per listing while a roster loads; every one still waits for the budget.
PARALLEL_REQUESTS = 8

RuleKind = Literal["queue", "role", "group"]
_RULE_KINDS: tuple[RuleKind, ...] = ("queue", "role", "group")


@dataclass(frozen=True)
class AgentRule:
    """How agents are told from admins: queue membership, or a role or group name list."""

    kind: RuleKind
    names: tuple[str, ...] = ()


def parse_agent_rule(text: str) -> AgentRule:
    """Parse AGENT_RULE: 'queue', 'role:<name>[,<name>...]' or 'group:<name>[,<name>...]'."""
    kind_text, separator, names_text = text.strip().partition(":")
    kind = kind_text.strip().lower()
    if kind not in _RULE_KINDS:
        raise ValueError(
            f"AGENT_RULE {text!r} is not understood: use 'queue', 'role:<name>[,<name>...]' "
            "or 'group:<name>[,<name>...]'"
        )
    names = tuple(name.strip() for name in names_text.split(",") if name.strip())
    if kind == "queue":
        if separator and names:
            raise ValueError(f"AGENT_RULE {text!r}: the queue rule takes no names, use 'queue'")
        return AgentRule("queue")
    if not names:
        raise ValueError(f"AGENT_RULE {text!r} names no {kind}: write '{kind}:<name>[,<name>...]'")
    return AgentRule(cast(RuleKind, kind), names)


DEPARTED_KEPT = timedelta(hours=25)  # longer than a catch-up reaches back (24 h)


@dataclass(frozen=True)
class Roster:
    """Pool users by class (agents, admins) and active users outside the pool, at a time.

    A roster read from the license listing alone (`load_pool`: what a check needs now) knows
    the pool but not the classes: its pool users are `unclassified` until the full roster
    (users, licenses and the agent rule's membership) is built in the background.
    """

    built_at: datetime
    pool_source: str  # the Pool it was built for (an older roster's wording matches none)
    agents: frozenset[str]
    admins: frozenset[str]
    excluded: frozenset[str]
    # Users seen logged in but absent from the users listing even after a rebuild (another
    # division, just deactivated): remembered so they do not trigger a rebuild every check.
    unresolved: frozenset[str] = frozenset()
    # Pool users whose class (agent or admin) is not known yet.
    unclassified: frozenset[str] = frozenset()

    @property
    def classified(self) -> bool:
        """True when every pool user's class is known (the full roster was built)."""
        return not self.unclassified
    # Users who left the pool (licence removed, deactivated) and when a roster first missed
    # them, kept for DEPARTED_KEPT: minutes measured after they left (a catch-up after an
    # outage) still count the time they were logged in while in the pool.
    departed: Mapping[str, datetime] = field(default_factory=dict, compare=False)

    def is_fresh(self, now: datetime, ttl_minutes: int) -> bool:
        """True while the roster is younger than the TTL (and not from the future)."""
        age = now - self.built_at
        return timedelta(0) <= age < timedelta(minutes=ttl_minutes)

    def knows(self, user_id: str) -> bool:
        """True for any active user seen when the roster was built, in the pool or not."""
        return self.in_pool(user_id) or user_id in self.excluded

    def in_pool(self, user_id: str) -> bool:
        """True for a concurrent-billed user (agent, admin, or not classified yet)."""
        return (user_id in self.agents or user_id in self.admins
                or user_id in self.unclassified)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, compact form: ids in sorted lists."""
        return {
            "built_at": format_timestamp(self.built_at),
            "pool_source": self.pool_source,
            "agents": sorted(self.agents),
            "admins": sorted(self.admins),
            "excluded": sorted(self.excluded),
            "unresolved": sorted(self.unresolved),
            "unclassified": sorted(self.unclassified),
            "departed": {user_id: format_timestamp(left)
                         for user_id, left in sorted(self.departed.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Roster:
        """Rebuild a roster from to_dict() output."""
        return cls(
            built_at=parse_timestamp(str(data["built_at"])),
            pool_source=str(data["pool_source"]),
            agents=frozenset(str(user_id) for user_id in data["agents"]),
            admins=frozenset(str(user_id) for user_id in data["admins"]),
            excluded=frozenset(str(user_id) for user_id in data["excluded"]),
            unresolved=frozenset(str(user_id) for user_id in data.get("unresolved", ())),
            unclassified=frozenset(str(user_id) for user_id in data.get("unclassified", ())),
            departed={str(user_id): parse_timestamp(str(left))
                      for user_id, left in (data.get("departed") or {}).items()},
        )

    def succeeding(self, previous: Roster | None) -> Roster:
        """This roster, remembering who left the pool since `previous` (and before it, for
        DEPARTED_KEPT) and when this roster first missed them."""
        if previous is None or previous.pool_source != self.pool_source:
            return self
        pool = self.agents | self.admins | self.unclassified
        departed = {user_id: left for user_id, left in previous.departed.items()
                    if user_id not in pool and self.built_at - left < DEPARTED_KEPT}
        for user_id in (previous.agents | previous.admins | previous.unclassified) - pool:
            departed.setdefault(user_id, self.built_at)
        return replace(self, departed=departed)


@dataclass(frozen=True)
class Split:
    """A count of pool users and its split by class; agents + admins + pending == total.

    `pending` counts users whose class is not known yet: while any is, the split is not told
    (agents and admins are null in the JSON) rather than guessed.
    """

    total: int
    agents: int
    admins: int
    pending: int = 0

    def to_dict(self) -> dict[str, int | None]:
        """JSON form as in the CLI output (agents and admins null while the split is pending)."""
        if self.pending:
            return {"total": self.total, "agents": None, "admins": None}
        return {"total": self.total, "agents": self.agents, "admins": self.admins}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Split:
        """Rebuild from to_dict() output."""
        total = int(data["total"])
        if data.get("agents") is None or data.get("admins") is None:
            return cls(total=total, agents=0, admins=0, pending=total)
        return cls(total=total, agents=int(data["agents"]), admins=int(data["admins"]))


def split(user_ids: Iterable[str], roster: Roster) -> Split:
    """Count the pool users among `user_ids` by class; users outside the pool are not counted."""
    agents = admins = pending = 0
    for user_id in set(user_ids):
        if user_id in roster.agents:
            agents += 1
        elif user_id in roster.admins:
            admins += 1
        elif user_id in roster.unclassified:
            pending += 1
    return Split(total=agents + admins + pending, agents=agents, admins=admins,
                 pending=pending)


def build_roster(
    users: Iterable[User],
    licenses: Mapping[str, Sequence[str]] | None,
    agent_ids: Collection[str],
    license_pattern: re.Pattern[str],
    now: datetime,
) -> Roster:
    """Build the roster: the pool is active users holding a license matching the pattern.

    `licenses` None means CONCURRENT_POOL=all_users: every active user is in the pool.

    Raises:
        ValueError: active users but no license rows at all, or a pattern matching none of the
            license ids in use; either would report a made-up zero (and resolve open alerts).
    """
    active = {user.id for user in users if user.state.lower() == "active"}
    if licenses is None:
        pool = active
        source = POOL_ALL_USERS
    else:
        pool = {
            user_id
            for user_id in active
            if any(license_pattern.search(lic) for lic in licenses.get(user_id, ()))
        }
        source = POOL_FROM_LICENSES
        held = sorted({lic for user_id in active for lic in licenses.get(user_id, ())})
        if active and not held:
            raise ValueError(
                f"the license listing ({LICENSE_LISTING}) returned no licenses for "
                f"{len(active)} active users; the concurrent pool cannot be told")
        if not pool and held:
            # License ids vary by org: a pattern matching none of them would report zero usage
            # (and resolve any open alert). Unknown is the honest answer.
            raise ValueError(
                f"CONCURRENT_LICENSE_PATTERN {license_pattern.pattern!r} matches none of the "
                f"license ids the active users hold ({', '.join(held[:10])}); set it to match "
                "the concurrent-billed ones")
    agents = frozenset(user_id for user_id in pool if user_id in agent_ids)
    return Roster(
        built_at=now,
        pool_source=source,
        agents=agents,
        admins=frozenset(pool - agents),
        excluded=frozenset(active - pool),
    )


def load_pool(
    client: GenesysClient,
    license_pattern: re.Pattern[str],
    now: datetime,
    *,
    concurrent_pool: Pool = POOL_FROM_LICENSES,
    parallel: int = PARALLEL_REQUESTS,
) -> Roster:
    """Who is in the pool, without the classes: what a check needs before the full roster.

    One listing: the license listing (ceil(L / 500) requests), or with `concurrent_pool`
    "all_users" the active users listing. Every pool user is `unclassified`. The same checks
    as build_roster: no license rows at all, or a pattern matching none, is an error.
    """
    if concurrent_pool == POOL_ALL_USERS:
        users = list(client.iter_users(state="active", parallel=parallel))
        active = frozenset(user.id for user in users if user.state.lower() == "active")
        return Roster(built_at=now, pool_source=POOL_ALL_USERS, agents=frozenset(),
                      admins=frozenset(), excluded=frozenset(), unclassified=active)
    licenses = _licenses(client, parallel)
    roster = build_roster(
        [User(id=user_id, name="", state="active") for user_id in licenses], licenses,
        frozenset(), license_pattern, now)
    # build_roster put the whole pool among the admins (no agent ids): it is not classified.
    return Roster(built_at=now, pool_source=roster.pool_source, agents=frozenset(),
                  admins=frozenset(), excluded=roster.excluded, unclassified=roster.admins)


def keep_classes(pool: Roster, known: Roster) -> Roster:
    """The pool of `pool` with the classes `known` (an older roster) has for its users, and
    who `pool` found gone from the pool (read with `previous=known`: Roster.succeeding). Its
    age is the classes' (`known`'s): the background refresh is due when theirs is."""
    agents = pool.unclassified & known.agents
    admins = pool.unclassified & known.admins
    return Roster(built_at=known.built_at, pool_source=pool.pool_source, agents=agents,
                  admins=admins, excluded=pool.excluded | (known.excluded - pool.unclassified),
                  unresolved=known.unresolved, unclassified=pool.unclassified - agents - admins,
                  departed=pool.departed)


def load_roster(
    client: GenesysClient,
    rule: AgentRule,
    license_pattern: re.Pattern[str],
    now: datetime,
    *,
    concurrent_pool: Pool = POOL_FROM_LICENSES,
    parallel: int = PARALLEL_REQUESTS,
) -> Roster:
    """Read users, licenses and the agent rule's membership from Genesys and build the roster.

    With `concurrent_pool` "all_users" the license listing is never read. With "licenses" a
    forbidden license listing fails (PermissionDenied naming authorization:license:view): the
    count never falls back to every user.

    The users listing, the license listing and the queue sweep run side by side; each listing
    reads `parallel` pages at a time once page 1 has told how many there are, and the sweep
    lists `parallel` queues at a time. Every request still goes through the client's budget.
    Cost: pages of users + pages of licenses + pages of queues + member pages of every queue
    whose memberCount is not 0.
    """
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    expand: tuple[str, ...] = ()
    if rule.kind == "role":
        expand = ("authorization",)
    elif rule.kind == "group":
        expand = ("groups",)

    with ContextThreadPoolExecutor(max_workers=parallel + 2) as pool:
        users_future = pool.submit(
            lambda: list(client.iter_users(expand=expand, state="active", parallel=parallel)))
        licenses_future = (
            pool.submit(_licenses, client, parallel)
            if concurrent_pool == POOL_FROM_LICENSES else None)
        if rule.kind == "queue":
            agent_ids = _queue_members(client, pool, parallel)
            users = users_future.result()
        else:
            users = users_future.result()
            if rule.kind == "role":
                agent_ids = _role_members(client, rule.names, users)
            else:
                agent_ids = _group_members(client, rule.names, users)
        licenses = None if licenses_future is None else licenses_future.result()

    roster = build_roster(users, licenses, agent_ids, license_pattern, now)
    logger.info(
        "Roster built: %d agents, %d admins, %d outside the pool (pool from %s)",
        len(roster.agents),
        len(roster.admins),
        len(roster.excluded),
        roster.pool_source,
    )
    return roster


def _licenses(client: GenesysClient, parallel: int = 1) -> dict[str, tuple[str, ...]]:
    """License ids per user; a forbidden listing raises PermissionDenied naming the permission."""
    try:
        return {
            entry.user_id: entry.licenses
            for entry in client.iter_user_licenses(parallel=parallel)
        }
    except PermissionDenied as err:
        # Without licenses the pool cannot be told from named users: counting everyone would
        # send false breaches and overages, so the check fails and says what to grant.
        permission = err.permission or LICENSE_PERMISSION
        raise PermissionDenied(
            f"Genesys Cloud denied {LICENSE_LISTING}: the OAuth client is missing the "
            f"permission {permission} (needed to count only concurrent license holders; "
            "grant it, or set CONCURRENT_POOL=all_users to count every user)",
            status=err.status,
            code=err.code,
            correlation_id=err.correlation_id,
            permission=permission,
        ) from err


def _queue_members(client: GenesysClient, pool: Executor, parallel: int = 1) -> set[str]:
    """Members of any routing queue, by sweeping queues (cost: queues x pages, not users).

    Queues the listing reports with memberCount 0 are not listed: retired and empty queues
    are common in large orgs and each would cost one request for nothing.
    """
    listings = [
        pool.submit(_list_queue_members, client, queue.id, parallel)
        for queue in client.iter_queues(parallel=parallel)
        if queue.member_count != 0
    ]
    members: set[str] = set()
    for listing in listings:
        members.update(listing.result())
    return members


def _list_queue_members(client: GenesysClient, queue_id: str, parallel: int = 1) -> list[str]:
    return list(client.iter_queue_member_ids(queue_id, parallel=parallel))


def _folded(names: Iterable[str]) -> set[str]:
    return {name.casefold() for name in names}


def _warn_unmatched(kind: str, wanted: Iterable[str], found: Iterable[str]) -> None:
    """A misspelt rule name would silently class every user as an admin: say so."""
    missing = sorted(_folded(wanted) - _folded(found))
    if missing:
        logger.warning("AGENT_RULE names no existing %s: %s", kind, ", ".join(missing))


def _role_members(client: GenesysClient, names: Sequence[str], users: Sequence[User]) -> set[str]:
    """Users holding one of the roles, from expand=authorization; role listing when missing."""
    wanted = _folded(names)
    agents = {
        user.id
        for user in users
        if user.role_names is not None and wanted & _folded(user.role_names)
    }
    unknown = {user.id for user in users if user.role_names is None}
    matched = [role for role in client.iter_roles() if role.name.casefold() in wanted]
    _warn_unmatched("role", names, (role.name for role in matched))
    if unknown:
        # expand is best effort: ask the role's own user listing for users it left out.
        for role in matched:
            agents.update(uid for uid in client.iter_role_user_ids(role.id) if uid in unknown)
    return agents


def _group_members(client: GenesysClient, names: Sequence[str], users: Sequence[User]) -> set[str]:
    """Users in one of the groups (matched by name), from expand=groups; members when missing."""
    wanted = _folded(names)
    matched = [group for group in client.iter_groups() if group.name.casefold() in wanted]
    _warn_unmatched("group", names, (group.name for group in matched))
    group_ids = {group.id for group in matched}
    agents = {
        user.id
        for user in users
        if user.group_ids is not None and group_ids.intersection(user.group_ids)
    }
    unknown = {user.id for user in users if user.group_ids is None}
    if unknown:
        for group in matched:
            agents.update(uid for uid in client.iter_group_member_ids(group.id) if uid in unknown)
    return agents
