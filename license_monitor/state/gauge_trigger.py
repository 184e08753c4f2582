"""The presence gauge's check trigger: at most one exact check started by events per interval,
across all workers, through one row's ETag (row K | gauge-trigger, see state/gauge.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, UpdateMode

from license_monitor.gauge import epoch_ms
from license_monitor.state.table import StateTable, is_conflict

logger = logging.getLogger(__name__)

TRIGGER_ROW = "gauge-trigger"


def _int(value: Any) -> int:
    return int(value.value if isinstance(value, EntityProperty) else value)


def _int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


@dataclass(frozen=True)
class Claim:
    """The right to start one exact check now, won through the trigger row's ETag."""

    etag: str
    previous_ms: int | None



class GaugeTrigger:
    """Claiming and giving back the right to start the exact check (a mixin of PresenceGauge)."""

    _table: StateTable

    def claim_check(self, now: datetime, min_interval: timedelta) -> Claim | None:
        """Win the right to start the exact check: at most one per `min_interval`, all workers."""
        table = self._table
        with table.translate("reading the gauge's check trigger"):
            try:
                current = table.client.get_entity(table.org, TRIGGER_ROW)
            except ResourceNotFoundError:
                current = None
        previous = None if current is None else _int(current["last_started"])
        now_ms = epoch_ms(now)
        if previous is not None and now_ms - previous < min_interval // timedelta(milliseconds=1):
            return None
        entity = {"PartitionKey": table.org, "RowKey": TRIGGER_ROW,
                  "last_started": _int64(now_ms)}
        with table.translate("claiming the gauge's check trigger"):
            try:
                if current is None:
                    result = table.client.create_entity(entity)
                else:
                    result = table.client.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified)
            except HttpResponseError as err:
                if is_conflict(err):
                    return None  # another worker claimed it first
                raise
        return Claim(str(result["etag"]), previous)

    def release_claim(self, claim: Claim) -> None:
        """Give a claim back (the check could not start): the next rising event may try."""
        table = self._table
        with table.translate("releasing the gauge's check trigger"):
            try:
                if claim.previous_ms is None:
                    table.client.delete_entity(
                        table.org, TRIGGER_ROW, etag=claim.etag,
                        match_condition=MatchConditions.IfNotModified)
                else:
                    table.client.update_entity(
                        {"PartitionKey": table.org, "RowKey": TRIGGER_ROW,
                         "last_started": _int64(claim.previous_ms)},
                        mode=UpdateMode.REPLACE, etag=claim.etag,
                        match_condition=MatchConditions.IfNotModified)
            except HttpResponseError:
                logger.debug("The gauge's check trigger changed meanwhile; left as it is")
