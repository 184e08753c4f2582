"""The notification outbox of the alert-state row: claims, lanes, retries and rejections.

Entries are plain JSON (id, channel, status, payload, attempts, times, last_error, the time
owed outside quiet hours, and the check that claimed them; `decided` keeps the payload as
decided when a catch-up rewrote it). One notification per alert and channel is in flight at a
time (a lane); what a lane owes is reconciled with the present at each check (backlog.py), and
the message still worth sending is claimed until it is delivered, refused for good ("rejected",
never retried), superseded by a newer one, or, for a closed alert, given up after a day.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from license_monitor.alerting import (
    AlertEvent,
    AlertState,
    Policy,
)
from license_monitor.backlog import OWED, catch_up, is_open
from license_monitor.deadline import RECORD_GRACE_SECONDS
from license_monitor.notify import Notification, rejection_message
from license_monitor.notify.http import LONGEST_DELIVERY_SECONDS
from license_monitor.quiet_hours import QuietWindowLike, time_outside_quiet_hours
from license_monitor.times import compact_time, format_check_time, format_time, parse_time

logger = logging.getLogger(__name__)

MAX_OUTBOX_ENTRIES = 300
# A claim is re-sent once its lease has passed (its check crashed mid-delivery): as long as one
# delivery can take, and the recording of its outcome after it (70 s).
DEFAULT_LEASE = timedelta(seconds=LONGEST_DELIVERY_SECONDS + RECORD_GRACE_SECONDS)
DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)
DEFAULT_KEEP_FINISHED = timedelta(days=7)
# Delivered, given up after a day, refused by the receiver for good, or no longer worth sending
# (a newer message of the same alert says what is true now): never sent again.
FINISHED = ("delivered", "abandoned", "rejected", "superseded")
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
        present: tuple[AlertState, Policy],
        *,
        quiet: bool = False,
        check_id: str | None = None,
        quiet_hours: tuple[Sequence[QuietWindowLike], str] = ((), "UTC"),
        claimed_at: datetime | None = None,
    ) -> tuple[list[dict[str, Any]], list[Notification]]:
        """Add new events (channels, payload) and claim what each lane still owes, one at a time.

        Per alert and channel (a lane) the messages owed are reconciled with `present` (the
        alert state after this check, and the policy; see backlog.catch_up): one message is
        claimed, those no longer worth sending are dropped ("superseded"), so a receiver never
        gets a resolve before its trigger nor a stale backlog. Owed messages of a closed alert
        are given up after `give_up_after` of time outside `quiet_hours` (windows, zone); an open
        one never is. Claims go out oldest first: a channel's claims of one check are chained
        (Notification.then) so they arrive in that order. A claim remembers its check. Its
        lease runs from `claimed_at` (the wall time of the claim, on the check's clock) when
        later than `now`: a check that spent its first minute catching up claims for as long.
        """
        _age(outbox, now, quiet_hours)
        known = {entry["id"] for entry in outbox}
        for event, event_channels, payload in events:
            for channel in event_channels:
                notification_id = f"{event.key}:{channel}"
                if notification_id not in known:
                    outbox.append(new_entry(notification_id, channel, payload, now))
                    known.add(notification_id)
        if quiet:
            return self.prune(outbox, now), []
        state, policy = present
        lanes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in outbox:
            if entry["channel"] in channels:
                lane = (str(entry["payload"].get("alert_id")), str(entry["channel"]))
                lanes.setdefault(lane, []).append(entry)
        claimed: list[dict[str, Any]] = []
        lease_until = format_time(max(now, claimed_at or now) + self.lease)
        for (alert_id, channel), entries in lanes.items():
            if any(entry["status"] == "claimed" and not self.owed(entry, now)
                   for entry in entries):
                continue  # one in flight per lane: the next check looks again
            carrier = self._catch_up(alert_id, channel, entries, state=state, policy=policy,
                                     now=now)
            if carrier is not None:
                carrier.update(
                    status="claimed", lease_until=lease_until,
                    attempts=carrier["attempts"] + 1, updated_at=format_time(now),
                    checked_at=format_check_time(now), check_id=check_id)
                claimed.append(carrier)
        order = {id(entry): index for index, entry in enumerate(outbox)}
        claimed.sort(key=lambda entry: order[id(entry)])
        return self.prune(outbox, now), chain(
            [Notification(entry["id"], entry["channel"], entry["payload"]) for entry in claimed])

    def _catch_up(
        self, alert_id: str, channel: str, entries: list[dict[str, Any]], *, state: AlertState,
        policy: Policy, now: datetime,
    ) -> dict[str, Any] | None:
        """Reconcile one lane: drop or give up what no longer matters; the entry to send."""
        owed = [entry for entry in entries if entry["status"] == "pending" or self.owed(entry, now)]
        if not owed:
            return None
        stamp = format_time(now)
        if not is_open(alert_id, state) and max(
                entry.get("owed_seconds", 0) for entry in owed
        ) >= self.give_up_after.total_seconds():
            for entry in owed:
                entry.update(status="abandoned", lease_until=None, updated_at=stamp)
                logger.warning("Gave up on notification %s after %d attempts: %s",
                               entry["id"], entry["attempts"], entry.get("last_error"))
            return None
        try:
            lane = [(AlertEvent.from_payload(entry.get("decided") or entry["payload"]),
                     OWED if any(entry is item for item in owed) else str(entry["status"]))
                    for entry in entries]
        except (KeyError, TypeError, ValueError):  # another version's entry: send as it is
            return owed[0]
        plan = catch_up(lane, state, policy, now, pagerduty=channel == "pagerduty")
        for index in plan.drop:
            entries[index].update(status="superseded", lease_until=None, updated_at=stamp)
            logger.info("Notification %s superseded: no longer worth sending",
                        entries[index]["id"])
        if plan.send is None:
            return None
        carrier = entries[plan.send]
        if plan.event is not None and plan.event != lane[plan.send][0]:
            carrier.setdefault("decided", carrier["payload"])
            carrier["payload"] = plan.event.to_payload()
        else:
            carrier["payload"] = carrier.pop("decided", carrier["payload"])
        # The lane's age goes with the message that now carries it.
        carrier["owed_seconds"] = max(entry.get("owed_seconds", 0) for entry in owed)
        return carrier

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


def new_entry(notification_id: str, channel: str, payload: dict[str, Any], now: datetime,
              ) -> dict[str, Any]:
    """An outbox entry for a message decided now, not claimed yet."""
    stamp = format_time(now)
    return {"id": notification_id, "channel": channel, "payload": payload, "status": "pending",
            "lease_until": None, "attempts": 0, "created_at": stamp, "updated_at": stamp,
            "last_error": None, "owed_seconds": 0, "aged_at": stamp}


def _age(outbox: list[dict[str, Any]], now: datetime,
         quiet_hours: tuple[Sequence[QuietWindowLike], str]) -> None:
    """Add to each unfinished entry the time it has been owed since the last check, quiet hours
    aside: the give-up clock stops while nothing may be sent anyway."""
    stamp = format_time(now)
    spans: dict[str, int] = {}
    for entry in outbox:
        if entry["status"] in FINISHED:
            continue
        since = str(entry.get("aged_at") or entry["created_at"])
        if since not in spans:
            spans[since] = int(time_outside_quiet_hours(
                parse_time(since), now, *quiet_hours).total_seconds())
        entry["owed_seconds"] = int(entry.get("owed_seconds", 0)) + spans[since]
        entry["aged_at"] = stamp



def chain(notifications: Sequence[Notification]) -> list[Notification]:
    """One notification per channel, the others of that channel chained after it in order."""
    heads: dict[str, list[Notification]] = {}
    for notification in notifications:
        heads.setdefault(notification.channel, []).append(notification)
    return [replace(first, then=tuple(rest)) for first, *rest in heads.values()]


def claims_of(outbox: Sequence[Mapping[str, Any]], check_id: str) -> list[Notification]:
    """The notifications a check claimed and are still unsent, chained as claim() returned them."""
    return chain([Notification(entry["id"], entry["channel"], entry["payload"])
                  for entry in outbox
                  if entry["status"] == "claimed" and entry.get("check_id") == check_id])


def record_delivered(
    entry: dict[str, Any], rejections: dict[str, dict[str, Any]], stamp: str,
) -> bool:
    """Mark an entry delivered (False when it was already); its channel's rejection is over."""
    if entry["status"] == "delivered":
        return False
    entry.update(status="delivered", lease_until=None, updated_at=stamp, last_error=None)
    rejections.pop(str(entry["channel"]), None)
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
