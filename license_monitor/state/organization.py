"""Which organization a client's state belongs to, and moving state to the org's key.

State is keyed by the Genesys organization id, so a new OAuth client of the same org (a
rotated credential) finds the alert episode, the outbox, the billing period and the samples
where the old client left them. A client learns its org id from GET /api/v2/organizations/me;
until then (and in versions that keyed state by client) its rows are under its client key C.

Learning the org id (`adopt`) moves every row under C to the org key K, then writes C's pointer
row (C, "organization") -> K. Moving first and pointing second means a move cut short is
finished by the next check (no pointer yet, so the org id is asked again), and a worker that
finds the pointer finds all of C's rows already under K.

Each row is copied, then its source deleted only if unchanged since it was read (ETag), so
two workers moving at once end with one copy. Where K already holds a row of the same kind
(another client of the org got there first), K's row wins: its alert state, its roster; billing
minutes are merged by the ledger's own rule (the newest measurement of a minute wins).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from license_monitor.state.alert_row import STATE_ROW
from license_monitor.state.billing import HISTOGRAM_ROW, MINUTES, BillingLedger
from license_monitor.state.rosters import ROSTER_CHUNK_PREFIX, ROSTER_ROW
from license_monitor.state.table import POINTER_ROW, StateTable, check_key
from license_monitor.times import format_time, utc

logger = logging.getLogger(__name__)

BATCH_ROWS = 100  # Table Storage's limit of operations in one batch


def _batches(rows: Iterable[TableEntity], size: int = BATCH_ROWS) -> Iterator[list[TableEntity]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _moved(row: TableEntity, partition: str) -> dict[str, Any]:
    """The row's properties under another partition key (types kept as the SDK read them)."""
    return {**row, "PartitionKey": partition}


def _unchanged(row: TableEntity) -> dict[str, Any]:
    return {"etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}


class OrganizationKey:
    """The client's pointer to its org's key, and the move of its rows there."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def pointer(self) -> dict[str, Any] | None:
        """This client's pointer row (org_key, org_id, org_name, confirmed_at), or None."""
        table = self._table
        if table.client_key is None:
            return None
        with table.translate("reading the organization pointer"):
            try:
                return dict(table.client.get_entity(table.client_key, POINTER_ROW))
            except ResourceNotFoundError:
                return None

    def adopt(self, org_id: str, org_name: str, now: datetime) -> int:
        """Key this client's state by `org_id` from now on; returns how many rows were moved.

        Idempotent: run again (every roster refresh does) it moves only what was written
        under the client key meanwhile, and rewrites the pointer.
        """
        table = self._table
        org_key = check_key(org_id)
        client_key = table.client_key
        if client_key is None:  # a store with a fixed key (tools, tests): nothing to point
            return 0
        moved = self.move(client_key, org_key)
        pointer = {"PartitionKey": client_key, "RowKey": POINTER_ROW, "org_key": org_key,
                   "org_id": org_id, "org_name": org_name,
                   "confirmed_at": format_time(utc(now))}
        with table.translate("saving the organization pointer"):
            table.client.upsert_entity(pointer, mode=UpdateMode.REPLACE)
        if table.org != org_key:
            logger.info("State of OAuth client key %s is kept under organization %s (%s)",
                        client_key, org_key, org_name or "no name")
        table.locate(org_key)
        return moved

    def follow(self, org_id: str) -> None:
        """Read (never write) the org's state in this process: what a dry run does.

        Rows of the client key not moved yet (no real check since the upgrade) are still read
        where they are: a dry run shows what the next real check would start from.
        """
        table = self._table
        if table.client_key is None or table.org_known:
            return
        with table.translate("reading the alert state"):
            try:
                table.client.get_entity(table.client_key, STATE_ROW)
            except ResourceNotFoundError:
                table.locate(org_id)

    def move(self, source_key: str, target_key: str) -> int:
        """Move every row under `source_key` to `target_key` (see the module docstring)."""
        table = self._table
        source, target = table.view(source_key), table.view(target_key)
        moved = 0
        with table.translate("moving state to the organization's key"):
            own = [row for row in table.client.query_entities(
                "PartitionKey eq @pk", parameters={"pk": source_key})
                if row["RowKey"] != POINTER_ROW]
            roster = [row for row in own if row["RowKey"] == ROSTER_ROW
                      or str(row["RowKey"]).startswith(ROSTER_CHUNK_PREFIX)]
            moved += self._move_roster(roster, target_key)
            for row in own:
                if all(row is not part for part in roster):
                    moved += self._move_if_absent(row, target_key)
            rows = table.client.query_entities(
                "PartitionKey ge @low and PartitionKey lt @high",
                parameters={"low": f"{source_key}|", "high": f"{source_key}}}"})
            for partition, group in itertools.groupby(rows, key=lambda row: row["PartitionKey"]):
                suffix = str(partition)[len(source_key):]  # "|samples", "|minutes|2026-11-01"
                if suffix.startswith(f"|{MINUTES}|"):
                    period = date.fromisoformat(suffix.split("|")[2])
                    moved += self._move_period(list(group), period, source, target)
                else:
                    moved += self._move_log(group, target_key + suffix)
        if moved:
            logger.info("Moved %d rows of state from %s to %s", moved, source_key, target_key)
        return moved

    def _delete(self, rows: list[TableEntity]) -> None:
        """Delete rows that were copied, each only if nobody changed it since it was read."""
        client = self._table.client
        for batch in _batches(rows):
            operations: list[Any] = [("delete", row, _unchanged(row)) for row in batch]
            if self._table.commit_batch(operations, "removing moved rows"):
                continue
            for row in batch:  # one changed or went meanwhile: settle them one by one
                try:
                    client.delete_entity(row["PartitionKey"], row["RowKey"], **_unchanged(row))
                except ResourceNotFoundError:
                    pass  # another worker moved it
                except HttpResponseError as err:
                    if err.status_code != 412:
                        raise
                    # Written after we read it: the next move (next roster refresh) takes it.
                    logger.warning("Row %s/%s changed while it was moved; left for the next move",
                                   row["PartitionKey"], row["RowKey"])

    def _move_if_absent(self, row: TableEntity, target_partition: str) -> int:
        """One row (the alert state): copied unless the org already has one, which wins."""
        try:
            self._table.client.create_entity(_moved(row, target_partition))
        except ResourceExistsError:
            logger.warning("Organization %s already has %s; the one under %s is dropped",
                           target_partition, row["RowKey"], row["PartitionKey"])
        self._delete([row])
        return 1

    def _move_roster(self, rows: list[TableEntity], target_partition: str) -> int:
        """The roster cache: manifest and chunks in one batch, unless the org has one."""
        manifest = next((row for row in rows if row["RowKey"] == ROSTER_ROW), None)
        if manifest is None:
            self._delete(rows)  # chunks without a manifest are debris of a cut-short save
            return 0
        chunks = [row for row in rows if row is not manifest]
        operations: list[Any] = [
            ("upsert", _moved(row, target_partition), {"mode": UpdateMode.REPLACE})
            for row in chunks]
        operations.append(("create", _moved(manifest, target_partition)))
        # False: the org has a roster already (another client's, or this move's twin): it wins.
        self._table.commit_batch(operations, "moving the cached roster")
        self._delete(rows)
        return len(rows)

    def _move_log(self, rows: Iterable[TableEntity], target_partition: str) -> int:
        """Rows keyed by time (samples): copied as they are, a batch at a time."""
        moved = 0
        for batch in _batches(rows):
            self._table.commit_batch([
                ("upsert", _moved(row, target_partition), {"mode": UpdateMode.REPLACE})
                for row in batch], "moving usage samples")
            self._delete(batch)
            moved += len(batch)
        return moved

    def _move_period(self, rows: list[TableEntity], period: date, source: StateTable,
                     target: StateTable) -> int:
        """One billing period: copied exactly, or merged when the org has minutes of it."""
        histogram = next((row for row in rows if row["RowKey"] == HISTOGRAM_ROW), None)
        minutes = [row for row in rows if row is not histogram]
        partition = target.partition(MINUTES, period.isoformat())
        copied = False
        if histogram is not None and not self._has_histogram(partition):
            # Exact copy: the histogram also counts minutes whose rows retention deleted.
            for batch in _batches(minutes, BATCH_ROWS - 1):
                self._table.commit_batch([
                    ("upsert", _moved(row, partition), {"mode": UpdateMode.REPLACE})
                    for row in batch], "moving billing minutes")
            copied = self._table.commit_batch(
                [("create", _moved(histogram, partition))], "moving the billing histogram")
        if not copied:
            # The org has a histogram of this period (another client, or a racing move):
            # merge minute by minute, the newest measurement winning, so nothing counts twice.
            BillingLedger(target).merge_records(period, BillingLedger(source).records(period))
        self._delete(rows)
        return len(rows)

    def _has_histogram(self, partition: str) -> bool:
        try:
            self._table.client.get_entity(partition, HISTOGRAM_ROW)
        except ResourceNotFoundError:
            return False
        return True
