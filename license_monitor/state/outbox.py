"""The notification outbox of the alert-state row: claims, lanes, retries and rejections.

Entries are plain JSON (id, channel, status, payload, attempts, times, last_error, and the
check that claimed them). One notification per alert and channel is in flight at a time (a
lane); a failed one, or one whose claim lease ran out, is claimed again by a later check until
it is delivered, refused for good ("rejected", never retried) or given up after a day.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from license_monitor.alerting import AlertEvent, AlertState, Policy
from license_monitor.deadline import RECORD_GRACE_SECONDS
from license_monitor.notify import Notification, rejection_message
from license_monitor.notify.http import LONGEST_DELIVERY_SECONDS
from license_monitor.times import compact_time, format_check_time, format_time, parse_time

logger = logging.getLogger(__name__)

MAX_OUTBOX_ENTRIES = 300
# A claim is re-sent once its lease has passed (its check crashed mid-delivery): as long as one
# delivery can take, and the recording of its outcome after it (70 s).
DEFAULT_LEASE = timedelta(seconds=LONGEST_DELIVERY_SECONDS + RECORD_GRACE_SECONDS)
DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)
DEFAULT_KEEP_FINISHED = timedelta(days=7)
# Delivered, given up after a day, or refused by the receiver for good: never sent again.
FINISHED = ("delivered", "abandoned", "rejected")
_ENTRY_KEYS = ("id", "channel", "status", "payload", "attempts", "created_at", "updated_at")


@dataclass(frozen=True)
class Outbox:
    """How long a claim holds, when to give up and how long finished entries are kept."""

    lease: timedelta = DEFAULT_LEASE
    give_up_after: timedelta = DEFAULT_GIVE_UP_AFTER
    keep_finished: timedelta = DEFAULT_KEEP_FINISHED

    def claim(
        self,
        outbox: list[dict[str, Any]],
        events: Sequence[tuple[AlertEvent, Sequence[str], dict[str, Any]]],
        channels: list[str],
        now: datetime,
        *,
        quiet: bool = False,
        check_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], list[Notification]]:
        """Claim what is owed and add new events (channels, payload), one in flight per lane.

        A notification waits ("pending") while an earlier one of the same alert on the same
        channel is undelivered, so a receiver never gets a resolve before its trigger. A claim
        remembers the check that made it (`checked_at`, `check_id`).
        """
        if quiet:
            return self.prune(outbox, now), []
        lease_until = format_time(now + self.lease)
        to_send: list[Notification] = []
        busy: set[tuple[str, str]] = set()  # (alert_id, channel) with a notification in flight

        def claim(entry: dict[str, Any]) -> None:
            entry.update(
                status="claimed", lease_until=lease_until, attempts=entry["attempts"] + 1,
                updated_at=format_time(now), checked_at=format_check_time(now), check_id=check_id,
            )
            to_send.append(Notification(entry["id"], entry["channel"], entry["payload"]))

        for entry in outbox:
            if entry["status"] in FINISHED or entry["channel"] not in channels:
                continue
            lane = (str(entry["payload"].get("alert_id")), str(entry["channel"]))
            if lane in busy:
                continue
            if (entry["status"] == "pending" or self.owed(entry, now)) and (
                    now - parse_time(entry["created_at"]) >= self.give_up_after):
                entry.update(status="abandoned", lease_until=None, updated_at=format_time(now))
                logger.warning(
                    "Gave up on notification %s after %d attempts: %s",
                    entry["id"], entry["attempts"], entry.get("last_error"),
                )
                continue
            if entry["status"] == "pending" or self.owed(entry, now):
                claim(entry)
            busy.add(lane)
        known = {entry["id"] for entry in outbox}
        for event, event_channels, payload in events:
            for channel in event_channels:
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
        return self.prune(outbox, now), to_send

    @staticmethod
    def owed(entry: Mapping[str, Any], now: datetime) -> bool:
        """A failed notification, or one whose claim lease ran out: claimed again."""
        if entry["status"] == "failed":
            return True
        return entry["status"] == "claimed" and (
            entry["lease_until"] is None or parse_time(entry["lease_until"]) <= now
        )

    def prune(self, outbox: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Drop finished entries after `keep_finished`; cap the outbox's size, oldest first."""
        horizon = now - self.keep_finished
        kept = [
            entry for entry in outbox
            if entry["status"] not in FINISHED or parse_time(entry["updated_at"]) >= horizon
        ]
        while len(kept) > MAX_OUTBOX_ENTRIES:
            finished = [e for e in kept if e["status"] in FINISHED]
            victim = finished[0] if finished else kept[0]
            if not finished:
                logger.warning("Outbox full: dropped undelivered notification %s", victim["id"])
            kept.remove(victim)
        return kept


def record_delivered(
    entry: dict[str, Any], rejections: dict[str, dict[str, Any]], stamp: str,
) -> bool:
    """Mark an entry delivered (False when it was already); its channel's rejection is over."""
    if entry["status"] == "delivered":
        return False
    entry.update(status="delivered", lease_until=None, updated_at=stamp, last_error=None)
    if rejections.pop(str(entry["channel"]), None) is not None:
        logger.info("The %s channel delivers again", entry["channel"])
    return True


def record_failed(entry: dict[str, Any], stamp: str, reason: str) -> bool:
    """Mark an entry failed (to be claimed again), unless it was delivered or refused already."""
    if entry["status"] in ("delivered", "rejected"):
        return False  # another attempt got through, or was refused for good: that one counts
    entry.update(status="failed", lease_until=None, updated_at=stamp, last_error=reason)
    return True


def record_rejected(
    entry: dict[str, Any], rejections: dict[str, dict[str, Any]], stamp: str, reason: str,
) -> bool:
    """Mark an entry refused for good; the channel's first refusal opens a rejection episode."""
    if entry["status"] == "delivered":
        return False
    entry.update(status="rejected", lease_until=None, updated_at=stamp, last_error=reason)
    channel = str(entry["channel"])
    if channel in rejections:
        rejections[channel]["error"] = reason
    else:
        rejections[channel] = {"error": reason, "since": stamp, "announced": False}
        logger.warning("The %s channel rejects our messages: %s", channel, reason)
    return True


def usable_entry(entry: Any) -> bool:
    """An outbox entry this version can claim and send (another version's may not be)."""
    return (isinstance(entry, dict) and all(key in entry for key in _ENTRY_KEYS)
            and isinstance(entry["payload"], dict))


def channel_errors_of(rejections: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """The check JSON's channel_errors: each channel refusing our messages, since when, why."""
    return [{"channel": channel, "error": str(record.get("error")),
             "since": str(record.get("since"))} for channel, record in rejections.items()]


def rejection_notices(
    rejections: dict[str, dict[str, Any]], state: AlertState, policy: Policy, now: datetime,
) -> list[tuple[str, AlertEvent]]:
    """(channel, channel_rejected) per rejection episode not announced yet (marked here)."""
    notices: list[tuple[str, AlertEvent]] = []
    for channel, record in rejections.items():
        if record.get("announced"):
            continue
        record["announced"] = True
        since = parse_time(str(record["since"]))
        notices.append((channel, AlertEvent(
            event="channel_rejected",
            level=state.level,
            previous_level=state.level,
            alert_id=f"channel-{channel}-{compact_time(since)}",
            occurred_at=now,
            usage=None,
            capacity=policy.capacity,
            utilization_percent=None,
            message=rejection_message(channel, str(record.get("error", ""))),
        )))
    return notices
