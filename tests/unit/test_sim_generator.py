"""The simulator's org model, seeded generator and scenario files (no HTTP)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from simulator import (
    SimOrg,
    SimSegment,
    SimUser,
    generate_org,
    load_scenario,
    save_scenario,
)
from simulator.model import SYSTEM_PRESENCES

OrgFactory = Callable[..., SimOrg]


def test_same_seed_gives_the_same_org_and_another_seed_does_not(sim_now: datetime) -> None:
    first = generate_org(300, seed=42, now=sim_now)
    again = generate_org(300, seed=42, now=sim_now)
    other = generate_org(300, seed=43, now=sim_now)
    assert first.to_json() == again.to_json()
    assert first.to_json() != other.to_json()


def test_timelines_are_sorted_non_overlapping_and_end_open(generated_org: OrgFactory) -> None:
    org = generated_org(1000, seed=5)
    history_start = org.now - timedelta(hours=24)
    for user in org.users:
        assert user.segments, user.id
        assert user.segments[0].start <= history_start  # the history is fully covered
        for earlier, later in zip(user.segments, user.segments[1:], strict=False):
            assert earlier.end is not None
            assert earlier.start < earlier.end <= later.start
        assert user.segments[-1].end is None
        assert all(s.presence in SYSTEM_PRESENCES for s in user.segments)


def test_generated_population_has_agents_staff_named_users_and_a_few_inactive(
    generated_org: OrgFactory,
) -> None:
    org = generated_org(2000, seed=11)
    role_names = {role.id: role.name for role in org.roles}
    licenses = Counter(u.licenses[0] if u.licenses else "none" for u in org.users)
    # 5 % named users (an inactive one may have lost its license).
    assert 90 <= licenses["communicate"] + licenses["collaborate"] <= 100
    assert licenses["cloudCX3"] > 1000
    inactive = [u for u in org.users if u.state == "inactive"]
    assert len(inactive) == 40  # 2 %
    agents = [u for u in org.users if u.queue_ids]
    staff = [u for u in org.users if not u.queue_ids and u.licenses[:1] != ["communicate"]
             and u.licenses[:1] != ["collaborate"]]
    assert len(agents) == 2000 - 100 - 300
    assert all("Agent" in {role_names[r] for r in u.role_ids} for u in agents)
    assert all("Agent" not in {role_names[r] for r in u.role_ids} for u in staff)
    staff_roles = Counter(role_names[r] for u in staff for r in u.role_ids)
    assert {"Supervisor", "Admin", "Quality Evaluator", "User"} <= set(staff_roles)
    # Only queue members go on queue.
    assert not any(s.presence == "ON_QUEUE" for u in staff for s in u.segments)


def test_some_users_are_logged_in_now_and_shifts_shape_the_day(
    generated_org: OrgFactory, sim_now: datetime
) -> None:
    org = generated_org(2000, seed=2)

    def online_at(t: datetime) -> int:
        return sum(1 for u in org.active_users() if org.presence_at(u, t) != "OFFLINE")

    noon, early = online_at(sim_now), online_at(sim_now - timedelta(hours=9))  # 12:00 vs 03:00
    assert 0 < early < noon < 2000
    named_online = [u for u in org.active_users()
                    if u.licenses in (["communicate"], ["collaborate"])
                    and org.presence_at(u, sim_now) != "OFFLINE"]
    assert named_online  # named users log in too, and must not be counted by the monitor


def test_a_shift_change_logs_one_shift_out_and_the_next_in(
    generated_org: OrgFactory, sim_now: datetime
) -> None:
    org = generated_org(2000, seed=2, future_hours=4)
    before, after = sim_now + timedelta(minutes=90), sim_now + timedelta(minutes=150)  # 14:00
    online_before = {u.id for u in org.active_users() if org.presence_at(u, before) != "OFFLINE"}
    online_after = {u.id for u in org.active_users() if org.presence_at(u, after) != "OFFLINE"}
    assert len(online_before - online_after) > 300  # the 06-14 shift leaves
    assert len(online_after - online_before) > 300  # the 14-22 shift arrives


def test_future_hours_extend_timelines_past_now(generated_org: OrgFactory,
                                                sim_now: datetime) -> None:
    org = generated_org(200, seed=9, future_hours=6)
    assert org.now == sim_now
    assert any(s.start > sim_now for u in org.users for s in u.segments)
    assert all(u.segments[-1].end is None for u in org.users)


def test_five_thousand_users_generate(generated_org: OrgFactory) -> None:
    org = generated_org(5000, seed=1)
    assert len(org.users) == 5000
    assert len({u.id for u in org.users}) == 5000
    assert len(org.queues) == 125


def test_generator_rejects_a_naive_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        generate_org(10, seed=1, now=datetime(2026, 11, 26, 12))


# ----------------------------------------------------------------------------- model


def test_presence_at_reads_the_timeline_and_defaults_to_offline(small_org: SimOrg,
                                                                sim_now: datetime) -> None:
    agent = small_org.user("u-agent-3")
    assert small_org.presence_at(agent, sim_now) == "ON_QUEUE"
    assert small_org.presence_at(agent, sim_now - timedelta(minutes=6)) == "AVAILABLE"
    assert small_org.presence_at(agent, sim_now - timedelta(minutes=5)) == "ON_QUEUE"  # starts
    assert small_org.presence_at(small_org.user("u-new-1"), sim_now) == "OFFLINE"
    gap = SimUser("u-gap", "Gap", segments=[SimSegment(sim_now - timedelta(hours=2),
                                                       sim_now - timedelta(hours=1), "BUSY")])
    assert small_org.presence_at(gap, sim_now) == "OFFLINE"
    assert small_org.presence_at(gap, sim_now - timedelta(hours=3)) == "OFFLINE"


def test_set_presence_closes_the_open_segment_and_opens_a_new_one(
    small_org: SimOrg, sim_now: datetime
) -> None:
    small_org.set_presence("u-agent-1", "Meal", sim_now - timedelta(minutes=1))
    segments = small_org.user("u-agent-1").segments
    assert segments[-2] == SimSegment(segments[-2].start, sim_now - timedelta(minutes=1),
                                      "ON_QUEUE")
    assert segments[-1] == SimSegment(sim_now - timedelta(minutes=1), None, "MEAL")
    small_org.set_presence("u-new-1", "On Queue", sim_now)
    assert small_org.user("u-new-1").segments == [SimSegment(sim_now, None, "ON_QUEUE")]


@pytest.mark.parametrize(
    ("presence", "minutes_ago", "message"),
    [("AVAILABLE", 300, "precedes"), ("LUNCH", 1, "unknown system presence")],
)
def test_set_presence_refuses_impossible_changes(
    small_org: SimOrg, sim_now: datetime, presence: str, minutes_ago: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        small_org.set_presence("u-agent-1", presence, sim_now - timedelta(minutes=minutes_ago))


def test_user_lookup_sees_users_added_after_the_first_lookup(small_org: SimOrg) -> None:
    assert small_org.user("u-agent-1").name == "Alice Agent"
    small_org.users.append(SimUser("u-late", "Late Joiner"))
    assert small_org.user("u-late").name == "Late Joiner"
    with pytest.raises(KeyError):
        small_org.user("u-missing")


def test_segments_between_clips_to_the_interval_and_to_now(small_org: SimOrg,
                                                           sim_now: datetime) -> None:
    user = small_org.user("u-super-1")
    found = small_org.segments_between(user, sim_now - timedelta(minutes=15), sim_now)
    assert [s.presence for s in found] == ["MEETING", "OFFLINE"]
    small_org.now = sim_now - timedelta(minutes=10)
    found = small_org.segments_between(user, sim_now - timedelta(minutes=15), sim_now)
    assert [s.presence for s in found] == ["MEETING"]


# ----------------------------------------------------------------------------- scenarios


def test_scenario_file_round_trips_an_org(tmp_path: Path, generated_org: OrgFactory) -> None:
    org = generated_org(100, seed=4)
    path = tmp_path / "scenario.json"
    save_scenario(org, path)
    loaded = load_scenario(path)
    assert loaded.to_json() == org.to_json()
    assert loaded.users == org.users
    assert loaded.now == org.now


def test_scenario_accepts_hand_written_segment_objects(tmp_path: Path) -> None:
    path = tmp_path / "hand.json"
    path.write_text(json.dumps({
        "now": "2026-11-26T12:00:00Z",
        "users": [{"id": "u1", "name": "One", "licenses": ["cloudCX3"], "segments": [
            {"start": "2026-11-26T11:00:00Z", "end": None, "presence": "On Queue"}]}],
    }))
    org = load_scenario(path)
    assert org.presence_at(org.user("u1"), org.now) == "ON_QUEUE"
    assert org.users[0].state == "active"


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"users": []}'],
                         ids=["not-json", "not-object", "no-now"])
def test_a_broken_scenario_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="scenario"):
        load_scenario(path)



def _merged(records: list[SimSegment], start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    """The records overlapping [start, end), clipped to start, runs of one status joined."""
    out: list[list[Any]] = []
    for record in records:
        if record.start >= end or (record.end is not None and record.end <= start):
            continue
        if out and out[-1][2] == record.presence and out[-1][1] == record.start:
            out[-1][1] = record.end
        else:
            out.append([max(record.start, start), record.end, record.presence])
    return [tuple(item) for item in out]


def test_routing_drawn_check_by_check_matches_routing_drawn_at_once(sim_now: datetime) -> None:
    # The simulator keeps each On Queue segment's draws and extends them as the clock moves,
    # and skips the records before a query's window: an org asked for 15-minute windows every
    # 5 minutes must answer as a fresh one asked for the whole day.
    start = sim_now - timedelta(hours=10)
    stepped = generate_org(400, seed=11, now=start, future_hours=10)
    fresh = generate_org(400, seed=11, now=start, future_hours=10)
    long_ago = start - timedelta(days=3)
    moment, compared, interacting = start, 0, 0
    for step in range(1, 121):
        moment = start + timedelta(minutes=5 * step)
        stepped.now = fresh.now = moment
        window = moment - timedelta(minutes=15)
        for was, new in zip(stepped.users, fresh.users, strict=True):
            got = stepped.routing_between(was, window, moment)
            if step % 20:
                continue
            expected = fresh.routing_between(new, long_ago, moment)
            assert _merged(got, window, moment) == _merged(expected, window, moment), was.id
            compared += 1
            interacting += sum(1 for r in got if r.presence == "INTERACTING")
    assert compared == 6 * 400
    assert interacting > 300  # calls were drawn and compared, not only OFF_QUEUE records
