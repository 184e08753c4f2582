"""The Genesys Cloud simulator over real HTTP: auth, paging, analytics, rate limits, faults."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from license_monitor.genesys.models import format_interval, parse_timestamp
from simulator import (
    Fault,
    GenesysSimulator,
    SimOrg,
    SimUser,
    load_scenario,
    save_scenario,
)
from tests.fixtures.simulator import ManualClock

AGGREGATES = "/api/v2/analytics/users/aggregates/query"
DETAILS = "/api/v2/analytics/users/details/query"
StartSim = Callable[..., GenesysSimulator]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A keep-alive session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


class Api:
    """A tiny test client: fetches a token, then sends bearer requests to the simulator."""

    def __init__(self, sim: GenesysSimulator, http: requests.Session) -> None:
        self.sim = sim
        self.http = http
        self.token = self.fetch_token().json()["access_token"]

    def fetch_token(self, client_id: str | None = None, secret: str | None = None,
                    grant: str = "client_credentials") -> requests.Response:
        return self.http.post(
            f"{self.sim.login_url}/oauth/token",
            auth=(client_id or self.sim.client_id, secret or self.sim.client_secret),
            data={"grant_type": grant},
            timeout=5,
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(f"{self.sim.api_url}{path}", params=params, timeout=5,
                             headers={"Authorization": f"Bearer {self.token}"})

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(f"{self.sim.api_url}{path}", json=body, timeout=5,
                              headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture
def api(simulator: StartSim, http: requests.Session) -> Api:
    """A client of a simulator serving small_org."""
    return Api(simulator(), http)


def window(now: datetime, minutes: int = 15) -> str:
    return format_interval(now - timedelta(minutes=minutes), now)


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["contextId"] == response.headers["inin-correlation-id"]
    assert body["details"] == []
    assert body["errors"] == []
    return body


def aggregate_sums(body: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{userId: {qualifier: sum}} for tSystemPresence over every bucket."""
    sums: dict[str, dict[str, int]] = {}
    for result in body.get("results", []):
        per_user = sums.setdefault(result["group"]["userId"], {})
        for bucket in result["data"]:
            for metric in bucket["metrics"]:
                if metric["metric"] == "tSystemPresence":
                    qualifier = metric["qualifier"]
                    per_user[qualifier] = per_user.get(qualifier, 0) + metric["stats"]["sum"]
    return sums


# ----------------------------------------------------------------------------- auth


def test_token_is_issued_for_the_configured_client(api: Api) -> None:
    response = api.fetch_token()
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert body["access_token"]
    assert body["access_token"] != api.token
    assert api.sim.tokens_issued == 2
    assert uuid.UUID(response.headers["inin-correlation-id"])


def test_token_is_refused_for_a_wrong_secret_and_after_rotation(api: Api) -> None:
    wrong = api.fetch_token(secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    api.sim.client_secret = "rotated-secret"
    assert api.fetch_token(secret="sim-client-secret").status_code == 401
    assert api.fetch_token(secret="rotated-secret").status_code == 200
    assert api.sim.tokens_issued == 2


def test_a_second_client_of_the_org_gets_tokens_until_it_is_removed(api: Api) -> None:
    api.sim.add_client("rotated-client-id", "rotated-client-secret")
    assert api.fetch_token("rotated-client-id", "rotated-client-secret").status_code == 200
    assert api.fetch_token("rotated-client-id", "sim-client-secret").status_code == 401
    assert api.fetch_token().status_code == 200  # the first client still works
    api.sim.remove_client("rotated-client-id")
    refused = api.fetch_token("rotated-client-id", "rotated-client-secret")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_organization_me_answers_the_org_with_the_platform_field_names(api: Api) -> None:
    response = api.get("/api/v2/organizations/me")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == api.sim.org.id
    assert body["name"] == api.sim.org.name
    assert body["selfUri"] == f"/api/v2/organizations/{api.sim.org.id}"
    assert {"defaultLanguage", "thirdPartyOrgName", "state", "version"} <= set(body)


def test_organization_me_is_the_same_for_every_client_of_the_org(api: Api) -> None:
    api.sim.add_client("rotated-client-id", "rotated-client-secret")
    first = api.get("/api/v2/organizations/me").json()
    api.token = api.fetch_token("rotated-client-id", "rotated-client-secret").json()["access_token"]
    assert api.get("/api/v2/organizations/me").json() == first


def test_organization_me_needs_a_token_but_no_permission(api: Api, http: requests.Session) -> None:
    unauthenticated = http.get(f"{api.sim.api_url}/api/v2/organizations/me", timeout=5)
    assert_error(unauthenticated, 401, "bad.credentials")
    api.sim.forbid("/api/v2/users", "directory:user:view")
    assert api.get("/api/v2/organizations/me").status_code == 200


def test_token_request_with_another_grant_type_is_refused(api: Api) -> None:
    response = api.fetch_token(grant="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_api_call_without_bearer_token_is_401(api: Api, http: requests.Session) -> None:
    response = http.get(f"{api.sim.api_url}/api/v2/users", timeout=5)
    assert_error(response, 401, "bad.credentials")
    assert "inin-ratelimit-allowed" in response.headers


def test_api_call_with_unknown_token_is_401(api: Api) -> None:
    api.token = "made-up-token"
    assert_error(api.get("/api/v2/users"), 401, "bad.credentials")


def test_token_expires_after_its_lifetime(simulator: StartSim, http: requests.Session,
                                          sim_clock: ManualClock) -> None:
    api = Api(simulator(token_ttl_seconds=600, clock=sim_clock), http)
    assert api.fetch_token().json()["expires_in"] == 600
    sim_clock.advance(599)
    assert api.get("/api/v2/users").status_code == 200
    sim_clock.advance(1)
    assert_error(api.get("/api/v2/users"), 401, "bad.credentials")


def test_expire_all_tokens_invalidates_every_issued_token(api: Api) -> None:
    assert api.get("/api/v2/users").status_code == 200
    api.sim.expire_all_tokens()
    assert_error(api.get("/api/v2/users"), 401, "bad.credentials")
    api.token = api.fetch_token().json()["access_token"]
    assert api.get("/api/v2/users").status_code == 200


# ----------------------------------------------------------------------------- paging


def _org_of(count: int, now: datetime) -> SimOrg:
    return SimOrg(users=[SimUser(f"u-{i:03d}", f"User {i}", licenses=["cloudCX3"])
                         for i in range(count)], now=now)


@pytest.mark.parametrize(
    ("total", "page_size", "pages"),
    [(10, 5, 2), (11, 5, 3), (0, 5, 0), (1000, 500, 2)],
    ids=["exact-multiple", "one-more", "empty", "full-500-pages"],
)
def test_users_listing_pages_follow_next_uri_to_the_end(
    *,
    simulator: StartSim, http: requests.Session, sim_now: datetime,
    total: int, page_size: int, pages: int,
) -> None:
    api = Api(simulator(_org_of(total, sim_now)), http)
    seen: list[str] = []
    body = api.get("/api/v2/users", pageSize=page_size, pageNumber=1).json()
    visited = 1
    while True:
        assert body["total"] == total
        assert body["pageCount"] == pages
        assert body["pageSize"] == page_size
        seen.extend(e["id"] for e in body["entities"])
        if not body.get("nextUri"):
            break
        assert body["nextUri"].startswith("/api/v2/users?")
        body = http.get(f"{api.sim.api_url}{body['nextUri']}", timeout=5,
                        headers={"Authorization": f"Bearer {api.token}"}).json()
        visited += 1
    assert seen == [f"u-{i:03d}" for i in range(total)]
    assert visited == max(pages, 1)
    assert body["pageNumber"] == max(pages, 1)


def test_page_past_the_end_is_empty_with_a_previous_uri(api: Api) -> None:
    body = api.get("/api/v2/users", pageSize=5, pageNumber=4).json()
    assert body["entities"] == []
    assert "nextUri" not in body
    assert "pageNumber=3" in body["previousUri"]


@pytest.mark.parametrize(("path", "size"), [("/api/v2/users", 501),
                                            ("/api/v2/routing/queues/q-sales/members", 101),
                                            ("/api/v2/users", 0)])
def test_page_size_out_of_range_is_400(api: Api, path: str, size: int) -> None:
    body = assert_error(api.get(path, pageSize=size), 400, "bad.request")
    assert "pageSize" in body["message"]


def test_users_listing_filters_by_state_and_expands(api: Api) -> None:
    active = api.get("/api/v2/users", pageSize=100).json()
    ids = [e["id"] for e in active["entities"]]
    assert "u-inactive-1" not in ids
    assert len(ids) == 8
    every = api.get("/api/v2/users", pageSize=100, state="any").json()
    assert every["total"] == 9
    inactive = api.get("/api/v2/users", state="inactive").json()
    assert [e["id"] for e in inactive["entities"]] == ["u-inactive-1"]

    expanded = api.get("/api/v2/users", pageSize=100, expand="presence,authorization,groups")
    by_id = {e["id"]: e for e in expanded.json()["entities"]}
    presence = {uid: e["presence"]["presenceDefinition"]["systemPresence"]
                for uid, e in by_id.items()}
    assert presence["u-agent-1"] == "On Queue"
    assert presence["u-admin-1"] == "Busy"
    assert presence["u-agent-2"] == "Offline"
    assert presence["u-new-1"] == "Offline"
    assert [r["name"] for r in by_id["u-admin-1"]["authorization"]["roles"]] == ["Employee",
                                                                                 "Admin"]
    assert by_id["u-agent-1"]["groups"][0]["id"] == "g-contact"
    assert "presence" not in api.get("/api/v2/users").json()["entities"][0]


def test_license_users_lists_only_users_holding_a_license(api: Api) -> None:
    api.sim.org.users.append(SimUser("u-nolicense", "No License"))
    body = api.get("/api/v2/license/users", pageSize=100).json()
    licenses = {e["id"]: e["licenses"] for e in body["entities"]}
    assert "u-nolicense" not in licenses
    assert licenses["u-comm-1"] == ["communicate"]
    assert licenses["u-agent-3"] == ["cloudCX2"]
    assert body["total"] == 9


def test_queue_listing_members_and_user_queues(api: Api) -> None:
    queues = api.get("/api/v2/routing/queues").json()["entities"]
    assert {q["id"]: q["memberCount"] for q in queues} == {"q-sales": 3, "q-support": 3}
    members = api.get("/api/v2/routing/queues/q-sales/members", pageSize=2).json()
    assert members["total"] == 3
    assert members["pageCount"] == 2
    first = members["entities"][0]
    assert first == first | {"id": "u-agent-1", "name": "Alice Agent", "joined": True,
                             "memberBy": "user"}
    user_queues = api.get("/api/v2/users/u-agent-3/queues").json()["entities"]
    assert [q["id"] for q in user_queues] == ["q-sales", "q-support"]
    assert_error(api.get("/api/v2/routing/queues/q-nope/members"), 404, "not.found")
    assert_error(api.get("/api/v2/users/u-nope/queues"), 404, "not.found")


def test_group_and_role_listings_with_their_members(api: Api) -> None:
    groups = {g["name"]: g for g in api.get("/api/v2/groups").json()["entities"]}
    assert groups["Back Office"]["memberCount"] == 3
    members = api.get("/api/v2/groups/g-back/members").json()["entities"]
    assert {m["id"] for m in members} == {"u-admin-1", "u-super-1", "u-comm-1"}
    roles = {r["name"]: r for r in api.get("/api/v2/authorization/roles").json()["entities"]}
    assert roles["Agent"]["userCount"] == 5
    users = api.get("/api/v2/authorization/roles/r-supervisor/users").json()["entities"]
    assert [(u["id"], u["name"]) for u in users] == [("u-super-1", "Erin Supervisor")]


def test_member_listings_see_every_edit_made_between_reads(api: Api) -> None:
    """Member listings are served from an index; each kind of edit a test makes shows at once."""
    def queue_members(queue_id: str) -> set[str]:
        return {m["id"] for m in api.get(f"/api/v2/routing/queues/{queue_id}/members").json()[
            "entities"]}

    def counts() -> dict[str, int]:
        return {q["id"]: q["memberCount"]
                for q in api.get("/api/v2/routing/queues").json()["entities"]}

    before = queue_members("q-sales")
    assert {"u-agent-1", "u-agent-3"} <= before
    org = api.sim.org
    with api.sim.lock:
        org.user("u-agent-3").queue_ids = ["q-support"]
    assert queue_members("q-sales") == before - {"u-agent-3"}
    assert counts()["q-sales"] == len(before) - 1
    with api.sim.lock:
        org.user("u-agent-1").state = "inactive"
    assert "u-agent-1" not in queue_members("q-sales")
    with api.sim.lock:
        org.users.append(SimUser("u-hire", "New Hire", queue_ids=["q-sales"]))
    assert "u-hire" in queue_members("q-sales")
    with api.sim.lock:
        index = next(i for i, u in enumerate(org.users) if u.id == "u-hire")
        org.users[index] = SimUser("u-hire-2", "Another Hire", queue_ids=["q-sales"])
    after = queue_members("q-sales")
    assert "u-hire-2" in after
    assert "u-hire" not in after
    with api.sim.lock:
        org.user("u-admin-1").group_ids = ["g-back", "g-new"]
    groups = {g["id"] for g in api.get("/api/v2/groups/g-back/members").json()["entities"]}
    assert "u-admin-1" in groups


# ----------------------------------------------------------------------------- aggregates


def test_aggregates_sum_presence_time_per_user_clipped_to_the_interval(
    api: Api, sim_now: datetime
) -> None:
    body = api.post(AGGREGATES, {"interval": window(sim_now), "groupBy": ["userId"],
                                 "metrics": ["tSystemPresence"]}).json()
    sums = aggregate_sums(body)
    minute = 60_000
    assert sums["u-agent-1"] == {"ON_QUEUE": 15 * minute}
    assert sums["u-agent-2"] == {"ON_QUEUE": 5 * minute, "OFFLINE": 10 * minute}
    assert sums["u-agent-3"] == {"OFFLINE": 7 * minute, "AVAILABLE": 3 * minute,
                                 "ON_QUEUE": 5 * minute}
    assert sums["u-super-1"] == {"MEETING": 13 * minute, "OFFLINE": 2 * minute}
    assert sums["u-admin-1"] == {"BUSY": 15 * minute}
    assert sums["u-agent-4"] == {"OFFLINE": 15 * minute}
    assert "u-inactive-1" not in sums  # only active users
    assert "u-new-1" not in sums  # no time in the interval
    assert body["systemToOrganizationMappings"]["OFFLINE"] == [
        "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5"
    ]


def test_aggregates_interval_end_is_capped_at_now_and_buckets_follow_granularity(
    api: Api, sim_now: datetime
) -> None:
    interval = format_interval(sim_now - timedelta(minutes=20), sim_now + timedelta(minutes=40))
    body = api.post(AGGREGATES, {"interval": interval, "granularity": "PT10M",
                                 "groupBy": ["userId"], "metrics": ["tSystemPresence"],
                                 "filter": {"type": "or", "predicates": [
                                     {"dimension": "userId", "value": "u-agent-2"}]}}).json()
    [result] = body["results"]
    assert result["group"] == {"userId": "u-agent-2"}
    buckets = {d["interval"]: {m["qualifier"]: m["stats"]["sum"] for m in d["metrics"]}
               for d in result["data"]}
    assert buckets == {
        window(sim_now - timedelta(minutes=10), 10): {"ON_QUEUE": 600_000},
        window(sim_now, 10): {"OFFLINE": 600_000},
    }


def test_aggregates_for_an_interval_in_the_future_have_no_results(
    api: Api, sim_now: datetime
) -> None:
    interval = format_interval(sim_now + timedelta(minutes=1), sim_now + timedelta(minutes=16))
    body = api.post(AGGREGATES, {"interval": interval, "groupBy": ["userId"],
                                 "metrics": ["tSystemPresence"]}).json()
    assert "results" not in body


def test_aggregates_other_metrics_use_their_own_qualifiers(api: Api, sim_now: datetime) -> None:
    body = api.post(AGGREGATES, {
        "interval": window(sim_now), "groupBy": ["userId"],
        "metrics": ["tOrganizationPresence", "tAgentRoutingStatus"],
        "filter": {"type": "or", "predicates": [{"dimension": "userId", "operator": "matches",
                                                 "value": "u-agent-3"}]},
    }).json()
    metrics = body["results"][0]["data"][0]["metrics"]
    routing = {m["qualifier"]: m["stats"]["sum"] for m in metrics
               if m["metric"] == "tAgentRoutingStatus"}
    assert routing == {"IDLE": 300_000, "OFF_QUEUE": 600_000}
    org_ids = {m["qualifier"] for m in metrics if m["metric"] == "tOrganizationPresence"}
    assert "e08eaf1b-ee47-4fa9-a231-1200e284798f" in org_ids  # On Queue


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"filter": {"type": "and", "predicates": [
            {"dimension": "systemPresence", "operator": "notExists", "value": "OFFLINE"}]}},
         "systemPresence"),
        ({"filter": {"type": "or", "predicates": [
            {"dimension": "userId", "operator": "notEquals", "value": "u-agent-1"}]}},
         "notEquals"),
        ({"groupBy": ["queueId"]}, "groupBy"),
        ({"metrics": ["oUserPresences"]}, "oUserPresences"),
        ({"metrics": []}, "metrics"),
        ({"interval": "yesterday"}, "interval"),
        ({"granularity": "15 minutes"}, "granularity"),
    ],
    ids=["presence-predicate", "unknown-operator", "group-by", "metric", "no-metrics",
         "interval", "granularity"],
)
def test_aggregates_reject_what_the_platform_rejects(
    api: Api, sim_now: datetime, change: dict[str, Any], fragment: str
) -> None:
    query = {"interval": window(sim_now), "groupBy": ["userId"], "metrics": ["tSystemPresence"]}
    body = assert_error(api.post(AGGREGATES, query | change), 400, "bad.request")
    assert fragment in body["message"]


def test_aggregates_accept_100_user_predicates_and_reject_101(
    api: Api, sim_now: datetime
) -> None:
    def query(count: int) -> dict[str, Any]:
        predicates = [{"type": "dimension", "dimension": "userId", "operator": "matches",
                       "value": f"u-{i}"} for i in range(count - 1)]
        predicates.append({"dimension": "userId", "operator": "matches", "value": "u-agent-1"})
        return {"interval": window(sim_now), "groupBy": ["userId"],
                "metrics": ["tSystemPresence"],
                "filter": {"type": "or", "predicates": predicates}}

    accepted = api.post(AGGREGATES, query(100))
    assert accepted.status_code == 200
    assert [r["group"]["userId"] for r in accepted.json()["results"]] == ["u-agent-1"]
    body = assert_error(api.post(AGGREGATES, query(101)), 400, "bad.request")
    assert "100" in body["message"]


# ----------------------------------------------------------------------------- details


def details(api: Api, interval: str, **extra: Any) -> dict[str, Any]:
    response = api.post(DETAILS, {"interval": interval} | extra)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_details_return_every_overlapping_segment_and_open_ones_without_end_time(
    api: Api, sim_now: datetime
) -> None:
    body = details(api, window(sim_now), paging={"pageSize": 100, "pageNumber": 1})
    rows = {row["userId"]: row for row in body["userDetails"]}
    assert body["totalHits"] == len(rows) == 7  # no inactive user, no user without segments
    assert list(rows) == sorted(rows)
    agent_2 = rows["u-agent-2"]["primaryPresence"]
    assert [(p["systemPresence"], p["startTime"], p.get("endTime")) for p in agent_2] == [
        ("ON_QUEUE", "2026-11-26T06:00:00.000Z", "2026-11-26T11:50:00.000Z"),
        ("OFFLINE", "2026-11-26T11:50:00.000Z", None),
    ]
    assert "endTime" not in agent_2[1]
    # On Queue alternates waiting (IDLE) and INTERACTING; logged out, the agent is OFF_QUEUE.
    routing = rows["u-agent-2"]["routingStatus"]
    assert {r["routingStatus"] for r in routing[:-1]} <= {"IDLE", "INTERACTING"}
    assert (routing[-1]["routingStatus"], routing[-1]["startTime"]) == (
        "OFF_QUEUE", "2026-11-26T11:50:00.000Z")
    assert "endTime" not in routing[-1]
    assert all(a["endTime"] == b["startTime"] for a, b in itertools.pairwise(routing))
    assert agent_2[0]["organizationPresenceId"] == "e08eaf1b-ee47-4fa9-a231-1200e284798f"


def test_details_presence_filter_selects_users_but_rows_keep_all_their_segments(
    api: Api, sim_now: datetime
) -> None:
    online = ["AVAILABLE", "ON_QUEUE", "BUSY", "AWAY", "MEAL", "BREAK", "MEETING", "TRAINING",
              "IDLE"]
    body = details(api, window(sim_now), presenceFilters=[{"type": "or", "predicates": [
        {"dimension": "systemPresence", "operator": "matches", "value": v} for v in online]}])
    rows = {row["userId"]: row for row in body["userDetails"]}
    assert set(rows) == {"u-agent-1", "u-agent-2", "u-agent-3", "u-admin-1", "u-super-1",
                         "u-comm-1"}
    assert [p["systemPresence"] for p in rows["u-agent-3"]["primaryPresence"]] == [
        "OFFLINE", "AVAILABLE", "ON_QUEUE"]


def test_details_reject_a_presence_value_in_the_users_api_spelling(
    api: Api, sim_now: datetime
) -> None:
    response = api.post(DETAILS, {"interval": window(sim_now), "presenceFilters": [
        {"type": "or", "predicates": [{"dimension": "systemPresence", "value": "On Queue"}]}]})
    assert "On Queue" in assert_error(response, 400, "bad.request")["message"]


def test_details_page_through_users_in_id_order_until_an_empty_page(
    simulator: StartSim, http: requests.Session, generated_org: Callable[..., SimOrg],
    sim_now: datetime,
) -> None:
    org = generated_org(260, seed=7)
    api = Api(simulator(org), http)
    seen: list[str] = []
    page = 1
    while True:
        body = details(api, window(sim_now), paging={"pageSize": 100, "pageNumber": page})
        if not body.get("userDetails"):
            break
        seen.extend(row["userId"] for row in body["userDetails"])
        page += 1
    expected = sorted(u.id for u in org.active_users()
                      if org.segments_between(u, sim_now - timedelta(minutes=15), sim_now))
    assert seen == expected
    assert body["totalHits"] == len(expected)
    assert page == 4  # 100 + 100 + the rest, then the empty page


def test_details_duplicates_make_short_pages_without_losing_users(
    simulator: StartSim, http: requests.Session, generated_org: Callable[..., SimOrg],
    sim_now: datetime,
) -> None:
    org = generated_org(260, seed=7)
    api = Api(simulator(org, details_duplicates=True), http)
    sizes: list[int] = []
    seen: list[str] = []
    page = 1
    while body := details(api, window(sim_now), paging={"pageSize": 100, "pageNumber": page}):
        if not body.get("userDetails"):
            break
        sizes.append(len(body["userDetails"]))
        seen.extend(row["userId"] for row in body["userDetails"])
        page += 1
    expected = sorted(u.id for u in org.active_users()
                      if org.segments_between(u, sim_now - timedelta(minutes=15), sim_now))
    assert seen == expected  # every user exactly once, in order
    assert min(sizes[:-1]) < 100  # a short page that is not the last one
    assert body["totalHits"] > len(expected)  # approximate, like the platform's


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [({"paging": {"pageSize": 101}}, "pageSize"),
     ({"paging": {"pageNumber": 0}}, "pageNumber"),
     ({"userFilters": [{"type": "or", "predicates": [
         {"dimension": "queueId", "value": "q-sales"}]}]}, "queueId"),
     ({"order": "sideways"}, "order")],
    ids=["page-size", "page-number", "user-filter-dimension", "order"],
)
def test_details_reject_invalid_queries(
    api: Api, sim_now: datetime, extra: dict[str, Any], fragment: str
) -> None:
    response = api.post(DETAILS, {"interval": window(sim_now)} | extra)
    assert fragment in assert_error(response, 400, "bad.request")["message"]


def test_details_interval_longer_than_seven_days_is_rejected(
    api: Api, sim_now: datetime
) -> None:
    assert details(api, window(sim_now, 7 * 24 * 60))["totalHits"] == 9 - 2
    response = api.post(DETAILS, {"interval": window(sim_now, 7 * 24 * 60 + 1)})
    assert "7 days" in assert_error(response, 400, "bad.request")["message"]


def test_details_follow_the_simulated_clock(api: Api, sim_now: datetime) -> None:
    api.sim.org.now = sim_now - timedelta(minutes=6)  # before u-agent-3's ON_QUEUE began
    body = details(api, window(sim_now), userFilters=[{"type": "or", "predicates": [
        {"dimension": "userId", "operator": "matches", "value": "u-agent-3"}]}])
    presence = body["userDetails"][0]["primaryPresence"]
    assert [p["systemPresence"] for p in presence] == ["OFFLINE", "AVAILABLE"]
    assert "endTime" not in presence[-1]  # it ends at 11:55, which has not happened yet


def test_presence_changes_made_while_running_are_served(api: Api, sim_now: datetime) -> None:
    with api.sim.lock:
        api.sim.org.set_presence("u-agent-4", "AVAILABLE", sim_now - timedelta(minutes=3))
    body = details(api, window(sim_now), userFilters=[{"type": "or", "predicates": [
        {"dimension": "userId", "value": "u-agent-4"}]}])
    presence = body["userDetails"][0]["primaryPresence"]
    assert [(p["systemPresence"], "endTime" in p) for p in presence] == [
        ("OFFLINE", True), ("AVAILABLE", False)]
    assert parse_timestamp(presence[1]["startTime"]) == sim_now - timedelta(minutes=3)


# ----------------------------------------------------------------------------- rate limit


def test_rate_limit_answers_429_with_retry_after_once_the_window_is_full(
    simulator: StartSim, http: requests.Session, sim_clock: ManualClock
) -> None:
    api = Api(simulator(rate_limit_per_minute=3, clock=sim_clock), http)
    counts = []
    for _ in range(3):
        response = api.get("/api/v2/routing/queues")
        assert response.status_code == 200
        assert response.headers["inin-ratelimit-allowed"] == "3"
        counts.append(response.headers["inin-ratelimit-count"])
        sim_clock.advance(10)
    assert counts == ["1", "2", "3"]
    limited = api.get("/api/v2/routing/queues")
    body = assert_error(limited, 429, "too.many.requests.retry.after")
    assert body["message"] == "Rate limit exceeded the maximum [3] requests within [60] seconds"
    assert limited.headers["Retry-After"] == "30"  # the first request leaves the window at +60
    assert limited.headers["inin-ratelimit-reset"] == "30"
    sim_clock.advance(30)
    assert api.get("/api/v2/routing/queues").status_code == 200


def test_rate_limit_is_per_token_and_can_be_switched_off(
    simulator: StartSim, http: requests.Session
) -> None:
    api = Api(simulator(rate_limit_per_minute=1), http)
    assert api.get("/api/v2/groups").status_code == 200
    assert api.get("/api/v2/groups").status_code == 429
    api.token = api.fetch_token().json()["access_token"]
    assert api.get("/api/v2/groups").status_code == 200
    unlimited = Api(simulator(rate_limit_per_minute=None), http)
    for _ in range(5):
        response = unlimited.get("/api/v2/groups")
        assert response.status_code == 200
        assert "inin-ratelimit-count" not in response.headers


# ----------------------------------------------------------------------------- faults


def test_status_fault_answers_once_then_the_endpoint_recovers(api: Api) -> None:
    api.sim.inject(Fault("status", path="/api/v2/users", status=503))
    assert_error(api.get("/api/v2/users"), 503, "service.unavailable")
    assert api.get("/api/v2/users").status_code == 200


def test_fault_only_hits_its_path_prefix_and_faults_apply_in_injection_order(api: Api) -> None:
    api.sim.inject(Fault("status", path="/api/v2/routing", status=502, times=2))
    api.sim.inject(Fault("status", path="/api/v2/routing", status=504))
    assert api.get("/api/v2/groups").status_code == 200
    statuses = [api.get("/api/v2/routing/queues").status_code for _ in range(4)]
    assert statuses == [502, 502, 504, 200]


def test_fault_without_a_limit_lasts_forever(api: Api) -> None:
    api.sim.inject(Fault("status", status=500, times=None))
    assert [api.get("/api/v2/groups").status_code for _ in range(3)] == [500, 500, 500]
    api.sim.clear_faults()
    assert api.get("/api/v2/groups").status_code == 200


@pytest.mark.parametrize(("retry_after", "header"), [(2, "2"), (0.5, "0.5"), (None, None)])
def test_rate_limit_fault_sends_429_with_or_without_retry_after(
    api: Api, retry_after: float | None, header: str | None
) -> None:
    api.sim.inject(Fault("rate_limit", retry_after=retry_after))
    response = api.get("/api/v2/users")
    assert response.status_code == 429
    assert response.headers.get("Retry-After") == header
    assert response.json()["code"].startswith("too.many.requests")


def test_slow_fault_delays_then_answers_normally(simulator: StartSim,
                                                 http: requests.Session) -> None:
    waits: list[float] = []
    api = Api(simulator(sleep=waits.append), http)
    api.sim.inject(Fault("slow", path=AGGREGATES, delay_seconds=2.5))
    assert api.get("/api/v2/groups").status_code == 200
    assert waits == []
    response = api.post(AGGREGATES, {"interval": window(api.sim.org.now),
                                     "metrics": ["tSystemPresence"], "groupBy": ["userId"]})
    assert response.status_code == 200
    assert waits == [2.5]


def test_slow_fault_makes_a_client_with_a_short_timeout_time_out(
    api: Api, http: requests.Session
) -> None:
    api.sim.inject(Fault("slow", delay_seconds=0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(f"{api.sim.api_url}/api/v2/groups", timeout=0.1,
                 headers={"Authorization": f"Bearer {api.token}"})


def test_latency_is_added_to_every_request(simulator: StartSim, http: requests.Session) -> None:
    waits: list[float] = []
    api = Api(simulator(latency_seconds=0.05, sleep=waits.append), http)
    api.get("/api/v2/groups")
    assert waits == [0.05, 0.05]  # the token request and the API call


def test_malformed_fault_answers_200_with_a_truncated_body(api: Api) -> None:
    api.sim.inject(Fault("malformed", path="/api/v2/users"))
    response = api.get("/api/v2/users")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    assert api.get("/api/v2/users").json()["total"] == 8


def test_expired_token_fault_kills_the_bearer_until_a_new_token_is_fetched(api: Api) -> None:
    api.sim.inject(Fault("expired_token"))
    assert_error(api.get("/api/v2/users"), 401, "bad.credentials")
    assert_error(api.get("/api/v2/users"), 401, "bad.credentials")
    api.token = api.fetch_token().json()["access_token"]
    assert api.get("/api/v2/users").status_code == 200


def test_forbidden_fault_names_the_permission(api: Api, sim_now: datetime) -> None:
    api.sim.inject(Fault("forbidden", path=DETAILS))
    response = api.post(DETAILS, {"interval": window(sim_now)})
    body = assert_error(response, 403, "missing.permissions")
    assert body["message"] == (
        "Unable to perform the requested action. You are missing the following permission(s): "
        "[analytics:userDetail:view]"
    )


def test_forbidden_paths_always_answer_403(simulator: StartSim, http: requests.Session) -> None:
    api = Api(simulator(forbidden={"/api/v2/authorization": "authorization:role:view"}), http)
    api.sim.forbid("/api/v2/license", "authorization:license:view")
    for path, permission in [("/api/v2/authorization/roles", "authorization:role:view"),
                             ("/api/v2/license/users", "authorization:license:view")]:
        for _ in range(2):
            body = assert_error(api.get(path), 403, "missing.permissions")
            assert body["message"].endswith(f"[{permission}]")
    assert api.get("/api/v2/groups").status_code == 200


def test_token_endpoint_faults_must_name_its_path(api: Api) -> None:
    api.sim.inject(Fault("status", status=503))  # "" = API paths only
    assert api.fetch_token().status_code == 200
    assert api.get("/api/v2/groups").status_code == 503
    api.sim.inject(Fault("status", path="/oauth/token", status=503))
    assert api.fetch_token().status_code == 503
    assert api.fetch_token().status_code == 200


# ----------------------------------------------------------------------------- protocol


def test_unknown_path_and_bad_json_get_error_bodies(api: Api, http: requests.Session) -> None:
    assert_error(api.get("/api/v2/nothing/here"), 404, "not.found")
    response = http.post(f"{api.sim.api_url}{AGGREGATES}", data=b"{not json", timeout=5,
                         headers={"Authorization": f"Bearer {api.token}",
                                  "Content-Type": "application/json"})
    assert "not valid JSON" in assert_error(response, 400, "bad.request")["message"]


def test_oversized_body_is_refused_and_the_connection_closed(api: Api) -> None:
    response = api.http.post(f"{api.sim.api_url}{DETAILS}", data=b"x" * 600_000, timeout=5,
                             headers={"Authorization": f"Bearer {api.token}"})
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"
    assert response.json()["contextId"] == response.headers["inin-correlation-id"]
    assert api.get("/api/v2/groups").status_code == 200


def test_requests_are_recorded_and_counted(api: Api, sim_now: datetime) -> None:
    api.get("/api/v2/users", pageSize=5)
    api.post(AGGREGATES, {"interval": window(sim_now), "metrics": ["tSystemPresence"]})
    api.get("/api/v2/nothing")
    recorded = api.sim.requests
    assert [(r.method, r.path, r.status) for r in recorded] == [
        ("POST", "/oauth/token", 200),
        ("GET", "/api/v2/users", 200),
        ("POST", AGGREGATES, 200),
        ("GET", "/api/v2/nothing", 404),
    ]
    assert recorded[0].body == {"grant_type": "client_credentials"}
    assert recorded[1].query == {"pageSize": ["5"]}
    assert recorded[2].body == {"interval": window(sim_now), "metrics": ["tSystemPresence"]}
    assert api.sim.count() == 4
    assert api.sim.count("/oauth/token") == 1
    assert api.sim.count("/api/v2/", method="GET") == 2
    api.sim.clear_requests()
    assert api.sim.count() == 0


def test_every_response_has_a_fresh_correlation_id(api: Api) -> None:
    ids = {api.get("/api/v2/groups").headers["inin-correlation-id"] for _ in range(5)}
    assert len(ids) == 5


def test_a_keep_alive_session_serves_a_burst_of_requests(api: Api) -> None:
    statuses = {api.get("/api/v2/routing/queues").status_code for _ in range(200)}
    assert statuses == {200}
    assert api.sim.count("/api/v2/routing/queues") == 200


def test_a_large_org_serves_500_user_pages(simulator: StartSim, http: requests.Session,
                                           generated_org: Callable[..., SimOrg]) -> None:
    org = generated_org(5000, seed=3)
    api = Api(simulator(org), http)
    body = api.get("/api/v2/users", pageSize=500, pageNumber=10, expand="presence").json()
    assert len(body["entities"]) == body["total"] - 9 * 500
    assert body["pageCount"] == 10
    assert "nextUri" not in body


def test_stop_frees_the_port_and_ends_keep_alive_connections(
    simulator: StartSim, http: requests.Session
) -> None:
    sim = simulator()
    api = Api(sim, http)
    url = sim.api_url
    sim.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        api.http.get(f"{url}/api/v2/groups", timeout=2,
                     headers={"Authorization": f"Bearer {api.token}"})
    with pytest.raises(RuntimeError):
        _ = sim.api_url


def test_scenario_round_trip_serves_the_same_org(
    simulator: StartSim, http: requests.Session, small_org: SimOrg, tmp_path: Path,
    sim_now: datetime,
) -> None:
    path = tmp_path / "org.json"
    save_scenario(small_org, path)
    api_a = Api(simulator(small_org), http)
    api_b = Api(simulator(load_scenario(path)), http)
    query = {"interval": window(sim_now), "paging": {"pageSize": 100}}
    assert api_a.post(DETAILS, query).json() == api_b.post(DETAILS, query).json()


# The official SDK's models (MyPureCloud platform-client-sdk, generated from Genesys's swagger):
# AnalyticsRoutingStatusRecord {startTime, endTime, routingStatus, durationMilliseconds} with
# RoutingStatusEnum OFF_QUEUE, IDLE, INTERACTING, NOT_RESPONDING, COMMUNICATING; a User's
# `division` is a Division {id, name, selfUri}.
SDK_ROUTING_RECORD_FIELDS = {"startTime", "endTime", "routingStatus", "durationMilliseconds"}
SDK_ROUTING_STATUSES = {"OFF_QUEUE", "IDLE", "INTERACTING", "NOT_RESPONDING", "COMMUNICATING"}
SDK_DIVISION_FIELDS = {"id", "name", "selfUri"}


def test_routing_status_and_idle_people_follow_the_sdk_models_and_presence(
    simulator: StartSim, http: requests.Session, generated_org: Callable[..., SimOrg],
    sim_now: datetime,
) -> None:
    org = generated_org(600, seed=5, ghost_share=0.03)
    api = Api(simulator(org), http)
    body = details(api, format_interval(sim_now - timedelta(hours=12), sim_now),
                   paging={"pageSize": 100, "pageNumber": 1})
    ghosts = {user.id for user in org.users if user.lid_closed_at is not None}
    assert ghosts  # the seed's ghosts closed the lid
    long_available = long_away = 0
    for row in body["userDetails"]:
        routing = row["routingStatus"]
        assert routing, row["userId"]
        for record in routing:
            assert set(record) <= SDK_ROUTING_RECORD_FIELDS
            assert record["routingStatus"] in SDK_ROUTING_STATUSES
        for before, after in itertools.pairwise(routing):
            assert before["endTime"] == after["startTime"]
            assert before["routingStatus"] != after["routingStatus"]  # one record per status
        presence = [(parse_timestamp(p["startTime"]),
                     parse_timestamp(p["endTime"]) if "endTime" in p else sim_now,
                     p["systemPresence"]) for p in row["primaryPresence"]]
        for record in routing:
            start = parse_timestamp(record["startTime"])
            during = next(p for s, e, p in presence if s <= start < e)
            # Waiting, interacting or not responding happen On Queue only.
            assert (record["routingStatus"] == "OFF_QUEUE") == (during != "ON_QUEUE")
            if record["routingStatus"] == "NOT_RESPONDING":
                assert row["userId"] in ghosts
        for start, end, name in presence:
            if end - start >= timedelta(hours=1):
                long_available += name == "AVAILABLE"
                long_away += name == "AWAY"
    # Agents off queue and staff away for an hour or more.
    assert long_available > 0
    assert long_away > 0
    users = api.get("/api/v2/users", pageSize=500, pageNumber=1).json()["entities"]
    assert all(set(user["division"]) == SDK_DIVISION_FIELDS for user in users)


def test_deleting_a_users_tokens_logs_them_out_now(api: Api, sim_now: datetime) -> None:
    response = api.http.delete(f"{api.sim.api_url}/api/v2/tokens/u-agent-1", timeout=5,
                               headers={"Authorization": f"Bearer {api.token}"})
    assert (response.status_code, response.content) == (204, b"")
    org = api.sim.org
    assert org.current_presence(org.user("u-agent-1")) == "OFFLINE"
    assert org.user("u-agent-1").signed_out == [sim_now]
    missing = api.http.delete(f"{api.sim.api_url}/api/v2/tokens/nobody", timeout=5,
                              headers={"Authorization": f"Bearer {api.token}"})
    assert missing.status_code == 404
