"""Alert policy (DESIGN.md §8): levels with hysteresis, one event per transition, failures apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.alerting import (
    AlertEvent,
    AlertState,
    CheckFailure,
    Decision,
    Level,
    Policy,
    Usage,
    decide,
    level_for,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EPISODE_START = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
POLICY = Policy(capacity=500)  # warning 90 %, critical 95 %, clear margin 5 %


def usage(concurrent: int) -> Usage:
    agents = concurrent * 9 // 10
    return Usage(concurrent=concurrent, agents=agents, admins=concurrent - agents,
                 window_distinct=concurrent + 9, billable_peak=400)


def breached(
    level: Level, *, escalated: bool = False, notified: datetime = EPISODE_START
) -> AlertState:
    return AlertState(level=level, episode_id="breach-20261126T110000Z",
                      episode_started_at=EPISODE_START, escalated=escalated,
                      last_notified_at=notified)


def names(decision: Decision) -> list[str]:
    return [event.event for event in decision.events]


@pytest.mark.parametrize(
    ("previous", "concurrent", "level", "events"),
    [
        pytest.param(AlertState(), 400, "ok", [], id="ok stays ok at 80%"),
        pytest.param(AlertState(), 449, "ok", [], id="ok stays ok just under warning"),
        pytest.param(AlertState(), 450, "warning", ["breach"], id="ok to warning exactly at 90%"),
        pytest.param(AlertState(), 461, "warning", ["breach"], id="ok to warning"),
        pytest.param(AlertState(), 475, "critical", ["breach"], id="ok straight to critical"),
        pytest.param(breached("warning"), 461, "warning", [], id="warning holds"),
        pytest.param(breached("warning"), 430, "warning", [], id="warning held inside the margin"),
        pytest.param(breached("warning"), 425, "warning", [], id="warning held at exactly 85%"),
        pytest.param(breached("warning"), 424, "ok", ["resolved"], id="warning resolves below 85%"),
        pytest.param(breached("warning"), 475, "critical", ["escalation"], id="warning escalates"),
        pytest.param(breached("warning", escalated=True), 480, "critical", [],
                     id="second escalation in an episode is silent"),
        pytest.param(breached("critical", escalated=True), 470, "critical", [],
                     id="critical held inside the margin"),
        pytest.param(breached("critical", escalated=True), 450, "critical", [],
                     id="critical held at exactly 90%"),
        pytest.param(breached("critical", escalated=True), 449, "warning", [],
                     id="critical to warning is silent"),
        pytest.param(breached("critical", escalated=True), 430, "warning", [],
                     id="critical falls to a held warning"),
        pytest.param(breached("critical", escalated=True), 400, "ok", ["resolved"],
                     id="critical resolves"),
    ],
)
def test_transitions_follow_the_policy_table(
    previous: AlertState, concurrent: int, level: str, events: list[str]
) -> None:
    decision = decide(usage(concurrent), previous, POLICY, NOW)

    assert decision.level == level
    assert decision.state.level == level
    assert names(decision) == events


def test_breach_message_reads_like_the_design_example() -> None:
    decision = decide(usage(461), AlertState(), POLICY, NOW)

    assert decision.events[0].message == (
        "461 of 500 concurrent licenses in use (92.2%), warning threshold 90%"
    )


def test_critical_and_resolved_messages_name_their_threshold() -> None:
    critical = decide(usage(480), AlertState(), POLICY, NOW).events[0]
    resolved = decide(usage(400), breached("critical", escalated=True), POLICY, NOW).events[0]

    assert critical.message == (
        "480 of 500 concurrent licenses in use (96.0%), critical threshold 95%"
    )
    assert resolved.message == (
        "400 of 500 concurrent licenses in use (80.0%), below the 85% clear level"
    )


def test_episode_keeps_one_alert_id_from_breach_to_resolved() -> None:
    breach = decide(usage(461), AlertState(), POLICY, NOW)
    escalation = decide(usage(480), breach.state, POLICY, NOW + timedelta(minutes=5))
    resolved = decide(usage(300), escalation.state, POLICY, NOW + timedelta(minutes=10))
    next_breach = decide(usage(461), resolved.state, POLICY, NOW + timedelta(minutes=15))

    ids = [d.events[0].alert_id for d in (breach, escalation, resolved, next_breach)]
    assert ids[:3] == ["breach-20261126T120000Z"] * 3
    assert ids[3] == "breach-20261126T121500Z"
    assert resolved.state.episode_id is None


def test_breach_straight_to_critical_leaves_no_escalation_to_send() -> None:
    breach = decide(usage(480), AlertState(), POLICY, NOW)
    calmer = decide(usage(440), breach.state, POLICY, NOW + timedelta(minutes=5))
    again = decide(usage(480), calmer.state, POLICY, NOW + timedelta(minutes=10))

    assert names(breach) == ["breach"]
    assert (names(calmer), calmer.level) == ([], "warning")
    assert (names(again), again.level) == ([], "critical")


def test_payload_carries_the_design_fields() -> None:
    event = decide(usage(461), AlertState(), POLICY, NOW).events[0]

    assert event.to_payload() == {
        "event": "breach", "level": "warning", "previous_level": "ok",
        "concurrent": 461, "capacity": 500, "utilization_percent": 92.2,
        "agents": 414, "admins": 47, "window_distinct": 470, "billable_peak": 400,
        "alert_id": "breach-20261126T120000Z", "occurred_at": "2026-11-26T12:00:00Z",
        "message": "461 of 500 concurrent licenses in use (92.2%), warning threshold 90%",
    }
    assert AlertEvent.from_payload(event.to_payload()) == event


@pytest.mark.parametrize(
    ("remind_every", "minutes_since_last", "reminded"),
    [
        pytest.param(0, 600, False, id="reminders off"),
        pytest.param(60, 59, False, id="not yet due"),
        pytest.param(60, 60, True, id="due exactly"),
        pytest.param(60, 61, True, id="overdue"),
    ],
)
def test_reminders_repeat_only_when_due(
    remind_every: int, minutes_since_last: int, reminded: bool
) -> None:
    policy = Policy(capacity=500, remind_every_minutes=remind_every)
    previous = breached("warning", notified=NOW - timedelta(minutes=minutes_since_last))

    decision = decide(usage(461), previous, policy, NOW)

    assert names(decision) == (["reminder"] if reminded else [])
    assert decision.state.last_notified_at == (NOW if reminded else previous.last_notified_at)


def test_each_reminder_is_a_distinct_notification_of_the_same_alert() -> None:
    policy = Policy(capacity=500, remind_every_minutes=30)
    first = decide(usage(461), breached("warning"), policy, NOW)
    second = decide(usage(461), first.state, policy, NOW + timedelta(minutes=30))

    assert names(first) == names(second) == ["reminder"]
    assert first.events[0].alert_id == second.events[0].alert_id
    assert first.events[0].key != second.events[0].key


def test_escalation_is_sent_instead_of_a_due_reminder() -> None:
    policy = Policy(capacity=500, remind_every_minutes=5)
    previous = breached("warning", notified=NOW - timedelta(hours=2))

    decision = decide(usage(480), previous, policy, NOW)

    assert names(decision) == ["escalation"]


def test_monitor_failing_is_sent_once_at_the_third_failure_in_a_row() -> None:
    state = breached("critical", escalated=True)
    sent: list[list[str]] = []
    for minute in range(0, 25, 5):
        decision = decide(CheckFailure("Genesys Cloud is unavailable."), state, POLICY,
                          NOW + timedelta(minutes=minute))
        assert decision.level == "unknown"
        sent.append(names(decision))
        state = decision.state

    assert sent == [[], [], ["monitor_failing"], [], []]
    assert state.consecutive_failures == 5
    assert (state.level, state.episode_id) == ("critical", "breach-20261126T110000Z")


def test_monitor_failing_message_carries_the_reason_on_one_line() -> None:
    policy = Policy(capacity=500, failure_alert_after=1)
    decision = decide(CheckFailure("bad credentials:\nthe client\tsecret is wrong."), AlertState(),
                      policy, NOW)

    event = decision.events[0]
    assert event.message == (
        "License checks failed 1 times in a row; last error: bad credentials: the client secret "
        "is wrong."
    )
    assert (event.level, event.previous_level, event.usage) == ("unknown", "ok", None)
    assert event.alert_id == "failing-20261126T120000Z"


def test_first_success_after_monitor_failing_sends_monitor_recovered_then_usage_events() -> None:
    policy = Policy(capacity=500, failure_alert_after=2)
    state = AlertState()
    for minute in (0, 5, 10):
        state = decide(CheckFailure("x"), state, policy, NOW + timedelta(minutes=minute)).state

    recovered = decide(usage(461), state, policy, NOW + timedelta(minutes=15))
    later = decide(usage(461), recovered.state, policy, NOW + timedelta(minutes=20))

    assert names(recovered) == ["monitor_recovered", "breach"]
    assert recovered.events[0].alert_id == "failing-20261126T120000Z"
    assert recovered.events[0].message.startswith("License checks work again after 3 failures: ")
    assert names(later) == []
    assert (later.state.consecutive_failures, later.state.last_error) == (0, None)


def test_success_before_the_failure_alert_resets_the_count_silently() -> None:
    state = decide(CheckFailure("x"), AlertState(), POLICY, NOW).state
    state = decide(CheckFailure("x"), state, POLICY, NOW + timedelta(minutes=5)).state
    success = decide(usage(100), state, POLICY, NOW + timedelta(minutes=10))
    failure = decide(CheckFailure("x"), success.state, POLICY, NOW + timedelta(minutes=15))

    assert names(success) == []
    assert failure.state.consecutive_failures == 1
    assert names(failure) == []


def test_state_survives_a_json_round_trip() -> None:
    state = decide(usage(480), AlertState(), POLICY, NOW).state
    state = decide(CheckFailure("storage unavailable"), state, POLICY, NOW).state

    assert AlertState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_decision_survives_a_json_round_trip() -> None:
    decision = decide(usage(480), breached("warning"), POLICY, NOW)

    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"capacity": 0}, id="no capacity"),
        pytest.param({"capacity": 10, "warning_percent": 96}, id="warning above critical"),
        pytest.param({"capacity": 10, "warning_percent": 0}, id="warning at zero"),
        pytest.param({"capacity": 10, "clear_margin_percent": 90}, id="margin never clears"),
        pytest.param({"capacity": 10, "clear_margin_percent": -1}, id="negative margin"),
        pytest.param({"capacity": 10, "failure_alert_after": 0}, id="failure alert at zero"),
        pytest.param({"capacity": 10, "remind_every_minutes": -5}, id="negative reminder"),
    ],
)
def test_invalid_policies_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid alert policy"):
        Policy(**arguments)  # type: ignore[arg-type]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        decide(usage(1), AlertState(), POLICY, datetime(2026, 11, 26, 12, 0))


# ---- properties -----------------------------------------------------------------------------

policies = st.builds(
    lambda capacity, warning, extra, margin_share, remind, after: Policy(
        capacity=capacity, warning_percent=warning, critical_percent=warning + extra,
        clear_margin_percent=round(margin_share * (warning - 1), 1),
        remind_every_minutes=remind, failure_alert_after=after,
    ),
    st.integers(1, 2000), st.integers(50, 99), st.integers(0, 20),
    st.floats(0, 0.3), st.sampled_from([0, 10, 60]), st.integers(1, 4),
)
outcomes = st.lists(
    st.one_of(st.floats(0, 1.3), st.just(None)), min_size=1, max_size=60,
)


def run(policy: Policy, shares: list[float | None]) -> list[tuple[AlertState, Decision]]:
    """Feed one check every 5 minutes: a share of capacity in use, or None for a failed check."""
    state = AlertState()
    steps = []
    for index, share in enumerate(shares):
        outcome: Usage | CheckFailure
        if share is None:
            outcome = CheckFailure("Genesys Cloud is unavailable.")
        else:
            outcome = usage(int(share * policy.capacity))
        decision = decide(outcome, state, policy, NOW + timedelta(minutes=5 * index))
        steps.append((state, decision))
        state = decision.state
    return steps


@settings(max_examples=300)
@given(policies, outcomes)
def test_failed_checks_never_change_the_level_nor_resolve(
    policy: Policy, shares: list[float | None]
) -> None:
    for (previous, decision), share in zip(run(policy, shares), shares, strict=True):
        if share is None:
            assert decision.level == "unknown"
            assert decision.state.level == previous.level
            assert decision.state.episode_id == previous.episode_id
            assert set(names(decision)) <= {"monitor_failing"}


@settings(max_examples=300)
@given(policies, outcomes)
def test_each_episode_has_one_breach_at_most_one_escalation_and_one_resolution(
    policy: Policy, shares: list[float | None]
) -> None:
    seen: dict[str, list[str]] = {}
    for _, decision in run(policy, shares):
        for event in decision.events:
            if event.event in ("breach", "escalation", "resolved"):
                seen.setdefault(event.alert_id, []).append(event.event)
    for sequence in seen.values():
        assert sequence[0] == "breach"
        assert sequence.count("breach") == 1
        assert sequence.count("escalation") <= 1
        assert sequence.count("resolved") <= 1
        if "resolved" in sequence:
            assert sequence[-1] == "resolved"


@settings(max_examples=300)
@given(policies, outcomes)
def test_breaches_and_resolutions_alternate_and_match_the_level(
    policy: Policy, shares: list[float | None]
) -> None:
    open_episode = False
    for previous, decision in run(policy, shares):
        for event in decision.events:
            if event.event == "breach":
                assert not open_episode
                open_episode = True
            elif event.event == "resolved":
                assert open_episode
                open_episode = False
        assert open_episode == (decision.state.level != "ok")
        if decision.level != "unknown":
            assert decision.level == level_for(
                decision.state.last_usage.concurrent if decision.state.last_usage else 0,
                previous.level, policy,
            )


@settings(max_examples=300)
@given(policies, outcomes)
def test_failure_alerts_pair_up_and_share_their_alert_id(
    policy: Policy, shares: list[float | None]
) -> None:
    failing_id: str | None = None
    for _, decision in run(policy, shares):
        for event in decision.events:
            if event.event == "monitor_failing":
                assert failing_id is None
                failing_id = event.alert_id
            elif event.event == "monitor_recovered":
                assert event.alert_id == failing_id
                failing_id = None


@settings(max_examples=100)
@given(policies, outcomes)
def test_every_state_survives_json(policy: Policy, shares: list[float | None]) -> None:
    for _, decision in run(policy, shares):
        assert AlertState.from_dict(json.loads(json.dumps(decision.state.to_dict()))) == (
            decision.state
        )


@given(policies, st.integers(0, 3000), st.sampled_from(["ok", "warning", "critical"]))
def test_levels_respect_thresholds_whatever_came_before(
    policy: Policy, concurrent: int, previous: Level
) -> None:
    level = level_for(concurrent, previous, policy)
    utilization = concurrent * 100 / policy.capacity

    if utilization >= policy.critical_percent:
        assert level == "critical"
    elif utilization < policy.warning_percent - policy.clear_margin_percent:
        assert level == "ok"
    if previous == "ok":
        assert level == (
            "critical" if utilization >= policy.critical_percent
            else "warning" if utilization >= policy.warning_percent else "ok"
        )
