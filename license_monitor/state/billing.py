"""Billing minutes and the period histogram: what the 30-minute rule is computed from.

One row per measured minute (its highest concurrency) and per period one histogram row
(level -> minutes), changed together in one ETag-guarded batch, so a check costs its window
and not the whole period, and racing checks never count a minute twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from license_monitor.billing import apply_histogram_delta, billable_peak, merge_minutes
from license_monitor.state.table import WRITE_ATTEMPTS, StateTable, guarded, pack, unpack
from license_monitor.times import minute_key, parse_minute_key, utc

MINUTES = "minutes"
HISTOGRAM_ROW = "histogram"
MAX_BATCH_ROWS = 99  # a batch of minute rows also carries the histogram: 100 operations


@dataclass(frozen=True)
class BillingSummary:
    """The billing period's figures after recording a check's minutes."""

    period_start: date
    billable_peak: int
    peak_level: int  # the highest one-minute level of the period, however briefly held
    minutes_recorded: int
    histogram: dict[int, int]  # level -> minutes at exactly that level

    def minutes_at_or_above(self, level: int) -> int:
        """Minutes of the period with concurrency of at least `level`."""
        return sum(minutes for at, minutes in self.histogram.items() if at >= level)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (histogram keys as strings)."""
        return {
            "period_start": self.period_start.isoformat(),
            "billable_peak": self.billable_peak,
            "peak_level": self.peak_level,
            "minutes_recorded": self.minutes_recorded,
            "histogram": {str(level): minutes for level, minutes in sorted(self.histogram.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BillingSummary:
        """Inverse of to_dict."""
        return cls(
            period_start=date.fromisoformat(str(data["period_start"])),
            billable_peak=int(data["billable_peak"]),
            peak_level=int(data["peak_level"]),
            minutes_recorded=int(data["minutes_recorded"]),
            histogram={int(level): int(minutes) for level, minutes in data["histogram"].items()},
        )

    @classmethod
    def of(cls, period_start: date, histogram: Mapping[int, int]) -> BillingSummary:
        """Summarise a period's histogram."""
        levels = [level for level, minutes in histogram.items() if minutes > 0]
        return cls(
            period_start=period_start,
            billable_peak=billable_peak(histogram),
            peak_level=max(levels, default=0),
            minutes_recorded=sum(histogram.values()),
            histogram=dict(histogram),
        )


class BillingLedger:
    """The org's billing minutes and histograms, one partition per billing period."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def _partition(self, period_start: date) -> str:
        return self._table.partition(MINUTES, period_start.isoformat())

    def record_minutes(
        self, period_start: date, minute_levels: Mapping[datetime, int]
    ) -> BillingSummary:
        """Record per-minute concurrency for the period and return the period's billing figures.

        Idempotent: a minute recorded again keeps the higher of both levels, so re-running a
        check changes nothing. Minutes before the period's first day (a window that straddles
        the period boundary) belong to the previous period and are skipped.
        """
        begins = datetime.combine(period_start, clock_time(), UTC)
        measured: dict[datetime, int] = {}
        for moment, level in minute_levels.items():
            minute = utc(moment)
            if minute.second or minute.microsecond:
                raise ValueError(f"minute levels must be keyed by whole minutes, not {minute}")
            if minute >= begins:
                measured[minute] = int(level)
        partition = self._partition(period_start)
        ordered = sorted(measured)
        if not ordered:
            histogram, _ = self._read_histogram(partition)
            return BillingSummary.of(period_start, histogram)
        for start in range(0, len(ordered), MAX_BATCH_ROWS):
            batch = {minute: measured[minute] for minute in ordered[start : start + MAX_BATCH_ROWS]}
            histogram = self._record_batch(partition, batch)
        return BillingSummary.of(period_start, histogram)

    def summary(self, period_start: date) -> BillingSummary:
        """The period's billing figures as recorded so far."""
        histogram, _ = self._read_histogram(self._partition(period_start))
        return BillingSummary.of(period_start, histogram)

    def _read_histogram(self, partition: str) -> tuple[dict[int, int], str | None]:
        with self._table.translate("reading the billing histogram"):
            try:
                entity = self._table.client.get_entity(partition, HISTOGRAM_ROW)
            except ResourceNotFoundError:
                return {}, None
        stored = unpack(entity, "h_") or {}
        histogram = {int(level): int(minutes) for level, minutes in stored.items()}
        return histogram, entity.metadata["etag"]

    def _record_batch(self, partition: str, batch: Mapping[datetime, int]) -> dict[int, int]:
        table = self._table
        first, last = min(batch), max(batch)
        for _ in range(WRITE_ATTEMPTS):
            # The histogram (and its ETag) first, the rows second: a write that lands between
            # the two reads changes the ETag, so our batch fails and we re-read.
            histogram, etag = self._read_histogram(partition)
            with table.translate("reading billing minutes"):
                rows = list(table.client.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": partition, "low": minute_key(first),
                                "high": minute_key(last)},
                ))
            recorded = {parse_minute_key(str(row["RowKey"])): int(row["level"]) for row in rows}
            changed, delta = merge_minutes(recorded, batch)
            if not changed:
                return histogram
            try:
                updated = apply_histogram_delta(histogram, delta)
            except ValueError:
                # Rows newer than the histogram we read: another recorder committed between
                # our two reads. Its ETag tells; only a histogram that stays inconsistent is
                # a real problem.
                if self._read_histogram(partition)[1] != etag:
                    continue
                raise
            histogram_entity: dict[str, Any] = {
                "PartitionKey": partition,
                "RowKey": HISTOGRAM_ROW,
                "minutes": sum(updated.values()),
                "billable_peak": billable_peak(updated),
                **pack("h_", {str(level): minutes for level, minutes in updated.items()}),
            }
            operations: list[Any] = [
                ("upsert", {"PartitionKey": partition, "RowKey": minute_key(minute),
                            "level": level}, {"mode": UpdateMode.REPLACE})
                for minute, level in sorted(changed.items())
            ]
            operations.append(guarded(histogram_entity, etag))
            if table.commit_batch(operations, "saving billing minutes"):
                return updated
        raise table.kept_changing("the billing minutes")
