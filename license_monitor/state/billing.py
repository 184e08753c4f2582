"""Billing minutes and the period histogram: what the 30-minute rule is computed from.

One row per measured minute (its step function: milliseconds at each level, and the check
that measured it) and per period one histogram row (exact: milliseconds at each level; coarse:
minutes by their highest level), changed together in one ETag-guarded batch, so a check costs
its window and not the whole period, and racing checks never count a minute twice.

Rows written before the step functions existed hold only a minute's highest level (`level`):
they read as that level for the whole minute (an upper bound) until a newer measurement of
the minute or `python -m license_monitor billing rebuild` replaces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from license_monitor.billing import Histogram, MinuteRecord, merge_minutes
from license_monitor.state.table import WRITE_ATTEMPTS, StateTable, guarded, pack, unpack
from license_monitor.times import format_precise, minute_key, parse_minute_key, parse_time, utc
from license_monitor.usage import MINUTE_MS, MinuteProfile

MINUTES = "minutes"
HISTOGRAM_ROW = "histogram"
CATCH_UP_ROW = "billing-catch-up"  # under the org key: minutes a catch-up has still to measure
MAX_BATCH_ROWS = 99  # a batch of minute rows also carries the histogram: 100 operations
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # rows from before measured_at was stored


@dataclass(frozen=True)
class BillingSummary:
    """The billing period's figures after recording a check's minutes."""

    period_start: date
    histogram: Histogram

    @property
    def billable_peak(self) -> int:
        """The 30-minute rule, exact to the millisecond."""
        return self.histogram.billable_peak

    @property
    def billable_peak_upper(self) -> int:
        """The 30-minute rule over each minute's highest level (an upper bound)."""
        return self.histogram.billable_peak_upper

    @property
    def minutes_recorded(self) -> int:
        """Whole minutes of the period measured so far."""
        return self.histogram.minutes_recorded

    def seconds_over(self, capacity: int) -> int:
        """Whole seconds of the period with more users logged in than `capacity`."""
        return self.histogram.ms_at_or_above(capacity + 1) // 1000

    def figures(self, capacity: int) -> dict[str, Any]:
        """The `billing` object of the check JSON and of every alert."""
        seconds = self.seconds_over(capacity)
        return {
            "period_start": self.period_start.isoformat(),
            "billable_peak": self.billable_peak,
            "billable_peak_upper": self.billable_peak_upper,
            "seconds_over_capacity": seconds,
            "minutes_over_capacity": seconds // 60,
        }


def _record_of(row: Mapping[str, Any]) -> MinuteRecord:
    if "profile" in row:
        return MinuteRecord(MinuteProfile.decode(str(row["profile"])),
                            parse_time(str(row["measured_at"])))
    return MinuteRecord(MinuteProfile.flat(int(row["level"])), _NEVER)


class BillingLedger:
    """The org's billing minutes and histograms, one partition per billing period."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def _partition(self, period_start: date) -> str:
        return self._table.partition(MINUTES, period_start.isoformat())

    def record_minutes(
        self, period_start: date, minutes: Mapping[datetime, MinuteProfile],
        measured_at: datetime,
    ) -> BillingSummary:
        """Record the minutes a check measured and return the period's billing figures.

        Idempotent: the newest measurement of a minute wins (billing.merge_minutes), so
        re-running a check changes nothing. Minutes before the period's first day (a window
        that straddles the period boundary) belong to the previous period and are skipped.
        """
        begins = datetime.combine(period_start, clock_time(), UTC)
        measured: dict[datetime, MinuteRecord] = {}
        for moment, profile in minutes.items():
            minute = utc(moment)
            if minute.second or minute.microsecond:
                raise ValueError(f"minutes must be keyed by whole minutes, not {minute}")
            if minute >= begins:
                measured[minute] = MinuteRecord(profile, utc(measured_at))
        partition = self._partition(period_start)
        ordered = sorted(measured)
        if not ordered:
            histogram, _ = self._read_histogram(partition)
            return BillingSummary(period_start, histogram)
        for start in range(0, len(ordered), MAX_BATCH_ROWS):
            batch = {minute: measured[minute]
                     for minute in ordered[start : start + MAX_BATCH_ROWS]}
            histogram = self._record_batch(partition, batch)
        return BillingSummary(period_start, histogram)

    def replace_minutes(
        self, period_start: date, minutes: Mapping[datetime, MinuteProfile],
        measured_at: datetime,
    ) -> BillingSummary:
        """Replace the stored minutes with these (a rebuild) and recount the period from its
        rows: the stored figures become what was measured, never the higher of the two."""
        table = self._table
        partition = self._partition(period_start)
        measured = {minute: MinuteRecord(profile, utc(measured_at))
                    for minute, profile in minutes.items()}
        for _ in range(WRITE_ATTEMPTS):
            _, _, etag = self._read_histogram_row(partition)
            with table.translate("reading billing minutes"):
                stored = {parse_minute_key(str(row["RowKey"])): _record_of(row)
                          for row in table.client.query_entities(
                              "PartitionKey eq @pk and RowKey ne @histogram",
                              parameters={"pk": partition, "histogram": HISTOGRAM_ROW})}
            changed = sorted(minute for minute, record in measured.items()
                             if minute not in stored or stored[minute].profile != record.profile)
            rows = [self._minute_entity(partition, minute, measured[minute]) for minute in changed]
            for start in range(0, len(rows), MAX_BATCH_ROWS + 1):
                table.commit_batch(rows[start : start + MAX_BATCH_ROWS + 1], "rebuilding billing")
            stored.update((minute, measured[minute]) for minute in changed)
            histogram = Histogram()
            for record in stored.values():
                histogram = histogram.plus(Histogram.of_minute(record.profile))
            last = minute_key(max(stored)) if stored else ""
            entity = self._histogram_entity(partition, histogram, last)
            if table.commit_batch([guarded(entity, etag)], "rebuilding billing"):
                return BillingSummary(period_start, histogram)
        raise table.kept_changing("the billing minutes")

    def unmeasured(self) -> tuple[datetime, datetime] | None:
        """The span a catch-up left unmeasured (it ran out of time), oldest first, or None."""
        with self._table.translate("reading the catch-up mark"):
            try:
                row = self._table.client.get_entity(self._table.org, CATCH_UP_ROW)
            except ResourceNotFoundError:
                return None
        return parse_time(str(row["start"])), parse_time(str(row["end"]))

    def mark_unmeasured(self, span: tuple[datetime, datetime] | None) -> None:
        """Remember the span still to measure (None: nothing left)."""
        table = self._table
        with table.translate("saving the catch-up mark"):
            if span is None:
                with suppress(ResourceNotFoundError):
                    table.client.delete_entity(table.org, CATCH_UP_ROW)
                return
            table.client.upsert_entity(
                {"PartitionKey": table.org, "RowKey": CATCH_UP_ROW,
                 "start": format_precise(span[0]), "end": format_precise(span[1])},
                mode=UpdateMode.REPLACE)

    def last_recorded_minute(self, period_start: date) -> datetime | None:
        """The latest minute recorded in the period (where a measurement gap would begin)."""
        with self._table.translate("reading the billing histogram"):
            try:
                entity = self._table.client.get_entity(
                    self._partition(period_start), HISTOGRAM_ROW, select=["last_minute"])
            except ResourceNotFoundError:
                return None
        last = entity.get("last_minute")
        return None if not last else parse_minute_key(str(last))

    def summary(self, period_start: date) -> BillingSummary:
        """The period's billing figures as recorded so far."""
        histogram, _ = self._read_histogram(self._partition(period_start))
        return BillingSummary(period_start, histogram)

    def _read_histogram(self, partition: str) -> tuple[Histogram, str | None]:
        histogram, _, etag = self._read_histogram_row(partition)
        return histogram, etag

    def _read_histogram_row(self, partition: str) -> tuple[Histogram, str, str | None]:
        """The histogram, its last recorded minute key ('' when none) and its ETag."""
        with self._table.translate("reading the billing histogram"):
            try:
                entity = self._table.client.get_entity(partition, HISTOGRAM_ROW)
            except ResourceNotFoundError:
                return Histogram(), "", None
        exact = unpack(entity, "x_")
        if exact is None:  # written by whole minutes: each minute counts whole at its level
            minutes = {int(level): int(count)
                       for level, count in (unpack(entity, "h_") or {}).items()}
            histogram = Histogram({level: count * MINUTE_MS for level, count in minutes.items()},
                                  minutes)
        else:
            histogram = Histogram(
                {int(level): int(ms) for level, ms in exact.items()},
                {int(level): int(count) for level, count in unpack(entity, "p_").items()})
        return histogram, str(entity.get("last_minute") or ""), entity.metadata["etag"]

    @staticmethod
    def _minute_entity(partition: str, minute: datetime, record: MinuteRecord) -> tuple[Any, ...]:
        return ("upsert", {"PartitionKey": partition, "RowKey": minute_key(minute),
                           "level": record.profile.peak, "profile": record.profile.encode(),
                           "measured_at": format_precise(record.measured_at)},
                {"mode": UpdateMode.REPLACE})

    @staticmethod
    def _histogram_entity(partition: str, histogram: Histogram, last_minute: str) -> dict[str, Any]:
        return {
            "PartitionKey": partition,
            "RowKey": HISTOGRAM_ROW,
            # Readable in Storage Explorer; the packed properties are the source.
            "minutes": histogram.minutes_recorded,
            "billable_peak": histogram.billable_peak,
            "billable_peak_upper": histogram.billable_peak_upper,
            # Where the next check's measurement gap begins (keys sort as times).
            "last_minute": last_minute,
            **pack("x_", {str(level): ms for level, ms in histogram.exact_ms.items()}),
            **pack("p_", {str(level): n for level, n in histogram.peak_minutes.items()}),
        }

    def _record_batch(
        self, partition: str, batch: Mapping[datetime, MinuteRecord]
    ) -> Histogram:
        table = self._table
        first, last = min(batch), max(batch)
        for _ in range(WRITE_ATTEMPTS):
            # The histogram (and its ETag) first, the rows second: a write that lands between
            # the two reads changes the ETag, so our batch fails and we re-read.
            histogram, last_minute, etag = self._read_histogram_row(partition)
            with table.translate("reading billing minutes"):
                rows = list(table.client.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": partition, "low": minute_key(first),
                                "high": minute_key(last)},
                ))
            recorded = {parse_minute_key(str(row["RowKey"])): _record_of(row) for row in rows}
            changed, delta = merge_minutes(recorded, batch)
            if not changed:
                return histogram
            try:
                updated = histogram.plus(delta, strict=True)
            except ValueError:
                # Rows newer than the histogram we read: another recorder committed between
                # our two reads. Its ETag tells; only a histogram that stays inconsistent is
                # a real problem.
                if self._read_histogram(partition)[1] != etag:
                    continue
                raise
            histogram_entity = self._histogram_entity(
                partition, updated, max(last_minute, minute_key(last)))
            operations: list[Any] = [
                self._minute_entity(partition, minute, record)
                for minute, record in sorted(changed.items())
            ]
            operations.append(guarded(histogram_entity, etag))
            if table.commit_batch(operations, "saving billing minutes"):
                return updated
        raise table.kept_changing("the billing minutes")

    def records(self, period_start: date) -> dict[datetime, MinuteRecord]:
        """Every recorded minute of the period with its measurement (to move it to another key)."""
        with self._table.translate("reading billing minutes"):
            rows = self._table.client.query_entities(
                "PartitionKey eq @pk and RowKey ne @histogram",
                parameters={"pk": self._partition(period_start), "histogram": HISTOGRAM_ROW})
            return {parse_minute_key(str(row["RowKey"])): _record_of(row) for row in rows}

    def merge_records(
        self, period_start: date, records: Mapping[datetime, MinuteRecord]
    ) -> BillingSummary:
        """Merge minutes recorded under another key: the newest measurement of a minute wins,
        so merging the same minutes twice changes nothing."""
        partition = self._partition(period_start)
        histogram, _ = self._read_histogram(partition)
        ordered = sorted(records)
        for start in range(0, len(ordered), MAX_BATCH_ROWS):
            histogram = self._record_batch(
                partition, {minute: records[minute]
                            for minute in ordered[start : start + MAX_BATCH_ROWS]})
        return BillingSummary(period_start, histogram)
