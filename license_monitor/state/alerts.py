"""Alert state and its notification outbox: one entity per org, written only on its ETag.

A notification is claimed in the same write that decides it and marked delivered after it was
sent: of racing checks exactly one sends it; a failed one is sent again by a later check; one
refused for good is marked rejected at once, announced once on the other channels. Each claim
remembers its check, so an evaluation retried for it returns that check's decision and claims.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from license_monitor.alerting import (
    AlertEvent,
    AlertState,
    CheckFailure,
    Decision,
    Policy,
    Usage,
    decide,
)
from license_monitor.notify import Notification
from license_monitor.quiet_hours import QuietWindowLike
from license_monitor.state.alert_row import STATE_ROW, AlertRow, entity_of, row_of
from license_monitor.state.outbox import (
    DEFAULT_GIVE_UP_AFTER,
    DEFAULT_KEEP_FINISHED,
    DEFAULT_LEASE,
    Outbox,
    channel_errors_of,
    claims_of,
    record_delivered,
    record_failed,
    record_rejected,
    rejection_notices,
)
from license_monitor.state.table import WRITE_ATTEMPTS, StateTable
from license_monitor.times import format_check_time, format_time, utc

logger = logging.getLogger(__name__)

MAX_UNRECORDED = 100  # checks remembered while storage is down (a day at 15 minutes)


class AlertStateUnreadable(ValueError):  # noqa: N818 - reads as what happened, like StorageUnavailable
    """The stored alert state cannot be read (damaged, or written by another version).

    evaluate() raises it for a successful check; recording a failed check replaces the row,
    keeping what can still be read (see AlertStore.evaluate).
    """


@dataclass(frozen=True)
class Evaluation:
    """The decision of one check and the notifications this caller has claimed and must send."""

    decision: Decision
    to_send: list[Notification] = field(default_factory=list)
    # channel_rejected events announced by this check (a channel refusing our messages).
    announced: tuple[AlertEvent, ...] = ()
    # Channels refusing our messages: [{"channel", "error", "since"}], until they deliver again.
    channel_errors: tuple[dict[str, str], ...] = ()

    @property
    def events(self) -> tuple[AlertEvent, ...]:
        """Everything this check announces: the decision's events, then channel notices."""
        return (*self.decision.events, *self.announced)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for activity outputs."""
        return {
            "decision": self.decision.to_dict(),
            "to_send": [notification.to_dict() for notification in self.to_send],
            "announced": [event.to_payload() for event in self.announced],
            "channel_errors": [dict(item) for item in self.channel_errors],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of to_dict."""
        return cls(
            decision=Decision.from_dict(data["decision"]),
            to_send=[Notification.from_dict(item) for item in data["to_send"]],
            announced=tuple(AlertEvent.from_payload(item) for item in data.get("announced", ())),
            channel_errors=tuple(dict(item) for item in data.get("channel_errors", ())),
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
        self._outbox = Outbox(lease, give_up_after, keep_finished)
        self._lock = threading.Lock()
        self._unrecorded: list[tuple[datetime, CheckFailure]] = []

    def _read(self) -> AlertRow:
        with self._table.translate("reading the alert state"):
            try:
                entity = self._table.client.get_entity(self._table.org, STATE_ROW)
            except ResourceNotFoundError:
                return AlertRow(AlertState(), [], {}, None, None)
        return row_of(entity, entity.metadata["etag"])

    def _write(self, row: AlertRow, *, decided_at: datetime | None = None) -> bool:
        """Write conditionally on the row's ETag (insert when None); False when someone wrote first.

        A row whose state is unreadable keeps its stored state text unless a check decided on
        it (`decided_at`): that replaces it and keeps the old text aside in `unreadable_state`.
        """
        entity = entity_of(row, self._table.org, decided_at)
        with self._table.translate("saving the alert state"):
            try:
                if row.etag is None:
                    self._table.client.create_entity(entity)
                else:
                    self._table.client.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=row.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    def load_state(self) -> AlertState:
        """The stored alert state (the default state before the first check)."""
        return self._read().state

    def outbox(self) -> list[dict[str, Any]]:
        """The notification outbox as stored (copies): id, channel, status, payload, times."""
        return self._read().outbox

    def channel_errors(self) -> list[dict[str, str]]:
        """Channels refusing our messages until they deliver again: channel, error, since."""
        return channel_errors_of(self._read().rejections)

    def evaluate(
        self,
        outcome: Usage | CheckFailure,
        policy: Policy,
        now: datetime,
        channels: Sequence[str],
        *,
        quiet: bool = False,
        check_id: str | None = None,
        quiet_hours: tuple[Sequence[QuietWindowLike], str] = ((), "UTC"),
        trusted_until: datetime | None = None,
        claimed_at: datetime | None = None,
    ) -> Evaluation:
        """Decide on `outcome`, save the new state and claim what this caller must send.

        The write is conditional on the ETag read; on a conflict the state is re-read and the
        decision made again, so of racing evaluations exactly one claims each notification.
        Older notifications that failed, or whose claim lease expired, are claimed again. During
        quiet hours the state advances but nothing is claimed (decide() holds the events), and
        `quiet_hours` (windows, zone) do not count towards giving up on a notification.
        Checks this process could not record (note_unrecorded) are counted first; a state
        stamped after `trusted_until` (a clock that ran fast) is repaired (alerting.decide).
        Claims hold their lease from `claimed_at` (the wall time now), when later than `now`.

        `check_id` names the check (one per orchestration, kept in its history): the same check
        evaluated again (a retried activity whose first write committed, its answer lost) gets
        the decision of that write and its claims still unsent, and decides nothing new. Other
        checks at the same time are racing ones: one decides, the others get nothing new.

        Raises:
            AlertStateUnreadable: the stored row cannot be read and `outcome` is a success.
                A CheckFailure is recorded instead: on what could be read, replacing the row
                (the old state text is kept in its `unreadable_state` property), so a row
                that cannot be read costs one failed check, counted, not every check after.
        """
        now = utc(now)
        wanted = list(dict.fromkeys(channels))
        with self._lock:
            missed = list(self._unrecorded)
        for _ in range(WRITE_ATTEMPTS):
            row = self._read()
            if row.unreadable is not None:
                if not isinstance(outcome, CheckFailure):
                    raise AlertStateUnreadable(row.unreadable)
            elif check_id is not None:
                replayed = self._replayed(row, now, check_id)
                if replayed is not None:
                    return replayed
            previous = row.state
            decision = decide(outcome, previous, policy, now, quiet=quiet, missed=missed,
                              trusted_until=trusted_until)
            rejections = {channel: dict(record) for channel, record in row.rejections.items()
                          if channel in wanted}  # a channel switched off has nothing to fix
            notices = [] if quiet else rejection_notices(rejections, decision.state, policy, now)
            outgoing = [(event, wanted, event.to_payload()) for event in decision.events] + [
                (event, [other for other in wanted if other != channel],
                 {**event.to_payload(), "channel": channel})
                for channel, event in notices]
            outbox, to_send = self._outbox.claim(row.outbox, outgoing, wanted, now,
                                                 (decision.state, policy), quiet=quiet,
                                                 check_id=check_id, quiet_hours=quiet_hours,
                                                 claimed_at=claimed_at)
            row.state, row.outbox, row.rejections = decision.state, outbox, rejections
            decided = (previous.last_checked_at is None or now > previous.last_checked_at
                       or (trusted_until is not None and previous.last_checked_at > trusted_until))
            row.last_check = row.last_check if not decided else {
                "checked_at": format_check_time(now),
                "check_id": check_id,
                "decision": {"level": decision.level,
                             "events": [event.to_payload() for event in decision.events]},
                "announced": [event.to_payload() for _, event in notices],
            }
            if self._write(row, decided_at=now):
                with self._lock:
                    self._unrecorded = [item for item in self._unrecorded if item not in missed]
                if row.unreadable is not None:
                    logger.warning(
                        "%s; replaced it, keeping level %s, %d failed checks in a row and %d "
                        "outbox entries (the old state is kept in unreadable_state)",
                        row.unreadable, decision.state.level,
                        decision.state.consecutive_failures, len(outbox))
                for notification in to_send:
                    logger.info("Claimed notification %s", notification.id)
                if decision.state.level != previous.level:
                    logger.info("Alert level %s -> %s", previous.level, decision.state.level)
                return Evaluation(decision=decision, to_send=to_send,
                                  announced=tuple(event for _, event in notices),
                                  channel_errors=tuple(channel_errors_of(rejections)))
        raise self._table.kept_changing("the alert state")

    def _replayed(self, row: AlertRow, now: datetime, check_id: str) -> Evaluation | None:
        """The stored evaluation of this check when it is the latest one decided."""
        check = row.last_check
        stamp = format_check_time(now)
        if (check is None or check.get("check_id") != check_id
                or check.get("checked_at") != stamp or row.state.last_checked_at != now):
            return None
        to_send = claims_of(row.outbox, check_id)
        logger.info("The check of %s was decided already: returning its %d unsent claims",
                    stamp, len(to_send))
        decision = Decision.from_dict({"state": row.state.to_dict(), **check["decision"]})
        return Evaluation(
            decision=decision, to_send=to_send,
            announced=tuple(AlertEvent.from_payload(item) for item in check.get("announced", ())),
            channel_errors=tuple(channel_errors_of(row.rejections)),
        )

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

    def _update_entry(
        self, notification_id: str, change: Callable[[dict[str, Any], AlertRow], bool]
    ) -> tuple[str, bool] | None:
        """Apply `change` to one entry (and the row) and save; None when nothing changed, else
        the entry's channel and whether that channel was refusing our messages before."""
        for _ in range(WRITE_ATTEMPTS):
            row = self._read()
            entry = next((item for item in row.outbox if item["id"] == notification_id), None)
            if entry is None:
                logger.warning("Notification %s is not in the outbox any more", notification_id)
                return None
            channel = str(entry["channel"])
            refusing = channel in row.rejections
            if not change(entry, row):
                return None
            if self._write(row):
                return channel, refusing
        raise self._table.kept_changing("the alert state")

    def mark_delivered(self, notification_id: str, now: datetime) -> None:
        """Record a delivery: the notification is never sent again; its channel works."""
        stamp = format_time(utc(now))
        saved = self._update_entry(
            notification_id, lambda entry, row: record_delivered(entry, row.rejections, stamp))
        if saved is not None and saved[1]:  # logged once, after the write that counts
            logger.info("The %s channel delivers again", saved[0])

    def mark_failed(self, notification_id: str, error: str, now: datetime) -> None:
        """Record a failed delivery: the next check claims the notification again."""
        stamp, reason = format_time(utc(now)), " ".join(error.split())[:300]
        self._update_entry(notification_id, lambda entry, _: record_failed(entry, stamp, reason))
        logger.warning("Notification %s failed: %s", notification_id, reason)

    def mark_rejected(self, notification_id: str, error: str, now: datetime) -> None:
        """Record a delivery the receiver refused for good: never retried, the lane moves on.

        The first rejection since the channel last delivered opens a rejection episode: the
        next check announces it once on the other channels (channel_rejected).
        """
        stamp, reason = format_time(utc(now)), " ".join(error.split())[:300]
        saved = self._update_entry(
            notification_id,
            lambda entry, row: record_rejected(entry, row.rejections, stamp, reason))
        if saved is None:
            return
        logger.info("Notification %s rejected: %s", notification_id, reason)
        if not saved[1]:  # logged once, after the write that counts
            logger.warning("The %s channel rejects our messages: %s", saved[0], reason)
