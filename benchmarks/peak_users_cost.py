"""What `peak-users` costs: API calls, time and memory for a day and for a billing period.

    .venv/bin/python -m benchmarks.peak_users_cost                       # a day at 10,000 users
    .venv/bin/python -m benchmarks.peak_users_cost --users 2000 --period # a month at 2,000 users

A generated organization (one queue per 100 users) is served by the Genesys simulator with a
latency per request (default 50 ms) and the platform's 300 requests/min limit per token; the
CLI runs as its own process (`peak-users --day|--period ... --json`) with the default request
budget (300/min), so its peak RSS is its own. Printed: one Markdown row per run, and the calls
the formula predicts next to the measured ones:

    token + roster (users, licenses, queues, members of non-empty queues)
    + per query span of at most 7 days: ceil(rows / 100) details pages + the empty page after
    + the directory (users of any state, licenses)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from simulator import GenesysSimulator, SimOrg, generate_org
from simulator.endpoints import _details_rows

REPO = Path(__file__).resolve().parents[1]
DAY = date(2026, 11, 25)
NON_OFFLINE = frozenset({"AVAILABLE", "AWAY", "BUSY", "IDLE", "ON_QUEUE", "MEAL", "TRAINING",
                         "MEETING", "BREAK"})


def predicted_calls(org: SimOrg, spans: list[tuple[datetime, datetime]]) -> int:
    """The formula of the module docstring, counted from the organization itself."""
    active = sum(1 for user in org.users if user.state == "active" and user.listed)
    holders = sum(1 for user in org.users if user.licenses)
    members: dict[str, int] = {}
    for user in org.users:
        if user.state == "active":
            for queue in user.queue_ids:
                members[queue] = members.get(queue, 0) + 1
    roster = (math.ceil(active / 500) + math.ceil(holders / 500)
              + max(1, math.ceil(len(org.queues) / 500))
              + sum(math.ceil(count / 100) for count in members.values()))
    details = 0
    for start, end in spans:
        rows = len(_details_rows(org, start=start, end=end, user_ids=None,
                                 presences=NON_OFFLINE, order="asc", duplicates=False))
        details += math.ceil(rows / 100) + 1
    directory = math.ceil(sum(1 for u in org.users if u.listed) / 500) + math.ceil(holders / 500)
    return 1 + roster + details + directory


def run(users: int, period: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Generate, serve and measure one run."""
    started = time.perf_counter()
    if period:
        first = date(2026, 11, 1)
        end = datetime(2026, 12, 1, tzinfo=UTC)
        history = (end - datetime(2026, 11, 1, tzinfo=UTC)) + timedelta(hours=6)
    else:
        first = DAY
        end = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(days=1)
        history = timedelta(hours=30)
    now = end + timedelta(minutes=5)
    org = generate_org(users, seed=args.seed, now=now, queues=max(1, users // 100),
                       history_hours=history.total_seconds() / 3600)
    print(f"  {users:,} users generated in {time.perf_counter() - started:.1f} s",
          file=sys.stderr, flush=True)
    begin = datetime.combine(first, datetime.min.time(), UTC)
    spans = []
    cursor = begin
    while cursor < end:
        spans.append((cursor, min(cursor + timedelta(days=7), end)))
        cursor = spans[-1][1]
    predicted = predicted_calls(org, spans)
    with GenesysSimulator(org, latency_seconds=args.latency,
                          rate_limit_per_minute=args.platform_limit) as sim:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GENESYS_", "STATE_", "AzureWebJobs"))}
        env.update({"GENESYS_CLIENT_ID": sim.client_id,
                    "GENESYS_CLIENT_SECRET": sim.client_secret,
                    "GENESYS_API_URL": sim.api_url, "GENESYS_LOGIN_URL": sim.login_url,
                    "LICENSE_CAPACITY": "1000000",
                    "REQUEST_BUDGET_PER_MINUTE": str(args.budget)})
        which = ["--period", first.isoformat()] if period else ["--day", first.isoformat()]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        clock = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "license_monitor", "peak-users", *which, "--json"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout,
            check=False)
        wall = time.perf_counter() - clock
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        raise RuntimeError(f"peak-users failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    return {"users": users, "what": "period" if period else "day", "first": first,
            "level": result["level"], "present": result["present_at_level"],
            "calls": result["requests"],  # the token request included
            "predicted": predicted, "wall": wall,
            "rss_mb": max(rss, before) / 1024, "spans": len(spans)}


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--period", action="store_true", help="a whole month, not a day")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--budget", type=int, default=300, help="REQUEST_BUDGET_PER_MINUTE")
    parser.add_argument("--platform-limit", type=int, default=300,
                        help="the simulator's requests per minute per token")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    item = run(args.users, args.period, args)
    print(f"peak-users cost: {args.latency * 1000:.0f} ms per request, budget "
          f"{args.budget}/min, platform limit {args.platform_limit}/min")
    print("| users | span | queries | level | logged in at the level | API calls (predicted) "
          "| wall s | calls/min | peak MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    per_minute = item["calls"] / (item["wall"] / 60)
    print(f"| {item['users']:,} | {item['what']} from {item['first']} | {item['spans']} "
          f"| {item['level']:,} | {item['present']:,} | {item['calls']:,} "
          f"({item['predicted']:,}) | {item['wall']:.1f} | {per_minute:.0f} "
          f"| {item['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
