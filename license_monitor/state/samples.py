"""Usage samples: one row per check, keyed by the check time.

They are the usage history people read (Storage Explorer, Power BI, a KQL-less audit): the
product writes them, the forecast and the report read them, and retention deletes them. Each
row also holds the window's concurrent peak as a property of its own (`concurrent_peak`), so a
forecast reads a day of samples without their JSON.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from azure.data.tables import UpdateMode

from license_monitor.forecast import WEEKS, Sample, WeekdayHistory, day_bounds, samples_from_reports
from license_monitor.state.table import StateTable, dumps
from license_monitor.times import format_check_time, parse_time

SAMPLES = "samples"
MAX_SAMPLE_CHARS = 30_000


class SampleLog:
    """The org's usage samples."""

    def __init__(self, table: StateTable) -> None:
        self._table = table
        self._lock = threading.Lock()
        # Past days do not change: one WeekdayHistory per day and org, built once per process.
        self._histories: dict[tuple[str, date, str, int], WeekdayHistory] = {}

    def save(self, sample: Mapping[str, Any], now: datetime) -> None:
        """Store one check's figures (RowKey = the check time); saving it again overwrites it."""
        text = dumps(sample)
        if len(text) > MAX_SAMPLE_CHARS:
            raise ValueError(f"a usage sample has {len(text)} characters, over {MAX_SAMPLE_CHARS}")
        entity: dict[str, Any] = {
            "PartitionKey": self._table.partition(SAMPLES),
            "RowKey": format_check_time(now),
            "sample": text,
        }
        peak = _peak_of(sample)
        entity["measured"] = peak is not None  # a failed check's row has no peak
        if peak is not None:
            entity["concurrent_peak"] = peak
        with self._table.translate("saving a usage sample"):
            self._table.client.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def reports(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The stored check reports with start <= check time < end, oldest first."""
        rows = self._query(start, end, None)
        return [json.loads(str(row["sample"])) for row in rows]

    def peaks(self, start: datetime, end: datetime) -> list[Sample]:
        """The concurrent peak of each check that measured, start <= check time < end."""
        rows = self._query(start, end, ["RowKey", "concurrent_peak", "measured"])
        if any(row.get("measured") is None for row in rows):
            # Rows of a version that did not store the peak apart: read their JSON.
            return samples_from_reports(self.reports(start, end))
        return [Sample(parse_time(str(row["RowKey"])), int(row["concurrent_peak"]))
                for row in rows if row.get("measured")]

    def weekday_history(self, day: date, zone: ZoneInfo, weeks: int = WEEKS) -> WeekdayHistory:
        """The same weekday's curves in the `weeks` before `day` (cached: past days are done)."""
        key = (self._table.org, day, zone.key, weeks)
        with self._lock:
            cached = self._histories.get(key)
        if cached is not None:
            return cached
        samples: list[Sample] = []
        for week in range(1, weeks + 1):
            samples += self.peaks(*day_bounds(date.fromordinal(day.toordinal() - 7 * week),
                                              zone))
        history = WeekdayHistory.of(samples, day, zone, weeks=weeks)
        with self._lock:
            self._histories = {k: v for k, v in self._histories.items() if k[1] >= day}
            self._histories[key] = history
        return history

    def _query(self, start: datetime, end: datetime, select: list[str] | None,
               ) -> list[Any]:
        with self._table.translate("reading usage samples"):
            rows = list(self._table.client.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": self._table.partition(SAMPLES),
                            "low": format_check_time(start), "high": format_check_time(end)},
                select=select,
            ))
        rows.sort(key=lambda row: str(row["RowKey"]))
        return rows


def _peak_of(sample: Mapping[str, Any]) -> int | None:
    try:
        return int(sample["concurrent"]["peak"]["total"])
    except (KeyError, TypeError, ValueError):
        return None
