"""GenesysClient against the simulator (and a scripted server for quirks) over real HTTP."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from license_monitor.genesys import auth
from license_monitor.genesys.client import GenesysClient
from license_monitor.genesys.errors import (
    AuthError,
    GenesysError,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UnexpectedResponse,
)
from license_monitor.genesys.models import PresenceSegment
from license_monitor.genesys.retry import RetryPolicy
from simulator import (
    Fault,
    GenesysSimulator,
    SimGroup,
    SimOrg,
    SimQueue,
    SimRole,
    SimSegment,
    SimUser,
)

SimulatorFactory = Callable[..., GenesysSimulator]

NON_OFFLINE = {
    "AVAILABLE",
    "AWAY",
    "BUSY",
    "IDLE",
    "ON_QUEUE",
    "MEAL",
    "TRAINING",
    "MEETING",
    "BREAK",
}
DETAILS_PATH = "/api/v2/analytics/users/details/query"
AGGREGATES_PATH = "/api/v2/analytics/users/aggregates/query"
TOKEN_PATH = "/oauth/token"
QUEUES_PATH = "/api/v2/routing/queues"


# --- helpers --------------------------------------------------------------------------------


class RecordedSleep:
    """An injected sleep that records the wait instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 5000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def client_for(sim: GenesysSimulator, **overrides: Any) -> GenesysClient:
    """A client for the simulator with recorded sleep and a seeded rng unless overridden."""
    options: dict[str, Any] = {
        "api_url": sim.api_url,
        "login_url": sim.login_url,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "timeout": (2.0, 5.0),
        "sleep": RecordedSleep(),
        "rng": random.Random(1),
    }
    options.update(overrides)
    return GenesysClient(**options)


def user(user_id: str, **fields: Any) -> SimUser:
    """A licensed active user with no memberships unless given."""
    values: dict[str, Any] = {
        "id": user_id,
        "name": f"User {user_id}",
        "state": "active",
        "licenses": ["cloudCX3"],
        "queue_ids": [],
        "role_ids": [],
        "group_ids": [],
        "segments": [],
    }
    values.update(fields)
    return SimUser(**values)


def org_of(users: list[SimUser], now: datetime, **fields: Any) -> SimOrg:
    """An org with the given users; queues, groups and roles when given."""
    values: dict[str, Any] = {"users": users, "queues": [], "groups": [], "roles": [], "now": now}
    values.update(fields)
    return SimOrg(**values)


def numbered_users(count: int, **fields: Any) -> list[SimUser]:
    return [user(f"user-{number:04d}", **fields) for number in range(count)]


def online_org(now: datetime, *, online: int, offline: int = 0) -> SimOrg:
    """`online` users AVAILABLE then ON_QUEUE (still open), `offline` users logged out."""
    users = [
        user(
            f"online-{number:03d}",
            segments=[
                SimSegment(now - timedelta(hours=1), now - timedelta(minutes=30), "AVAILABLE"),
                SimSegment(now - timedelta(minutes=30), None, "ON_QUEUE"),
            ],
        )
        for number in range(online)
    ]
    users += [
        user(
            f"offline-{number:03d}",
            segments=[SimSegment(now - timedelta(hours=5), None, "OFFLINE")],
        )
        for number in range(offline)
    ]
    return org_of(users, now)


def max_in_any_window(times: list[float], window: float = 60.0) -> int:
    ordered = sorted(times)
    return max(
        (sum(1 for t in ordered[i:] if t < start + window) for i, start in enumerate(ordered)),
        default=0,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(autouse=True)
def fresh_token_cache() -> Iterator[None]:
    """The token cache is per process: keep tests from seeing each other's tokens."""
    auth.clear_cache()
    yield
    auth.clear_cache()


# --- a scripted server for platform quirks the simulator does not produce ---------------------

Route = Callable[[dict[str, list[str]], Any], tuple[int, Any]]


class ScriptedGenesys:
    """A tiny Genesys look-alike whose API answers come from per-path functions."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, Any]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

            def _answer(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("inin-correlation-id", f"scripted-{len(scripted.requests)}")
                self.end_headers()
                self.wfile.write(payload)

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if parts.path == TOKEN_PATH:
                    scripted.requests.append((method, parts.path, None))
                    self._answer(200, {"access_token": "scripted-token", "expires_in": 86399})
                    return
                body = json.loads(raw) if raw else None
                scripted.requests.append((method, parts.path, body))
                route = scripted.routes.get(parts.path)
                if route is None:
                    self._answer(404, {"code": "not.found", "message": "no route", "status": 404})
                    return
                self._answer(*route(parse_qs(parts.query), body))

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ScriptedGenesys:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def client(self) -> GenesysClient:
        return GenesysClient(
            api_url=self.url,
            login_url=self.url,
            client_id="scripted-id",
            client_secret="scripted-secret",
            sleep=RecordedSleep(),
        )

    def count(self, path: str) -> int:
        return sum(1 for _, recorded_path, _ in self.requests if recorded_path == path)


def details_row(user_id: str, start: str) -> dict[str, Any]:
    return {
        "userId": user_id,
        "primaryPresence": [
            {"startTime": start, "systemPresence": "ON_QUEUE", "organizationPresenceId": "x"}
        ],
        "routingStatus": [],
    }


# --- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "expected_requests"),
    [(10, 2), (11, 3), (0, 1)],
    ids=["exact-multiple", "one-more", "zero"],
)
def test_users_paging_returns_every_user_and_stops_at_the_last_page(
    simulator: SimulatorFactory, sim_now: datetime, total: int, expected_requests: int
) -> None:
    users = numbered_users(total)
    sim = simulator(org_of(users, sim_now))
    client = client_for(sim)
    client.ensure_token()

    listed = [found.id for found in client.iter_users(page_size=5)]

    assert sorted(listed) == sorted(u.id for u in users)
    assert sim.count("/api/v2/users", "GET") == expected_requests


@pytest.mark.parametrize(
    ("total", "expected_requests"),
    [(10, 2), (11, 3), (0, 1)],
    ids=["exact-multiple", "one-more", "zero"],
)
def test_license_paging_returns_every_licensed_user(
    simulator: SimulatorFactory, sim_now: datetime, total: int, expected_requests: int
) -> None:
    # Unlicensed users are not in the license listing, so they must not change the paging.
    users = [*numbered_users(total), user("unlicensed", licenses=[])]
    sim = simulator(org_of(users, sim_now))
    client = client_for(sim)

    licenses = list(client.iter_user_licenses(page_size=5))

    assert sorted(entry.user_id for entry in licenses) == sorted(u.id for u in users[:total])
    assert all(entry.licenses == ("cloudCX3",) for entry in licenses)
    assert sim.count("/api/v2/license/users", "GET") == expected_requests


@pytest.mark.parametrize(
    ("total", "expected_requests"),
    [(10, 2), (11, 3), (0, 1)],
    ids=["exact-multiple", "one-more", "zero"],
)
def test_queue_member_paging_returns_every_member(
    simulator: SimulatorFactory, sim_now: datetime, total: int, expected_requests: int
) -> None:
    members = numbered_users(total, queue_ids=["queue-1"])
    others = [user("not-a-member")]
    org = org_of(members + others, sim_now, queues=[SimQueue("queue-1", "Support")])
    sim = simulator(org)
    client = client_for(sim)

    member_ids = list(client.iter_queue_member_ids("queue-1", page_size=5))

    assert sorted(member_ids) == sorted(u.id for u in members)
    assert sim.count("/api/v2/routing/queues/queue-1/members", "GET") == expected_requests


def test_listings_are_read_page_by_page_until_the_last(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of(numbered_users(7), sim_now))
    client = client_for(sim)

    users = list(client.iter_users(page_size=3))

    assert len({user.id for user in users}) == 7
    assert sim.count("/api/v2/users", "GET") == 3  # pages of 3, 3 and 1


def test_details_paging_stops_on_the_first_empty_page(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(online_org(sim_now, online=7, offline=3))
    client = client_for(sim)
    client.ensure_token()

    segments = list(
        client.iter_presence_details(sim_now - timedelta(minutes=15), sim_now, page_size=3)
    )

    # Pages of 3, 3, 1 and then the empty page 4 that ends the paging.
    assert sim.count(DETAILS_PATH, "POST") == 4
    assert sorted(s.user_id for s in segments) == [f"online-{n:03d}" for n in range(7)]
    assert all(s.presence == "ON_QUEUE" and s.end is None for s in segments)
    assert all(s.start == sim_now - timedelta(minutes=30) for s in segments)


def test_details_rows_carry_every_overlapping_segment_with_end_times(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(online_org(sim_now, online=1))
    client = client_for(sim)

    segments = list(client.iter_presence_details(sim_now - timedelta(minutes=45), sim_now))

    assert segments == [
        PresenceSegment(
            "online-000", sim_now - timedelta(hours=1), sim_now - timedelta(minutes=30), "AVAILABLE"
        ),
        PresenceSegment("online-000", sim_now - timedelta(minutes=30), None, "ON_QUEUE"),
    ]


def test_parallel_details_paging_matches_sequential_and_stops_on_an_empty_page(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(online_org(sim_now, online=23, offline=4))
    client = client_for(sim)
    client.ensure_token()
    window = (sim_now - timedelta(minutes=15), sim_now)

    sequential = list(client.iter_presence_details(*window, page_size=5))
    sim.clear_requests()
    parallel = list(client.iter_presence_details(*window, page_size=5, parallel=4))

    assert parallel == sequential
    assert len({s.user_id for s in parallel}) == 23
    # Page 1, pages 2-5 announced by totalHits fetched together, then the empty page 6.
    assert sim.count(DETAILS_PATH, "POST") == 6


def test_details_query_filters_on_every_non_offline_presence_by_default(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(online_org(sim_now, online=1))
    client = client_for(sim)

    list(client.iter_presence_details(sim_now - timedelta(minutes=15), sim_now))
    list(
        client.iter_presence_details(
            sim_now - timedelta(minutes=15), sim_now, presences=["On Queue", "OnQueue"]
        )
    )

    bodies: list[Any] = [r.body for r in sim.requests if r.path == DETAILS_PATH]
    default_filter, custom_filter = bodies[0]["presenceFilters"], bodies[-1]["presenceFilters"]
    assert {p["value"] for p in default_filter[0]["predicates"]} == NON_OFFLINE
    assert all(p["dimension"] == "systemPresence" for p in default_filter[0]["predicates"])
    assert default_filter[0]["type"] == "or"
    assert [p["value"] for p in custom_filter[0]["predicates"]] == ["ON_QUEUE"]
    assert bodies[0]["paging"] == {"pageSize": 100, "pageNumber": 1}


def test_details_paging_survives_a_short_page_that_is_not_the_last() -> None:
    # The platform de-duplicates rows after paging, so page 2 of 4 can be short; totalHits is
    # approximate. Pages: 3 rows, 1 row (short), 2 rows, then empty.
    pages = {
        1: [details_row(f"u{n}", "2026-11-26T11:00:00.000Z") for n in range(3)],
        2: [details_row("u3", "2026-11-26T11:00:00.000Z")],
        3: [details_row(f"u{n}", "2026-11-26T11:00:00.000Z") for n in (4, 5)],
    }

    def details(_query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        rows = pages.get(body["paging"]["pageNumber"], [])
        return 200, {"userDetails": rows, "totalHits": 5} if rows else {"totalHits": 5}

    with ScriptedGenesys({DETAILS_PATH: details}) as server:
        client = server.client()
        start = datetime.fromisoformat("2026-11-26T11:45:00+00:00")
        end = start + timedelta(minutes=15)
        sequential = [s.user_id for s in client.iter_presence_details(start, end, page_size=3)]
        parallel = [
            s.user_id for s in client.iter_presence_details(start, end, page_size=3, parallel=3)
        ]

    expected = [f"u{n}" for n in range(6)]
    assert sequential == expected
    # totalHits announced 2 pages; the client kept going past them until the empty page.
    assert parallel == expected
    assert server.count(DETAILS_PATH) == 8


# --- users, queues, groups, roles -----------------------------------------------------------


def test_users_expand_maps_presence_roles_and_groups(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    agent = user(
        "agent",
        queue_ids=["queue-1"],
        role_ids=["role-agent"],
        group_ids=["group-support"],
        segments=[SimSegment(sim_now - timedelta(hours=1), None, "ON_QUEUE")],
    )
    admin = user(
        "admin",
        role_ids=["role-admin", "role-agent"],
        segments=[SimSegment(sim_now - timedelta(hours=9), sim_now - timedelta(hours=1), "BUSY")],
    )
    org = org_of(
        [agent, admin],
        sim_now,
        queues=[SimQueue("queue-1", "Support")],
        groups=[SimGroup("group-support", "Support Team")],
        roles=[SimRole("role-agent", "User"), SimRole("role-admin", "Admin")],
    )
    sim = simulator(org)
    client = client_for(sim)

    expanded = {u.id: u for u in client.iter_users(expand=("presence", "authorization", "groups"))}
    plain = {u.id: u for u in client.iter_users()}

    assert expanded["agent"].presence == "ON_QUEUE"
    assert expanded["agent"].role_names == ("User",)
    assert expanded["agent"].group_ids == ("group-support",)
    assert expanded["admin"].presence == "OFFLINE"
    assert set(expanded["admin"].role_names or ()) == {"Admin", "User"}
    assert expanded["admin"].group_ids == ()
    assert expanded["agent"].state == "active"
    assert expanded["agent"].name == "User agent"
    # Not asked for: unknown, never "offline" or "no roles".
    assert (plain["agent"].presence, plain["agent"].role_names, plain["agent"].group_ids) == (
        None,
        None,
        None,
    )
    expand_query = [r.query.get("expand") for r in sim.requests if r.path == "/api/v2/users"]
    assert expand_query == [["presence,authorization,groups"], None]


def test_expand_asked_for_but_not_returned_stays_unknown() -> None:
    def users(_query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
        entity = {"id": "u1", "name": "One", "state": "active"}
        return 200, {"entities": [entity], "pageNumber": 1, "pageCount": 1, "total": 1}

    with ScriptedGenesys({"/api/v2/users": users}) as server:
        (found,) = server.client().iter_users(expand=("presence", "authorization", "groups"))

    assert (found.presence, found.role_names, found.group_ids) == (None, None, None)


def test_queues_groups_roles_and_their_members(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    org = org_of(
        [
            user("a", queue_ids=["q1"], role_ids=["r1"], group_ids=["g1"]),
            user("b", queue_ids=["q1", "q2"], role_ids=["r2"], group_ids=["g1"]),
            user("c"),
        ],
        sim_now,
        queues=[SimQueue("q1", "Sales"), SimQueue("q2", "Support")],
        groups=[SimGroup("g1", "Back Office")],
        roles=[SimRole("r1", "User"), SimRole("r2", "Supervisor")],
    )
    sim = simulator(org)
    client = client_for(sim)

    assert {(q.id, q.name) for q in client.iter_queues()} == {("q1", "Sales"), ("q2", "Support")}
    assert {(g.id, g.name) for g in client.iter_groups()} == {("g1", "Back Office")}
    assert {(r.id, r.name) for r in client.iter_roles()} == {("r1", "User"), ("r2", "Supervisor")}
    assert sorted(client.iter_queue_member_ids("q1")) == ["a", "b"]
    assert sorted(client.iter_group_member_ids("g1")) == ["a", "b"]
    assert list(client.iter_role_user_ids("r2")) == ["b"]


# --- aggregates -----------------------------------------------------------------------------


def test_aggregates_name_the_users_with_logged_in_time_in_the_window(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    org = org_of(
        [
            user(
                "busy-then-queue",
                segments=[
                    SimSegment(
                        sim_now - timedelta(minutes=30), sim_now - timedelta(minutes=10), "BUSY"
                    ),
                    SimSegment(sim_now - timedelta(minutes=10), None, "ON_QUEUE"),
                ],
            ),
            user(
                "left-long-ago",
                segments=[
                    SimSegment(
                        sim_now - timedelta(hours=3), sim_now - timedelta(hours=2), "AVAILABLE"
                    )
                ],
            ),
        ],
        sim_now,
    )
    sim = simulator(org)
    client = client_for(sim)

    logged_in = client.users_logged_in(sim_now - timedelta(minutes=15), sim_now)

    assert logged_in == {"busy-then-queue"}
    bodies: list[Any] = [r.body for r in sim.requests if r.path == AGGREGATES_PATH]
    (body,) = bodies
    assert body["groupBy"] == ["userId"]
    assert body["metrics"] == ["tSystemPresence"]
    assert "filter" not in body


# --- tokens ---------------------------------------------------------------------------------


def test_one_token_serves_many_calls_and_clients(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(online_org(sim_now, online=2))
    first, second = client_for(sim), client_for(sim)

    first.ensure_token()
    for _ in range(3):
        list(first.iter_users())
        list(second.iter_queues())
    first.users_logged_in(sim_now - timedelta(minutes=15), sim_now)

    assert sim.count(TOKEN_PATH) == 1
    assert sim.tokens_issued == 1
    assert first.request_count == 1 + 3 + 1
    assert second.request_count == 3


def test_expired_token_is_renewed_and_the_call_succeeds(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of(numbered_users(3), sim_now))
    client = client_for(sim)
    client.ensure_token()
    sim.expire_all_tokens()

    users = list(client.iter_users())

    assert len(users) == 3
    assert sim.tokens_issued == 2
    # The rejected call, the new token, the call again.
    assert sim.count("/api/v2/users") == 2


def test_a_second_401_after_renewal_is_an_auth_error(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    client = client_for(sim)
    client.ensure_token()
    sim.inject(Fault(kind="expired_token", path="/api/v2/users", times=None))

    with pytest.raises(AuthError, match="freshly issued access token") as excinfo:
        list(client.iter_users())

    assert excinfo.value.status == 401
    assert sim.tokens_issued == 2
    assert sim.count("/api/v2/users") == 2


def test_bad_secret_is_an_auth_error_naming_the_login_host_not_the_secret(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    client = client_for(sim, client_secret="wrong-secret-4711")

    with pytest.raises(AuthError) as excinfo:
        client.ensure_token()

    error = excinfo.value
    host = urlsplit(sim.login_url).netloc
    assert f"rejected the client id or secret at {host} (invalid_client)" in str(error)
    assert "wrong-secret-4711" not in f"{error} {error!r} {error.args}"
    assert "wrong-secret-4711" not in repr(client)
    assert sim.count("/api/") == 0


def test_a_bad_secret_after_a_good_one_fails_instead_of_reusing_its_token(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    client_for(sim).ensure_token()

    with pytest.raises(AuthError):
        client_for(sim, client_secret="rotated-away").ensure_token()


def test_token_and_secret_never_appear_in_logs_or_errors(
    simulator: SimulatorFactory, sim_now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = simulator(org_of(numbered_users(2), sim_now))
    seen_tokens: set[str] = set()
    session = requests.Session()
    session.hooks["response"].append(
        lambda response, *_a, **_k: seen_tokens.add(
            response.request.headers.get("Authorization", "").removeprefix("Bearer ")
        )
    )
    client = client_for(sim, session=session)
    sim.inject(Fault(kind="rate_limit", path="/api/v2/users", retry_after=1))
    sim.inject(Fault(kind="expired_token", path="/api/v2/users"))
    list(client.iter_users())
    sim.inject(Fault(kind="status", status=503, path="/api/v2/users", times=None))
    with pytest.raises(Unavailable) as excinfo:
        list(client.iter_users())

    tokens = {token for token in seen_tokens if token and not token.startswith("Basic")}
    assert tokens, "the hook should have seen bearer tokens"
    assert "retrying" in caplog.text
    for secret in [*tokens, sim.client_secret]:
        assert secret not in caplog.text
        assert secret not in f"{excinfo.value} {excinfo.value!r}"
        assert secret not in repr(client)


# --- retries --------------------------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after_then_succeeds(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now, queues=[SimQueue("q1", "Sales")]))
    policy = RetryPolicy()
    sleep = RecordedSleep()
    client = client_for(sim, retry=policy, sleep=sleep)
    client.ensure_token()
    sim.inject(Fault(kind="rate_limit", path=QUEUES_PATH, retry_after=2))

    queues = list(client.iter_queues())

    assert [q.id for q in queues] == ["q1"]
    assert len(sleep.calls) == 1
    assert 2.0 <= sleep.calls[0] <= 2.0 + policy.jitter_seconds
    assert sim.count(QUEUES_PATH) == 2


def test_rate_limit_without_retry_after_waits_3_seconds(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    sleep = RecordedSleep()
    client = client_for(sim, sleep=sleep)
    client.ensure_token()
    sim.inject(Fault(kind="rate_limit", path=QUEUES_PATH, retry_after=None))

    list(client.iter_queues())

    assert len(sleep.calls) == 1
    assert 3.0 <= sleep.calls[0] <= 3.0 + RetryPolicy().jitter_seconds


def test_persistent_503_ends_in_a_clear_unavailable_within_the_cap(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    sleep = RecordedSleep()
    policy = RetryPolicy(max_attempts=5, max_total_seconds=60)
    client = client_for(sim, sleep=sleep, retry=policy)
    client.ensure_token()
    sim.inject(Fault(kind="status", status=503, path=QUEUES_PATH, times=None))

    with pytest.raises(Unavailable) as excinfo:
        list(client.iter_queues())

    error = excinfo.value
    assert error.status == 503
    assert error.correlation_id
    assert "Genesys Cloud was unavailable (HTTP 503)" in str(error)
    assert "after 5 attempts over" in str(error)
    assert f"correlation id {error.correlation_id}" in str(error)
    assert sim.count(QUEUES_PATH) == 5
    assert len(sleep.calls) == 4
    assert sum(sleep.calls) <= policy.max_total_seconds
    # Exponential: every wait longer than the one before.
    assert sleep.calls == sorted(sleep.calls)


def test_total_retry_cap_ends_retries_before_max_attempts(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    sleep = RecordedSleep()
    policy = RetryPolicy(max_attempts=50, max_total_seconds=10, base_seconds=1)
    client = client_for(sim, sleep=sleep, retry=policy)
    client.ensure_token()
    sim.inject(Fault(kind="status", status=502, path=QUEUES_PATH, times=None))

    with pytest.raises(Unavailable, match=r"HTTP 502"):
        list(client.iter_queues())

    assert sum(sleep.calls) <= 10
    assert sim.count(QUEUES_PATH) == len(sleep.calls) + 1 < 50


def test_persistent_rate_limit_ends_in_rate_limited(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    sleep = RecordedSleep()
    client = client_for(sim, sleep=sleep, retry=RetryPolicy(max_attempts=3))
    client.ensure_token()
    sim.inject(Fault(kind="rate_limit", path=QUEUES_PATH, retry_after=1, times=None))

    with pytest.raises(RateLimited, match=r"HTTP 429") as excinfo:
        list(client.iter_queues())

    assert excinfo.value.status == 429
    assert len(sleep.calls) == 2
    assert all(1.0 <= wait <= 1.5 for wait in sleep.calls)


def test_transient_503s_are_retried_then_succeed(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now, queues=[SimQueue("q1", "Sales")]))
    sleep = RecordedSleep()
    client = client_for(sim, sleep=sleep)
    client.ensure_token()
    sim.inject(Fault(kind="status", status=503, path=QUEUES_PATH, times=2))

    assert [q.id for q in client.iter_queues()] == ["q1"]
    assert len(sleep.calls) == 2
    assert client.request_count == 1 + 3


def test_other_4xx_is_not_retried_and_carries_the_platform_code(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    sleep = RecordedSleep()
    client = client_for(sim, sleep=sleep)

    with pytest.raises(GenesysError) as excinfo:
        list(client.iter_queue_member_ids("no-such-queue"))

    error = excinfo.value
    assert type(error) is GenesysError
    assert (error.status, error.code) == (404, "not.found")
    assert error.correlation_id
    assert "HTTP 404, code not.found, correlation id" in str(error)
    assert sleep.calls == []
    assert sim.count("/api/v2/routing/queues/no-such-queue/members") == 1


def test_malformed_json_is_an_unexpected_response_with_the_correlation_id(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of(numbered_users(2), sim_now))
    client = client_for(sim)
    client.ensure_token()
    sim.inject(Fault(kind="malformed", path="/api/v2/users"))

    with pytest.raises(UnexpectedResponse, match="not JSON") as excinfo:
        list(client.iter_users())

    assert excinfo.value.correlation_id
    assert f"correlation id {excinfo.value.correlation_id}" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, ValueError)


def test_wrongly_shaped_payload_is_an_unexpected_response_with_the_correlation_id() -> None:
    def users(_query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
        return 200, {"entities": [{"name": "no id here"}], "pageCount": 1}

    with (
        ScriptedGenesys({"/api/v2/users": users}) as server,
        pytest.raises(UnexpectedResponse, match="unexpected shape") as excinfo,
    ):
        list(server.client().iter_users())

    assert excinfo.value.correlation_id is not None
    assert excinfo.value.correlation_id.startswith("scripted-")


def test_slow_answer_beyond_the_read_timeout_is_retried_then_succeeds(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now, queues=[SimQueue("q1", "Sales")]))
    sleep = RecordedSleep()
    # A read timeout with room for a loaded machine to answer the token request in time.
    client = client_for(sim, sleep=sleep, timeout=(2.0, 0.8))
    client.ensure_token()
    sim.inject(Fault(kind="slow", path=QUEUES_PATH, delay_seconds=2.0))

    assert [q.id for q in client.iter_queues()] == ["q1"]
    assert len(sleep.calls) == 1
    # The token, the call that timed out, the retry (the simulator logs the slow one late).
    assert client.request_count == 3


def test_persistently_slow_service_ends_in_unavailable_saying_it_timed_out(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    sleep = RecordedSleep()
    client = client_for(sim, sleep=sleep, timeout=(2.0, 0.8), retry=RetryPolicy(max_attempts=3))
    client.ensure_token()
    sim.inject(Fault(kind="slow", path=QUEUES_PATH, delay_seconds=2.0, times=None))

    with pytest.raises(
        Unavailable, match=r"unavailable \(timed out\).*after 3 attempts"
    ) as excinfo:
        list(client.iter_queues())

    assert excinfo.value.status is None
    assert isinstance(excinfo.value.__cause__, requests.Timeout)
    assert len(sleep.calls) == 2


def test_unreachable_host_ends_in_unavailable_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sleep = RecordedSleep()
    client = GenesysClient(
        api_url=url,
        login_url=url,
        client_id="id",
        client_secret="secret",
        sleep=sleep,
        retry=RetryPolicy(max_attempts=3),
    )

    with pytest.raises(Unavailable, match=r"connection failed.*after 3 attempts"):
        client.ensure_token()

    assert len(sleep.calls) == 2
    assert client.request_count == 3


# --- budget and permissions -----------------------------------------------------------------


def test_request_budget_holds_under_a_burst(simulator: SimulatorFactory, sim_now: datetime) -> None:
    # The simulator's own rate limit runs on real time; the client's budget on the fake clock.
    sim = simulator(org_of([], sim_now), rate_limit_per_minute=None)
    clock = FakeClock()
    sent_at: list[float] = []
    session = requests.Session()
    session.hooks["response"].append(lambda *_a, **_k: sent_at.append(clock()))
    client = client_for(
        sim, clock=clock, sleep=clock.sleep, session=session, request_budget_per_minute=20
    )

    for _ in range(50):
        list(client.iter_roles())

    assert client.request_count == 51  # the token and 50 listings
    assert sim.count() == 51
    assert len(sent_at) == 51
    assert max_in_any_window(sent_at) == 20
    assert clock.sleeps, "the burst must have waited for the budget"
    assert sent_at[-1] - sent_at[0] >= 120


def test_missing_permission_is_permission_denied_naming_it(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(online_org(sim_now, online=1))
    sim.forbid(DETAILS_PATH, "analytics:userDetail:view")
    sleep = RecordedSleep()
    client = client_for(sim, sleep=sleep)

    with pytest.raises(PermissionDenied) as excinfo:
        list(client.iter_presence_details(sim_now - timedelta(minutes=15), sim_now))

    error = excinfo.value
    assert error.permission == "analytics:userDetail:view"
    assert error.status == 403
    assert error.code == "missing.permissions"
    assert "missing the permission analytics:userDetail:view" in str(error)
    assert sim.count(DETAILS_PATH) == 1
    assert sleep.calls == []


def test_forbidden_fault_names_the_permission_too(
    simulator: SimulatorFactory, sim_now: datetime
) -> None:
    sim = simulator(org_of([], sim_now))
    client = client_for(sim)
    sim.inject(
        Fault(
            kind="forbidden", path="/api/v2/license/users", permission="authorization:license:view"
        )
    )

    with pytest.raises(PermissionDenied) as excinfo:
        list(client.iter_user_licenses())

    assert excinfo.value.permission == "authorization:license:view"


def test_numbers_and_times_outside_any_sane_range_are_unexpected_responses() -> None:
    def users(query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        return 200, {"entities": [], "pageNumber": 1, "pageSize": 500, "total": 0,
                     "pageCount": float("inf")}

    def details(query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        return 200, {"totalHits": 1, "userDetails": [{"userId": "u1", "primaryPresence": [
            {"startTime": "0001-01-01T00:00:00+01:00", "systemPresence": "AVAILABLE"}]}]}

    with ScriptedGenesys({"/api/v2/users": users, DETAILS_PATH: details}) as server:
        with pytest.raises(UnexpectedResponse):
            list(server.client().iter_users())
        with pytest.raises(UnexpectedResponse):
            list(server.client().iter_presence_details(
                datetime(2026, 11, 26, 11, 45, tzinfo=UTC), datetime(2026, 11, 26, 12, tzinfo=UTC)))


@pytest.mark.parametrize("token", ["tok en", "secret-token-value\n", ""])
def test_a_token_that_cannot_go_in_a_header_is_refused_without_quoting_it(token: str) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        auth.parse_token_response(
            status=200, body={"access_token": token, "token_type": "bearer", "expires_in": 60},
            login_url="https://login.mypurecloud.com", correlation_id="c-1", issued_at=0.0)
    assert "usable access_token" in str(caught.value)
    if token.strip():
        assert token.strip() not in str(caught.value)


def test_a_wildly_wrong_total_hits_does_not_queue_its_pages(sim_now: datetime) -> None:
    def details(query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if body["paging"]["pageNumber"] > 1:
            return 200, {"totalHits": 10**8}
        return 200, {"totalHits": 10**8, "userDetails": [{"userId": "u1", "primaryPresence": [
            {"startTime": "2026-11-26T11:00:00.000Z", "systemPresence": "AVAILABLE"}]}]}

    with ScriptedGenesys({DETAILS_PATH: details}) as server:
        segments = list(server.client().iter_presence_details(
            sim_now - timedelta(minutes=15), sim_now, parallel=4))
        pages = [r for r in server.requests if r[1] == DETAILS_PATH]
    assert [s.user_id for s in segments] == ["u1"]
    assert len(pages) <= 1 + 2 * 4 + 4  # page 1, the window, and what was in flight


# --- organization -----------------------------------------------------------------------------


def test_organization_is_the_id_and_name_the_platform_answers(
    simulator: SimulatorFactory, small_org: SimOrg
) -> None:
    small_org.id = "9b1d3c5e-7f90-4a2b-8c4d-6e8f0a1b2c3d"
    small_org.name = "Contoso Contact Center"
    sim = simulator(small_org)
    organization = client_for(sim).organization()
    assert organization.id == "9b1d3c5e-7f90-4a2b-8c4d-6e8f0a1b2c3d"
    assert organization.name == "Contoso Contact Center"
    assert sim.count("/api/v2/organizations/me") == 1


def test_organization_without_an_id_is_an_unexpected_response(
    simulator: SimulatorFactory, small_org: SimOrg
) -> None:
    small_org.id = ""
    sim = simulator(small_org)
    with pytest.raises(UnexpectedResponse, match="organization has no 'id'") as caught:
        client_for(sim).organization()
    assert caught.value.correlation_id
