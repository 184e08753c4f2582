"""Usage samples read back for the forecast and the report, in Azurite."""

from __future__ import annotations

import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from license_monitor.forecast import Sample
from license_monitor.state import StateStore
from tests.integration.state.helpers import NOW


def report(moment_text: str, total: int | None) -> dict[str, object]:
    if total is None:
        return {"checked_at": moment_text, "level": "unknown", "error": "Genesys was down"}
    return {"checked_at": moment_text, "concurrent": {"peak": {"total": total}}}


def test_peaks_skip_failed_checks_and_read_rows_of_an_older_version(store: StateStore) -> None:
    times = [NOW + timedelta(minutes=5 * i) for i in range(3)]
    texts = [moment.strftime("%Y-%m-%dT%H:%M:%S.000Z") for moment in times]
    store.samples.save(report(texts[0], 40), times[0])
    store.samples.save(report(texts[1], None), times[1])  # a failed check
    store.samples.save(report(texts[2], 42), times[2])
    end = times[-1] + timedelta(seconds=1)
    assert store.samples.peaks(NOW, end) == [Sample(times[0], 40), Sample(times[2], 42)]
    assert [r.get("level") for r in store.samples.reports(NOW, end)] == [None, "unknown", None]
    assert store.samples.peaks(NOW, times[2]) == [Sample(times[0], 40)]  # the end is excluded

    # A row as an older version wrote it: the report's JSON only.
    older = NOW - timedelta(minutes=5)
    stamp = older.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    store.table.client.upsert_entity({
        "PartitionKey": store.table.partition("samples"), "RowKey": stamp,
        "sample": json.dumps(report(stamp, 39))})
    assert store.samples.peaks(older, end) == [
        Sample(older, 39), Sample(times[0], 40), Sample(times[2], 42)]


def test_a_weekday_history_is_read_once_per_day(store: StateStore) -> None:
    zone = ZoneInfo("UTC")
    day = NOW.date()
    for week in (1, 2):
        start = NOW.replace(hour=0, minute=0) - timedelta(days=7 * week)
        for hour in range(24):
            moment = start + timedelta(hours=hour)
            store.samples.save(report(moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), hour), moment)
    first = store.samples.weekday_history(day, zone)
    assert len(first.curves) == 2
    # A row written later into a past day is not read again: past days are done.
    store.samples.save(report("x", 999), NOW.replace(hour=0) - timedelta(days=7, minutes=-30))
    assert store.samples.weekday_history(day, zone) is first
    assert store.samples.weekday_history(date(2030, 1, 1), zone).curves == ()
