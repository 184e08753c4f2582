"""Billing minutes (step functions) and the period histogram in Azurite."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from license_monitor.state import StateStore
from license_monitor.state.table import pack
from license_monitor.usage import MinuteProfile
from simulator.azurite import Azurite
from tests.integration.state.helpers import NOW, ORG, PERIOD, at, minutes

PARTITION = f"{ORG}|minutes|2026-11-01"
HAND_OVER = MinuteProfile({100: 59_000, 110: 1_000})  # 10 arrive at :20, 10 leave at :21


def test_recording_the_same_minutes_again_changes_nothing(
    store: StateStore, table_service: TableServiceClient, table_name: str
) -> None:
    window = minutes(NOW, 15, 100) | minutes(at(15), 15, 120)

    first = store.billing.record_minutes(PERIOD, window, at(30))
    again = store.billing.record_minutes(PERIOD, window, at(30))
    later = store.billing.record_minutes(PERIOD, window, at(35))  # the same minutes, re-read

    assert again == first == later
    assert (first.billable_peak, first.minutes_recorded) == (100, 30)
    assert max(first.histogram.exact_ms) == 120
    rows = table_service.get_table_client(table_name).query_entities(
        "PartitionKey eq @pk", parameters={"pk": PARTITION})
    assert sum(1 for row in rows if row["RowKey"] != "histogram") == 30


def test_the_newest_measurement_of_a_minute_wins_and_an_older_one_never_does(
    store: StateStore,
) -> None:
    store.billing.record_minutes(
        PERIOD, minutes(NOW, 15, 100) | minutes(at(15), 15, 120), at(30))

    # A later check saw 12:10-12:24 at 110 (analytics completed meanwhile): it replaces them.
    newer = store.billing.record_minutes(PERIOD, minutes(at(10), 15, 110), at(35))
    # A retried older check with other figures changes nothing.
    older = store.billing.record_minutes(PERIOD, minutes(at(10), 15, 500), at(20))

    assert older == newer
    assert dict(newer.histogram.peak_minutes) == {100: 10, 110: 15, 120: 5}
    assert dict(newer.histogram.exact_ms) == {100: 600_000, 110: 900_000, 120: 300_000}
    assert newer.billable_peak == 100  # 20 minutes at 110 or more: not 30
    assert store.billing.summary(PERIOD) == newer


def test_one_second_peaks_are_billed_by_their_seconds_not_by_whole_minutes(
    store: StateStore,
) -> None:
    hand_overs = {at(index): HAND_OVER for index in range(30)}

    summary = store.billing.record_minutes(PERIOD, hand_overs, at(30))

    assert summary.billable_peak == 100
    assert summary.billable_peak_upper == 110  # 30 minutes whose highest level is 110
    assert summary.seconds_over(100) == 30
    assert summary.figures(100) == {
        "period_start": "2026-11-01", "billable_peak": 100, "billable_peak_upper": 110,
        "seconds_over_capacity": 30, "minutes_over_capacity": 0}


def test_long_backfill_is_recorded_in_batches(store: StateStore) -> None:
    summary = store.billing.record_minutes(PERIOD, minutes(NOW, 250, 42), at(250))

    assert dict(summary.histogram.peak_minutes) == {42: 250}
    assert store.billing.record_minutes(PERIOD, minutes(NOW, 250, 42), at(250)) == summary


def test_minutes_before_the_period_are_not_counted_in_it(store: StateStore) -> None:
    period_start = datetime(2026, 11, 1, tzinfo=UTC)

    before = period_start - timedelta(minutes=5)
    summary = store.billing.record_minutes(PERIOD, minutes(before, 10, 7), period_start)

    assert summary.minutes_recorded == 5


def test_racing_recorders_count_each_minute_once(azurite: Azurite, table_name: str) -> None:
    stores = [StateStore.from_connection_string(azurite.connection_string, table_name, ORG)
              for _ in range(5)]
    # Overlapping windows with different levels: recorder i covers minutes 6i .. 6i+11 and
    # measured them at minute 60 + i; for each minute the newest measurement must win.
    windows = [minutes(at(6 * index), 12, 300 + index) for index in range(len(stores))]
    newest: dict[datetime, int] = {}
    for index, window in enumerate(windows):
        for minute in window:
            newest[minute] = 300 + index
    expected = Counter(newest.values())
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def record(index: int) -> None:
        start.wait()
        try:
            stores[index].billing.record_minutes(PERIOD, windows[index], at(60 + index))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=record, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    histogram = stores[0].billing.summary(PERIOD).histogram
    assert dict(histogram.peak_minutes) == dict(expected)
    assert dict(histogram.exact_ms) == {level: n * 60_000 for level, n in expected.items()}


def test_whole_minutes_only(store: StateStore) -> None:
    with pytest.raises(ValueError, match="whole minutes"):
        store.billing.record_minutes(PERIOD, {NOW + timedelta(seconds=30): HAND_OVER}, NOW)


def test_rows_recorded_by_whole_minutes_read_as_whole_minutes_until_measured_again(
    store: StateStore, table_service: TableServiceClient, table_name: str,
) -> None:
    # What a period recorded before step functions looks like: level rows + a minute histogram.
    table = table_service.get_table_client(table_name)
    for index in range(30):
        table.upsert_entity({"PartitionKey": PARTITION,
                             "RowKey": at(index).strftime("%Y-%m-%dT%H:%MZ"), "level": 110})
    table.upsert_entity({"PartitionKey": PARTITION, "RowKey": "histogram",
                         **pack("h_", {"110": 30})})

    old = store.billing.summary(PERIOD)
    assert (old.billable_peak, old.billable_peak_upper, old.seconds_over(100)) == (110, 110, 1800)

    # Measured again (by a later check or `billing rebuild`): the seconds replace the minutes.
    new = store.billing.record_minutes(PERIOD, {at(i): HAND_OVER for i in range(30)}, at(40))
    assert (new.billable_peak, new.billable_peak_upper, new.seconds_over(100)) == (100, 110, 30)
