"""What a channel back after an outage sends (backlog.catch_up), alone and through the outbox,
and how a check's chained deliveries are counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.alerting import (
    AlertEvent,
    AlertState,
    CheckFailure,
    Level,
    Policy,
    Usage,
    decide,
)
from license_monitor.backlog import HEARD, OWED, catch_up, is_open
from license_monitor.metrics import ALERT_DELIVERED, check_points
from license_monitor.state.outbox import Outbox, record_delivered, record_failed
from license_monitor.times import format_time

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = Policy(capacity=500)
EPISODE = "breach-20261126T110000Z"
FAILING = "failing-20261126T110000Z"
DROPPED = "superseded"


def usage(concurrent: int) -> Usage:
    return Usage(concurrent=concurrent, agents=concurrent - 20, admins=20,
                 window_distinct=concurrent + 5)


def event(name: str, minute: int, level: str = "warning", concurrent: int = 461,
          alert_id: str = EPISODE) -> AlertEvent:
    return AlertEvent(
        event=name, level=level, previous_level="ok", alert_id=alert_id,
        occurred_at=NOW - timedelta(minutes=60 - minute), usage=usage(concurrent),
        capacity=500, utilization_percent=concurrent / 5, message=f"{name} as decided")


def open_episode(level: Level, concurrent: int) -> AlertState:
    return AlertState(level=level, episode_id=EPISODE, episode_started_at=NOW - timedelta(hours=1),
                      escalated=True, last_usage=usage(concurrent), last_checked_at=NOW)


CLOSED = AlertState(level="ok", last_usage=usage(300), last_checked_at=NOW)
FAILING_STILL = AlertState(consecutive_failures=4, failing_notified=True,
                           failing_since=NOW - timedelta(hours=1), last_checked_at=NOW)
BREACH, ESCALATION = event("breach", 0), event("escalation", 10, "critical", 480)
RESOLVED = event("resolved", 40, "ok", 300)
REMINDERS = [event("reminder", minute) for minute in (20, 30)]
ENDED = ("breach at 11:00 UTC (480 of 500, critical) ended at 11:40 UTC; resolved as decided")


@pytest.mark.parametrize(
    ("lane", "state", "pagerduty", "sent", "dropped"),
    [
        pytest.param([(BREACH, OWED), (ESCALATION, OWED), (RESOLVED, OWED)], CLOSED, False,
                     ("resolved", "ok", ENDED), (0, 1), id="closed, unheard: one line"),
        pytest.param([(BREACH, OWED), (ESCALATION, OWED), (RESOLVED, OWED)], CLOSED, True,
                     None, (0, 1, 2), id="closed, no trigger reached PagerDuty: nothing"),
        pytest.param([(BREACH, HEARD), (RESOLVED, OWED)], CLOSED, False,
                     ("resolved", "ok", "resolved as decided"), (), id="closed, heard: as decided"),
        pytest.param([(BREACH, HEARD), (ESCALATION, OWED), (RESOLVED, OWED)], CLOSED, True,
                     ("resolved", "ok", "resolved as decided"), (1,),
                     id="closed, PagerDuty triggered: its resolve"),
        pytest.param([(BREACH, HEARD), (ESCALATION, DROPPED), (RESOLVED, OWED)], CLOSED, False,
                     ("resolved", "ok", ENDED), (), id="closed, part missed: one line, every time"),
        pytest.param([(BREACH, HEARD), *((r, OWED) for r in REMINDERS), (RESOLVED, OWED)],
                     CLOSED, False, ("resolved", "ok", "breach at 11:00 UTC (461 of 500, warning) "
                                     "ended at 11:40 UTC; resolved as decided"), (1, 2),
                     id="stale reminders never hold the resolution back"),
        pytest.param([(BREACH, OWED), (ESCALATION, OWED)], open_episode("critical", 470), False,
                     ("breach", "critical", "470 of 500 concurrent licenses in use (94.0%), "
                      "critical threshold 95%; breached since 11:00 UTC"), (1,),
                     id="open, unheard: the breach as it is now"),
        pytest.param([(BREACH, HEARD), (ESCALATION, OWED)], open_episode("warning", 450), False,
                     None, (1,), id="open, escalation no longer true: nothing"),
        pytest.param([(BREACH, HEARD), (REMINDERS[0], OWED), (ESCALATION, OWED)],
                     open_episode("critical", 490), False,
                     ("escalation", "critical", "490 of 500 concurrent licenses in use (98.0%), "
                      "critical threshold 95%; breached since 11:00 UTC"), (1,),
                     id="open, still critical: the escalation, current"),
        pytest.param([(BREACH, HEARD), *((r, OWED) for r in REMINDERS)],
                     open_episode("warning", 455), False,
                     ("reminder", "warning", "455 of 500 concurrent licenses in use (91.0%), "
                      "warning threshold 90%; breached since 11:00 UTC"), (1,),
                     id="open, reminders: the latest, current"),
        pytest.param([(event("monitor_failing", 0, "unknown", alert_id=FAILING), OWED)],
                     FAILING_STILL, True, ("monitor_failing", "unknown", "monitor_failing as "
                                           "decided"), (), id="failing still: as decided"),
        pytest.param([(event("monitor_failing", 0, "unknown", alert_id=FAILING), OWED),
                      (event("monitor_recovered", 30, alert_id=FAILING), OWED)], CLOSED, False,
                     ("monitor_recovered", "warning", "checks failing since 11:00 UTC (check "
                      "failed) ended at 11:30 UTC; monitor_recovered as decided"), (0,),
                     id="failing, recovered unheard: one line"),
        pytest.param([(event("monitor_failing", 0, "unknown", alert_id=FAILING), OWED),
                      (event("monitor_recovered", 30, alert_id=FAILING), OWED)], CLOSED, True,
                     None, (0, 1), id="failing, recovered before PagerDuty heard it: nothing"),
        pytest.param([(event("overage_locked_in", 0, alert_id="overage-20261101"), OWED),
                      (event("overage_locked_in", 9, alert_id="overage-20261101"), OWED)],
                     CLOSED, False, ("overage_locked_in", "warning", "overage_locked_in as "
                                     "decided"), (0,), id="overage: the highest peak"),
        pytest.param([(event("channel_rejected", 0, alert_id="channel-slack-1"), OWED),
                      (event("channel_rejected", 5, alert_id="channel-slack-1"), OWED)],
                     CLOSED, False, ("channel_rejected", "warning", "channel_rejected as "
                                     "decided"), (), id="anything else: one at a time"),
    ],
)
def test_a_lane_sends_what_is_still_true(
    lane: list[tuple[AlertEvent, str]], state: AlertState, pagerduty: bool,
    sent: tuple[str, str, str] | None, dropped: tuple[int, ...],
) -> None:
    plan = catch_up(lane, state, POLICY, NOW, pagerduty=pagerduty)

    assert plan.drop == dropped
    if sent is None:
        assert plan.send is None
        return
    assert plan.send is not None
    message = plan.event or lane[plan.send][0]
    assert (message.event, message.level, message.message) == sent
    assert message.alert_id == lane[plan.send][0].alert_id


def test_an_open_episode_after_a_failed_check_goes_out_with_the_newest_figures_owed() -> None:
    failed = AlertState(level="critical", episode_id=EPISODE, consecutive_failures=1,
                        last_usage=usage(470), last_checked_at=NOW)

    plan = catch_up([(BREACH, OWED), (ESCALATION, OWED)], failed, POLICY, NOW)

    assert plan.event is not None
    assert (plan.event.event, plan.event.previous_level, plan.event.level,
            plan.event.occurred_at) == ("breach", "ok", "critical", ESCALATION.occurred_at)


def test_an_alert_is_open_while_its_episode_or_failure_run_lasts() -> None:
    assert is_open(EPISODE, open_episode("warning", 460))
    assert not is_open(EPISODE, CLOSED)
    assert is_open(FAILING, FAILING_STILL)
    assert not is_open("overage-20261101", open_episode("critical", 490))


# ---- the rule through decide() and the outbox, whatever the channel's outages ------------------

# Each check: the peak (None: the check failed) around the levels' edges, and whether the
# channel is up.
steps = st.lists(
    st.tuples(st.sampled_from([None, 300, 430, 455, 470, 480, 510]), st.booleans()),
    min_size=1, max_size=25)


@settings(max_examples=300, deadline=None)
@given(steps, st.sampled_from(["webhook", "pagerduty"]), st.sampled_from([0, 10]))
def test_whatever_the_backlog_the_last_message_per_alert_agrees_with_its_state(
    story: list[tuple[int | None, bool]], channel: str, remind: int,
) -> None:
    policy = Policy(capacity=500, failure_alert_after=2, remind_every_minutes=remind)
    outbox_rules, outbox = Outbox(), []
    state = AlertState()
    heard: list[dict[str, object]] = []
    last = story[-1][0]
    for index, (concurrent, up) in enumerate([*story, (last, True), (last, True)]):
        now = NOW + timedelta(minutes=5 * index)
        outcome = CheckFailure("Genesys Cloud is unavailable.") if concurrent is None else (
            usage(concurrent))
        decision = decide(outcome, state, policy, now)
        state = decision.state
        outbox, to_send = outbox_rules.claim(
            outbox, [(e, [channel], e.to_payload()) for e in decision.events], [channel], now,
            (state, policy))
        assert len(to_send) <= 1  # one channel: one chain
        for head in to_send:
            sent = (head, *head.then)
            assert len({n.payload["alert_id"] for n in sent}) == len(sent)  # one per alert
            for notification in sent:
                entry = next(item for item in outbox if item["id"] == notification.id)
                if up:
                    record_delivered(entry, {}, format_time(now))
                    heard.append(notification.payload)
                else:
                    record_failed(entry, format_time(now), "down")

    by_alert: dict[str, list[str]] = {}
    for payload in heard:
        by_alert.setdefault(str(payload["alert_id"]), []).append(str(payload["event"]))
    for alert_id, events in by_alert.items():
        if alert_id.startswith(("breach-", "failing-")):
            ending = events[-1] in ("resolved", "monitor_recovered")
            assert ending != is_open(alert_id, state), (alert_id, events)
            assert not any(name in ("resolved", "monitor_recovered") for name in events[:-1])
    if state.episode_id is not None and state.level != "ok":
        episodes = [payload for payload in heard if str(payload["alert_id"]).startswith("breach-")]
        assert episodes, "an open breach is always announced once the channel is back"
        assert episodes[-1]["alert_id"] == state.episode_id  # the last one read is still true
        assert episodes[-1]["event"] != "resolved"


def test_a_chain_of_deliveries_counts_each_delivered_message() -> None:
    report = {"level": "warning", "notifications": [
        {"event": "resolved", "channel": "slack", "delivered": True,
         "then": [{"event": "breach", "channel": "slack", "delivered": True}]},
        {"event": "breach", "channel": "webhook", "delivered": False, "error": "down"}]}

    delivered = [dimensions for name, _, dimensions in check_points(report, capacity=500)
                 if name == ALERT_DELIVERED]

    assert delivered == [{"event": "resolved", "channel": "slack"},
                         {"event": "breach", "channel": "slack"}]
