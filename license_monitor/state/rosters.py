"""The roster cache: pool and agent/admin classes, zlib JSON in chunks, replaced atomically;
and the lease that lets one worker at a time refresh it in the background."""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from license_monitor.state.table import (
    CHUNK_BYTES,
    WRITE_ATTEMPTS,
    StateTable,
    chunks,
    dumps,
    guarded,
    is_conflict,
)
from license_monitor.times import format_time, utc

logger = logging.getLogger(__name__)

ROSTER_ROW = "roster"
REFRESH_ROW = "roster-refresh"  # until: the wall time (epoch s) a worker's refresh lease ends
ROSTER_CHUNK_PREFIX = "roster|"
# A save is one atomic batch (at most 100 operations): manifest + chunks + stale deletions.
MAX_ROSTER_CHUNKS = 40


def _chunk_key(index: int) -> str:
    return f"{ROSTER_CHUNK_PREFIX}{index:04d}"


class RosterCache:
    """The org's cached roster (Roster.to_dict()), shared by every worker."""

    def __init__(self, table: StateTable) -> None:
        self._table = table

    def save(self, roster_dict: Mapping[str, Any], now: datetime) -> None:
        """Cache a roster: zlib JSON in chunks, replaced in one atomic batch."""
        table = self._table
        data = zlib.compress(dumps(roster_dict).encode("utf-8"), 6)
        parts = chunks(data)
        if len(parts) > MAX_ROSTER_CHUNKS:
            raise ValueError(
                f"the roster is {len(data)} bytes compressed; the cache holds at most "
                f"{MAX_ROSTER_CHUNKS * CHUNK_BYTES}"
            )
        manifest: dict[str, Any] = {
            "PartitionKey": table.org,
            "RowKey": ROSTER_ROW,
            "saved_at": format_time(utc(now)),
            "chunks": len(parts),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for _ in range(WRITE_ATTEMPTS):
            with table.translate("reading the cached roster"):
                try:
                    current = table.client.get_entity(table.org, ROSTER_ROW)
                except ResourceNotFoundError:
                    current = None
            old_count = 0 if current is None else int(current["chunks"])
            operations: list[Any] = [
                ("upsert", {"PartitionKey": table.org, "RowKey": _chunk_key(index),
                            "data": part}, {"mode": UpdateMode.REPLACE})
                for index, part in enumerate(parts)
            ]
            operations += [
                ("delete", {"PartitionKey": table.org, "RowKey": _chunk_key(index)})
                for index in range(len(parts), old_count)
            ]
            operations.append(guarded(manifest, None if current is None
                                      else current.metadata["etag"]))
            if table.commit_batch(operations, "saving the roster"):
                return
        raise table.kept_changing("the cached roster")

    def load(self) -> dict[str, Any] | None:
        """The cached roster dict, or None when there is none (or it is damaged: rebuild it)."""
        table = self._table
        for _ in range(3):
            with table.translate("reading the cached roster"):
                try:
                    manifest = table.client.get_entity(table.org, ROSTER_ROW)
                except ResourceNotFoundError:
                    return None
                rows = list(table.client.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                    parameters={"pk": table.org, "low": ROSTER_CHUNK_PREFIX, "high": "roster}"},
                ))
            by_key = {row["RowKey"]: bytes(row["data"]) for row in rows}
            try:
                data = b"".join(by_key[_chunk_key(i)] for i in range(int(manifest["chunks"])))
            except KeyError:
                continue  # a save replaced the chunks between our two reads
            if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
                continue
            roster: dict[str, Any] = json.loads(zlib.decompress(data))
            return roster
        logger.warning("The cached roster is inconsistent; it will be rebuilt")
        return None

    def claim_refresh(self, now_epoch: float, seconds: float) -> str | None:
        """Take the refresh lease for `seconds` (wall time), unless another worker holds it;
        returns its ETag (to release it), or None when another holds it."""
        table = self._table
        with table.translate("reading the roster refresh lease"):
            try:
                current = table.client.get_entity(table.org, REFRESH_ROW)
            except ResourceNotFoundError:
                current = None
        if current is not None and float(current.get("until", 0)) > now_epoch:
            return None
        entity = {"PartitionKey": table.org, "RowKey": REFRESH_ROW,
                  "until": float(now_epoch + seconds)}
        with table.translate("claiming the roster refresh lease"):
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
        return str(result["etag"])

    def release_refresh(self, etag: str, error: str | None = None) -> None:
        """End this worker's lease, keeping `error` when the refresh failed for a reason that
        will not pass by itself (a permission, the license data): the next check whose roster
        has expired reports it. A lease changed meanwhile is left alone."""
        table = self._table
        with table.translate("releasing the roster refresh lease"):
            try:
                if error is None:
                    table.client.delete_entity(table.org, REFRESH_ROW, etag=etag,
                                               match_condition=MatchConditions.IfNotModified)
                else:
                    table.client.update_entity(
                        {"PartitionKey": table.org, "RowKey": REFRESH_ROW, "until": 0.0,
                         "error": error[:1000]},
                        mode=UpdateMode.REPLACE, etag=etag,
                        match_condition=MatchConditions.IfNotModified)
            except HttpResponseError:
                logger.debug("The roster refresh lease changed meanwhile; left as it is")

    def refresh_error(self) -> str | None:
        """Why the last background refresh failed, when it failed for a lasting reason."""
        table = self._table
        with table.translate("reading the roster refresh lease"):
            try:
                row = table.client.get_entity(table.org, REFRESH_ROW)
            except ResourceNotFoundError:
                return None
        error = row.get("error")
        return None if not error else str(error)
