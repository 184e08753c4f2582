"""Usage samples: one row per check, keyed by the check time.

They are the usage history people read (Storage Explorer, Power BI, a KQL-less audit): the
product writes them and retention deletes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.data.tables import UpdateMode

from license_monitor.state.table import StateTable, dumps
from license_monitor.times import format_check_time

SAMPLES = "samples"
MAX_SAMPLE_CHARS = 30_000


class SampleLog:
    """The org's usage samples."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def save(self, sample: Mapping[str, Any], now: datetime) -> None:
        """Store one check's figures (RowKey = the check time); saving it again overwrites it."""
        text = dumps(sample)
        if len(text) > MAX_SAMPLE_CHARS:
            raise ValueError(f"a usage sample has {len(text)} characters, over {MAX_SAMPLE_CHARS}")
        entity = {
            "PartitionKey": self._table.partition(SAMPLES),
            "RowKey": format_check_time(now),
            "sample": text,
        }
        with self._table.translate("saving a usage sample"):
            self._table.client.upsert_entity(entity, mode=UpdateMode.REPLACE)
