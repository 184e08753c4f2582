"""What the presence gauge costs: events per second ingested and storage requests per event.

    .venv/bin/python -m benchmarks.gauge_ingest [--users 50000] [--events 3000]

Against a local Azurite (started here): an org of `--users` pool users (a cached roster), then
a shift change of `--events` presence events (half logins, half logouts) ingested the way the
endpoint does it (parse the body, the roster from the per-process memo, apply, maybe claim),
once one event per request (EventBridge API destinations, data actions) and once in arrays of
100; then one reconciliation by an exact check, and one gauge read. Every HTTP request to
Table Storage is counted with azure-core's raw_request_hook.
"""

from __future__ import annotations

import argparse
import json
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


def shift_change(users: int, events: int, offset: int) -> list[dict[str, Any]]:
    """`events` bodies: users offset.. log in, as many others log out, in time order."""
    half = events // 2
    changes = []
    for index in range(half):
        at = START + timedelta(minutes=offset, milliseconds=index * 100)
        changes.append(PresenceChange(f"user-{(offset * 997 + index) % users:05d}", at,
                                      "ON_QUEUE"))
        changes.append(PresenceChange(f"user-{(offset * 997 + half + index) % users:05d}",
                                      at + timedelta(milliseconds=50), "OFFLINE"))
    return [eventbridge_event(c) if i % 2 else activity_body(c)
            for i, c in enumerate(changes)]


def ingest_all(store: StateStore, memo: gauge.RosterMemo, bodies: list[dict[str, Any]],
               per_request: int) -> None:
    for start in range(0, len(bodies), per_request):
        chunk = bodies[start:start + per_request]
        payload = chunk[0] if per_request == 1 else chunk
        events = gauge.parse_events(json.dumps(payload).encode())
        roster = memo.get("bench", store.roster.load)
        gauge.ingest(store.gauge, store.alerts, roster, events, capacity=1_000_000,
                     warning_percent=90, now=datetime.now(UTC),
                     min_interval=timedelta(seconds=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=3_000)
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
        began = time.perf_counter()
        reconciled = store.gauge.reconcile(online, roster, START + timedelta(minutes=1))
        seconds = time.perf_counter() - began
        if reconciled is None:
            raise SystemExit("the gauge was not in use: nothing reconciled")
        print(f"reconcile {len(online):,} logged in of {args.users:,} (first time): "
              f"{counter.count} requests, {seconds:.2f} s")
        memo.get("bench", store.roster.load)  # warm, as a worker that has served one request

        for label, per_request, offset in (("1 event per request", 1, 10),
                                           ("100 events per request", 100, 20)):
            bodies = shift_change(args.users, args.events, offset)
            counter.count = 0
            began = time.perf_counter()
            ingest_all(store, memo, bodies, per_request)
            seconds = time.perf_counter() - began
            print(f"{label}: {len(bodies):,} events in {seconds:.2f} s = "
                  f"{len(bodies) / seconds:,.0f} events/s; {counter.count:,} storage requests "
                  f"= {counter.count / len(bodies):.2f} per event")
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
        began = time.perf_counter()
        store.gauge.reconcile(online, roster, START + timedelta(hours=1))
        seconds = time.perf_counter() - began
        print(f"reconcile after the shift changes: {counter.count} requests, {seconds:.2f} s")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
