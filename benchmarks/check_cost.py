"""What one license check costs as the organization grows: API calls, time, memory, storage.

    .venv/bin/python -m benchmarks.check_cost             # docs/scale-and-cost.md (about 25 min)
    .venv/bin/python -m benchmarks.check_cost --sizes 1000,10000 --naive-sizes 1000  # 2 minutes
    .venv/bin/python -m benchmarks.check_cost --sizes 20000:150 --naive-sizes "" --endpoints

For each size a generated organization (benchmarks default: one queue per 100 users; a size
written `users:queues` sets the queue count) is served by the Genesys simulator with a latency
per request (default 50 ms) and the platform's 300 requests/min limit per token. Full checks run
through the in-process replay host with Table Storage in Azurite, at each moment of --moments
(default 18:00, about 30% of users logged in as in DESIGN.md section 11, and 14:05, just after
the 14:00 shift change, the busiest window of the day): cold (empty table, no token), then warm
(roster cached, token held) five minutes later. Each run is a fresh process, so its peak RSS is
that run's; the naive script (per-user calls, sequential, no cache, no rate limit) runs the same
way, at the first moment, for the sizes in --naive-sizes.

Printed: the results table (Markdown, as committed in docs/scale-and-cost.md), the API calls
the formulas predict next to the measured ones, and with --endpoints the calls per endpoint.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from license_monitor.genesys.models import OFFLINE
from simulator import GenesysSimulator, SimOrg, generate_org
from simulator.azurite import start_azurite

REPO = Path(__file__).resolve().parents[1]
DAY = datetime(2026, 11, 26, tzinfo=UTC)
NEXT_CHECK = timedelta(minutes=5)  # the warm check is the next scheduled one
WINDOW = timedelta(minutes=15)
LICENSE_PATTERN = r"(?i)^cloudcx\d"
USERS_PAGE = LICENSES_PAGE = QUEUES_PAGE = 500
MEMBERS_PAGE = DETAILS_PAGE = 100


@dataclass(frozen=True)
class Size:
    """One organization to measure."""

    users: int
    queues: int

    @property
    def label(self) -> str:
        """'10000:100'."""
        return f"{self.users}:{self.queues}"


@dataclass(frozen=True)
class OrgFacts:
    """What the formulas need, counted from the generated organization itself."""

    active_users: int
    license_holders: int
    queues: int
    member_pages: int  # member listing pages of the queues whose memberCount is not 0
    pool: int

    def warm_calls(self, window_users: int) -> int:
        """1 aggregates query + ceil(H/100) details pages + 1 page past them (H = rows)."""
        return 1 + max(1, math.ceil(window_users / DETAILS_PAGE) + (1 if window_users else 0))

    def license_pages(self) -> int:
        """The license listing: who is in the pool."""
        return max(1, math.ceil(self.license_holders / LICENSES_PAGE))

    def roster_calls(self) -> int:
        """The full roster, read in the background: users pages + license pages + queue
        pages + member pages of non-empty queues."""
        return (max(1, math.ceil(self.active_users / USERS_PAGE)) + self.license_pages()
                + max(1, math.ceil(self.queues / QUEUES_PAGE)) + self.member_pages)

    def cold_calls(self, window_users: int, *, pool_read: bool) -> int:
        """Token + the organization (its id keys the state) + the license listing when the
        background roster was not built within the check's short wait + the warm part."""
        return (2 + (self.license_pages() if pool_read else 0)
                + self.warm_calls(window_users))


def window_users(org: SimOrg, at: datetime) -> int:
    """Active users with non-OFFLINE time in [at - 15 min, at): the details query's rows."""
    start = at - WINDOW
    return sum(
        1 for user in org.active_users()
        if any(s.presence != OFFLINE for s in org.segments_between(user, start, at)))


def facts_of(org: SimOrg) -> OrgFacts:
    """Count users, license holders and queue members of the org."""
    members: dict[str, int] = {queue.id: 0 for queue in org.queues}
    for user in org.active_users():
        for queue_id in user.queue_ids:
            members[queue_id] += 1
    return OrgFacts(
        active_users=sum(1 for _ in org.active_users()),
        license_holders=sum(1 for user in org.users if user.licenses),
        queues=len(org.queues),
        member_pages=sum(math.ceil(count / MEMBERS_PAGE) for count in members.values() if count),
        pool=sum(1 for user in org.active_users()
                 if any(lic.lower().startswith("cloudcx") for lic in user.licenses)),
    )


def probe(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run benchmarks.cost_probe in a fresh process and return its JSON result."""
    # A series' progress (one line per check) goes straight to this process's stderr.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cost_probe", kind, json.dumps(spec)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=None if kind == "series" else subprocess.PIPE,
        text=True, timeout=timeout, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} run failed ({done.returncode}):\n{(done.stderr or '')[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if result["status"] != "Completed" or result.get("error"):
        raise RuntimeError(f"{kind} run did not complete: {result.get('error')}")
    return result


def generated(size: Size, args: argparse.Namespace, now: datetime) -> SimOrg:
    """The org to serve, its objects left out of garbage collection from now on.

    The simulator answers for the platform: full collections walking a large org's millions
    of objects would add up to half a second to its answers, which the platform does not have.
    """
    org = generate_org(size.users, seed=args.seed, now=now, queues=size.queues)
    gc.freeze()
    return org


def measure_size(size: Size, args: argparse.Namespace, connection: str) -> list[dict[str, Any]]:
    """Generate and serve one org; at each moment run cold, warm and (maybe) naive."""
    started = time.perf_counter()
    last = max(args.moments) + NEXT_CHECK
    # Generated up to the last check; the simulator serves any earlier `now` faithfully.
    org = generated(size, args, last)
    facts = facts_of(org)
    print(f"  {size.users:,} users, {size.queues} queues generated in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    results = []
    with GenesysSimulator(org, latency_seconds=args.latency,
                          rate_limit_per_minute=args.platform_limit) as sim:
        for index, cold_at in enumerate(args.moments):
            base = {
                "api_url": sim.api_url, "client_id": sim.client_id,
                "client_secret": sim.client_secret, "connection": connection,
                "table": f"cost{size.users}q{size.queues}m{cold_at:%H%M}t{int(time.time())}",
                "budget": args.budget, "capacity": max(1, facts.pool),
                "license_pattern": LICENSE_PATTERN,
            }
            runs: dict[str, dict[str, Any]] = {}
            window: dict[str, int] = {}
            for mode, at in (("cold", cold_at), ("warm", cold_at + NEXT_CHECK)):
                with sim.lock:
                    sim.org.now = at
                    window[mode] = window_users(sim.org, at)
                runs[mode] = probe("check", {**base, "mode": mode, "checked_at": at.isoformat()},
                                   timeout=args.timeout)
                print(f"  {at:%H:%M} {mode}: {runs[mode]['calls']} calls, "
                      f"{runs[mode]['wall_seconds']:.2f} s", file=sys.stderr, flush=True)
            if index == 0 and size.users in args.naive_sizes - args.naive_done:
                args.naive_done.add(size.users)
                # Measured for its calls and latency; how long the platform's rate limit would
                # hold it back is computed beside the table (calls / budget per minute).
                sim.rate_limit_per_minute = None
                runs["naive"] = probe("naive", base, timeout=args.timeout * 20)
                window["naive"] = window["warm"]
                sim.rate_limit_per_minute = args.platform_limit
                print(f"  naive: {runs['naive']['calls']} calls, "
                      f"{runs['naive']['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
            results.append({"size": size, "facts": facts, "at": cold_at, "runs": runs,
                            "window": window})
    return results


def max_per_minute(times: list[float]) -> int:
    """The most requests the simulator answered in any rolling 60-second window."""
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - 60.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def measure_series(size: Size, args: argparse.Namespace, connection: str) -> dict[str, Any]:
    """One worker process running a cold check then args.series_checks warm ones, 5 minutes
    apart (simulated), every setting at its default; the simulator counts every request."""
    first = args.moments[0]
    last = first + NEXT_CHECK * (args.series_checks + 1)
    started = time.perf_counter()
    org = generated(size, args, last)
    facts = facts_of(org)
    print(f"  series: {size.users:,} users generated in {time.perf_counter() - started:.1f} s",
          file=sys.stderr, flush=True)
    with GenesysSimulator(org, latency_seconds=args.latency,
                          rate_limit_per_minute=args.platform_limit) as sim:
        with sim.lock:
            sim.org.now = first
        spec = {
            "api_url": sim.api_url, "client_id": sim.client_id,
            "client_secret": sim.client_secret, "connection": connection,
            "table": f"series{size.users}t{int(time.time())}", "budget": args.budget,
            "capacity": max(1, facts.pool), "license_pattern": LICENSE_PATTERN,
            "checked_at": first.isoformat(), "checks": args.series_checks,
            "pace": args.series_pace,
        }
        result = probe("series", spec, timeout=args.series_checks * (args.series_pace + 120)
                       + 1800)
        answered = [request.at for request in sim.requests]
    runs = result["runs"]
    for run in runs:
        print(f"  {run['checked_at'][11:16]} {run['wall_seconds']:6.2f} s {run['level']} "
              f"split {run['split']} check calls {run['check_calls']} background "
              f"{run['background_calls_during']}", file=sys.stderr, flush=True)
    warm = runs[1:]
    return {"size": size, "cold": runs[0], "warm": warm, "result": result,
            "max_per_minute": max_per_minute(answered), "answered": len(answered),
            "rate_limited_sim": sum(1 for request in sim.requests if request.status == 429)}


def series_table(series: list[dict[str, Any]], budget: int) -> str:
    """The series rows: the cold first check with the defaults, warm p99, the budget."""
    lines = [
        "| users | queues | cold first check (defaults) | cold calls | warm checks | "
        "warm p50 s | warm p99 s | warm max s | checks while a refresh ran | split pending "
        "| refreshes | requests in any minute (budget) | 429 |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item in series:
        cold, warm = item["cold"], item["warm"]
        walls = [run["wall_seconds"] for run in warm]
        exit_code = {"ok": 0, "warning": 1, "critical": 2}.get(str(cold["level"]), 3)
        lines.append(
            f"| {_n(item['size'].users)} | {item['size'].queues} "
            f"| exit {exit_code}, {cold['wall_seconds']:.1f} s, split {cold['split']} "
            f"| {_n(cold['check_calls'])} | {len(warm)} "
            f"| {percentile(walls, 0.5):.2f} | {percentile(walls, 0.99):.2f} "
            f"| {max(walls):.2f} "
            f"| {sum(1 for run in warm if run['refreshing_at_start'] or run['refreshing_at_end'])} "
            f"| {sum(1 for run in warm if run['split'] == 'pending')} "
            f"| {item['result']['refreshes']} | {item['max_per_minute']} ({budget}) "
            f"| {item['rate_limited_sim']} |")
    return "\n".join(lines)


def _n(value: float) -> str:
    return f"{value:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown results table."""
    lines = [
        "| users | queues | at | check | split | online | window users | API calls | wall s "
        "| peak MB | history B/check | table B/check | naive vs warm |",
        "|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for item in results:
        size, runs = item["size"], item["runs"]
        for mode in ("cold", "warm", "naive"):
            run = runs.get(mode)
            if run is None:
                continue
            at = item["at"] + (NEXT_CHECK if mode != "cold" else timedelta(0))
            ratio = ""
            if mode == "naive":
                warm = runs["warm"]
                ratio = (f"x{run['calls'] / warm['calls']:,.0f} calls, "
                         f"x{run['wall_seconds'] / warm['wall_seconds']:,.0f} time")
            stored = "-" if mode == "naive" else _n(run["table_bytes"])
            history = "-" if mode == "naive" else _n(run["history_bytes"])
            lines.append(
                f"| {_n(size.users)} | {size.queues} | {at:%H:%M} | {mode} "
                f"| {run.get('split', 'known')} "
                f"| {_n(run['now']['total'])} | {_n(item['window'][mode])} | {_n(run['calls'])} "
                f"| {run['wall_seconds']:.2f} | {run['peak_rss_mb']:.0f} | {history} "
                f"| {stored} | {ratio} |")
    return "\n".join(lines)


def formula_table(results: list[dict[str, Any]], budget: int) -> str:
    """Predicted against measured API calls per check."""
    lines = [
        "| users | queues | at | roster calls (background) | measured in background "
        "| cold predicted | cold measured "
        "| warm predicted | warm measured | naive measured | naive at the budget |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item in results:
        size, facts, runs, window = item["size"], item["facts"], item["runs"], item["window"]
        naive = runs.get("naive")
        naive_calls = _n(naive["calls"]) if naive else "-"
        naive_minutes = f"{naive['calls'] / budget:,.0f} min" if naive else "-"
        lines.append(
            f"| {_n(size.users)} | {size.queues} | {item['at']:%H:%M} | {facts.roster_calls()} "
            f"| {sum(runs[mode].get('background_calls', 0) for mode in ('cold', 'warm'))} "
            f"| {facts.cold_calls(window['cold'], pool_read=runs['cold']['split'] == 'pending')} "
            f"| {runs['cold']['calls']} "
            f"| {facts.warm_calls(window['warm'])} | {runs['warm']['calls']} "
            f"| {naive_calls} | {naive_minutes} |")
    return "\n".join(lines)


def endpoints(results: list[dict[str, Any]]) -> str:
    """Calls per endpoint of every run (429 answers included, and counted apart)."""
    out: list[str] = []
    for item in results:
        for mode, run in item["runs"].items():
            out.append(f"{item['size'].label} at {item['at']:%H:%M} {mode} "
                       f"({run['rate_limited']} answered 429):")
            for endpoint, calls in sorted(run["by_endpoint"].items(), key=lambda kv: -kv[1]):
                out.append(f"    {calls:6d}  {endpoint}")
    return "\n".join(out)


def parse_sizes(text: str, users_per_queue: int) -> list[Size]:
    """'1000,10000:250' -> sizes; a size without ':' gets users / users_per_queue queues."""
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        users, _, queues = part.partition(":")
        count = int(users)
        sizes.append(Size(count, int(queues) if queues else max(1, count // users_per_queue)))
    return sizes


def main() -> int:
    """Measure every size, then print the tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,10000:250,50000",
                        help="users[:queues],... (default 1000,10000,10000:250,50000)")
    parser.add_argument("--naive-sizes", default="1000,10000",
                        help="sizes to run the naive script for (default 1000,10000)")
    parser.add_argument("--users-per-queue", type=int, default=100,
                        help="queues = users / this, when a size does not say (default 100)")
    parser.add_argument("--moments", default="18:00,14:05",
                        help="cold check times (UTC, HH:MM); warm is 5 minutes later")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--budget", type=int, default=300, help="REQUEST_BUDGET_PER_MINUTE")
    parser.add_argument("--platform-limit", type=int, default=300,
                        help="the simulator's requests/min per token (0 = none)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per check run")
    parser.add_argument("--endpoints", action="store_true", help="print calls per endpoint")
    parser.add_argument("--series", default="",
                        help="sizes to run a series of checks for in one worker process "
                             "(every setting at its default), e.g. 10000,50000")
    parser.add_argument("--series-checks", type=int, default=100,
                        help="warm checks after the cold one in a series (default 100)")
    parser.add_argument("--series-pace", type=float, default=60.0,
                        help="real seconds between the starts of two checks of a series")
    args = parser.parse_args()
    args.platform_limit = args.platform_limit or None
    args.naive_sizes = {size.users for size in parse_sizes(args.naive_sizes, 1)}
    args.naive_done = set()  # the naive script runs once per user count
    args.moments = [
        DAY + timedelta(hours=int(text[:2]), minutes=int(text[3:5]))
        for text in args.moments.split(",")
    ]
    sizes = parse_sizes(args.sizes, args.users_per_queue)

    results = []
    series = []
    with start_azurite() as azurite:
        for size in sizes:
            print(f"measuring {size.users:,} users ...", file=sys.stderr, flush=True)
            results += measure_size(size, args, azurite.connection_string)
        for size in parse_sizes(args.series, args.users_per_queue):
            print(f"series of {size.users:,} users ...", file=sys.stderr, flush=True)
            series.append(measure_series(size, args, azurite.connection_string))

    print(f"Check cost: {args.latency * 1000:.0f} ms per request, budget {args.budget}/min, "
          f"platform limit {args.platform_limit or 'none'}/min, seed {args.seed}; each cold "
          "check is followed by a warm one 5 minutes later.")
    if results:
        print()
        print(table(results))
        print()
        print(formula_table(results, args.budget))
    if series:
        print()
        print(f"Series: a cold check then {args.series_checks} warm ones 5 minutes apart "
              f"(simulated; one every {args.series_pace:g} s of real time), in one worker "
              "process, every setting at its default (CHECK_TIMEOUT_SECONDS 120, "
              "ROSTER_TTL_MINUTES 60); requests per minute as the simulator answered them.")
        print()
        print(series_table(series, args.budget))
    if args.endpoints:
        print()
        print(endpoints(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
