"""Billing minutes and the period histogram in Azurite."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from license_monitor.state import (
    StateStore,
)
from simulator.azurite import (
    Azurite,
)
from tests.integration.state.helpers import (
    NOW,
    ORG,
    PERIOD,
    at,
    minutes,
)


def test_recording_the_same_minutes_again_changes_nothing(
    store: StateStore, table_service: TableServiceClient, table_name: str
) -> None:
    window = minutes(NOW, 15, 100) | minutes(at(15), 15, 120)

    first = store.billing.record_minutes(PERIOD, window)
    again = store.billing.record_minutes(PERIOD, window)

    assert again == first
    assert (first.billable_peak, first.minutes_recorded, first.peak_level) == (100, 30, 120)
    rows = table_service.get_table_client(table_name).query_entities(
        "PartitionKey eq @pk", parameters={"pk": f"{ORG}|minutes|2026-11-01"})
    assert sum(1 for row in rows if row["RowKey"] != "histogram") == 30


def test_overlapping_windows_keep_each_minutes_highest_level(store: StateStore) -> None:
    store.billing.record_minutes(PERIOD, minutes(NOW, 15, 100) | minutes(at(15), 15, 120))

    overlap = store.billing.record_minutes(PERIOD, minutes(at(10), 15, 110))
    higher = store.billing.record_minutes(PERIOD, minutes(at(30), 10, 130))

    # 12:00-12:09 at 100, 12:10-12:14 raised to 110, 12:15-12:29 stay 120.
    assert overlap.histogram == {100: 10, 110: 5, 120: 15}
    assert overlap.billable_peak == 100
    # 30 minutes at 110 or more now: 5 at 110, 15 at 120, 10 at 130.
    assert higher.billable_peak == 110
    assert higher.minutes_at_or_above(121) == 10
    assert store.billing.summary(PERIOD) == higher


def test_long_backfill_is_recorded_in_batches(store: StateStore) -> None:
    summary = store.billing.record_minutes(PERIOD, minutes(NOW, 250, 42))

    assert summary.histogram == {42: 250}
    assert store.billing.record_minutes(PERIOD, minutes(NOW, 250, 42)) == summary


def test_minutes_before_the_period_are_not_counted_in_it(store: StateStore) -> None:
    period_start = datetime(2026, 11, 1, tzinfo=UTC)

    before = period_start - timedelta(minutes=5)
    summary = store.billing.record_minutes(PERIOD, minutes(before, 10, 7))

    assert summary.minutes_recorded == 5


def test_racing_recorders_count_each_minute_once(azurite: Azurite, table_name: str) -> None:
    stores = [StateStore.from_connection_string(azurite.connection_string, table_name, ORG)
              for _ in range(5)]
    # Overlapping windows with different levels: recorder i covers minutes 6i .. 6i+11.
    windows = [minutes(at(6 * index), 12, 300 + index) for index in range(len(stores))]
    highest: dict[datetime, int] = {}
    for window in windows:
        for minute, level in window.items():
            highest[minute] = max(level, highest.get(minute, 0))
    expected = Counter(highest.values())
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def record(store: StateStore, window: dict[datetime, int]) -> None:
        start.wait()
        try:
            store.billing.record_minutes(PERIOD, window)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=record, args=pair) for pair in zip(stores, windows,
                                                                           strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert stores[0].billing.summary(PERIOD).histogram == dict(expected)


def test_whole_minutes_only(store: StateStore) -> None:
    with pytest.raises(ValueError, match="whole minutes"):
        store.billing.record_minutes(PERIOD, {NOW + timedelta(seconds=30): 1})

