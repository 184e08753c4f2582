"""State keyed by the organization: the client's pointer and moving rows from the client key."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
import requests
from azure.data.tables import TableServiceClient

from license_monitor.state import StateStore
from license_monitor.state.table import POINTER_ROW
from simulator.azurite import Azurite
from tests.fixtures.azurite import stored_samples
from tests.fixtures.receivers import HttpReceiver
from tests.integration.state.helpers import (
    NOW,
    PERIOD,
    POLICY,
    at,
    check,
    delivered_events,
    minutes,
    usage,
)

CLIENT_A = "mypurecloud-ie-client-a"
CLIENT_B = "mypurecloud-ie-client-b"
ORG_ID = "3f2a9c1e-5b7d-4e8f-a1b2-c3d4e5f60718"
ROSTER = {"agents": ["u-1", "u-2"], "admins": ["u-3"], "built_at": "2026-11-26T11:00:00Z"}

Opener = Callable[..., StateStore]


@pytest.fixture
def open_store(azurite: Azurite, table_name: str) -> Opener:
    """open_store(key, by_client=True): a store as a worker process builds it."""

    def make(key: str, *, by_client: bool = True) -> StateStore:
        return StateStore.from_connection_string(
            azurite.connection_string, table_name, key, by_client=by_client)

    return make


def rows_by_partition(service: TableServiceClient, table: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in service.get_table_client(table).list_entities():
        found.setdefault(str(row["PartitionKey"]), []).append(str(row["RowKey"]))
    return {partition: sorted(keys) for partition, keys in sorted(found.items())}


def write_previous_version_state(
    old: StateStore, receiver: HttpReceiver, session: requests.Session
) -> None:
    """What a version keying state by client left: an open breach, billing, samples, roster."""
    check(old, receiver, session, usage(470), NOW)  # breach, delivered
    old.billing.record_minutes(PERIOD, minutes(NOW - timedelta(minutes=40), 40, 470), NOW)
    old.samples.save({"checked_at": "2026-11-26T12:00:00.000Z", "level": "warning"}, NOW)
    old.roster.save(ROSTER, NOW)


def test_the_previous_versions_rows_move_to_the_org_key_and_a_second_client_finds_them(
    open_store: Opener, table_service: TableServiceClient, table_name: str,
    receiver: HttpReceiver, session: requests.Session,
) -> None:
    write_previous_version_state(open_store(CLIENT_A, by_client=False), receiver, session)
    before = open_store(CLIENT_A, by_client=False)
    episode = before.alerts.load_state()
    billed = before.billing.summary(PERIOD)

    worker = open_store(CLIENT_A)
    assert not worker.table.org_known  # no pointer yet: the client key's rows are read
    assert worker.alerts.load_state() == episode
    moved = worker.organization.adopt(ORG_ID, "Contoso", at(5))

    assert moved == len([key for keys in rows_by_partition(table_service, table_name).values()
                         for key in keys if key != POINTER_ROW])
    assert rows_by_partition(table_service, table_name) == {
        CLIENT_A: [POINTER_ROW],
        ORG_ID: ["alert-state", "roster", "roster|0000"],
        f"{ORG_ID}|minutes|2026-11-01": sorted(
            [f"2026-11-26T11:{m:02d}Z" for m in range(20, 60)] + ["histogram"]),
        f"{ORG_ID}|samples": ["2026-11-26T12:00:00.000Z"],
    }
    assert worker.table.org == ORG_ID
    # Another worker of client A, and a new client B once it learned the org, read it all.
    for store in (open_store(CLIENT_A), open_store(CLIENT_B)):
        if store.table.client_key == CLIENT_B:
            assert store.alerts.load_state().level == "ok"  # B's own key: nothing there
            assert store.organization.adopt(ORG_ID, "Contoso", at(10)) == 0
        assert store.alerts.load_state() == episode
        assert store.billing.summary(PERIOD) == billed
        assert store.roster.load() == ROSTER
        assert len(stored_samples(store, NOW, NOW)) == 1
    # The open breach stays open: no second breach for the same episode.
    again = check(open_store(CLIENT_B), receiver, session, usage(465), at(15))
    assert again.decision.events == ()
    assert delivered_events(receiver) == ["breach"]


def test_two_workers_moving_at_once_end_with_one_copy(
    open_store: Opener, table_service: TableServiceClient, table_name: str,
    receiver: HttpReceiver, session: requests.Session,
) -> None:
    old = open_store(CLIENT_A, by_client=False)
    write_previous_version_state(old, receiver, session)
    for day in range(1, 4):  # more than a batch of samples
        for minute in range(0, 60 * 24, 20):
            moment = NOW - timedelta(days=day, minutes=minute)
            old.samples.save({"checked_at": moment.isoformat()}, moment)
    episode, billed = old.alerts.load_state(), old.billing.summary(PERIOD)
    before = rows_by_partition(table_service, table_name)

    workers = [open_store(CLIENT_A) for _ in range(2)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def adopt(store: StateStore) -> None:
        start.wait()
        try:
            store.organization.adopt(ORG_ID, "Contoso", at(5))
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=adopt, args=(store,)) for store in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []

    after = rows_by_partition(table_service, table_name)
    assert after.pop(CLIENT_A) == [POINTER_ROW]
    assert after == {partition.replace(CLIENT_A, ORG_ID, 1): keys
                     for partition, keys in before.items()}
    store = open_store(CLIENT_A)
    assert store.alerts.load_state() == episode
    assert store.billing.summary(PERIOD) == billed  # not counted twice


def test_the_orgs_own_state_wins_and_billing_minutes_are_counted_once(
    open_store: Opener, receiver: HttpReceiver, session: requests.Session,
) -> None:
    # Client B already keys the org's state by org id: an open breach and 30 minutes billed.
    b = open_store(CLIENT_B)
    b.organization.adopt(ORG_ID, "Contoso", NOW)
    check(b, receiver, session, usage(480), NOW)
    b.billing.record_minutes(PERIOD, minutes(NOW - timedelta(minutes=30), 30, 480), NOW)
    org_state = b.alerts.load_state()
    # Client A wrote under its own key before learning the org: a failed check, and billing
    # minutes overlapping B's by 10 (the same minutes, measured earlier) and 20 more.
    a = open_store(CLIENT_A)
    a.alerts.evaluate(usage(10), POLICY, at(-50), ["webhook"])
    a.billing.record_minutes(PERIOD, minutes(NOW - timedelta(minutes=50), 30, 470), at(-21))

    a.organization.adopt(ORG_ID, "Contoso", at(5))

    assert a.alerts.load_state() == org_state
    summary = a.billing.summary(PERIOD)
    assert summary.minutes_recorded == 50  # 20 of A's alone + 30 of B's, the overlap once
    assert dict(summary.histogram.peak_minutes) == {470: 20, 480: 30}


def test_a_worker_without_the_pointer_follows_it_once_another_worker_wrote_it(
    open_store: Opener,
) -> None:
    early = open_store(CLIENT_A)
    assert early.table.org == CLIENT_A
    open_store(CLIENT_A).organization.adopt(ORG_ID, "Contoso", NOW)
    assert early.table.org == ORG_ID  # looked up again: it never keeps the client key
    assert early.organization.pointer() == {
        "PartitionKey": CLIENT_A, "RowKey": POINTER_ROW, "org_key": ORG_ID, "org_id": ORG_ID,
        "org_name": "Contoso", "confirmed_at": "2026-11-26T12:00:00Z"}


def test_a_dry_run_reads_the_unmoved_state_and_writes_no_pointer(
    open_store: Opener, table_service: TableServiceClient, table_name: str,
    receiver: HttpReceiver, session: requests.Session,
) -> None:
    write_previous_version_state(open_store(CLIENT_A, by_client=False), receiver, session)
    before = rows_by_partition(table_service, table_name)
    store = open_store(CLIENT_A)
    store.organization.follow(ORG_ID)
    assert store.alerts.load_state().level == "warning"
    assert rows_by_partition(table_service, table_name) == before
    fresh = open_store(CLIENT_B)
    fresh.organization.follow(ORG_ID)  # nothing under B's key: the org's is read
    assert fresh.table.org == ORG_ID
