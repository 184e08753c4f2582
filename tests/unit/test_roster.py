"""License pool, agent rule parsing, classification and the roster's JSON round trip."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from license_monitor.genesys.models import PresenceSegment as _Segment
from license_monitor.genesys.models import User
from license_monitor.measure import pool_segments
from license_monitor.roster import (
    DEPARTED_KEPT,
    POOL_ALL_USERS,
    POOL_FROM_LICENSES,
    AgentRule,
    Roster,
    Split,
    build_roster,
    keep_classes,
    parse_agent_rule,
    split,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CX = re.compile(r"(?i)^cloudcx\d")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("queue", AgentRule("queue")),
        (" Queue ", AgentRule("queue")),
        ("queue:", AgentRule("queue")),
        ("role:Agent", AgentRule("role", ("Agent",))),
        ("role: User , Agent ", AgentRule("role", ("User", "Agent"))),
        ("ROLE:User,,Agent", AgentRule("role", ("User", "Agent"))),
        ("group:Contact Center", AgentRule("group", ("Contact Center",))),
    ],
)
def test_parse_agent_rule(text: str, rule: AgentRule) -> None:
    assert parse_agent_rule(text) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not understood"),
        ("skill:Sales", "is not understood"),
        ("role", "names no role"),
        ("role: , ", "names no role"),
        ("group:", "names no group"),
        ("queue:Sales", "takes no names"),
    ],
)
def test_parse_agent_rule_rejects_with_a_clear_sentence(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_agent_rule(text)


def user(user_id: str, state: str = "active") -> User:
    return User(id=user_id, name=user_id.title(), state=state)


USERS = [user("agent"), user("admin"), user("comm"), user("nolicense"), user("gone", "inactive")]
LICENSES = {
    "agent": ["cloudCX3"],
    "admin": ["CloudCX1", "communicate"],
    "comm": ["communicate"],
    "gone": ["cloudCX2"],
}


def test_build_roster_pool_is_active_users_with_a_concurrent_license() -> None:
    roster = build_roster(USERS, LICENSES, {"agent", "comm", "gone"}, CX, NOW)
    assert roster.agents == {"agent"}
    assert roster.admins == {"admin"}
    assert roster.excluded == {"comm", "nolicense"}
    assert roster.pool_source == POOL_FROM_LICENSES
    assert roster.built_at == NOW
    assert roster.knows("comm")
    assert not roster.knows("gone")
    assert not roster.knows("newhire")


def test_build_roster_for_all_users_puts_every_active_user_in_the_pool() -> None:
    roster = build_roster(USERS, None, {"agent"}, CX, NOW)
    assert roster.agents == {"agent"}
    assert roster.admins == {"admin", "comm", "nolicense"}
    assert roster.excluded == frozenset()
    assert roster.pool_source == POOL_ALL_USERS == "all_users"


@pytest.mark.parametrize(
    "licenses",
    [
        pytest.param({}, id="an empty license listing"),
        pytest.param({"agent": [], "admin": [], "gone": ["cloudCX2"]},
                     id="rows without license ids (the only license is an inactive user's)"),
    ],
)
def test_active_users_without_any_license_row_are_an_error_not_an_empty_pool(
    licenses: dict[str, list[str]],
) -> None:
    with pytest.raises(ValueError, match="no licenses for 4 active users") as caught:
        build_roster(USERS, licenses, {"agent"}, CX, NOW)
    assert "license listing (GET /api/v2/license/users)" in str(caught.value)


def test_an_org_without_active_users_has_an_empty_pool() -> None:
    roster = build_roster([user("gone", "inactive")], {}, (), CX, NOW)
    assert (roster.agents, roster.admins, roster.excluded) == (frozenset(),) * 3


def test_build_roster_license_pattern_is_configurable() -> None:
    roster = build_roster(USERS, LICENSES, (), re.compile(r"^communicate$"), NOW)
    assert roster.admins == {"admin", "comm"}


def test_split_counts_only_pool_users_and_adds_up() -> None:
    roster = build_roster(USERS, LICENSES, {"agent"}, CX, NOW)
    assert split(["agent", "admin", "comm", "stranger", "agent"], roster) == Split(2, 1, 1)
    assert split([], roster) == Split(0, 0, 0)


@pytest.mark.parametrize(
    ("age_minutes", "ttl", "fresh"),
    [
        (0, 60, True),
        (59.9, 60, True),
        (60, 60, False),
        (61, 60, False),
        (-5, 60, False),
        (0, 0, False),
    ],
)
def test_roster_freshness(age_minutes: float, ttl: int, fresh: bool) -> None:
    roster = build_roster(USERS, LICENSES, (), CX, NOW)
    assert roster.is_fresh(NOW + timedelta(minutes=age_minutes), ttl) is fresh


ids = st.frozensets(st.text(st.characters(codec="utf-8"), min_size=1, max_size=8), max_size=20)


@given(ids, ids, ids, st.sampled_from([POOL_FROM_LICENSES, POOL_ALL_USERS]))
def test_roster_survives_a_json_round_trip(
    agents: frozenset[str], admins: frozenset[str], excluded: frozenset[str], source: str
) -> None:
    roster = Roster(NOW, source, agents, admins - agents, excluded - agents - admins)
    data = json.loads(json.dumps(roster.to_dict()))
    assert Roster.from_dict(data) == roster
    assert data["agents"] == sorted(roster.agents)


def test_a_license_pattern_matching_no_license_in_use_is_an_error_not_zero() -> None:
    users = [User(id="u1", name="A", state="active"), User(id="u2", name="B", state="active")]
    licenses = {"u1": ["cx_premium_3"], "u2": ["communicate"]}
    with pytest.raises(ValueError, match="matches none of the license ids") as caught:
        build_roster(users, licenses, {"u1"}, re.compile(r"(?i)^cloudcx\d"),
                     datetime(2026, 11, 26, tzinfo=UTC))
    assert "cx_premium_3" in str(caught.value)
    roster = build_roster(users, licenses, {"u1"}, re.compile(r"(?i)^cx_premium"),
                          datetime(2026, 11, 26, tzinfo=UTC))
    assert roster.agents == frozenset({"u1"})


def pool_only(pool: set[str], excluded: frozenset[str] = frozenset()) -> Roster:
    """A roster as load_pool reads it: the pool, no classes yet."""
    return Roster(NOW, POOL_FROM_LICENSES, frozenset(), frozenset(), frozenset(excluded),
                  unclassified=frozenset(pool))


def test_a_split_with_users_of_unknown_class_is_pending_not_guessed() -> None:
    roster = pool_only({"a", "b", "c"}, {"comm"})
    counted = split(["a", "b", "comm", "stranger"], roster)
    assert counted == Split(2, 0, 0, pending=2)
    assert counted.to_dict() == {"total": 2, "agents": None, "admins": None}
    assert Split.from_dict(counted.to_dict()).total == 2
    assert Split.from_dict(counted.to_dict()).pending == 2
    assert roster.in_pool("a")
    assert roster.knows("comm")
    assert not roster.in_pool("comm")
    assert not roster.classified
    full = build_roster(USERS, LICENSES, {"agent"}, CX, NOW)
    assert full.classified
    assert split(["agent", "admin"], full).to_dict() == {"total": 2, "agents": 1, "admins": 1}


def test_a_pool_read_again_keeps_the_classes_known_and_leaves_new_users_pending() -> None:
    known = Roster(NOW - timedelta(minutes=30), POOL_FROM_LICENSES, frozenset({"agent"}),
                   frozenset({"admin", "gone"}), frozenset({"comm"}),
                   unresolved=frozenset({"ghost"}))
    reread = keep_classes(pool_only({"agent", "admin", "new-hire"}, {"comm"}), known)
    assert reread.agents == {"agent"}
    assert reread.admins == {"admin"}  # "gone" left the pool
    assert reread.unclassified == {"new-hire"}
    assert reread.unresolved == {"ghost"}
    assert not reread.in_pool("gone")
    assert split(["agent", "admin", "new-hire"], reread) == Split(3, 1, 1, pending=1)
    assert reread.built_at == known.built_at  # the classes' age decides the next refresh


@given(ids, ids, ids)
def test_a_roster_with_unclassified_users_survives_a_json_round_trip(
    agents: frozenset[str], unclassified: frozenset[str], excluded: frozenset[str],
) -> None:
    roster = Roster(NOW, POOL_FROM_LICENSES, agents, frozenset(), excluded - agents,
                    unclassified=unclassified - agents - excluded)
    assert Roster.from_dict(json.loads(json.dumps(roster.to_dict()))) == roster


def test_a_roster_remembers_who_left_the_pool_and_billing_counts_them_until_then() -> None:
    t0 = datetime(2026, 11, 26, 8, tzinfo=UTC)
    old = Roster(t0, "licenses", frozenset({"a", "leaver"}), frozenset({"b"}), frozenset())
    new = Roster(t0 + timedelta(hours=1), "licenses", frozenset({"a"}), frozenset({"b"}),
                 frozenset({"leaver"})).succeeding(old)
    assert dict(new.departed) == {"leaver": t0 + timedelta(hours=1)}
    assert Roster.from_dict(new.to_dict()).departed == new.departed
    later = Roster(t0 + DEPARTED_KEPT + timedelta(hours=1), "licenses", frozenset({"a"}),
                   frozenset(), frozenset()).succeeding(new)
    assert dict(later.departed) == {"b": later.built_at}  # the leaver forgotten after a day

    segments = [
        _Segment("leaver", t0 - timedelta(hours=1), None, "AVAILABLE"),  # clipped
        _Segment("leaver", t0 + timedelta(hours=2), None, "AVAILABLE"),  # after: not
        _Segment("a", t0, None, "AVAILABLE"),
        _Segment("stranger", t0, None, "AVAILABLE"),
    ]
    kept = pool_segments(segments, new)
    assert [(s.user_id, s.end) for s in kept] == [
        ("leaver", t0 + timedelta(hours=1)), ("a", None)]


def test_a_pool_read_again_remembers_who_left_it_from_when_it_was_read() -> None:
    known = Roster(NOW - timedelta(minutes=30), POOL_FROM_LICENSES, frozenset({"agent"}),
                   frozenset({"admin", "gone"}), frozenset())
    pool = Roster(NOW, POOL_FROM_LICENSES, frozenset(), frozenset(), frozenset(),
                  unclassified=frozenset({"agent", "admin"})).succeeding(known)
    reread = keep_classes(pool, known)
    # Stamped with the read that missed them, not with the older classes' time.
    assert dict(reread.departed) == {"gone": NOW}
    assert Roster.from_dict(reread.to_dict()).departed == reread.departed
