"""What a channel still owes an alert, reconciled with the present: the rule of a channel back.

Pure: no clock, no I/O. The outbox keeps, per alert and channel (a lane), the messages decided
for it in order; a channel that was down (or quiet, or busy with a slow delivery) owes several.
Rather than send them one per check, stale, the lane sends one message that is still true, the
same rule quiet hours use when they end (alerting._release):

- a closed breach episode: its `resolved`, saying in one line what happened and when ("breach
  at 09:40 UTC (97 of 100, critical) ended at 10:10 UTC") unless the channel heard all the rest;
  on PagerDuty nothing when no trigger reached it (nobody is paged for a problem already over);
- an open episode: one message at its current level and figures, "breached since ...": the
  breach when the channel never heard it, else the escalation if still critical, else the
  latest reminder; an escalation no longer true and stale reminders are dropped;
- a failure alert: `monitor_failing` while checks still fail, else its `monitor_recovered`,
  saying since when they failed and why when the channel did not hear it (PagerDuty: the
  recovery only when it heard the failure);
- overage: the highest peak owed; anything else is sent as decided, one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from license_monitor.alerting import (
    CAUSES,
    AlertEvent,
    AlertState,
    Policy,
    failure_alert_id,
    refreshed,
)
from license_monitor.times import clock_time, parse_compact_time

OWED = "owed"  # lane status of a message not delivered yet (pending, failed, lease run out)
HEARD = "delivered"
OPENING = ("breach", "escalation", "reminder")
_RANK = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class CatchUp:
    """What a lane sends now: the owed entry that carries it (`send`), its content when not
    sent as decided (`event`), and the owed entries dropped as no longer worth sending."""

    send: int | None = None
    event: AlertEvent | None = None
    drop: tuple[int, ...] = ()


def is_open(alert_id: str, state: AlertState) -> bool:
    """Whether the alert still describes the present: a breach episode or failure run going on.

    An open alert's messages are never given up: the channel gets it, current, when it is back.
    """
    if alert_id.startswith("breach-"):
        return state.episode_id == alert_id and state.level != "ok"
    return (alert_id.startswith("failing-") and state.failing_notified
            and state.failing_since is not None
            and failure_alert_id(state.failing_since) == alert_id)


def catch_up(
    lane: Sequence[tuple[AlertEvent, str]], state: AlertState, policy: Policy, now: datetime,
    *, pagerduty: bool = False,
) -> CatchUp:
    """What one alert's lane on one channel sends now (see the module docstring).

    Args:
        lane: the alert's messages on this channel as decided, oldest first, each with its
            status: OWED, HEARD (delivered), or anything else (refused, given up, dropped).
        state: the alert state after this check; `now` the check's time.
        pagerduty: the channel is PagerDuty (incidents: a resolve alone pages nobody).
    """
    owed = [index for index, (_, status) in enumerate(lane) if status == OWED]
    if not owed:
        return CatchUp()
    alert_id = lane[owed[0]][0].alert_id

    def only(index: int | None, event: AlertEvent | None = None) -> CatchUp:
        return CatchUp(index, event, tuple(i for i in owed if i != index))

    def last(*names: str) -> int | None:
        return next((i for i in reversed(owed) if lane[i][0].event in names), None)

    heard = {event.event for event, status in lane if status == HEARD}
    # Whether the channel heard every message of the alert that is not owed any more: if not,
    # the one sent now tells what it missed.
    missed = {event.event for event, status in lane if status not in (HEARD, OWED)}
    if alert_id.startswith("breach-"):
        if not is_open(alert_id, state):
            resolved = last("resolved")
            if resolved is None or (pagerduty and not heard & set(OPENING)):
                return only(None)
            if pagerduty or (owed == [resolved] and heard & set(OPENING)
                             and not missed & set(OPENING)):
                return only(resolved)
            return only(resolved, _ended(lane, lane[resolved][0], policy, now))
        newest = lane[owed[-1]][0]
        for name, previous_level, true_now in (
                ("breach", "ok", True), ("escalation", "warning", state.level == "critical"),
                ("reminder", state.level, True)):
            index = last(name)
            if index is not None and true_now:
                return only(index, _current(newest, name, previous_level, state=state,
                                            policy=policy, now=now))
        return only(None)
    if alert_id.startswith("failing-"):
        if is_open(alert_id, state):
            return only(last("monitor_failing"))
        recovered = last("monitor_recovered")
        if recovered is None or (pagerduty and "monitor_failing" not in heard):
            return only(None)
        if pagerduty or (owed == [recovered] and "monitor_failing" in heard):  # nothing missed
            return only(recovered)
        return only(recovered, _recovered(lane[recovered][0], now))
    if alert_id.startswith("overage-"):
        return only(owed[-1])
    return CatchUp(owed[0])  # one at a time, as decided; the rest wait their turn


def _current(
    newest: AlertEvent, name: str, previous_level: str, *, state: AlertState, policy: Policy,
    now: datetime,
) -> AlertEvent:
    """The open episode's message `name` at its latest level and figures.

    From this check's figures when it measured; after a failed check, from the newest message
    owed (figures nobody has seen are still the latest known).
    """
    fresh = (state.last_usage is not None and state.consecutive_failures == 0
             and state.last_checked_at == now)
    if fresh:
        return refreshed(newest, name, previous_level, state=state, policy=policy, now=now)
    if newest.event == name:
        return newest
    return replace(newest, event=name, previous_level=previous_level)


def _recovered(recovered: AlertEvent, now: datetime) -> AlertEvent:
    """The recovery of a failure run the channel never heard of, telling all of it."""
    start = parse_compact_time(recovered.alert_id.removeprefix("failing-"))
    cause = CAUSES.get(str(recovered.cause), "check failed")
    return replace(recovered, message=(
        f"checks failing since {clock_time(start, now)} ({cause}) ended at "
        f"{clock_time(recovered.occurred_at, now)}; {recovered.message}"))


def _ended(
    lane: Sequence[tuple[AlertEvent, str]], resolved: AlertEvent, policy: Policy, now: datetime,
) -> AlertEvent:
    """The resolution of an episode the channel did not hear in full, telling all of it."""
    start = parse_compact_time(resolved.alert_id.removeprefix("breach-"))
    figures = [event for event, _ in lane if event.event in OPENING and event.usage is not None]
    worst = max(figures, key=lambda event: (_RANK.get(event.level, 0), event.usage.concurrent
                                            if event.usage is not None else 0), default=None)
    peak = ("" if worst is None or worst.usage is None
            else f" ({worst.usage.concurrent} of {policy.capacity}, {worst.level})")
    return replace(resolved, message=(
        f"breach at {clock_time(start, now)}{peak} ended at "
        f"{clock_time(resolved.occurred_at, now)}; {resolved.message}"))
