"""Usage measurement end to end against the simulator over HTTP.

Expected figures are computed here straight from the simulator's model (licenses, queue ids,
segments) with a per-second coverage count, not with the code under test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from license_monitor.genesys.client import GenesysClient
from license_monitor.genesys.errors import PermissionDenied
from license_monitor.genesys.models import OFFLINE
from license_monitor.measure import (
    UsageReport,
    measure,
    refresh_for_strangers,
)
from license_monitor.roster import (
    POOL_ALL_USERS,
    POOL_FROM_LICENSES,
    AgentRule,
    Pool,
    Roster,
    load_roster,
    parse_agent_rule,
)
from license_monitor.usage import MinuteProfile
from simulator import GenesysSimulator, SimOrg, SimUser, generate_org

CX = re.compile(r"(?i)^cloudcx\d")
QUEUE_RULE = AgentRule("queue")
WINDOW = 15
DETAILS = "/api/v2/analytics/users/details/query"
# 14:05 UTC: the 06-14 shift has just logged out and the 14-22 shift has just logged in.
SHIFT_CHANGE = datetime(2026, 11, 26, 14, 5, tzinfo=UTC)

SimulatorFactory = Callable[..., GenesysSimulator]

def peaks(minutes: dict[datetime, MinuteProfile]) -> dict[datetime, int]:
    """The highest level of each whole minute."""
    return {minute: profile.peak for minute, profile in minutes.items()}



def no_sleep(seconds: float) -> None:
    """Fail loudly instead of waiting: these checks should need no retry and no budget wait."""
    raise AssertionError(f"the client wanted to sleep {seconds} s")


def client_for(sim: GenesysSimulator) -> GenesysClient:
    return GenesysClient(
        api_url=sim.api_url,
        login_url=sim.login_url,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        request_budget_per_minute=10_000,
        sleep=no_sleep,
    )


# ------------------------------------------------------------------ independent expectations


@dataclass(frozen=True)
class Expected:
    now_agents: int
    now_admins: int
    peak: int
    peak_agents: int
    peak_admins: int
    peak_at: datetime
    window_distinct: int
    online_seconds: list[int]  # pool users logged in at each second of the window


def expected_figures(
    org: SimOrg, now: datetime, *, licenses_visible: bool = True, window: int = WINDOW
) -> Expected:
    """Count per second of [now - window, now) from the model's timelines."""
    start = now - timedelta(minutes=window)
    seconds = window * 60

    def in_pool(user: SimUser) -> bool:
        if user.state != "active":
            return False
        return not licenses_visible or any(
            lic.lower().startswith("cloudcx") for lic in user.licenses
        )

    coverage = [0] * (seconds + 1)  # difference array over whole seconds
    touched: set[str] = set()
    pool = [user for user in org.users if in_pool(user)]
    for user in pool:
        for segment in user.segments:  # sorted and non-overlapping per user in the model
            if segment.presence == OFFLINE:
                continue
            begin = max(segment.start, start)
            end = min(segment.end or now, now)
            if end <= begin:
                continue
            first = int((begin - start).total_seconds())
            last = int((end - start).total_seconds())  # whole seconds in the generated org
            coverage[first] += 1
            coverage[last] -= 1
            touched.add(user.id)
    online_seconds, level = [], 0
    for second in range(seconds):
        level += coverage[second]
        online_seconds.append(level)
    peak = max(online_seconds)
    peak_at = start + timedelta(seconds=online_seconds.index(peak))

    def logged_in(user: SimUser, moment: datetime) -> bool:
        return org.presence_at(user, moment) != OFFLINE

    # "Now": logged in at `now` and already in the second before (a login exactly at `now` has
    # no time in the window yet).
    now_users = [u for u in pool if logged_in(u, now) and logged_in(u, now - timedelta(seconds=1))]
    peak_users = [u for u in pool if logged_in(u, peak_at)]
    assert len(peak_users) == peak
    return Expected(
        now_agents=sum(1 for u in now_users if u.queue_ids),
        now_admins=sum(1 for u in now_users if not u.queue_ids),
        peak=peak,
        peak_agents=sum(1 for u in peak_users if u.queue_ids),
        peak_admins=sum(1 for u in peak_users if not u.queue_ids),
        peak_at=peak_at,
        window_distinct=len(touched),
        online_seconds=online_seconds,
    )


def assert_report_matches(report: UsageReport, expected: Expected) -> None:
    assert (report.now.agents, report.now.admins) == (expected.now_agents, expected.now_admins)
    assert (report.peak.total, report.peak.agents, report.peak.admins) == (
        expected.peak,
        expected.peak_agents,
        expected.peak_admins,
    )
    assert report.peak_at == expected.peak_at
    assert report.window_distinct == expected.window_distinct
    start = report.window_start
    for minute, level in peaks(report.minutes).items():
        offset = int((minute - start).total_seconds())
        assert level == max(expected.online_seconds[offset : offset + 60]), minute


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def big_org_json() -> dict[str, object]:
    """A 5,000-user org at a shift change (generated once; each test gets its own copy)."""
    return generate_org(5000, seed=7, now=SHIFT_CHANGE).to_json()


@pytest.fixture
def big_org(big_org_json: dict[str, object]) -> SimOrg:
    return SimOrg.from_json(big_org_json)


@pytest.fixture
def big_sim(simulator: SimulatorFactory, big_org: SimOrg) -> GenesysSimulator:
    return simulator(big_org, rate_limit_per_minute=None)


def run(
    client: GenesysClient, now: datetime, roster: Roster | None = None,
    rule: AgentRule = QUEUE_RULE, concurrent_pool: Pool = POOL_FROM_LICENSES, *,
    classes_in_time: bool = True,
) -> tuple[UsageReport, Roster]:
    """measure() as a check runs it; the full roster's background build is done within the
    check's short wait (`classes_in_time`, a small org's) or not (a large org's)."""
    return measure(
        client,
        now=now,
        window_minutes=WINDOW,
        license_pattern=CX,
        roster=roster,
        parallel_pages=4,
        concurrent_pool=concurrent_pool,
        full_roster=(lambda: load_roster(client, rule, CX, now, concurrent_pool=concurrent_pool))
        if classes_in_time else None,
    )


# ------------------------------------------------------------------ tests


@pytest.mark.slow
def test_five_thousand_users_at_a_shift_change_match_the_model(
    big_sim: GenesysSimulator, big_org: SimOrg
) -> None:
    expected = expected_figures(big_org, SHIFT_CHANGE)
    client = client_for(big_sim)

    report, roster = run(client, SHIFT_CHANGE)

    assert_report_matches(report, expected)
    assert report.pool_source == POOL_FROM_LICENSES
    assert report.unclassified == 0
    # The point of the exercise: at a shift change the naive figure over-counts.
    assert report.window_distinct > report.peak.total >= report.now.total > 0
    assert len(peaks(report.minutes)) == WINDOW
    # Many pages of details, users and licenses were walked.
    assert big_sim.count(DETAILS) > 10
    assert big_sim.count("/api/v2/users", "GET") >= 10
    assert big_sim.count("/api/v2/license/users") >= 9
    communicate_only = {
        u.id
        for u in big_org.users
        if u.state == "active"
        and u.licenses
        and not any(lic.startswith("cloudCX") for lic in u.licenses)
    }
    assert communicate_only
    assert communicate_only <= roster.excluded
    assert UsageReport.from_dict(report.to_dict()) == report


@pytest.mark.slow
def test_warm_roster_is_reused_and_gives_the_same_figures(
    big_sim: GenesysSimulator, big_org: SimOrg
) -> None:
    client = client_for(big_sim)
    cold, roster = run(client, SHIFT_CHANGE)
    big_sim.clear_requests()

    warm, again = run(client, SHIFT_CHANGE, roster)

    assert warm == cold
    assert again == roster
    assert big_sim.count("/api/v2/users", "GET") == 0
    assert big_sim.count("/api/v2/license") == 0
    assert big_sim.count("/api/v2/routing") == 0


def test_license_api_forbidden_fails_the_measurement_naming_the_permission(
    simulator: SimulatorFactory,
) -> None:
    org = generate_org(300, seed=3, now=SHIFT_CHANGE)
    sim = simulator(org, forbidden={"/api/v2/license": "authorization:license:view"})

    with pytest.raises(PermissionDenied) as caught:
        run(client_for(sim), SHIFT_CHANGE)

    assert caught.value.permission == "authorization:license:view"
    assert "missing the permission authorization:license:view" in str(caught.value)
    assert "GET /api/v2/license/users" in str(caught.value)
    assert sim.count("/api/v2/license/users") == 1  # asked once, then no fallback count


def test_a_cached_roster_of_another_counting_basis_is_never_reused(
    simulator: SimulatorFactory,
) -> None:
    org = generate_org(300, seed=3, now=SHIFT_CHANGE)
    sim = simulator(org)
    client = client_for(sim)
    _, by_licenses = run(client, SHIFT_CHANGE - timedelta(minutes=5))
    older = Roster.from_dict({**by_licenses.to_dict(),
                              "pool_source": "all users (license data unavailable)"})
    sim.forbid("/api/v2/license", "authorization:license:view")

    for cached in (by_licenses, older):
        sim.clear_requests()
        report, used = run(client, SHIFT_CHANGE, cached, concurrent_pool="all_users")
        assert used.pool_source == report.pool_source == POOL_ALL_USERS
        assert sim.count("/api/v2/users", "GET") >= 1  # rebuilt for the new basis
    with pytest.raises(PermissionDenied):  # and the older wording is no licenses roster either
        run(client, SHIFT_CHANGE, older)


@pytest.mark.slow
def test_all_users_setting_counts_every_active_user_and_never_reads_licenses(
    simulator: SimulatorFactory, big_org: SimOrg
) -> None:
    # Forbidden too: the setting must not even ask.
    sim = simulator(
        big_org,
        rate_limit_per_minute=None,
        forbidden={"/api/v2/license": "authorization:license:view"},
    )
    expected = expected_figures(big_org, SHIFT_CHANGE, licenses_visible=False)

    report, roster = run(client_for(sim), SHIFT_CHANGE, concurrent_pool="all_users")

    assert_report_matches(report, expected)
    assert report.pool_source == roster.pool_source == POOL_ALL_USERS
    assert roster.excluded == frozenset()
    assert sim.count("/api/v2/license") == 0
    with_licenses = expected_figures(big_org, SHIFT_CHANGE)
    assert report.window_distinct > with_licenses.window_distinct  # named users now counted


def new_hire(org: SimOrg, licenses: list[str], logged_in_at: datetime) -> SimUser:
    hire = SimUser(
        id="00000000-0000-4000-8000-00000000feed",
        name="New Hire",
        licenses=licenses,
        queue_ids=[org.queues[0].id],
        segments=[],
    )
    org.users.append(hire)
    org.set_presence(hire.id, "AVAILABLE", logged_in_at)
    return hire


def test_new_hire_missing_from_a_cached_roster_is_counted(simulator: SimulatorFactory) -> None:
    org = generate_org(300, seed=3, now=SHIFT_CHANGE)
    sim = simulator(org)
    client = client_for(sim)
    _, roster = run(client, SHIFT_CHANGE - timedelta(minutes=5))
    before = expected_figures(org, SHIFT_CHANGE)
    with sim.lock:  # the simulator's guard for multi-step edits of the served org
        hire = new_hire(org, ["cloudCX2"], SHIFT_CHANGE - timedelta(minutes=3))
    sim.clear_requests()

    report, refreshed = run(client, SHIFT_CHANGE, roster)

    assert sim.count("/api/v2/users", "GET") >= 1  # the roster was rebuilt once
    assert refreshed.knows(hire.id)
    assert hire.id in refreshed.agents
    assert report.now.total == before.now_agents + before.now_admins + 1
    assert report.now.agents == before.now_agents + 1
    assert report.unclassified == 0
    assert_report_matches(report, expected_figures(org, SHIFT_CHANGE))

    sim.clear_requests()
    run(client, SHIFT_CHANGE, refreshed)
    assert sim.count("/api/v2/users", "GET") == 0  # known now: no second rebuild


def test_unknown_user_after_a_rebuild_is_remembered_not_rebuilt_again(
    simulator: SimulatorFactory,
) -> None:
    org = generate_org(120, seed=5, now=SHIFT_CHANGE)
    sim = simulator(org)
    client = client_for(sim)
    roster = load_roster(client, QUEUE_RULE, CX, SHIFT_CHANGE)
    stranger = "00000000-0000-4000-8000-0000000000aa"

    rebuilt = refresh_for_strangers(client, roster, {stranger}, license_pattern=CX,
                                    now=SHIFT_CHANGE)
    assert rebuilt.unresolved == {stranger}
    sim.clear_requests()
    same = refresh_for_strangers(client, rebuilt, {stranger}, license_pattern=CX,
                                 now=SHIFT_CHANGE)
    assert same is rebuilt
    assert sim.count() == 0


@pytest.mark.parametrize(
    ("rule_text", "agent_role_or_group"),
    [("role:agent", "Agent"), ("group:Contact Center", "Contact Center")],
)
def test_role_and_group_rules_classify_like_the_model(
    simulator: SimulatorFactory, rule_text: str, agent_role_or_group: str
) -> None:
    org = generate_org(400, seed=11, now=SHIFT_CHANGE)
    sim = simulator(org)
    rule = parse_agent_rule(rule_text)

    roster = load_roster(client_for(sim), rule, CX, SHIFT_CHANGE)

    role_ids = {r.id for r in org.roles if r.name == agent_role_or_group}
    group_ids = {g.id for g in org.groups if g.name == agent_role_or_group}
    pool = {
        u.id
        for u in org.users
        if u.state == "active" and any(lic.startswith("cloudCX") for lic in u.licenses)
    }
    expected_agents = {
        u.id
        for u in org.users
        if u.id in pool and (role_ids & set(u.role_ids) or group_ids & set(u.group_ids))
    }
    assert roster.agents == expected_agents
    assert roster.admins == pool - expected_agents


def test_hand_built_org_figures(simulator: SimulatorFactory, sim_now: datetime) -> None:
    sim = simulator()  # small_org: see tests/fixtures/simulator.py for its figures

    report, roster = run(client_for(sim), sim_now)

    assert (report.now.total, report.now.agents, report.now.admins) == (3, 2, 1)
    assert (report.peak.total, report.peak.agents, report.peak.admins) == (4, 2, 2)
    assert report.peak_at == sim_now - timedelta(minutes=15)
    assert report.window_distinct == 5
    assert report.unclassified == 0
    assert roster.agents == {"u-agent-1", "u-agent-2", "u-agent-3", "u-agent-4", "u-new-1"}
    assert roster.excluded == {"u-comm-1"}
    # 4 until u-agent-2 leaves at 11:50, 3 until u-agent-3 arrives at 11:52, 4 until 11:58.
    levels = [4] * 5 + [3] * 2 + [4] * 6 + [3] * 2
    start = sim_now - timedelta(minutes=15)
    assert peaks(report.minutes) == {
        start + timedelta(minutes=n): level for n, level in enumerate(levels)
    }


def test_a_fresh_cached_roster_gives_the_same_figures_as_a_cold_measurement(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator()
    client = client_for(sim)
    roster = load_roster(client, QUEUE_RULE, CX, sim_now)
    users_listed = sim.count("/api/v2/users", "GET")

    report, used = run(client, sim_now, roster=roster)

    assert sim.count("/api/v2/users", "GET") == users_listed  # the cached roster was enough
    assert used == roster
    assert report.window_distinct == 5
    assert report.now.total == 3  # u-agent-1, u-agent-3, u-admin-1
    assert report.peak.total == 4  # u-agent-1, u-agent-2, u-admin-1, u-super-1
    assert (report.peak.agents, report.peak.admins) == (2, 2)
    assert report.to_dict() == run(client_for(sim), sim_now)[0].to_dict()


def test_without_the_classes_in_time_the_figures_are_exact_and_the_split_pending(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator()  # small_org: now 3 (2 agents, 1 admin), peak 4 (2 and 2)
    client = client_for(sim)

    report, roster = run(client, sim_now, classes_in_time=False)

    # Only the license listing was read: no users listing, no queue sweep.
    assert sim.count("/api/v2/license/users", "GET") >= 1
    assert sim.count("/api/v2/users", "GET") == 0
    assert sim.count("/api/v2/routing/queues", "GET") == 0
    assert (report.now.total, report.peak.total, report.window_distinct) == (3, 4, 5)
    assert report.split_pending
    assert report.to_dict()["concurrent"]["peak"] == {"total": 4, "agents": None,
                                                      "admins": None}
    assert report.to_dict()["split"] == "pending"
    assert not roster.classified
    # Once the classes are built, the same window splits as before.
    classified, _ = run(client, sim_now, roster=load_roster(client, QUEUE_RULE, CX, sim_now))
    assert (classified.peak.agents, classified.peak.admins) == (2, 2)
    assert "split" not in classified.to_dict()


def test_a_new_hire_without_the_classes_in_time_is_counted_with_the_split_pending(
    simulator: SimulatorFactory,
) -> None:
    org = generate_org(300, seed=3, now=SHIFT_CHANGE)
    sim = simulator(org)
    client = client_for(sim)
    _, roster = run(client, SHIFT_CHANGE - timedelta(minutes=5))
    before = expected_figures(org, SHIFT_CHANGE)
    with sim.lock:
        hire = new_hire(org, ["cloudCX2"], SHIFT_CHANGE - timedelta(minutes=3))
    sim.clear_requests()

    report, reread = run(client, SHIFT_CHANGE, roster, classes_in_time=False)

    assert sim.count("/api/v2/users", "GET") == 0  # only the pool was read again
    assert reread.in_pool(hire.id)
    assert hire.id in reread.unclassified
    assert report.now.total == before.now_agents + before.now_admins + 1
    assert report.now.pending == 1
    assert report.split_pending
