"""API calls (and time) of one usage measurement of a generated org, cold and warm.

    .venv/bin/python -m benchmarks.api_calls [--users 5000] [--latency 0.05] [--seed 7]

Cold: no token and no roster (users, licenses and the queue sweep are read). Warm: the token is
cached and the roster is fresh, so only the aggregates query and the details pages remain.
Counts come from the simulator's request log (token requests included).
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from datetime import UTC, datetime

from license_monitor.genesys.client import GenesysClient
from license_monitor.measure import measure
from license_monitor.roster import AgentRule, Roster
from license_monitor.simulator import GenesysSimulator, generate_org

NOW = datetime(2026, 11, 26, 14, 5, tzinfo=UTC)  # just after a shift change
CX = re.compile(r"(?i)^cloudcx\d")


def _endpoint(path: str) -> str:
    """Group per-id paths: /api/v2/routing/queues/<id>/members -> .../queues/{id}/members."""
    parts = path.split("/")
    return "/".join("{id}" if len(part) >= 32 and "-" in part else part for part in parts)


def _run(sim: GenesysSimulator, client: GenesysClient, roster: Roster | None, label: str) -> Roster:
    sim.clear_requests()
    started = time.perf_counter()
    report, roster = measure(
        client,
        now=NOW,
        window_minutes=15,
        rule=AgentRule("queue"),
        license_pattern=CX,
        roster=roster,
        roster_ttl_minutes=60,
        parallel_pages=4,
    )
    elapsed = time.perf_counter() - started
    by_endpoint = Counter(f"{r.method} {_endpoint(r.path)}" for r in sim.requests)
    print(f"{label}: {sim.count()} API calls in {elapsed:.2f} s")
    for endpoint, calls in sorted(by_endpoint.items(), key=lambda item: -item[1]):
        print(f"    {calls:5d}  {endpoint}")
    print(
        f"    figures: now {report.now.total}, peak {report.peak.total}, "
        f"window distinct {report.window_distinct}"
    )
    return roster


def main() -> None:
    """Generate the org, serve it, and measure it cold then warm."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    args = parser.parse_args()

    org = generate_org(args.users, seed=args.seed, now=NOW)
    online = sum(1 for user in org.users if org.presence_at(user, NOW) != "OFFLINE")
    print(f"org: {args.users} users, {len(org.queues)} queues, {online} logged in at {NOW:%H:%M}Z")
    with GenesysSimulator(org, rate_limit_per_minute=None, latency_seconds=args.latency) as sim:
        client = GenesysClient(
            api_url=sim.api_url,
            login_url=sim.login_url,
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            # Counting calls, not pacing them: the budget must not add waits to the timings.
            request_budget_per_minute=100_000,
        )
        roster = _run(sim, client, None, "cold (no token, no roster)")
        _run(sim, client, roster, "warm (cached token, fresh roster)")


if __name__ == "__main__":
    main()
