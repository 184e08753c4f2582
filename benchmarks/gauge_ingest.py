"""What the presence gauge costs: answer times, storage requests per event, reconciliation.

    .venv/bin/python -m benchmarks.gauge_ingest [--users 50000] [--logins 3000]

Against a local Azurite (started here), one worker: an org of `--users` pool users (a cached
roster) with a fifth of them logged in, reconciled by an exact check (10,000 logged in at the
default size); then a shift change of `--logins` logins and as many logouts, ingested the way
the endpoint does it (parse the body, the roster from the per-process memo, apply, maybe
claim), once one event per request (EventBridge API destinations, data actions) and once in
arrays of 100, each request timed (p50/p99/max); then the same events again (duplicates), a
gauge read, and the reconciliation after the shift changes. Every HTTP request to Table
Storage is counted with azure-core's raw_request_hook.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableClient

from license_monitor import gauge
from license_monitor.roster import POOL_FROM_LICENSES, Roster
from license_monitor.state import StateStore, StateTable
from simulator.azurite import start_azurite
from simulator.events import PresenceChange, activity_body, eventbridge_event

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


class RequestCounter:
    """Counts requests to Table Storage (raw_request_hook runs once per HTTP request)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Any) -> None:
        self.count += 1


def store_for(connection: str, table: str, hook: Callable[[Any], None]) -> StateStore:
    client = TableClient.from_connection_string(connection, table, raw_request_hook=hook)
    return StateStore(StateTable(client, "bench-org"))


def roster_of(users: int) -> Roster:
    ids = [f"user-{index:05d}" for index in range(users)]
    admins = frozenset(ids[::7])
    return Roster(built_at=START, pool_source=POOL_FROM_LICENSES,
                  agents=frozenset(ids) - admins, admins=admins, excluded=frozenset())


def shift_change(users: int, logins: int, offset: int) -> list[dict[str, Any]]:
    """`logins` logins of users offset.., as many logouts of others, in time order (every
    other EventBridge event without modifiedDate, as real ones may come)."""
    half = logins
    changes = []
    for index in range(half):
        at = START + timedelta(minutes=offset, milliseconds=index * 100)
        changes.append(PresenceChange(f"user-{(offset * 997 + index) % users:05d}", at,
                                      "ON_QUEUE"))
        changes.append(PresenceChange(f"user-{(offset * 997 + half + index) % users:05d}",
                                      at + timedelta(milliseconds=50), "OFFLINE"))
    return [eventbridge_event(c, with_modified_date=i % 4 == 1) if i % 2 else activity_body(c)
            for i, c in enumerate(changes)]


def ingest_all(store: StateStore, memo: gauge.RosterMemo, bodies: list[dict[str, Any]],
               per_request: int) -> tuple[list[float], list[float]]:
    """Ingest the bodies as the endpoint does; the seconds of each request, wall and this
    process's CPU (all its threads: what a machine of its own would leave of the wall time,
    with Table Storage's own time on top)."""
    seconds, cpu = [], []
    for start in range(0, len(bodies), per_request):
        chunk = bodies[start:start + per_request]
        body = json.dumps(chunk[0] if per_request == 1 else chunk).encode()
        began, cpu_began = time.perf_counter(), time.process_time()
        events = gauge.parse_events(body)
        roster = memo.get("bench", store.roster.load)
        gauge.ingest(store.gauge, store.alerts, roster, events, capacity=1_000_000,
                     warning_percent=90, now=datetime.now(UTC),
                     min_interval=timedelta(seconds=60))
        seconds.append(time.perf_counter() - began)
        cpu.append(time.process_time() - cpu_began)
    return seconds, cpu


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share 0.99: the value 99 % of requests stay within)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def timings(seconds: list[float]) -> str:
    return (f"p50 {percentile(seconds, 0.50) * 1000:,.0f} ms, "
            f"p99 {percentile(seconds, 0.99) * 1000:,.0f} ms, max {max(seconds) * 1000:,.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--logins", type=int, default=3_000)
    args = parser.parse_args()
    azurite = start_azurite()
    try:
        counter = RequestCounter()
        store = store_for(azurite.connection_string, "gaugebench", counter)
        roster = roster_of(args.users)
        store.roster.save(roster.to_dict(), START)
        memo = gauge.RosterMemo(ttl_seconds=3600)
        # The gauge in use, as after a first check: a fifth of the org logged in.
        online = [f"user-{index:05d}" for index in range(0, args.users, 5)]
        store.gauge.apply([gauge.PresenceEvent(online[0], gauge.epoch_ms(START), "ON_QUEUE")],
                          roster)
        counter.count = 0
        began, cpu = time.perf_counter(), time.process_time()
        reconciled = store.gauge.reconcile(online, roster, START + timedelta(minutes=1))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        if reconciled is None:
            raise SystemExit("the gauge was not in use: nothing reconciled")
        print(f"reconcile {len(online):,} logged in of {args.users:,} (first time): "
              f"{counter.count} requests, {seconds:.2f} s ({cpu:.2f} s of this process's CPU)")
        counter.count = 0
        began, cpu = time.perf_counter(), time.process_time()
        store.gauge.reconcile(online, roster, START + timedelta(minutes=2))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        print(f"reconcile {len(online):,} logged in again (nothing changed): "
              f"{counter.count} requests, {seconds:.2f} s ({cpu:.2f} s CPU)")
        memo.get("bench", store.roster.load)  # warm, as a worker that has served one request

        for label, per_request, offset in (("1 event per request", 1, 10),
                                           ("100 events per request", 100, 20)):
            bodies = shift_change(args.users, args.logins, offset)
            counter.count = 0
            began = time.perf_counter()
            answers, cpu_times = ingest_all(store, memo, bodies, per_request)
            seconds = time.perf_counter() - began
            print(f"{label}: {len(bodies):,} events in {seconds:.2f} s = "
                  f"{len(bodies) / seconds:,.0f} events/s; {counter.count:,} storage requests "
                  f"= {counter.count / len(bodies):.2f} per event; per request "
                  f"{timings(answers)}; CPU per request {timings(cpu_times)}")
            counter.count = 0
            ingest_all(store, memo, bodies, per_request)  # the same again: all duplicates
            print(f"  the same events again (duplicates): "
                  f"{counter.count / len(bodies):.2f} requests per event")

        counter.count = 0
        began = time.perf_counter()
        reading = store.gauge.read()
        seconds = time.perf_counter() - began
        if reading is None:
            raise SystemExit("the gauge was not in use")
        print(f"read the gauge ({reading.total:,} logged in): {counter.count} requests, "
              f"{seconds * 1000:.0f} ms")
        counter.count = 0
        began, cpu = time.perf_counter(), time.process_time()
        store.gauge.reconcile(online, roster, START + timedelta(hours=1))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        print(f"reconcile after the shift changes: {counter.count} requests, {seconds:.2f} s "
              f"({cpu:.2f} s CPU)")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
