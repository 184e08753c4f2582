"""Retention: usage samples and billing minutes older than RETENTION_DAYS are deleted daily."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from license_monitor.state.billing import HISTOGRAM_ROW, MINUTES
from license_monitor.state.samples import SAMPLES
from license_monitor.state.table import StateTable
from license_monitor.times import format_check_time, format_time, minute_key, utc

logger = logging.getLogger(__name__)

BATCH_ROWS = 100


class Retention:
    """Deletes the org's old rows (alert state and the roster are never old)."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def purge_older_than(self, cutoff: datetime) -> int:
        """Delete samples and minute rows before `cutoff` (and histograms of periods wholly
        before it); returns how many rows were deleted."""
        table = self._table
        cutoff = utc(cutoff)
        minutes_low = table.partition(MINUTES) + "|"
        minutes_high = table.partition(MINUTES) + "}"  # '}' sorts right after '|'
        with table.translate("listing rows to purge"):
            doomed = list(table.client.query_entities(
                "PartitionKey eq @pk and RowKey lt @before",
                parameters={"pk": table.partition(SAMPLES), "before": format_check_time(cutoff)},
                select=["PartitionKey", "RowKey"],
            ))
            # "histogram" sorts after every minute key, so `lt` never selects it.
            doomed += table.client.query_entities(
                "PartitionKey ge @low and PartitionKey lt @high and RowKey lt @before",
                parameters={"low": minutes_low, "high": minutes_high,
                            "before": minute_key(cutoff)},
                select=["PartitionKey", "RowKey"],
            )
            histograms = table.client.query_entities(
                "PartitionKey ge @low and PartitionKey lt @high and RowKey eq @row",
                parameters={"low": minutes_low, "high": minutes_high, "row": HISTOGRAM_ROW},
                select=["PartitionKey", "RowKey"],
            )
            for row in histograms:
                period = date.fromisoformat(str(row["PartitionKey"])[len(minutes_low) :])
                # A billing period is at most 31 days long.
                if period + timedelta(days=32) <= cutoff.date():
                    doomed.append(row)
        by_partition: dict[str, list[str]] = {}
        for row in doomed:
            by_partition.setdefault(str(row["PartitionKey"]), []).append(str(row["RowKey"]))
        with table.translate("purging old rows"):
            for partition, keys in by_partition.items():
                for start in range(0, len(keys), BATCH_ROWS):
                    table.client.submit_transaction([
                        ("delete", {"PartitionKey": partition, "RowKey": key})
                        for key in keys[start : start + BATCH_ROWS]
                    ])
        if doomed:
            logger.info("Purged %d rows older than %s", len(doomed), format_time(cutoff))
        return len(doomed)
