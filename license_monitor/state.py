"""Table Storage: alert state with its notification outbox, usage samples, billing minutes, roster.

Layout of one org's rows (org key K):

| PartitionKey       | RowKey               | what                                              |
|--------------------|----------------------|---------------------------------------------------|
| K                  | alert-state          | AlertState JSON + the outbox (zlib JSON, binary)  |
| K                  | roster, roster|0000.. | roster manifest + zlib chunks, written in one batch |
| K|samples          | 2026-11-26T12:00:00Z | one usage sample per check                        |
| K|minutes|<period> | 2026-11-26T12:00Z    | max concurrency of that minute                    |
| K|minutes|<period> | histogram            | level -> minutes of the period (billing)          |

Every read-modify-write is conditional on the ETag read, so racing checks (timer + manual)
cannot both claim a notification nor count a minute twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from license_monitor.alerting import (
    AlertState,
    CheckFailure,
    Decision,
    Policy,
    Usage,
    decide,
    format_time,
    parse_time,
)
from license_monitor.billing import apply_histogram_delta, billable_peak, merge_minutes
from license_monitor.notify import Notification

logger = logging.getLogger(__name__)

STATE_ROW = "alert-state"
ROSTER_ROW = "roster"
ROSTER_CHUNK_PREFIX = "roster|"
HISTOGRAM_ROW = "histogram"
# Table Storage limits: 64 KiB per property, 1 MiB per entity, 100 operations and 4 MiB per
# batch. Chunks stay under the property limit and a roster save stays one atomic batch.
CHUNK_BYTES = 60_000
MAX_ROSTER_CHUNKS = 40
MAX_BATCH_ROWS = 99  # a batch of minute rows also carries the histogram: 100 operations
MAX_SAMPLE_CHARS = 30_000
MAX_OUTBOX_ENTRIES = 300
WRITE_ATTEMPTS = 25  # ten racing evaluations: the last one loses nine times at most
MAX_UNRECORDED = 100  # checks remembered while storage is down (a day at 15 minutes)

DEFAULT_LEASE = timedelta(minutes=10)
DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)
DEFAULT_KEEP_FINISHED = timedelta(days=7)

_FORBIDDEN_KEY_CHARS = set("/\\#?|")


class StorageUnavailable(Exception):  # noqa: N818 - the name other modules already use
    """Table Storage could not be used; the message is one sentence without keys or SAS tokens."""


@dataclass(frozen=True)
class Evaluation:
    """The decision of one check and the notifications this caller has claimed and must send."""

    decision: Decision
    to_send: list[Notification] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for activity outputs."""
        return {
            "decision": self.decision.to_dict(),
            "to_send": [notification.to_dict() for notification in self.to_send],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of to_dict."""
        return cls(
            decision=Decision.from_dict(data["decision"]),
            to_send=[Notification.from_dict(item) for item in data["to_send"]],
        )


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


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a naive datetime is ambiguous here; pass an aware UTC time ({moment})")
    return moment.astimezone(UTC)


def _minute_key(minute: datetime) -> str:
    return _utc(minute).strftime("%Y-%m-%dT%H:%MZ")


def _parse_minute_key(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=_json_default)


def _chunks(data: bytes) -> list[bytes]:
    return [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)]


def _pack(prefix: str, value: Any) -> dict[str, Any]:
    """Entity properties holding `value` as zlib-compressed JSON split under the 64 KiB limit."""
    parts = _chunks(zlib.compress(_dumps(value).encode("utf-8"), 6))
    properties: dict[str, Any] = {f"{prefix}{index}": part for index, part in enumerate(parts)}
    properties[f"{prefix}n"] = len(parts)
    return properties


def _unpack(entity: Mapping[str, Any], prefix: str) -> Any:
    count = entity.get(f"{prefix}n")
    if count is None:
        return None
    data = b"".join(bytes(entity[f"{prefix}{index}"]) for index in range(int(count)))
    return json.loads(zlib.decompress(data))


def _describe(err: AzureError, action: str, where: str) -> str:
    """One sentence about a storage error: never str(err), which may quote URLs with SAS tokens."""
    if isinstance(err, ServiceRequestError):
        return (
            f"Table Storage at {where} could not be reached while {action} "
            f"({type(err).__name__}); check STATE_CONNECTION or STATE_ACCOUNT_URL and the network"
        )
    if isinstance(err, ServiceResponseError):
        return f"Table Storage at {where} did not answer while {action} ({type(err).__name__})"
    if isinstance(err, ClientAuthenticationError) or (
        isinstance(err, HttpResponseError) and err.status_code in (401, 403)
    ):
        return (
            f"Table Storage at {where} rejected the credentials while {action} "
            f"(HTTP {err.status_code}); check the account key or the identity's Table Data role"
        )
    if isinstance(err, HttpResponseError):
        error_code = getattr(err, "error_code", None)
        # The SDK gives a TableErrorCode enum or a plain string.
        code = f" {getattr(error_code, 'value', error_code)}" if error_code else ""
        return f"Table Storage at {where} answered HTTP {err.status_code}{code} while {action}"
    return f"Table Storage at {where} failed while {action} ({type(err).__name__})"


def _client_options(retry_total: int) -> dict[str, Any]:
    # Every request has a timeout (DESIGN.md §12); azure-core's defaults are 300 s.
    return {"retry_total": retry_total, "connection_timeout": 5, "read_timeout": 20}


def _is_conflict(err: HttpResponseError) -> bool:
    """412 (ETag changed), 409 (created meanwhile) or 404 (deleted meanwhile): re-read, retry."""
    return err.status_code in (404, 409, 412)


class StateStore:
    """One org's rows in one table; safe against concurrent checks through ETags."""

    def __init__(
        self,
        table: TableClient,
        org_key: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        give_up_after: timedelta = DEFAULT_GIVE_UP_AFTER,
        keep_finished: timedelta = DEFAULT_KEEP_FINISHED,
    ) -> None:
        if not org_key or _FORBIDDEN_KEY_CHARS & set(org_key) or not org_key.isprintable():
            raise ValueError(
                "the org key must be non-empty printable text without / \\ # ? or |: "
                f"{org_key!r}"
            )
        self._table = table
        self._org = org_key
        self._lease = lease
        self._give_up_after = give_up_after
        self._keep_finished = keep_finished
        self._lock = threading.Lock()
        self._unrecorded: list[tuple[datetime, CheckFailure]] = []
        parts = urlsplit(table.url)
        self._where = parts.hostname or "the configured endpoint"
        if parts.port:
            self._where += f":{parts.port}"
        with self._translate("creating the table"), suppress(ResourceExistsError):
            table.create_table()

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table_name: str, org_key: str, *, retry_total: int = 3
    ) -> StateStore:
        """A store from a storage connection string (Azurite locally, a key or SAS in Azure)."""
        try:
            table = TableClient.from_connection_string(
                connection_string, table_name, **_client_options(retry_total)
            )
        except (ValueError, TypeError, AzureError):
            # `from None`: the parser's message may quote the connection string and its key.
            raise StorageUnavailable(
                "the Table Storage connection string is not valid "
                "(expected AccountName=...;AccountKey=...;TableEndpoint=... or similar)"
            ) from None
        return cls(table, org_key)

    @classmethod
    def from_account_url(
        cls,
        url: str,
        credential: Any,
        table_name: str,
        org_key: str,
        *,
        retry_total: int = 3,
    ) -> StateStore:
        """A store from a table endpoint and a credential (managed identity in Azure)."""
        try:
            table = TableClient(
                endpoint=url, table_name=table_name, credential=credential,
                **_client_options(retry_total),
            )
        except (ValueError, TypeError, AzureError):
            raise StorageUnavailable(
                f"the Table Storage account URL for {urlsplit(url).hostname} is not valid"
            ) from None
        return cls(table, org_key)

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except AzureError as err:
            message = _describe(err, action, self._where)
            logger.debug("Storage error (%s) while %s", type(err).__name__, action)
            # `from None` keeps the SDK's message (URLs, maybe a SAS token) out of tracebacks.
            raise StorageUnavailable(message) from None

    # ---- alert state and outbox -------------------------------------------------------------

    def _read_state(self) -> tuple[AlertState, list[dict[str, Any]], str | None]:
        with self._translate("reading the alert state"):
            try:
                entity = self._table.get_entity(self._org, STATE_ROW)
            except ResourceNotFoundError:
                return AlertState(), [], None
        state = AlertState.from_dict(json.loads(entity["state"]))
        outbox = _unpack(entity, "outbox_") or []
        return state, list(outbox), entity.metadata["etag"]

    def _write_state(
        self, state: AlertState, outbox: list[dict[str, Any]], etag: str | None
    ) -> bool:
        """Write conditionally on `etag` (insert when None); False when someone wrote first."""
        entity: dict[str, Any] = {
            "PartitionKey": self._org,
            "RowKey": STATE_ROW,
            "level": state.level,  # readable in Storage Explorer
            "state": _dumps(state.to_dict()),
            **_pack("outbox_", outbox),
        }
        with self._translate("saving the alert state"):
            try:
                if etag is None:
                    self._table.create_entity(entity)
                else:
                    self._table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    def load_state(self) -> AlertState:
        """The stored alert state (the default state before the first check)."""
        return self._read_state()[0]

    def outbox(self) -> list[dict[str, Any]]:
        """The notification outbox as stored (copies): id, channel, status, payload, times."""
        return self._read_state()[1]

    def evaluate(
        self,
        outcome: Usage | CheckFailure,
        policy: Policy,
        now: datetime,
        channels: Sequence[str],
        *,
        quiet: bool = False,
    ) -> Evaluation:
        """Decide on `outcome`, save the new state and claim what this caller must send.

        The write is conditional on the ETag read; on a conflict the state is re-read and the
        decision made again, so of racing evaluations exactly one claims each notification.
        Older notifications that failed, or whose claim lease expired, are claimed again. During
        quiet hours the state advances but nothing is claimed (decide() holds the events).
        Checks this process could not record (note_unrecorded) are counted first.
        """
        now = _utc(now)
        wanted = list(dict.fromkeys(channels))
        with self._lock:
            missed = list(self._unrecorded)
        for _ in range(WRITE_ATTEMPTS):
            previous, outbox, etag = self._read_state()
            decision = decide(outcome, previous, policy, now, quiet=quiet, missed=missed)
            outbox, to_send = self._claim(outbox, decision, wanted, now, quiet=quiet)
            if self._write_state(decision.state, outbox, etag):
                with self._lock:
                    self._unrecorded = [item for item in self._unrecorded if item not in missed]
                for notification in to_send:
                    logger.info("Claimed notification %s", notification.id)
                if decision.state.level != previous.level:
                    logger.info("Alert level %s -> %s", previous.level, decision.state.level)
                return Evaluation(decision=decision, to_send=to_send)
        raise StorageUnavailable(
            f"the alert state at {self._where} kept changing under concurrent checks; "
            f"gave up after {WRITE_ATTEMPTS} attempts"
        )

    def note_unrecorded(self, checked_at: datetime, reason: str) -> None:
        """Remember a check whose outcome could not be saved (storage down), in this process.

        The next successful evaluate() counts it as a failed check, so a storage outage long
        enough reaches monitor_failing (then monitor_recovered) once storage answers again.
        Memory only: a restarted or different worker process does not know about it.
        """
        moment = _utc(checked_at)
        with self._lock:
            if any(when == moment for when, _ in self._unrecorded):
                return
            self._unrecorded.append((moment, CheckFailure(reason)))
            del self._unrecorded[:-MAX_UNRECORDED]

    def _claim(
        self,
        outbox: list[dict[str, Any]],
        decision: Decision,
        channels: list[str],
        now: datetime,
        *,
        quiet: bool = False,
    ) -> tuple[list[dict[str, Any]], list[Notification]]:
        """Claim what is owed and add the decision's events, one in flight per alert and channel.

        A notification waits ("pending") while an earlier one of the same alert on the same
        channel is undelivered, so a receiver never gets a resolve before its trigger.
        """
        if quiet:
            return self._prune(outbox, now), []
        lease_until = format_time(now + self._lease)
        to_send: list[Notification] = []
        busy: set[tuple[str, str]] = set()  # (alert_id, channel) with a notification in flight

        def claim(entry: dict[str, Any]) -> None:
            entry.update(
                status="claimed", lease_until=lease_until, attempts=entry["attempts"] + 1,
                updated_at=format_time(now),
            )
            to_send.append(Notification(entry["id"], entry["channel"], entry["payload"]))

        for entry in outbox:
            if entry["status"] in ("delivered", "abandoned") or entry["channel"] not in channels:
                continue
            lane = (str(entry["payload"].get("alert_id")), str(entry["channel"]))
            if lane in busy:
                continue
            if (entry["status"] == "pending" or self._owed(entry, now)) and (
                    now - parse_time(entry["created_at"]) >= self._give_up_after):
                entry.update(status="abandoned", lease_until=None, updated_at=format_time(now))
                logger.warning(
                    "Gave up on notification %s after %d attempts: %s",
                    entry["id"], entry["attempts"], entry.get("last_error"),
                )
                continue
            if entry["status"] == "pending" or self._owed(entry, now):
                claim(entry)
            busy.add(lane)
        known = {entry["id"] for entry in outbox}
        for event in decision.events:
            payload = event.to_payload()
            for channel in channels:
                notification_id = f"{event.key}:{channel}"
                if notification_id in known:
                    continue
                entry = {
                    "id": notification_id,
                    "channel": channel,
                    "payload": payload,
                    "status": "pending",
                    "lease_until": None,
                    "attempts": 0,
                    "created_at": format_time(now),
                    "updated_at": format_time(now),
                    "last_error": None,
                }
                outbox.append(entry)
                known.add(notification_id)
                lane = (event.alert_id, channel)
                if lane not in busy:
                    claim(entry)
                    busy.add(lane)
        return self._prune(outbox, now), to_send

    @staticmethod
    def _owed(entry: Mapping[str, Any], now: datetime) -> bool:
        if entry["status"] == "failed":
            return True
        return entry["status"] == "claimed" and (
            entry["lease_until"] is None or parse_time(entry["lease_until"]) <= now
        )

    def _prune(self, outbox: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Drop finished entries after `keep_finished`; cap the outbox's size, oldest first."""
        horizon = now - self._keep_finished
        kept = [
            entry for entry in outbox
            if entry["status"] not in ("delivered", "abandoned")
            or parse_time(entry["updated_at"]) >= horizon
        ]
        while len(kept) > MAX_OUTBOX_ENTRIES:
            finished = [e for e in kept if e["status"] in ("delivered", "abandoned")]
            victim = finished[0] if finished else kept[0]
            if not finished:
                logger.warning("Outbox full: dropped undelivered notification %s", victim["id"])
            kept.remove(victim)
        return kept

    def _update_entry(
        self, notification_id: str, change: Callable[[dict[str, Any]], bool]
    ) -> None:
        for _ in range(WRITE_ATTEMPTS):
            state, outbox, etag = self._read_state()
            entry = next((item for item in outbox if item["id"] == notification_id), None)
            if entry is None:
                logger.warning("Notification %s is not in the outbox any more", notification_id)
                return
            if not change(entry) or self._write_state(state, outbox, etag):
                return
        raise StorageUnavailable(
            f"the alert state at {self._where} kept changing under concurrent checks; "
            f"gave up after {WRITE_ATTEMPTS} attempts"
        )

    def mark_delivered(self, notification_id: str, now: datetime) -> None:
        """Record a delivery: the notification is never sent again."""
        stamp = format_time(_utc(now))

        def delivered(entry: dict[str, Any]) -> bool:
            if entry["status"] == "delivered":
                return False
            entry.update(status="delivered", lease_until=None, updated_at=stamp, last_error=None)
            return True

        self._update_entry(notification_id, delivered)

    def mark_failed(self, notification_id: str, error: str, now: datetime) -> None:
        """Record a failed delivery: the next check claims the notification again."""
        stamp = format_time(_utc(now))
        reason = " ".join(error.split())[:300]

        def failed(entry: dict[str, Any]) -> bool:
            if entry["status"] == "delivered":
                return False  # another attempt got through: that one counts
            entry.update(status="failed", lease_until=None, updated_at=stamp, last_error=reason)
            return True

        self._update_entry(notification_id, failed)
        logger.warning("Notification %s failed: %s", notification_id, reason)

    # ---- roster cache -----------------------------------------------------------------------

    def save_roster(self, roster_dict: Mapping[str, Any], now: datetime) -> None:
        """Cache a roster (Roster.to_dict()): zlib JSON in chunks, replaced in one atomic batch."""
        data = zlib.compress(_dumps(roster_dict).encode("utf-8"), 6)
        parts = _chunks(data)
        if len(parts) > MAX_ROSTER_CHUNKS:
            raise ValueError(
                f"the roster is {len(data)} bytes compressed; the cache holds at most "
                f"{MAX_ROSTER_CHUNKS * CHUNK_BYTES}"
            )
        manifest: dict[str, Any] = {
            "PartitionKey": self._org,
            "RowKey": ROSTER_ROW,
            "saved_at": format_time(_utc(now)),
            "chunks": len(parts),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for _ in range(WRITE_ATTEMPTS):
            with self._translate("reading the cached roster"):
                try:
                    current = self._table.get_entity(self._org, ROSTER_ROW)
                except ResourceNotFoundError:
                    current = None
            old_count = 0 if current is None else int(current["chunks"])
            operations: list[Any] = [
                ("upsert", {"PartitionKey": self._org, "RowKey": self._chunk_key(index),
                            "data": part}, {"mode": UpdateMode.REPLACE})
                for index, part in enumerate(parts)
            ]
            operations += [
                ("delete", {"PartitionKey": self._org, "RowKey": self._chunk_key(index)})
                for index in range(len(parts), old_count)
            ]
            if current is None:
                operations.append(("create", manifest))
            else:
                operations.append(("update", manifest, {
                    "mode": UpdateMode.REPLACE, "etag": current.metadata["etag"],
                    "match_condition": MatchConditions.IfNotModified,
                }))
            with self._translate("saving the roster"):
                try:
                    self._table.submit_transaction(operations)
                except TableTransactionError as err:
                    if _is_conflict(err):
                        continue
                    raise
            return
        raise StorageUnavailable(f"the cached roster at {self._where} kept changing; not saved")

    @staticmethod
    def _chunk_key(index: int) -> str:
        return f"{ROSTER_CHUNK_PREFIX}{index:04d}"

    def load_roster(self) -> dict[str, Any] | None:
        """The cached roster dict, or None when there is none (or it is damaged: rebuild it)."""
        for _ in range(3):
            with self._translate("reading the cached roster"):
                try:
                    manifest = self._table.get_entity(self._org, ROSTER_ROW)
                except ResourceNotFoundError:
                    return None
                rows = list(self._table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                    parameters={"pk": self._org, "low": ROSTER_CHUNK_PREFIX, "high": "roster}"},
                ))
            by_key = {row["RowKey"]: bytes(row["data"]) for row in rows}
            try:
                data = b"".join(by_key[self._chunk_key(i)] for i in range(int(manifest["chunks"])))
            except KeyError:
                continue  # a save replaced the chunks between our two reads
            if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
                continue
            roster: dict[str, Any] = json.loads(zlib.decompress(data))
            return roster
        logger.warning("The cached roster is inconsistent; it will be rebuilt")
        return None

    # ---- usage samples ----------------------------------------------------------------------

    @property
    def _samples_partition(self) -> str:
        return f"{self._org}|samples"

    def save_sample(self, sample: Mapping[str, Any], now: datetime) -> None:
        """Store one check's figures (RowKey = the check time); saving it again overwrites it."""
        text = _dumps(sample)
        if len(text) > MAX_SAMPLE_CHARS:
            raise ValueError(f"a usage sample has {len(text)} characters, over {MAX_SAMPLE_CHARS}")
        entity = {
            "PartitionKey": self._samples_partition,
            "RowKey": format_time(_utc(now)),
            "sample": text,
        }
        with self._translate("saving a usage sample"):
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def samples_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Stored samples with start <= check time <= end, oldest first."""
        with self._translate("reading usage samples"):
            rows = list(self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                parameters={"pk": self._samples_partition, "low": format_time(_utc(start)),
                            "high": format_time(_utc(end))},
            ))
        rows.sort(key=lambda row: str(row["RowKey"]))
        return [json.loads(row["sample"]) for row in rows]

    # ---- billing minutes --------------------------------------------------------------------

    def _minutes_partition(self, period_start: date) -> str:
        return f"{self._org}|minutes|{period_start.isoformat()}"

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
            minute = _utc(moment)
            if minute.second or minute.microsecond:
                raise ValueError(f"minute levels must be keyed by whole minutes, not {minute}")
            if minute >= begins:
                measured[minute] = int(level)
        partition = self._minutes_partition(period_start)
        ordered = sorted(measured)
        if not ordered:
            histogram, _ = self._read_histogram(partition)
            return BillingSummary.of(period_start, histogram)
        for start in range(0, len(ordered), MAX_BATCH_ROWS):
            batch = {minute: measured[minute] for minute in ordered[start : start + MAX_BATCH_ROWS]}
            histogram = self._record_batch(partition, batch)
        return BillingSummary.of(period_start, histogram)

    def _read_histogram(self, partition: str) -> tuple[dict[int, int], str | None]:
        with self._translate("reading the billing histogram"):
            try:
                entity = self._table.get_entity(partition, HISTOGRAM_ROW)
            except ResourceNotFoundError:
                return {}, None
        stored = _unpack(entity, "h_") or {}
        histogram = {int(level): int(minutes) for level, minutes in stored.items()}
        return histogram, entity.metadata["etag"]

    def _record_batch(self, partition: str, batch: Mapping[datetime, int]) -> dict[int, int]:
        first, last = min(batch), max(batch)
        for _ in range(WRITE_ATTEMPTS):
            # The histogram (and its ETag) first, the rows second: a write that lands between
            # the two reads changes the ETag, so our batch fails and we re-read.
            histogram, etag = self._read_histogram(partition)
            with self._translate("reading billing minutes"):
                rows = list(self._table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": partition, "low": _minute_key(first),
                                "high": _minute_key(last)},
                ))
            recorded = {_parse_minute_key(str(row["RowKey"])): int(row["level"]) for row in rows}
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
                **_pack("h_", {str(level): minutes for level, minutes in updated.items()}),
            }
            operations: list[Any] = [
                ("upsert", {"PartitionKey": partition, "RowKey": _minute_key(minute),
                            "level": level}, {"mode": UpdateMode.REPLACE})
                for minute, level in sorted(changed.items())
            ]
            if etag is None:
                operations.append(("create", histogram_entity))
            else:
                operations.append(("update", histogram_entity, {
                    "mode": UpdateMode.REPLACE, "etag": etag,
                    "match_condition": MatchConditions.IfNotModified,
                }))
            with self._translate("saving billing minutes"):
                try:
                    self._table.submit_transaction(operations)
                except TableTransactionError as err:
                    if _is_conflict(err):
                        continue
                    raise
            return updated
        raise StorageUnavailable(f"the billing minutes at {self._where} kept changing; not saved")

    def billing_summary(self, period_start: date) -> BillingSummary:
        """The period's billing figures as recorded so far."""
        histogram, _ = self._read_histogram(self._minutes_partition(period_start))
        return BillingSummary.of(period_start, histogram)

    # ---- retention --------------------------------------------------------------------------

    def purge_older_than(self, cutoff: datetime) -> int:
        """Delete samples and minute rows before `cutoff` (and histograms of periods wholly
        before it); returns how many rows were deleted."""
        cutoff = _utc(cutoff)
        minutes_low = f"{self._org}|minutes|"
        minutes_high = f"{self._org}|minutes}}"  # '}' sorts right after '|'
        with self._translate("listing rows to purge"):
            doomed = list(self._table.query_entities(
                "PartitionKey eq @pk and RowKey lt @before",
                parameters={"pk": self._samples_partition, "before": format_time(cutoff)},
                select=["PartitionKey", "RowKey"],
            ))
            # "histogram" sorts after every minute key, so `lt` never selects it.
            doomed += self._table.query_entities(
                "PartitionKey ge @low and PartitionKey lt @high and RowKey lt @before",
                parameters={"low": minutes_low, "high": minutes_high,
                            "before": _minute_key(cutoff)},
                select=["PartitionKey", "RowKey"],
            )
            histograms = self._table.query_entities(
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
        with self._translate("purging old rows"):
            for partition, keys in by_partition.items():
                for start in range(0, len(keys), 100):
                    self._table.submit_transaction([
                        ("delete", {"PartitionKey": partition, "RowKey": key})
                        for key in keys[start : start + 100]
                    ])
        if doomed:
            logger.info("Purged %d rows older than %s", len(doomed), format_time(cutoff))
        return len(doomed)
