"""Alert state and its notification outbox: one entity per org, written only on its ETag.

A notification is claimed in the same write that decides it and marked delivered after it was
sent, so of racing checks exactly one sends it, and a failed one is sent again by a later check.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from license_monitor.alerting import AlertState, CheckFailure, Decision, Policy, Usage, decide
from license_monitor.deadline import RECORD_GRACE_SECONDS
from license_monitor.notify import Notification
from license_monitor.notify.http import LONGEST_DELIVERY_SECONDS
from license_monitor.state.table import WRITE_ATTEMPTS, StateTable, dumps, pack, unpack
from license_monitor.times import format_time, parse_time, utc

logger = logging.getLogger(__name__)

STATE_ROW = "alert-state"
MAX_OUTBOX_ENTRIES = 300
MAX_UNRECORDED = 100  # checks remembered while storage is down (a day at 15 minutes)

# A claim is re-sent once its lease has passed (its check crashed mid-delivery): as long as one
# delivery can take, and the recording of its outcome after it (70 s).
DEFAULT_LEASE = timedelta(seconds=LONGEST_DELIVERY_SECONDS + RECORD_GRACE_SECONDS)
DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)
DEFAULT_KEEP_FINISHED = timedelta(days=7)


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


class AlertStore:
    """The org's alert state and outbox; safe against concurrent checks through the ETag."""

    def __init__(
        self,
        table: StateTable,
        *,
        lease: timedelta = DEFAULT_LEASE,
        give_up_after: timedelta = DEFAULT_GIVE_UP_AFTER,
        keep_finished: timedelta = DEFAULT_KEEP_FINISHED,
    ) -> None:
        self._table = table
        self._lease = lease
        self._give_up_after = give_up_after
        self._keep_finished = keep_finished
        self._lock = threading.Lock()
        self._unrecorded: list[tuple[datetime, CheckFailure]] = []

    def _read(self) -> tuple[AlertState, list[dict[str, Any]], str | None]:
        with self._table.translate("reading the alert state"):
            try:
                entity = self._table.client.get_entity(self._table.org, STATE_ROW)
            except ResourceNotFoundError:
                return AlertState(), [], None
        state = AlertState.from_dict(json.loads(entity["state"]))
        outbox = unpack(entity, "outbox_") or []
        return state, list(outbox), entity.metadata["etag"]

    def _write(self, state: AlertState, outbox: list[dict[str, Any]], etag: str | None) -> bool:
        """Write conditionally on `etag` (insert when None); False when someone wrote first."""
        entity: dict[str, Any] = {
            "PartitionKey": self._table.org,
            "RowKey": STATE_ROW,
            "level": state.level,  # readable in Storage Explorer
            "state": dumps(state.to_dict()),
            **pack("outbox_", outbox),
        }
        with self._table.translate("saving the alert state"):
            try:
                if etag is None:
                    self._table.client.create_entity(entity)
                else:
                    self._table.client.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    def load_state(self) -> AlertState:
        """The stored alert state (the default state before the first check)."""
        return self._read()[0]

    def outbox(self) -> list[dict[str, Any]]:
        """The notification outbox as stored (copies): id, channel, status, payload, times."""
        return self._read()[1]

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
        now = utc(now)
        wanted = list(dict.fromkeys(channels))
        with self._lock:
            missed = list(self._unrecorded)
        for _ in range(WRITE_ATTEMPTS):
            previous, outbox, etag = self._read()
            decision = decide(outcome, previous, policy, now, quiet=quiet, missed=missed)
            outbox, to_send = self._claim(outbox, decision, wanted, now, quiet=quiet)
            if self._write(decision.state, outbox, etag):
                with self._lock:
                    self._unrecorded = [item for item in self._unrecorded if item not in missed]
                for notification in to_send:
                    logger.info("Claimed notification %s", notification.id)
                if decision.state.level != previous.level:
                    logger.info("Alert level %s -> %s", previous.level, decision.state.level)
                return Evaluation(decision=decision, to_send=to_send)
        raise self._table.kept_changing("the alert state")

    def note_unrecorded(self, checked_at: datetime, reason: str) -> None:
        """Remember a check whose outcome could not be saved (storage down), in this process.

        The next successful evaluate() counts it as a failed check, so a storage outage long
        enough reaches monitor_failing (then monitor_recovered) once storage answers again.
        Memory only: a restarted or different worker process does not know about it.
        """
        moment = utc(checked_at)
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
            state, outbox, etag = self._read()
            entry = next((item for item in outbox if item["id"] == notification_id), None)
            if entry is None:
                logger.warning("Notification %s is not in the outbox any more", notification_id)
                return
            if not change(entry) or self._write(state, outbox, etag):
                return
        raise self._table.kept_changing("the alert state")

    def mark_delivered(self, notification_id: str, now: datetime) -> None:
        """Record a delivery: the notification is never sent again."""
        stamp = format_time(utc(now))

        def delivered(entry: dict[str, Any]) -> bool:
            if entry["status"] == "delivered":
                return False
            entry.update(status="delivered", lease_until=None, updated_at=stamp, last_error=None)
            return True

        self._update_entry(notification_id, delivered)

    def mark_failed(self, notification_id: str, error: str, now: datetime) -> None:
        """Record a failed delivery: the next check claims the notification again."""
        stamp = format_time(utc(now))
        reason = " ".join(error.split())[:300]

        def failed(entry: dict[str, Any]) -> bool:
            if entry["status"] == "delivered":
                return False  # another attempt got through: that one counts
            entry.update(status="failed", lease_until=None, updated_at=stamp, last_error=reason)
            return True

        self._update_entry(notification_id, failed)
        logger.warning("Notification %s failed: %s", notification_id, reason)
