"""One measured run in a fresh process: a full check through the replay host, or the naive script.

    .venv/bin/python -m benchmarks.cost_probe check '<json spec>'
    .venv/bin/python -m benchmarks.cost_probe naive '<json spec>'
    .venv/bin/python -m benchmarks.cost_probe series '<json spec>'

benchmarks.check_cost starts this module once per measurement so that the peak memory it
reports (ru_maxrss) belongs to that measurement alone; the simulator and Azurite run elsewhere.
The last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.data.tables import TableClient
from requests.adapters import HTTPAdapter

from license_monitor import runtime
from license_monitor.genesys import budget
from license_monitor.genesys.client import GenesysClient
from license_monitor.genesys.models import parse_timestamp
from license_monitor.settings import Settings
from license_monitor.state import StateStore, StateTable

OFFLINE_SPELLINGS = {"offline", "OFFLINE", "Offline"}


def endpoint_of(path: str) -> str:
    """Group per-id paths: /api/v2/routing/queues/<id>/members -> .../queues/{id}/members."""
    parts = path.split("/")
    return "/".join("{id}" if len(part) >= 32 and "-" in part else part for part in parts)


class RequestLog:
    """A requests response hook that counts answered requests by method, endpoint and status."""

    def __init__(self) -> None:
        self.by_endpoint: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.background = 0  # the background roster refresh's, among them

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        method = response.request.method or "?"
        self.by_endpoint[f"{method} {endpoint_of(urlsplit(response.url).path)}"] += 1
        self.statuses[response.status_code] += 1
        if budget.in_background():  # the hook runs in the requesting thread's context
            self.background += 1

    def reset(self) -> None:
        """Forget what was counted so far."""
        self.by_endpoint.clear()
        self.statuses.clear()
        self.background = 0

    @property
    def calls(self) -> int:
        """Requests answered (token requests and retries included)."""
        return sum(self.by_endpoint.values())

    @property
    def check_calls(self) -> int:
        """Requests of the check itself (not the background roster refresh)."""
        return self.calls - self.background


class WriteMeter:
    """An azure-core raw_request_hook that sums the body bytes of every Table Storage request.

    The SDK prepares a batch's multipart body before the pipeline runs, so the hook sees the
    bytes that go on the wire for batches too. Reads (GET) carry no body.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self.requests = 0

    def __call__(self, pipeline_request: Any) -> None:
        body = pipeline_request.http_request.body
        self.requests += 1
        if body:
            self.bytes += len(body.encode("utf-8") if isinstance(body, str) else body)

    def reset(self) -> None:
        """Start counting from zero."""
        self.bytes = 0
        self.requests = 0


def counted_session(log: RequestLog) -> requests.Session:
    """A session like the client's own (32 pooled connections) that logs every response."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.hooks["response"].append(log)
    return session


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    VmHWM from /proc where there is one: Linux keeps ru_maxrss across exec, so a child of a big
    parent would report the parent's size; VmHWM starts afresh with the new program.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def run_check(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one license_check through the in-process replay host; return its costs and figures."""
    # The Durable layer is imported here, not at module level, so `naive` stays lean.
    from function_app import app  # noqa: PLC0415
    from orchestrators.replay_host import ReplayHost  # noqa: PLC0415
    from orchestrators.starters import singleton_id  # noqa: PLC0415

    settings = Settings.from_env({
        "GENESYS_CLIENT_ID": spec["client_id"],
        "GENESYS_CLIENT_SECRET": spec["client_secret"],
        "GENESYS_API_URL": spec["api_url"],
        "GENESYS_LOGIN_URL": spec["api_url"],
        "LICENSE_CAPACITY": str(spec["capacity"]),
        "STATE_CONNECTION": spec["connection"],
        "STATE_TABLE": spec["table"],
        "REQUEST_BUDGET_PER_MINUTE": str(spec["budget"]),
        # The longest deadline a check may have: a cold check at 50,000 users needs about five
        # minutes of the 300/min budget (docs/scale-and-cost.md "Measured": set so above ~15,000).
        "CHECK_TIMEOUT_SECONDS": "600",
    })
    meter = WriteMeter()
    table = TableClient.from_connection_string(
        spec["connection"], spec["table"], raw_request_hook=meter, retry_total=3,
        connection_timeout=5, read_timeout=20)
    state = StateStore(StateTable(table, settings.client_key, by_client=True))
    log = RequestLog()
    client = GenesysClient(
        api_url=settings.api_url, login_url=settings.login_url, client_id=settings.client_id,
        client_secret=settings.client_secret,
        request_budget_per_minute=settings.request_budget_per_minute, session=counted_session(log))
    services = runtime.Services(settings=settings, client=client, state=state,
                                http=runtime.channel_session())
    runtime.install(services)
    if spec["mode"] == "warm":
        # Warm: this process already holds a token, as a worker does between checks.
        client.ensure_token()
    log.reset()
    meter.reset()
    checked_at = parse_timestamp(spec["checked_at"])
    services.clock = runtime.clock_from(checked_at)
    started = time.perf_counter()
    result = ReplayHost(app, clock=lambda: checked_at).run(
        "license_check", {"dry_run": False, "trigger": "benchmark"},
        instance_id=singleton_id(settings.client_key))
    wall = time.perf_counter() - started
    output = result.output if isinstance(result.output, dict) else {}
    check_calls, by_endpoint = log.check_calls, dict(log.by_endpoint)
    # The roster refresh a cold check started goes on after it, as in a worker process: waited
    # for here (not timed) so that the next, warm, run finds it stored.
    refresh_started = time.perf_counter()
    services.roster_refresh.wait()
    return {
        "split": output.get("split", "known"),
        "background_calls": log.background,
        "refresh_seconds": time.perf_counter() - refresh_started,
        "status": result.runtime_status,
        "error": result.error or output.get("error"),
        "calls": check_calls,
        "by_endpoint": by_endpoint,
        "rate_limited": log.statuses.get(429, 0),
        "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
        "history_bytes": result.history_bytes,
        "table_bytes": meter.bytes,
        "table_requests": meter.requests,
        "now": output.get("concurrent", {}).get("now"),
        "peak": output.get("concurrent", {}).get("peak"),
        "window_distinct": output.get("window_distinct"),
    }


def run_series(spec: dict[str, Any]) -> dict[str, Any]:
    """One worker process over `checks` + 1 checks 5 minutes apart (simulated), the first cold,
    with every setting at its default (CHECK_TIMEOUT_SECONDS 120, ROSTER_TTL_MINUTES 60): the
    roster's background refreshes run between and during the checks, as in a Function App.

    Check i starts `pace` s (real time) after check i - 1 started, or when it ended if later
    (the first warm one at least 61 s after the cold one ended); the simulator's clock is moved
    to its time first (POST /_simulator/now).
    """
    from datetime import timedelta  # noqa: PLC0415

    from function_app import app  # noqa: PLC0415
    from orchestrators.replay_host import ReplayHost  # noqa: PLC0415
    from orchestrators.starters import singleton_id  # noqa: PLC0415

    settings = Settings.from_env({
        "GENESYS_CLIENT_ID": spec["client_id"],
        "GENESYS_CLIENT_SECRET": spec["client_secret"],
        "GENESYS_API_URL": spec["api_url"],
        "GENESYS_LOGIN_URL": spec["api_url"],
        "LICENSE_CAPACITY": str(spec["capacity"]),
        "STATE_CONNECTION": spec["connection"],
        "STATE_TABLE": spec["table"],
        "REQUEST_BUDGET_PER_MINUTE": str(spec["budget"]),
    })
    table = TableClient.from_connection_string(
        spec["connection"], spec["table"], retry_total=3, connection_timeout=5, read_timeout=20)
    state = StateStore(StateTable(table, settings.client_key, by_client=True))
    log = RequestLog()
    client = GenesysClient(
        api_url=settings.api_url, login_url=settings.login_url, client_id=settings.client_id,
        client_secret=settings.client_secret,
        request_budget_per_minute=settings.request_budget_per_minute, session=counted_session(log))
    services = runtime.Services(settings=settings, client=client, state=state,
                                http=runtime.channel_session())
    runtime.install(services)
    clock_session = requests.Session()
    first = parse_timestamp(spec["checked_at"])
    runs = []
    next_start = time.perf_counter()
    for index in range(int(spec["checks"]) + 1):
        checked_at = first + timedelta(minutes=5 * index)
        clock_session.post(f"{spec['api_url']}/_simulator/now",
                           json={"now": checked_at.isoformat()}, timeout=30).raise_for_status()
        time.sleep(max(0.0, next_start - time.perf_counter()))
        next_start = time.perf_counter() + float(spec["pace"])
        refreshing = services.roster_refresh.running
        calls_before, background_before = log.calls, log.background
        services.clock = runtime.clock_from(checked_at)
        started = time.perf_counter()
        result = ReplayHost(app, clock=functools.partial(lambda moment: moment, checked_at)).run(
            "license_check", {"dry_run": False, "trigger": "benchmark"},
            instance_id=singleton_id(settings.client_key))
        wall = time.perf_counter() - started
        if index == 0:
            # On the 5-minute schedule the cold check's calls have left the rolling minute
            # before the next check starts; a compressed pace must not count them against it.
            next_start = max(next_start, time.perf_counter() + 61)
        output = result.output if isinstance(result.output, dict) else {}
        runs.append({
            "checked_at": checked_at.isoformat(), "wall_seconds": wall,
            "status": result.runtime_status, "level": output.get("level"),
            "error": result.error or output.get("error"),
            "split": output.get("split", "known"),
            "now": (output.get("concurrent") or {}).get("now"),
            "peak": (output.get("concurrent") or {}).get("peak"),
            "refreshing_at_start": refreshing,
            "refreshing_at_end": services.roster_refresh.running,
            "check_calls": (log.calls - calls_before) - (log.background - background_before),
            "background_calls_during": log.background - background_before,
        })
        print(f"  check {index} at {checked_at:%H:%M}: {wall:.2f} s, {output.get('level')}, "
              f"split {runs[-1]['split']}, refresh running {services.roster_refresh.running}",
              file=sys.stderr, flush=True)
    return {
        "status": "Completed", "error": None, "runs": runs, "calls": log.calls,
        "background_calls": log.background,
        "rate_limited": log.statuses.get(429, 0), "refreshes": services.roster_refresh.completed,
        "refresh_error": services.roster_refresh.last_error, "peak_rss_mb": peak_rss_mb(),
    }


def run_naive(spec: dict[str, Any]) -> dict[str, Any]:
    """What a typical script does: list users and licenses, then ask per user, one at a time.

    Per active user one presence call; per logged-in concurrent-licensed user one queues call
    (agent when it is in any queue). No cache, no parallelism, no budget: the figure it gets is
    the pool's `now`, which the benchmark compares with the monitor's.
    """
    import re  # noqa: PLC0415

    log = RequestLog()
    session = counted_session(log)
    api = spec["api_url"]
    started = time.perf_counter()
    token = session.post(
        f"{api}/oauth/token", data={"grant_type": "client_credentials"},
        auth=(spec["client_id"], spec["client_secret"]), timeout=30).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"

    def listing(path: str) -> list[dict[str, Any]]:
        entities: list[dict[str, Any]] = []
        page = 1
        while True:
            body = session.get(f"{api}{path}", params={"pageSize": 500, "pageNumber": page},
                               timeout=30).json()
            entities += body.get("entities") or []
            if page >= int(body.get("pageCount") or 0):
                return entities
            page += 1

    users = [user for user in listing("/api/v2/users") if user.get("state") == "active"]
    pattern = re.compile(spec["license_pattern"])
    pool = {entry["id"] for entry in listing("/api/v2/license/users")
            if any(pattern.search(lic) for lic in entry.get("licenses") or [])}
    agents = admins = 0
    for user in users:
        presence = session.get(f"{api}/api/v2/users/{user['id']}/presences/purecloud",
                               timeout=30).json()
        if presence["presenceDefinition"]["systemPresence"] in OFFLINE_SPELLINGS:
            continue
        if user["id"] not in pool:
            continue
        queues = session.get(f"{api}/api/v2/users/{user['id']}/queues",
                             params={"pageSize": 100}, timeout=30).json()
        if queues.get("entities"):
            agents += 1
        else:
            admins += 1
    wall = time.perf_counter() - started
    return {
        "status": "Completed",
        "error": None,
        "calls": log.calls,
        "by_endpoint": dict(log.by_endpoint),
        "rate_limited": log.statuses.get(429, 0),
        "wall_seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
        "history_bytes": 0,
        "table_bytes": 0,
        "table_requests": 0,
        "now": {"total": agents + admins, "agents": agents, "admins": admins},
        "peak": None,
        "window_distinct": None,
    }


def main(argv: list[str]) -> int:
    """Run the measurement named by argv[0] with the JSON spec in argv[1]; print the result."""
    logging.basicConfig(level=logging.WARNING)
    kind, spec = argv[0], json.loads(argv[1])
    runners = {"check": run_check, "naive": run_naive, "series": run_series}
    result = runners[kind](spec)
    result["measured_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.stderr.flush()
    # Measured and printed: a roster refresh still under way on its thread pool would hold the
    # interpreter's exit for minutes, and it belongs to no figure.
    os._exit(0)
