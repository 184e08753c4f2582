"""API calls per check, pinned for a generated org: a regression in what one check asks fails here.

The formulas (docs/scale-and-cost.md "Measured"), with H the users with logged-in time in the
window (any license), U active users, L license holders, Q queues, m(q) the members of queue q:

    warm check = 1 aggregates query + ceil(H / 100) details pages + 1 page past them
    roster     = ceil(U / 500) + ceil(L / 500) + ceil(Q / 500) + sum of ceil(m(q) / 100), m(q) > 0
    cold check = 1 token + 1 organization + roster + warm check
    expired roster = 1 organization + roster + warm check (the org id is read with each roster)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from function_app import app
from license_monitor import runtime
from license_monitor.genesys.budget import RequestBudget
from license_monitor.genesys.client import GenesysClient
from license_monitor.roster import AgentRule, load_roster
from license_monitor.settings import Settings
from orchestrators.replay_host import ReplayHost
from orchestrators.starters import singleton_id
from simulator import GenesysSimulator, SimOrg, SimQueue, generate_org
from simulator.azurite import Azurite

COLD_AT = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)  # the evening shift: ~30% logged in
WARM_AT = COLD_AT + timedelta(minutes=5)
WINDOW = timedelta(minutes=15)
CX = re.compile(r"(?i)^cloudcx\d")
ONE_QUEUE_SWEEP = AgentRule("queue")

TOKEN = "POST /oauth/token"
USERS = "GET /api/v2/users"
LICENSES = "GET /api/v2/license/users"
QUEUES = "GET /api/v2/routing/queues"
MEMBERS = "GET /api/v2/routing/queues/{id}/members"
AGGREGATES = "POST /api/v2/analytics/users/aggregates/query"
DETAILS = "POST /api/v2/analytics/users/details/query"
ORGANIZATION = "GET /api/v2/organizations/me"


def org_of_1000() -> SimOrg:
    """1,000 generated users in 10 queues, plus 3 queues nobody is a member of."""
    org = generate_org(1_000, seed=11, now=WARM_AT, queues=10)
    org.queues += [SimQueue(f"empty-{n}", f"Retired {n}") for n in range(3)]
    return org


def endpoint(path: str) -> str:
    """'/api/v2/routing/queues/<id>/members' -> '/api/v2/routing/queues/{id}/members'."""
    parts = path.split("/")
    if len(parts) == 7 and parts[4] == "queues":
        parts[5] = "{id}"
    return "/".join(parts)


def calls_by_endpoint(sim: GenesysSimulator) -> Counter[str]:
    return Counter(f"{r.method} {endpoint(r.path)}" for r in sim.requests)


def window_users(org: SimOrg, at: datetime) -> int:
    """H: active users with non-OFFLINE time in [at - 15 min, at), whatever their license."""
    return sum(
        1 for user in org.active_users()
        if any(s.presence != "OFFLINE" for s in org.segments_between(user, at - WINDOW, at)))


def expected_roster_calls(org: SimOrg) -> Counter[str]:
    members = Counter(q for user in org.active_users() for q in user.queue_ids)
    return Counter({
        USERS: math.ceil(sum(1 for _ in org.active_users()) / 500),
        LICENSES: math.ceil(sum(1 for user in org.users if user.licenses) / 500),
        QUEUES: math.ceil(len(org.queues) / 500),
        MEMBERS: sum(math.ceil(members[q.id] / 100) for q in org.queues if members[q.id]),
    })


def expected_warm_calls(org: SimOrg, at: datetime) -> Counter[str]:
    return Counter({AGGREGATES: 1, DETAILS: math.ceil(window_users(org, at) / 100) + 1})


@dataclass
class Monitor:
    """A simulator serving one org and the services of one worker process, with a state table."""

    simulator: GenesysSimulator
    settings: Settings

    def check(self, at: datetime) -> Counter[str]:
        """Run one license_check at `at`; return the Genesys calls it made, by endpoint."""
        self.check_output(at)
        return calls_by_endpoint(self.simulator)

    def check_output(self, at: datetime) -> dict[str, Any]:
        """Run one license_check at `at` (the simulator's request log starts afresh)."""
        with self.simulator.lock:
            self.simulator.org.now = at
        self.simulator.clear_requests()
        runtime.services().clock = runtime.clock_from(at)
        result = ReplayHost(app, clock=lambda: at).run(
            "license_check", {"dry_run": False, "trigger": "test"},
            instance_id=singleton_id(self.settings.client_key))
        assert result.runtime_status == "Completed", result.error
        assert result.output["level"] == "ok", result.output
        assert isinstance(result.output, dict)
        return result.output


@pytest.fixture
def monitor(azurite: Azurite, table_name: str) -> Iterator[Callable[[SimOrg], Monitor]]:
    """Factory: monitor(org) -> a Monitor whose services are installed for this process."""
    started: list[GenesysSimulator] = []

    def make(org: SimOrg) -> Monitor:
        sim = GenesysSimulator(org, rate_limit_per_minute=None).start()
        started.append(sim)
        settings = Settings.from_env({
            "GENESYS_CLIENT_ID": sim.client_id, "GENESYS_CLIENT_SECRET": sim.client_secret,
            "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
            "LICENSE_CAPACITY": str(len(org.users)), "STATE_CONNECTION": azurite.connection_string,
            "STATE_TABLE": table_name,
        })
        runtime.install(runtime.Services.from_settings(settings, sleep=lambda _: None))
        return Monitor(sim, settings)

    yield make
    runtime.install(None)
    for sim in started:
        sim.stop()


def client_for(sim: GenesysSimulator) -> GenesysClient:
    return GenesysClient(api_url=sim.api_url, login_url=sim.login_url, client_id=sim.client_id,
                         client_secret=sim.client_secret, sleep=lambda _: None)


# --- whole checks ---------------------------------------------------------------------------


def test_cold_check_costs_the_token_the_roster_and_the_measurement_once(
    monitor: Callable[[SimOrg], Monitor],
) -> None:
    org = org_of_1000()
    calls = monitor(org).check(COLD_AT)

    assert calls == {TOKEN: 1, ORGANIZATION: 1, USERS: 2, LICENSES: 2, QUEUES: 1, MEMBERS: 20,
                     AGGREGATES: 1, DETAILS: 5}
    assert calls.total() == 33
    assert calls == Counter({TOKEN: 1, ORGANIZATION: 1}) + expected_roster_calls(
        org) + expected_warm_calls(org, COLD_AT)


def test_warm_check_costs_one_aggregates_query_and_the_details_pages(
    monitor: Callable[[SimOrg], Monitor],
) -> None:
    org = org_of_1000()
    checks = monitor(org)
    checks.check(COLD_AT)

    calls = checks.check(WARM_AT)

    # No token, no roster: it comes from Table Storage while younger than ROSTER_TTL_MINUTES.
    assert calls == {AGGREGATES: 1, DETAILS: 5}
    assert calls == expected_warm_calls(org, WARM_AT)


def test_a_check_after_the_roster_expires_reads_it_again_in_the_background_not_the_token(
    monitor: Callable[[SimOrg], Monitor],
) -> None:
    org = org_of_1000()
    checks = monitor(org)
    for minutes_before in (60, 45, 30, 15):  # every minute measured: nothing to catch up
        checks.check(COLD_AT - timedelta(minutes=minutes_before))
    refresh = runtime.services().roster_refresh
    assert refresh.completed == 1  # the cold check's

    output = checks.check_output(COLD_AT)  # the roster is an hour old now

    # The check measured with the expired roster (its split is known), read the org id again
    # (once per roster) and started the refresh, which read the roster in the background.
    assert "split" not in output
    assert refresh.wait(60)
    assert refresh.completed == 2
    calls = calls_by_endpoint(checks.simulator)
    assert calls == Counter({ORGANIZATION: 1}) + expected_roster_calls(
        org) + expected_warm_calls(org, COLD_AT)
    assert TOKEN not in calls
    state = runtime.services().state
    assert state is not None
    stored = state.roster.load()
    assert stored is not None
    assert stored["built_at"].startswith("2026-11-26T18:00:00")


def test_minutes_no_check_measured_cost_their_details_pages_only(
    monitor: Callable[[SimOrg], Monitor],
) -> None:
    org = org_of_1000()
    checks = monitor(org)
    checks.check(WARM_AT - timedelta(minutes=45))  # then no check for 30 minutes

    calls = checks.check(WARM_AT)

    # The window's own queries plus the 30 minutes before it, in two 15-minute queries.
    catch_up = Counter({DETAILS: sum(
        expected_warm_calls(org, WARM_AT - timedelta(minutes=minutes))[DETAILS]
        for minutes in (15, 30))})
    assert calls == expected_warm_calls(org, WARM_AT) + catch_up


# --- the roster -----------------------------------------------------------------------------


def test_queues_reported_without_members_are_not_listed(simulator: Callable[..., GenesysSimulator]
                                                        ) -> None:
    org = org_of_1000()
    sim = simulator(org, rate_limit_per_minute=None)
    client = client_for(sim)
    client.ensure_token()
    sim.clear_requests()

    load_roster(client, ONE_QUEUE_SWEEP, CX, WARM_AT)

    listed = {r.path.split("/")[5] for r in sim.requests if r.path.endswith("/members")}
    assert not any(queue_id.startswith("empty-") for queue_id in listed)
    assert len(listed) == 10
    assert calls_by_endpoint(sim) == expected_roster_calls(org)


def test_a_roster_read_in_parallel_pages_equals_one_read_a_page_at_a_time(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    sim = simulator(org_of_1000(), rate_limit_per_minute=None)
    client = client_for(sim)
    client.ensure_token()
    sim.clear_requests()
    one_by_one = load_roster(client, ONE_QUEUE_SWEEP, CX, WARM_AT, parallel=1)
    sequential_calls = calls_by_endpoint(sim)
    sim.clear_requests()

    parallel = load_roster(client, ONE_QUEUE_SWEEP, CX, WARM_AT, parallel=8)

    assert parallel == one_by_one
    assert calls_by_endpoint(sim) == sequential_calls
    assert len(parallel.agents) + len(parallel.admins) > 800


def test_parallel_listing_pages_arrive_in_order_and_stop_at_the_last_page(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    sim = simulator(org_of_1000(), rate_limit_per_minute=None)
    client = client_for(sim)

    sequential = [user.id for user in client.iter_users(page_size=70)]
    sim.clear_requests()
    parallel = [user.id for user in client.iter_users(page_size=70, parallel=4)]

    assert parallel == sequential
    assert sim.count("/api/v2/users") == math.ceil(len(sequential) / 70)


# --- the measurement ------------------------------------------------------------------------


def test_logged_in_users_decoded_lean_equal_the_full_aggregates(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    org = org_of_1000()
    org.now = COLD_AT
    sim = simulator(org, rate_limit_per_minute=None)
    client = client_for(sim)
    start = COLD_AT - WINDOW

    lean = client.users_logged_in(start, COLD_AT)

    # The model's answer: active users with non-OFFLINE time in [start, COLD_AT).
    expected = {
        user.id for user in org.active_users()
        if any(segment.presence != "OFFLINE" and (segment.end is None or segment.end > start)
               for segment in org.segments_between(user, start, COLD_AT))
    }
    assert lean == expected
    assert len(org.users) > len(lean) > 200  # offline users are listed too; they are dropped


def test_details_pages_reflect_an_edit_made_between_two_queries(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    org = org_of_1000()
    org.now = COLD_AT
    sim = simulator(org, rate_limit_per_minute=None)
    client = client_for(sim)
    offline = next(u for u in org.active_users() if org.presence_at(u, COLD_AT) == "OFFLINE"
                   and not org.segments_between(u, COLD_AT - WINDOW, COLD_AT)[1:])
    window = (COLD_AT - WINDOW, COLD_AT)
    before = {s.user_id for s in client.iter_presence_details(*window, parallel=4)}

    with sim.lock:
        org.set_presence(offline.id, "AVAILABLE", COLD_AT - timedelta(minutes=1))
    after = {s.user_id for s in client.iter_presence_details(*window, parallel=4)}

    assert after == before | {offline.id}


def test_the_per_user_presence_endpoint_answers_the_current_presence(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    org = org_of_1000()
    org.now = COLD_AT
    sim = simulator(org, rate_limit_per_minute=None)
    spelled = {"OFFLINE": "Offline", "ON_QUEUE": "On Queue", "AVAILABLE": "Available"}
    users = [u for u in org.active_users() if org.presence_at(u, COLD_AT) in spelled][:20]
    with requests.Session() as session:
        token = session.post(f"{sim.login_url}/oauth/token",
                             data={"grant_type": "client_credentials"},
                             auth=(sim.client_id, sim.client_secret), timeout=5).json()
        session.headers["Authorization"] = f"Bearer {token['access_token']}"
        answers = {
            user.id: session.get(f"{sim.api_url}/api/v2/users/{user.id}/presences/purecloud",
                                 timeout=5).json()
            for user in users
        }
        missing = session.get(f"{sim.api_url}/api/v2/users/nobody/presences/purecloud",
                              timeout=5)

    assert {org.presence_at(u, COLD_AT) for u in users} >= {"OFFLINE", "ON_QUEUE"}
    for user in users:
        definition = answers[user.id]["presenceDefinition"]
        assert definition["systemPresence"] == spelled[org.presence_at(user, COLD_AT)]
    assert missing.status_code == 404


# --- the budget -----------------------------------------------------------------------------


class FakeClock:
    """A clock that moves only when told or when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_request_counts_in_the_budget_from_when_its_answer_came_back() -> None:
    clock = FakeClock()
    budget = RequestBudget(2, clock=clock, sleep=clock.sleep)
    first = budget.acquire()  # t = 0, answered at t = 5
    clock.now = 5.0
    budget.settle(first)
    budget.acquire()  # t = 5, answered at once
    budget.settle(clock.now)

    # The platform saw the first request arrive after t = 0: waiting until t = 60 could land
    # the third request inside its window; the budget waits until the first answer is 60 s old.
    assert budget.acquire() == pytest.approx(65.0)
