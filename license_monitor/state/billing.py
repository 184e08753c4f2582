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
from license_monitor.usage import MINUTE, MINUTE_MS, MinuteProfile

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
        """Replace the stored minutes of the span these minutes cover (a rebuild: from the
        first to the last of them) and only that span's share of the period's histogram: the
        stored figures of the span become what was measured, never the higher of the two, and
        the rest of the period (days whose rows retention purged included) stays as counted.
        A span from the period's first day recounts the period (its purged rows included).

        Raises:
            ValueError: the span begins mid-period among rows retention has purged.
        """
        partition = self._partition(period_start)
        measured = {utc(minute): MinuteRecord(profile, utc(measured_at))
                    for minute, profile in minutes.items()}
        if not measured:
            return self.summary(period_start)
        first = min(measured)
        begins = datetime.combine(period_start, clock_time(), UTC)
        if first <= begins:
            return self._recount(partition, period_start, measured)
        histogram, _ = self._read_histogram(partition)
        with self._table.translate("reading billing minutes"):
            keys = [parse_minute_key(str(row["RowKey"]))
                    for row in self._table.client.query_entities(
                        "PartitionKey eq @pk and RowKey ne @histogram",
                        parameters={"pk": partition, "histogram": HISTOGRAM_ROW},
                        select=["RowKey"])]
        if len(keys) < histogram.minutes_recorded and (not keys or first < min(keys)):
            # Retention purged rows this span may cover: their share of the histogram is not
            # known any more, so replacing them would count those minutes twice.
            earliest = "" if not keys else f" before {format_precise(min(keys))}"
            raise ValueError(
                f"the minute rows of this period{earliest} were purged by retention "
                f"(RETENTION_DAYS): rebuild from the period's first day "
                f"(--since {period_start.isoformat()}) or from a later day")
        batch: dict[datetime, MinuteRecord] = {}
        for minute in sorted(measured):
            # A batch spans at most MAX_BATCH_ROWS minutes: one operation per minute at most
            # (write or delete), and the histogram, in one transaction.
            if batch and minute - min(batch) >= MAX_BATCH_ROWS * MINUTE:
                histogram = self._replace_batch(partition, batch)
                batch = {}
            batch[minute] = measured[minute]
        if batch:
            histogram = self._replace_batch(partition, batch)
        return BillingSummary(period_start, histogram)

    def _recount(
        self, partition: str, period_start: date, measured: Mapping[datetime, MinuteRecord],
    ) -> BillingSummary:
        """Replace the period's minutes from its first day to the last measured one, and
        recount its histogram: those minutes as measured plus the rows stored after them."""
        table = self._table
        last = max(measured)
        for _ in range(WRITE_ATTEMPTS):
            _, last_minute, etag = self._read_histogram_row(partition)
            with table.translate("reading billing minutes"):
                stored = {parse_minute_key(str(row["RowKey"])): _record_of(row)
                          for row in table.client.query_entities(
                              "PartitionKey eq @pk and RowKey ne @histogram",
                              parameters={"pk": partition, "histogram": HISTOGRAM_ROW})}
            operations: list[Any] = [
                self._minute_entity(partition, minute, record)
                for minute, record in sorted(measured.items())
                if minute not in stored or stored[minute].profile != record.profile]
            operations += [
                ("delete", {"PartitionKey": partition, "RowKey": minute_key(minute)})
                for minute in sorted(stored) if minute <= last and minute not in measured]
            for start in range(0, len(operations), MAX_BATCH_ROWS + 1):
                table.commit_batch(operations[start : start + MAX_BATCH_ROWS + 1],
                                   "rebuilding billing")
            histogram = Histogram()
            for _, record in (*measured.items(),
                                   *((m, r) for m, r in stored.items() if m > last)):
                histogram = histogram.plus(Histogram.of_minute(record.profile))
            entity = self._histogram_entity(partition, histogram,
                                            max(last_minute, minute_key(last)))
            if table.commit_batch([guarded(entity, etag)], "rebuilding billing"):
                return BillingSummary(period_start, histogram)
        raise table.kept_changing("the billing minutes")

    def _replace_batch(self, partition: str, batch: Mapping[datetime, MinuteRecord]) -> Histogram:
        """Replace the minutes from the batch's first to its last, and their share of the
        histogram, in one ETag-guarded transaction."""
        table = self._table
        first, last = min(batch), max(batch)
        for _ in range(WRITE_ATTEMPTS):
            histogram, last_minute, etag = self._read_histogram_row(partition)
            with table.translate("reading billing minutes"):
                stored = {parse_minute_key(str(row["RowKey"])): _record_of(row)
                          for row in table.client.query_entities(
                              "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                              parameters={"pk": partition, "low": minute_key(first),
                                          "high": minute_key(last)})}
            delta = Histogram()
            operations: list[Any] = []
            for minute in sorted(batch.keys() | stored.keys()):
                old, new = stored.get(minute), batch.get(minute)
                if old is not None and new is not None and old.profile == new.profile:
                    continue
                if old is not None:
                    delta = delta.plus(Histogram.of_minute(old.profile, -1))
                if new is not None:
                    delta = delta.plus(Histogram.of_minute(new.profile))
                    operations.append(self._minute_entity(partition, minute, new))
                else:  # a stored minute inside the span that was not measured again
                    operations.append(("delete", {"PartitionKey": partition,
                                                  "RowKey": minute_key(minute)}))
            if not operations:
                return histogram
            try:
                updated = histogram.plus(delta, strict=True)
            except ValueError:
                if self._read_histogram(partition)[1] != etag:
                    continue  # another writer between our two reads: read again
                raise
            entity = self._histogram_entity(partition, updated,
                                            max(last_minute, minute_key(last)))
            if table.commit_batch([*operations, guarded(entity, etag)], "rebuilding billing"):
                return updated
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
