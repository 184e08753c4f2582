"""Alert policy (DESIGN.md §8): levels with hysteresis, one event per transition, failures apart."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from license_monitor.alerting import (
    MAX_REASON_CHARS,
    AlertEvent,
    AlertState,
    Billing,
    CheckFailure,
    Decision,
    Level,
    Policy,
    Usage,
    decide,
    describe_cause,
    failure_cause,
    level_for,
    one_line,
)
from license_monitor.forecast import Forecast
from license_monitor.quiet_hours import is_quiet
from license_monitor.settings import QuietWindow

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EPISODE_START = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
POLICY = Policy(capacity=500)  # warning 90 %, critical 95 %, clear margin 5 %


def usage(concurrent: int, *, billable_peak: int = 400, period: str = "2026-11-01",
          minutes_over: int = 0) -> Usage:
    agents = concurrent * 9 // 10
    return Usage(concurrent=concurrent, agents=agents, admins=concurrent - agents,
                 window_distinct=concurrent + 9, billable_peak=billable_peak,
                 period_start=period, minutes_over_capacity=minutes_over)


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
        "agents": 414, "admins": 47, "window_distinct": 470, "pool": "licenses",
        "billable_peak": 400,
        "billing": {"period_start": "2026-11-01", "billable_peak": 400,
                    "minutes_over_capacity": 0,
                    "billable_peak_upper": None, "seconds_over_capacity": None},
        "alert_id": "breach-20261126T120000Z", "occurred_at": "2026-11-26T12:00:00Z",
        "message": "461 of 500 concurrent licenses in use (92.2%), warning threshold 90%",
        "cause": None,
    }
    assert AlertEvent.from_payload(event.to_payload()) == event


def test_every_message_says_when_every_user_is_counted() -> None:
    policy = Policy(capacity=500, failure_alert_after=1)
    every_user = replace(usage(520, billable_peak=507, minutes_over=41), pool="all_users")
    note = "counting every user (CONCURRENT_POOL=all_users)"

    breach = decide(every_user, AlertState(), policy, NOW)
    failing = decide(CheckFailure("x"), breach.state, policy, NOW + timedelta(minutes=5))
    recovered = decide(replace(every_user, concurrent=400), failing.state, policy,
                       NOW + timedelta(minutes=10))
    by_licenses = decide(usage(520, billable_peak=507, minutes_over=41), AlertState(), policy, NOW)

    events = [*breach.events, *failing.events, *recovered.events]
    assert [event.event for event in events] == [
        "breach", "overage_locked_in", "monitor_failing", "monitor_recovered", "resolved"]
    assert all(event.message.endswith(note) for event in events)
    assert breach.events[0].to_payload()["pool"] == "all_users"
    assert AlertEvent.from_payload(breach.events[0].to_payload()) == breach.events[0]
    assert not any("every user" in event.message for event in by_licenses.events)


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
        "The license check failed (check failed); last error: bad credentials: the client "
        "secret is wrong."
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
    state = decide(CheckFailure("storage unavailable"), state, POLICY,
                   NOW + timedelta(minutes=5), quiet=True).state
    state = decide(usage(520, billable_peak=510), state, POLICY, NOW + timedelta(minutes=10),
                   quiet=True).state

    assert state.held  # held events survive too

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


# ---- failure causes ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("reason", "cause", "described"),
    [
        pytest.param("Genesys Cloud rejected the client id or secret at login.mypurecloud.ie "
                     "(invalid_client) (HTTP 401, code invalid_client, correlation id c-1)",
                     "bad_credentials", "bad credentials", id="token refused"),
        pytest.param("Genesys Cloud rejected a freshly issued access token for GET /api/v2/users "
                     "(HTTP 401)", "bad_credentials", "bad credentials", id="token rejected"),
        pytest.param("Genesys Cloud denied POST /api/v2/analytics/users/details/query: the OAuth "
                     "client is missing the permission analytics:userDetail:view (HTTP 403)",
                     "permission_missing", "permission analytics:userDetail:view missing",
                     id="permission named"),
        pytest.param("Genesys Cloud denied GET /api/v2/users: the OAuth client lacks a permission "
                     "(HTTP 403)", "permission_missing", "permission missing",
                     id="permission unnamed"),
        pytest.param("Genesys Cloud was unavailable (HTTP 503) for POST /api/v2/analytics/users/"
                     "aggregates/query after 4 attempts over 9 s (HTTP 503)",
                     "platform_unavailable", "Genesys Cloud unavailable", id="5xx"),
        pytest.param("Genesys Cloud kept rate-limiting GET /api/v2/users (HTTP 429) after 5 "
                     "attempts over 60 s", "platform_unavailable", "Genesys Cloud unavailable",
                     id="throttled"),
        pytest.param("Table Storage at 127.0.0.1:10002 could not be reached while reading the "
                     "alert state (ServiceRequestError)", "storage_unavailable",
                     "storage unavailable", id="storage"),
        pytest.param("Genesys Cloud answered GET /api/v2/users with a body that is not JSON",
                     "check_failed", "check failed", id="anything else"),
    ],
)
def test_failure_causes_are_named_from_the_activity_error(
    reason: str, cause: str, described: str
) -> None:
    assert failure_cause(reason) == cause
    assert describe_cause(reason) == described


def test_monitor_failing_names_the_missing_permission() -> None:
    policy = Policy(capacity=500, failure_alert_after=1)
    reason = ("Genesys Cloud denied GET /api/v2/routing/queues: the OAuth client is missing the "
              "permission routing:queue:view (HTTP 403)")

    [event] = decide(CheckFailure(reason), AlertState(), policy, NOW).events

    assert event.cause == "permission_missing"
    assert event.message.startswith(
        "The license check failed (permission routing:queue:view missing); last error: ")
    assert event.to_payload()["cause"] == "permission_missing"


def test_failure_alert_carries_the_last_known_billing_figures() -> None:
    policy = Policy(capacity=500, failure_alert_after=1)
    state = decide(usage(300, billable_peak=290), AlertState(), policy, NOW).state

    [event] = decide(CheckFailure("x"), state, policy, NOW + timedelta(minutes=5)).events

    assert event.to_payload()["billing"] == {
        "period_start": "2026-11-01", "billable_peak": 290, "minutes_over_capacity": 0,
        "billable_peak_upper": None, "seconds_over_capacity": None}
    assert event.to_payload()["concurrent"] is None  # never a zero for an unknown figure


# ---- repeated checks and checks storage could not record -----------------------------------

def test_the_same_check_decided_twice_counts_once() -> None:
    first = decide(CheckFailure("x"), AlertState(), POLICY, NOW)
    again = decide(CheckFailure("x"), first.state, POLICY, NOW)
    older = decide(usage(480), first.state, POLICY, NOW - timedelta(minutes=5))

    assert again.state == first.state
    assert again.state.consecutive_failures == 1
    assert (older.state, older.events, older.level) == (first.state, (), "critical")


def test_checks_missed_while_storage_was_down_alert_when_it_is_back() -> None:
    down = "Table Storage at 127.0.0.1:10002 could not be reached while saving the alert state"
    state = decide(usage(461), AlertState(), POLICY, NOW).state
    missed = [(NOW + timedelta(minutes=minute), CheckFailure(down)) for minute in (15, 5, 10)]

    back = decide(usage(462), state, POLICY, NOW + timedelta(minutes=20), missed=missed)
    later = decide(usage(462), back.state, POLICY, NOW + timedelta(minutes=25), missed=missed)

    assert names(back) == ["monitor_failing", "monitor_recovered"]
    failing, recovered = back.events
    assert failing.alert_id == recovered.alert_id == "failing-20261126T120500Z"
    assert failing.cause == recovered.cause == "storage_unavailable"
    assert failing.occurred_at == NOW + timedelta(minutes=15)
    assert failing.message.startswith("License checks failed 3 times in a row (storage "
                                      "unavailable)")
    assert (back.state.level, back.state.episode_id) == ("warning", state.episode_id)
    assert back.state.consecutive_failures == 0
    assert names(later) == []  # the same missed checks are never counted twice


# ---- overage locked in ----------------------------------------------------------------------

def test_overage_is_announced_once_per_new_billable_peak() -> None:
    policy = Policy(capacity=500)
    steps = [
        ("2026-11-01", 480), ("2026-11-01", 500), ("2026-11-01", 505), ("2026-11-01", 505),
        ("2026-11-01", 503), ("2026-11-01", 512), ("2026-12-01", 501),
    ]
    state = AlertState()
    sent: list[tuple[str, int | None]] = []
    for index, (period, peak) in enumerate(steps):
        decision = decide(usage(400, billable_peak=peak, period=period, minutes_over=31 + index),
                          state, policy, NOW + timedelta(minutes=5 * index))
        sent += [(event.alert_id, event.billing.billable_peak if event.billing else None)
                 for event in decision.events if event.event == "overage_locked_in"]
        state = decision.state

    assert sent == [("overage-20261101", 505), ("overage-20261101", 512),
                    ("overage-20261201", 501)]


def test_overage_message_says_how_far_over_and_for_how_long() -> None:
    decision = decide(usage(520, billable_peak=507, minutes_over=41), AlertState(), POLICY, NOW)

    assert names(decision) == ["breach", "overage_locked_in"]
    overage = decision.events[1]
    assert overage.message == (
        "Billable peak of the period from 2026-11-01 is 507 concurrent licenses, 7 over the 500 "
        "purchased; 41 minutes over capacity so far")
    assert overage.key == "overage-20261101:overage-507"
    assert overage.to_payload()["billing"] == {
        "period_start": "2026-11-01", "billable_peak": 507, "minutes_over_capacity": 41,
        "billable_peak_upper": None, "seconds_over_capacity": None}
    assert AlertEvent.from_payload(overage.to_payload()) == overage
    # The state remembers it per period, and as the last one announced (older versions read
    # only those two fields: a rollback must not announce it again).
    assert decision.state.overage_announced == (("2026-11-01", 507),)
    assert (decision.state.overage_period, decision.state.overage_peak) == ("2026-11-01", 507)
    restored = AlertState.from_dict({"overage_period": "2026-11-01", "overage_peak": 507})
    assert restored.announced_overages == {"2026-11-01": 507}


# ---- quiet hours ------------------------------------------------------------------------------

NIGHTS = QuietWindow(frozenset({0, 1, 2, 3, 4}), 22 * 60, 6 * 60)  # Mon-Fri 22:00-06:00
WEEKEND = QuietWindow(frozenset({5, 6}), 0, 24 * 60)  # Sat-Sun 00:00-24:00
DST_NIGHT = QuietWindow(frozenset({6}), 60, 4 * 60)  # Sun 01:00-04:00
FALL_BACK_HOUR = QuietWindow(frozenset({6}), 2 * 60, 3 * 60)  # Sun 02:00-03:00


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "windows", "quiet"),
    [
        pytest.param("2026-11-23T20:59", [NIGHTS], False, id="Mon 21:59 CET before the night"),
        pytest.param("2026-11-23T21:00", [NIGHTS], True, id="Mon 22:00 CET starts it"),
        pytest.param("2026-11-24T04:59", [NIGHTS], True, id="Tue 05:59 overnight from Monday"),
        pytest.param("2026-11-24T05:00", [NIGHTS], False, id="Tue 06:00 ends it"),
        pytest.param("2026-11-28T04:00", [NIGHTS], True, id="Sat 05:00 overnight from Friday"),
        pytest.param("2026-11-28T12:00", [NIGHTS], False, id="Sat noon is no night"),
        pytest.param("2026-11-28T12:00", [NIGHTS, WEEKEND], True, id="Sat noon in the weekend"),
        pytest.param("2026-11-29T22:59", [WEEKEND], True, id="Sun 23:59 before 24:00"),
        pytest.param("2026-11-29T23:00", [NIGHTS, WEEKEND], False,
                     id="Mon 00:00 after 24:00, Sunday night not configured"),
        pytest.param("2026-03-24T04:30", [NIGHTS], True, id="winter: 04:30Z is Tue 05:30 CET"),
        pytest.param("2026-03-31T04:30", [NIGHTS], False, id="summer: 04:30Z is Tue 06:30 CEST"),
        pytest.param("2026-03-23T04:30", [NIGHTS], False,
                     id="Mon 05:30 belongs to Sunday night, not configured"),
        pytest.param("2026-03-29T00:30", [DST_NIGHT], True, id="spring forward: 01:30 CET"),
        pytest.param("2026-03-29T01:30", [DST_NIGHT], True, id="spring forward: 03:30 CEST"),
        pytest.param("2026-03-29T02:00", [DST_NIGHT], False, id="spring forward: 04:00 CEST"),
        pytest.param("2026-10-25T00:30", [FALL_BACK_HOUR], True, id="fall back: first 02:30"),
        pytest.param("2026-10-25T01:30", [FALL_BACK_HOUR], True, id="fall back: second 02:30"),
        pytest.param("2026-10-25T02:00", [FALL_BACK_HOUR], False, id="fall back: 03:00 CET"),
        pytest.param("2026-11-24T02:00", [], False, id="no windows"),
    ],
)
def test_quiet_hours_are_read_on_the_local_wall_clock(
    moment: str, windows: list[QuietWindow], quiet: bool
) -> None:
    assert is_quiet(utc(moment), windows, "Europe/Berlin") is quiet


def test_quiet_hours_refuse_a_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_quiet(datetime(2026, 11, 24, 2, 0), [NIGHTS], "UTC")


def run_quietly(steps: list[tuple[int | None, bool]], policy: Policy = POLICY,
                start: AlertState | None = None) -> list[Decision]:
    """One check every 5 minutes: concurrent (None = failed check) and whether it is quiet."""
    state = start or AlertState()
    decisions = []
    for index, (concurrent, quiet) in enumerate(steps):
        outcome: Usage | CheckFailure = (
            CheckFailure("Genesys Cloud was unavailable (HTTP 503)") if concurrent is None
            else usage(concurrent))
        decision = decide(outcome, state, policy, NOW + timedelta(minutes=5 * index),
                          quiet=quiet)
        decisions.append(decision)
        state = decision.state
    return decisions


def test_a_breach_in_quiet_hours_is_sent_once_when_they_end_with_current_figures() -> None:
    decisions = run_quietly([(461, True), (480, True), (470, False), (470, False)])

    assert [names(d) for d in decisions] == [[], [], ["breach"], []]
    assert [d.level for d in decisions] == ["warning", "critical", "critical", "critical"]
    breach = decisions[2].events[0]
    assert (breach.level, breach.usage, breach.alert_id) == (
        "critical", usage(470), "breach-20261126T120000Z")
    assert breach.message.endswith("; breached since 12:00 UTC")
    assert decisions[2].state.held == ()
    # The released breach said critical: nothing left to escalate.
    assert names(decide(usage(480), decisions[3].state, POLICY,
                        NOW + timedelta(minutes=20))) == []


def test_a_breach_opened_and_closed_in_quiet_hours_pages_nobody() -> None:
    decisions = run_quietly([(461, True), (480, True), (300, True), (300, False)])

    assert [names(d) for d in decisions] == [[], [], [], []]
    assert decisions[3].state.held == ()


def test_a_breach_announced_before_quiet_hours_gets_its_resolution_after() -> None:
    decisions = run_quietly([(461, False), (300, True), (300, False)])

    assert [names(d) for d in decisions] == [["breach"], [], ["resolved"]]
    assert decisions[2].events[0].occurred_at == NOW + timedelta(minutes=5)


def test_an_escalation_in_quiet_hours_is_sent_only_if_still_critical() -> None:
    still = run_quietly([(461, False), (480, True), (480, False)])
    calmer = run_quietly([(461, False), (480, True), (445, False)])

    assert [names(d) for d in still] == [["breach"], [], ["escalation"]]
    assert [names(d) for d in calmer] == [["breach"], [], []]


def test_monitor_failing_in_quiet_hours_is_sent_only_if_still_failing() -> None:
    policy = Policy(capacity=500, failure_alert_after=2)
    failing = run_quietly([(None, True), (None, True), (None, False)], policy)
    recovered = run_quietly([(None, True), (None, True), (300, True), (300, False)], policy)

    assert [names(d) for d in failing] == [[], [], ["monitor_failing"]]
    assert [names(d) for d in recovered] == [[], [], [], []]


def test_overage_in_quiet_hours_is_sent_after_with_the_highest_peak() -> None:
    state = AlertState()
    for minute, peak in ((0, 505), (5, 508)):
        state = decide(usage(400, billable_peak=peak), state, POLICY,
                       NOW + timedelta(minutes=minute), quiet=True).state
    after = decide(usage(400, billable_peak=508), state, POLICY, NOW + timedelta(minutes=10))

    assert names(after) == ["overage_locked_in"]
    assert after.events[0].billing is not None
    assert after.events[0].billing.billable_peak == 508


def test_a_reminder_due_in_quiet_hours_is_sent_when_they_end() -> None:
    policy = Policy(capacity=500, remind_every_minutes=5)
    decisions = run_quietly([(461, False), (461, True), (461, True), (461, False)], policy)

    assert [names(d) for d in decisions] == [["breach"], [], [], ["reminder"]]


quiet_runs = st.lists(
    st.tuples(st.one_of(st.floats(0, 1.3), st.just(None)), st.booleans()),
    min_size=1, max_size=60,
)


@settings(max_examples=300)
@given(policies, quiet_runs)
def test_after_quiet_hours_what_was_announced_matches_the_state(
    policy: Policy, steps: list[tuple[float | None, bool]]
) -> None:
    state = AlertState()
    announced: dict[str, list[str]] = {}  # alert id -> events sent, in order
    for index, (share, quiet) in enumerate(steps):
        outcome: Usage | CheckFailure = (
            CheckFailure("Genesys Cloud is unavailable.") if share is None
            else usage(int(share * policy.capacity)))
        decision = decide(outcome, state, policy, NOW + timedelta(minutes=5 * index),
                          quiet=quiet)
        state = decision.state
        for event in decision.events:
            announced.setdefault(event.alert_id, []).append(event.event)
        if quiet:
            assert decision.events == ()
            continue
        assert state.held == ()
        if state.episode_id is not None:  # an open episode has been announced...
            assert announced[state.episode_id][0] == "breach"
        if state.failing_notified and state.failing_since is not None:  # ...a failing monitor too
            failing_id = state.failing_since.strftime("failing-%Y%m%dT%H%M%SZ")
            assert announced[failing_id] == ["monitor_failing"]
        for alert_id, sent in announced.items():
            if alert_id.startswith("breach-"):
                assert sent[0] == "breach"  # ...nothing of an episode comes before its breach
                assert sent.count("breach") == 1
                assert sent.count("resolved") <= 1
                if alert_id != state.episode_id:  # ...and a closed one has been resolved
                    assert sent[-1] == "resolved"


def test_a_long_quiet_window_with_flapping_usage_stays_small_in_storage() -> None:
    policy = Policy(capacity=500, remind_every_minutes=30)
    state = AlertState()
    for step in range(600):  # two days of checks every 5 minutes, in and out of breach
        concurrent = 480 if step % 4 < 2 else 300
        state = decide(usage(concurrent), state, policy, NOW + timedelta(minutes=5 * step),
                       quiet=True).state
    assert len(state.held) <= 4
    assert len(json.dumps(state.to_dict())) < 16 * 1024  # far below the 64 KiB property cap


def test_an_escalation_held_and_no_longer_true_does_not_swallow_a_later_one() -> None:
    state = decide(usage(460), AlertState(), POLICY, NOW).state  # warning, breach announced
    state = decide(usage(490), state, POLICY, NOW + timedelta(minutes=5), quiet=True).state
    back = decide(usage(430), state, POLICY, NOW + timedelta(minutes=10))  # 86 %
    assert back.level == "warning"
    assert names(back) == []  # the escalation is no longer true: nothing to send
    again = decide(usage(490), back.state, POLICY, NOW + timedelta(minutes=15))
    assert again.level == "critical"
    assert names(again) == ["escalation"]


# ---- gaps found by mutation testing (scripts/mutation) ----------------------------------------

def test_an_episode_escalates_once_even_when_it_dips_back_to_warning() -> None:
    steps = [461, 480, 440, 480]  # warning, critical, 88 % (warning, held), critical again
    state, sent = AlertState(), []
    for minute, concurrent in enumerate(steps):
        decision = decide(usage(concurrent), state, POLICY, NOW + timedelta(minutes=5 * minute))
        sent.append(names(decision))
        state = decision.state
    assert sent == [["breach"], ["escalation"], [], []]
    assert state.level == "critical"
    assert state.escalated


def test_four_missed_checks_still_announce_the_failing_monitor() -> None:
    down = "Table Storage at 127.0.0.1:10002 could not be reached while saving the alert state"
    state = decide(usage(300), AlertState(), POLICY, NOW).state
    missed = [(NOW + timedelta(minutes=5 * n), CheckFailure(down)) for n in (1, 2, 3, 4)]

    back = decide(CheckFailure(down), state, POLICY, NOW + timedelta(minutes=25), missed=missed)

    assert names(back) == ["monitor_failing"]
    assert back.events[0].occurred_at == NOW + timedelta(minutes=15)  # the third failure
    assert back.state.consecutive_failures == 5
    assert back.state.failing_notified


def test_missed_checks_at_or_before_the_last_decided_one_are_not_counted() -> None:
    down = "Table Storage at 127.0.0.1:10002 could not be reached while saving the alert state"
    policy = Policy(capacity=500, failure_alert_after=2)
    state = decide(usage(300), AlertState(), policy, NOW).state
    missed = [(NOW, CheckFailure(down)), (NOW - timedelta(minutes=5), CheckFailure(down)),
              (NOW + timedelta(minutes=10), CheckFailure(down))]  # the last one is "now"

    back = decide(CheckFailure(down), state, policy, NOW + timedelta(minutes=10), missed=missed)

    assert names(back) == []  # only this check failed: one failure, not three
    assert back.state.consecutive_failures == 1
    assert back.state.last_checked_at == NOW + timedelta(minutes=10)


def test_a_breach_released_after_quiet_hours_restarts_the_reminder_clock() -> None:
    policy = Policy(capacity=500, remind_every_minutes=10)
    decisions = run_quietly([(461, True), (461, True), (461, True), (461, False),
                             (461, False), (461, False)], policy)
    # Breach released at +15 min; the next reminder is 10 minutes after it, not after the
    # (held) breach's own time.
    assert [names(d) for d in decisions] == [[], [], [], ["breach"], [], ["reminder"]]
    assert decisions[3].state.last_notified_at == NOW + timedelta(minutes=15)


def test_a_warning_breach_released_after_quiet_hours_can_still_escalate() -> None:
    decisions = run_quietly([(480, True), (440, True), (440, False), (480, False)])
    # Held breach critical, released as warning: critical later is news.
    assert [names(d) for d in decisions] == [[], [], ["breach"], ["escalation"]]
    assert decisions[2].events[0].level == "warning"
    assert not decisions[2].state.escalated
    assert decisions[3].state.escalated


def test_an_escalation_released_after_quiet_hours_restarts_the_reminder_clock() -> None:
    policy = Policy(capacity=500, remind_every_minutes=10)
    decisions = run_quietly([(461, False), (480, True), (480, False), (480, False),
                             (480, False)], policy)
    assert [names(d) for d in decisions] == [["breach"], [], ["escalation"], [], ["reminder"]]
    assert decisions[2].state.last_notified_at == NOW + timedelta(minutes=10)


def test_every_problem_of_a_policy_is_named_in_one_error() -> None:
    with pytest.raises(ValueError, match="invalid alert policy") as raised:
        Policy(capacity=0, warning_percent=96.5, critical_percent=95, clear_margin_percent=97,
               failure_alert_after=0, remind_every_minutes=-1)
    assert str(raised.value) == (
        "invalid alert policy: the capacity must be a positive number of licenses: 0; "
        "the warning percent must be above 0 and at most the critical percent "
        "(got warning 96.5, critical 95); "
        "the clear margin must be at least 0 and below the warning percent (got 97); "
        "failure_alert_after must be 1 or more: 0; "
        "remind_every_minutes cannot be negative: -1")


@pytest.mark.parametrize("margin", [-0.5, 50.5, float("nan")])
def test_a_forecast_margin_outside_0_to_50_percent_is_refused(margin: float) -> None:
    with pytest.raises(ValueError, match="the forecast alert margin must be from 0 to 50 percent"):
        Policy(capacity=500, forecast_margin_percent=margin)


@pytest.mark.parametrize(("margin", "sent"), [
    (0, True), (1.9, True), (2, False), (50, False),
])
def test_the_forecast_margin_decides_whether_a_forecast_just_over_capacity_warns(
        margin: float, sent: bool) -> None:
    # A forecast of 510 against 500 is 2 % over: it warns only under a smaller margin.
    forecast = Forecast(peak=510, low=500, high=520, at=NOW + timedelta(hours=2),
                        based_on_days=4, weekday="Thursday", day=NOW.date(), evidence=0.9)
    policy = Policy(capacity=500, forecast_margin_percent=margin)
    decision = decide(Usage(concurrent=300, agents=300, admins=0, window_distinct=300),
                      AlertState(), policy, NOW, forecast=forecast)
    assert [e.event for e in decision.events] == (["forecast_breach"] if sent else [])


def test_the_smallest_valid_policy_is_accepted() -> None:
    policy = Policy(capacity=1, warning_percent=95, critical_percent=95, clear_margin_percent=0,
                    failure_alert_after=1, remind_every_minutes=0)
    assert (policy.threshold("ok"), policy.threshold("warning"),
            policy.threshold("critical")) == (0.0, 95, 95)
    assert policy.utilization_percent(3) == 300.0


def test_thresholds_and_utilization_of_a_policy() -> None:
    policy = Policy(capacity=400, warning_percent=80, critical_percent=92.5)
    assert policy.threshold("warning") == 80
    assert policy.threshold("critical") == 92.5
    assert policy.utilization_percent(1) == 0.25


def test_a_state_written_before_a_field_existed_reads_with_its_defaults() -> None:
    assert AlertState.from_dict({}) == AlertState()
    minimal_usage = {"concurrent": 5, "agents": 4, "admins": 1, "window_distinct": 7}
    state = AlertState.from_dict({"level": "warning", "last_usage": minimal_usage,
                                  "overage_peak": "12", "consecutive_failures": "2"})
    assert state.level == "warning"
    assert state.last_usage == Usage(concurrent=5, agents=4, admins=1, window_distinct=7)
    assert state.last_usage.billing is None
    assert (state.overage_peak, state.consecutive_failures) == (12, 2)


def test_a_stored_state_with_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown alert level 'amber' in stored state"):
        AlertState.from_dict({"level": "amber"})
    with pytest.raises(ValueError, match="unknown check level 'amber'"):
        Decision.from_dict({"level": "amber", "state": {}, "events": []})
    decision = Decision.from_dict({"level": "unknown", "state": {}, "events": []})
    assert (decision.level, decision.state, decision.events) == ("unknown", AlertState(), ())


def test_every_figure_of_a_state_survives_json() -> None:
    full = Usage(concurrent=520, agents=500, admins=20, window_distinct=530, billable_peak=507,
                 period_start="2026-11-01", minutes_over_capacity=41, billable_peak_upper=509,
                 seconds_over_capacity=2_470, pool="all_users")
    state = AlertState(
        level="critical", episode_id="breach-20261126T110000Z", episode_started_at=EPISODE_START,
        escalated=True, last_notified_at=NOW, consecutive_failures=2, failing_notified=True,
        last_error="x", last_usage=full, failing_since=EPISODE_START, last_checked_at=NOW,
        overage_period="2026-11-01", overage_peak=507,
        overage_announced=(("2026-10-01", 502), ("2026-11-01", 507)))
    data = json.loads(json.dumps(state.to_dict()))
    assert data["last_usage"]["pool"] == "all_users"
    assert data["last_checked_at"] == "2026-11-26T12:00:00.000Z"
    assert AlertState.from_dict(data) == state
    assert Usage.from_dict(full.to_dict()) == full
    assert full.billing is not None
    assert full.billing.to_dict() == {
        "period_start": "2026-11-01", "billable_peak": 507, "billable_peak_upper": 509,
        "seconds_over_capacity": 2_470, "minutes_over_capacity": 41}


def test_usage_without_a_pool_counts_licenses() -> None:
    data = {"concurrent": 5, "agents": 4, "admins": 1, "window_distinct": 7, "pool": None,
            "billable_peak": None, "period_start": "2026-11-01"}
    usage_read = Usage.from_dict(data)
    assert usage_read.pool == "licenses"
    assert usage_read.period_start == "2026-11-01"
    assert usage_read.billing is None  # no billable peak yet


def test_notification_keys_tell_reminders_and_overage_peaks_apart() -> None:
    base = decide(usage(461), AlertState(), POLICY, NOW).events[0]
    reminder = replace(base, event="reminder")
    overage = replace(base, event="overage_locked_in", alert_id="overage-20261101")
    assert base.key == "breach-20261126T120000Z:breach"
    assert reminder.key == "breach-20261126T120000Z:reminder-20261126T120000Z"
    assert overage.key == "overage-20261101:overage-400"
    assert replace(overage, billing=None).key == "overage-20261101:overage_locked_in"


def test_a_failure_alert_payload_has_no_usage_figures() -> None:
    policy = Policy(capacity=500, failure_alert_after=1)
    [event] = decide(CheckFailure("Genesys Cloud was unavailable (HTTP 503)"), AlertState(),
                     policy, NOW).events
    payload = event.to_payload()
    assert {key: payload[key] for key in ("concurrent", "agents", "admins", "window_distinct",
                                          "pool", "billable_peak", "billing",
                                          "utilization_percent")} == dict.fromkeys(
        ("concurrent", "agents", "admins", "window_distinct", "pool", "billable_peak", "billing",
         "utilization_percent"))
    assert (payload["level"], payload["previous_level"], payload["cause"]) == (
        "unknown", "ok", "platform_unavailable")
    assert payload["alert_id"] == "failing-20261126T120000Z"
    assert AlertEvent.from_payload(payload) == event


def test_a_payload_without_billing_keeps_the_usage_billable_peak() -> None:
    event = decide(usage(461), AlertState(), POLICY, NOW).events[0]
    bare = replace(event, billing=None)
    payload = bare.to_payload()
    assert (payload["billable_peak"], payload["billing"]) == (400, None)
    back = AlertEvent.from_payload(payload)
    assert back.usage is not None
    assert (back.usage.billable_peak, back.usage.period_start) == (400, None)


def test_billing_figures_survive_json_with_and_without_the_optional_ones() -> None:
    full = Billing("2026-11-01", 507, minutes_over_capacity=41, billable_peak_upper=509,
                   seconds_over_capacity=2_470)
    assert Billing.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    assert Billing.from_dict({"period_start": "2026-11-01", "billable_peak": "507"}) == Billing(
        "2026-11-01", 507)
    event = replace(decide(usage(520), AlertState(), POLICY, NOW).events[0], billing=full)
    back = AlertEvent.from_payload(json.loads(json.dumps(event.to_payload())))
    assert back.billing == full
    assert back.usage is not None
    assert (back.usage.billable_peak_upper, back.usage.seconds_over_capacity,
            back.usage.minutes_over_capacity) == (509, 2_470, 41)


STORAGE_DOWN = ("Table Storage at 127.0.0.1:10002 could not be reached while saving the alert "
                "state (ServiceRequestError)")


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        pytest.param("this machine's clock is 75 s ahead of Table Storage's "
                     "(2026-11-26T12:00:00Z); fix its time synchronisation", "clock_skew",
                     id="clock"),
        pytest.param("This machine's clock is right", "check_failed", id="clock-not-ahead"),
        pytest.param("The check is ahead of schedule", "check_failed", id="ahead-not-clock"),
        pytest.param(STORAGE_DOWN, "storage_unavailable", id="storage"),
        pytest.param("the OAuth client is missing the permission users:view",
                     "permission_missing", id="missing"),
        pytest.param("the OAuth client lacks a permission", "permission_missing", id="lacks"),
        pytest.param("a permission was granted", "check_failed", id="permission-only"),
        pytest.param("Genesys Cloud rejected the client credentials at login.mypurecloud.com",
                     "bad_credentials", id="rejected-client"),
        pytest.param("Genesys Cloud refused the token request at login.mypurecloud.com",
                     "bad_credentials", id="token-refused"),
        pytest.param("Genesys Cloud rejected a freshly issued access token", "bad_credentials",
                     id="fresh-token"),
        pytest.param("error invalid_client", "bad_credentials", id="invalid-client"),
        pytest.param("Genesys Cloud was unavailable (connection failed) for GET /api/v2/users",
                     "platform_unavailable", id="unavailable"),
        pytest.param("Genesys Cloud kept rate-limiting GET /api/v2/users", "platform_unavailable",
                     id="rate-limited"),
        pytest.param("login.mypurecloud.com could not be reached (ConnectionError)",
                     "platform_unavailable", id="unreachable"),
        pytest.param("GET /api/v2/users timed out", "platform_unavailable", id="timed-out"),
        pytest.param("the check passed its 240 s deadline while signing in (Genesys Cloud)",
                     "platform_unavailable", id="deadline-sign-in"),
        pytest.param("the check passed its 240 s deadline while measuring usage (Genesys Cloud)",
                     "platform_unavailable", id="deadline-measuring"),
        pytest.param("the check passed its 240 s deadline while recording (Table Storage)",
                     "storage_unavailable", id="deadline-storage"),
        pytest.param("Genesys Cloud answered HTTP 502", "platform_unavailable", id="http-5xx"),
        pytest.param("Genesys Cloud answered HTTP 404", "check_failed", id="http-4xx"),
        pytest.param("Genesys Cloud answered XHTTP 5020", "check_failed", id="not-a-status"),
    ],
)
def test_every_wording_of_a_failure_has_its_cause(reason: str, cause: str) -> None:
    assert failure_cause(reason) == cause
    assert failure_cause(reason.upper()) == cause  # the wording, whatever its case


def test_a_long_multi_line_reason_is_one_line_of_at_most_500_characters() -> None:
    reason = "first line\n  second\tline " + "x" * 600
    line = one_line(reason)
    assert len(line) == MAX_REASON_CHARS
    assert line.startswith("first line second line xxx")
    assert line.endswith("x...")
    exact = "y" * MAX_REASON_CHARS
    assert one_line(exact) == exact
    # Cut just after a space: the space is not kept before the ellipsis.
    assert one_line("x" * 496 + " tail of the reason") == "x" * 496 + "..."


def test_a_warning_threshold_under_one_percent_is_allowed_and_an_empty_state_stores() -> None:
    assert Policy(capacity=10_000, warning_percent=0.5, critical_percent=0.8,
                  clear_margin_percent=0.1).threshold(
        "warning") == 0.5
    data = AlertState().to_dict()
    assert (data["last_usage"], data["held"], data["level"]) == (None, [], "ok")
    assert AlertState.from_dict(json.loads(json.dumps(data))) == AlertState()


def test_a_failure_alert_payload_names_the_last_billable_peak() -> None:
    policy = Policy(capacity=500, failure_alert_after=1)
    state = decide(usage(300, billable_peak=290), AlertState(), policy, NOW).state
    [event] = decide(CheckFailure("x"), state, policy, NOW + timedelta(minutes=5)).events
    assert event.to_payload()["billable_peak"] == 290


def run_steps(steps: list[tuple[Usage | None, bool]], policy: Policy = POLICY) -> list[Decision]:
    """Like run_quietly, with whole Usage figures (None = a failed check)."""
    state, decisions = AlertState(), []
    for index, (figures, quiet) in enumerate(steps):
        outcome: Usage | CheckFailure = (
            CheckFailure("Genesys Cloud was unavailable (HTTP 503)") if figures is None
            else figures)
        decision = decide(outcome, state, policy, NOW + timedelta(minutes=5 * index),
                          quiet=quiet)
        decisions.append(decision)
        state = decision.state
    return decisions


def test_a_failure_announced_in_quiet_hours_and_recovered_at_their_end_pages_nobody() -> None:
    policy = Policy(capacity=500, failure_alert_after=2)
    decisions = run_quietly([(None, True), (None, True), (300, False)], policy)
    assert [names(d) for d in decisions] == [[], [], []]
    inside = run_quietly([(None, True), (None, True), (300, True)], policy)
    assert inside[2].state.held == ()  # failing and recovered inside the window: nothing kept


def test_a_failure_announced_before_quiet_hours_gets_its_recovery_after() -> None:
    policy = Policy(capacity=500, failure_alert_after=2)
    decisions = run_quietly([(None, False), (None, False), (300, True), (300, False)], policy)
    assert [names(d) for d in decisions] == [[], ["monitor_failing"], [], ["monitor_recovered"]]
    failing, recovered = decisions[1].events[0], decisions[3].events[0]
    assert recovered.alert_id == failing.alert_id
    assert recovered.occurred_at == NOW + timedelta(minutes=10)  # when it recovered


def test_a_reminder_released_after_quiet_hours_carries_the_current_figures() -> None:
    policy = Policy(capacity=500, remind_every_minutes=10)
    decisions = run_quietly([(461, False), (461, True), (461, True), (465, False)], policy)
    assert [names(d) for d in decisions] == [["breach"], [], [], ["reminder"]]
    [reminder] = decisions[3].events
    assert (reminder.event, reminder.level, reminder.previous_level) == (
        "reminder", "warning", "warning")
    assert (reminder.usage, reminder.billing) == (usage(465), usage(465).billing)
    assert reminder.occurred_at == NOW + timedelta(minutes=15)
    assert reminder.utilization_percent == 93.0
    assert reminder.message == ("465 of 500 concurrent licenses in use (93.0%), warning "
                                "threshold 90%; breached since 12:00 UTC")
    assert decisions[3].state.last_notified_at == NOW + timedelta(minutes=15)


def test_an_escalation_released_after_quiet_hours_carries_the_current_figures() -> None:
    decisions = run_quietly([(461, False), (480, True), (485, False)])
    [escalation] = decisions[2].events
    assert (escalation.event, escalation.level, escalation.previous_level) == (
        "escalation", "critical", "warning")
    assert escalation.usage == usage(485)
    assert escalation.occurred_at == NOW + timedelta(minutes=10)
    assert escalation.message == ("485 of 500 concurrent licenses in use (97.0%), critical "
                                  "threshold 95%; breached since 12:00 UTC")


def test_a_breach_released_after_quiet_hours_says_it_comes_from_ok() -> None:
    decisions = run_quietly([(461, True), (465, False)])
    [breach] = decisions[1].events
    assert (breach.previous_level, breach.level, breach.occurred_at) == (
        "ok", "warning", NOW + timedelta(minutes=5))
    assert breach.utilization_percent == 93.0


def test_an_escalation_released_still_critical_is_not_sent_again_after_a_dip() -> None:
    decisions = run_quietly([(461, False), (480, True), (480, False), (440, False), (480, False)])
    assert [names(d) for d in decisions] == [["breach"], [], ["escalation"], [], []]
    assert decisions[4].state.escalated is True


def test_a_critical_breach_released_is_not_escalated_after_a_dip() -> None:
    decisions = run_quietly([(480, True), (480, False), (440, False), (480, False)])
    assert [names(d) for d in decisions] == [[], ["breach"], [], []]


def test_an_overage_held_in_quiet_hours_keeps_the_episode_escalated() -> None:
    decisions = run_steps([(usage(461), False), (usage(480), False),
                           (usage(440, billable_peak=505), True),
                           (usage(440, billable_peak=505), False),
                           (usage(480, billable_peak=505), False)])
    assert [names(d) for d in decisions] == [
        ["breach"], ["escalation"], [], ["overage_locked_in"], []]


def test_a_held_dropped_escalation_leaves_the_episode_not_escalated() -> None:
    state = decide(usage(460), AlertState(), POLICY, NOW).state
    state = decide(usage(490), state, POLICY, NOW + timedelta(minutes=5), quiet=True).state
    back = decide(usage(430), state, POLICY, NOW + timedelta(minutes=10))
    assert back.state.escalated is False


def test_held_events_are_released_in_the_order_they_last_happened() -> None:
    decisions = run_steps([(usage(400, billable_peak=505), True),
                           (usage(461, billable_peak=505), True),
                           (usage(461, billable_peak=508), True),
                           (usage(461, billable_peak=508), False)])
    assert names(decisions[3]) == ["breach", "overage_locked_in"]
    assert decisions[3].events[1].billing is not None
    assert decisions[3].events[1].billing.billable_peak == 508


def test_an_event_of_the_check_that_ends_quiet_hours_is_sent_as_decided() -> None:
    decisions = run_steps([(usage(300, billable_peak=505), True), (usage(461), False)])
    assert names(decisions[1]) == ["overage_locked_in", "breach"]
    breach = decisions[1].events[1]
    assert breach.message == "461 of 500 concurrent licenses in use (92.2%), warning threshold 90%"


def test_a_resolved_episode_leaves_nothing_of_itself_in_the_state() -> None:
    escalated = decide(usage(480), breached("warning"), POLICY, NOW).state
    resolved = decide(usage(300), escalated, POLICY, NOW + timedelta(minutes=5)).state
    assert (resolved.episode_id, resolved.episode_started_at, resolved.escalated) == (
        None, None, False)
    assert resolved.last_notified_at == NOW + timedelta(minutes=5)


def test_an_episode_without_an_id_takes_it_from_its_start() -> None:
    previous = AlertState(level="warning", episode_started_at=EPISODE_START)
    decision = decide(usage(461), previous, POLICY, NOW)
    assert decision.state.episode_id == "breach-20261126T110000Z"
    resolved = decide(usage(300), previous, POLICY, NOW)
    assert resolved.events[0].alert_id == "breach-20261126T110000Z"


def test_an_escalation_restarts_the_reminder_clock() -> None:
    policy = Policy(capacity=500, remind_every_minutes=10)
    escalation = decide(usage(480), breached("warning"), policy, NOW)
    assert names(escalation) == ["escalation"]
    assert escalation.state.last_notified_at == NOW
    assert names(decide(usage(480), escalation.state, policy, NOW + timedelta(minutes=5))) == []


def test_a_reminder_says_since_when_the_episode_is_breached() -> None:
    policy = Policy(capacity=500, remind_every_minutes=60)
    previous = replace(breached("critical", escalated=True),
                       episode_started_at=datetime(2026, 11, 25, 23, 0, tzinfo=UTC))
    [reminder] = decide(usage(480), previous, policy, NOW).events
    assert (reminder.event, reminder.previous_level) == ("reminder", "critical")
    assert reminder.message == ("480 of 500 concurrent licenses in use (96.0%), critical "
                                "threshold 95%; breached since 25 Nov 23:00 UTC")


def test_reminders_every_minute_are_allowed() -> None:
    policy = Policy(capacity=500, remind_every_minutes=1)
    previous = breached("warning", notified=NOW - timedelta(minutes=1))
    assert names(decide(usage(461), previous, policy, NOW)) == ["reminder"]


@pytest.mark.parametrize(
    ("figures", "ending"),
    [
        pytest.param({"seconds_over_capacity": 2_470, "minutes_over_capacity": 41},
                     "purchased; 41 minutes (2470 s) over capacity so far", id="seconds"),
        pytest.param({"seconds_over_capacity": None, "minutes_over_capacity": None},
                     "purchased", id="no-duration"),
        pytest.param({"seconds_over_capacity": 119, "billable_peak_upper": 509},
                     "purchased; 1 minutes (119 s) over capacity so far; by whole minutes it "
                     "could read up to 509", id="upper"),
        pytest.param({"seconds_over_capacity": 60, "billable_peak_upper": 507},
                     "purchased; 1 minutes (60 s) over capacity so far", id="upper-same"),
    ],
)
def test_overage_message_endings(figures: dict[str, int | None], ending: str) -> None:
    figures_usage = replace(usage(400, billable_peak=507), **figures)  # type: ignore[arg-type]
    [overage] = decide(figures_usage, AlertState(), POLICY, NOW).events
    assert overage.message == ("Billable peak of the period from 2026-11-01 is 507 concurrent "
                               "licenses, 7 over the 500 " + ending)


def test_no_overage_without_a_billing_period() -> None:
    no_period = replace(usage(400, billable_peak=507), period_start=None)
    assert names(decide(no_period, AlertState(), POLICY, NOW)) == []


def test_a_breach_and_a_resolution_are_stamped_and_name_the_level_left() -> None:
    breach = decide(usage(461), AlertState(), POLICY, NOW)
    assert breach.state.last_notified_at == NOW
    resolved = decide(usage(300), breached("critical", escalated=True), POLICY, NOW)
    assert (resolved.events[0].previous_level, resolved.events[0].level) == ("critical", "ok")


def test_utilization_in_an_alert_is_rounded_to_one_decimal() -> None:
    policy = Policy(capacity=300)
    [breach] = decide(usage(280, billable_peak=200), AlertState(), policy, NOW).events
    assert breach.utilization_percent == 93.3


def test_a_new_run_of_failures_gets_a_new_failure_alert_id() -> None:
    policy = Policy(capacity=500, failure_alert_after=2)
    decisions = run_quietly([(None, False), (300, False), (None, False), (None, False),
                             (300, False)], policy)
    assert [names(d) for d in decisions] == [
        [], [], [], ["monitor_failing"], ["monitor_recovered"]]
    failing, recovered = decisions[3].events[0], decisions[4].events[0]
    assert failing.alert_id == recovered.alert_id == "failing-20261126T121000Z"
    assert (recovered.previous_level, recovered.level) == ("unknown", "ok")
    assert recovered.cause == "platform_unavailable"
    assert decisions[4].state.failing_since is None


def test_overage_held_and_raised_again_at_the_end_of_quiet_hours_is_sent_once() -> None:
    decisions = run_steps([(usage(400, billable_peak=505), True),
                           (usage(400, billable_peak=508), False)])
    assert names(decisions[1]) == ["overage_locked_in"]
    assert decisions[1].events[0].billing is not None
    assert decisions[1].events[0].billing.billable_peak == 508


def test_a_state_stamped_by_a_clock_running_fast_is_repaired() -> None:
    ahead = replace(breached("warning"), last_checked_at=NOW + timedelta(hours=1))
    decision = decide(usage(300), ahead, POLICY, NOW, trusted_until=NOW)
    assert names(decision) == ["resolved"]
    assert decision.state.last_checked_at == NOW
    assert decision.state.level == "ok"
    # At the trusted limit itself the stored time stands: the same check is not decided twice.
    at_limit = replace(breached("warning"), last_checked_at=NOW)
    repeated = decide(usage(300), at_limit, POLICY, NOW, trusted_until=NOW)
    assert (names(repeated), repeated.state) == ([], at_limit)
    # A state never checked needs no repair.
    fresh = decide(usage(461), AlertState(), POLICY, NOW, trusted_until=NOW)
    assert names(fresh) == ["breach"]


def test_a_repeated_failed_check_reports_unknown() -> None:
    first = decide(CheckFailure("x"), AlertState(), POLICY, NOW)
    again = decide(CheckFailure("x"), first.state, POLICY, NOW)
    assert (again.level, again.events) == ("unknown", ())


def test_missed_checks_at_the_same_instant_count_once() -> None:
    down = "Table Storage at 127.0.0.1:10002 could not be reached while saving the alert state"
    state = decide(usage(300), AlertState(), POLICY, NOW).state
    moment = NOW + timedelta(minutes=5)
    missed = [(moment, CheckFailure(down)), (moment, CheckFailure(down + " again"))]
    back = decide(CheckFailure(down), state, POLICY, NOW + timedelta(minutes=10), missed=missed)
    assert names(back) == []
    assert back.state.consecutive_failures == 2
    assert back.state.failing_since == moment


def test_a_held_reminder_is_released_with_the_latest_figures_and_the_episode_start() -> None:
    policy = Policy(capacity=300, remind_every_minutes=10)
    yesterday = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    state = AlertState(level="warning", episode_id="breach-20261125T230000Z",
                       episode_started_at=yesterday, last_notified_at=NOW)
    state = decide(usage(280, billable_peak=200), state, policy, NOW + timedelta(minutes=10),
                   quiet=True).state
    [reminder] = decide(usage(281, billable_peak=250), state, policy,
                        NOW + timedelta(minutes=15)).events
    assert reminder.event == "reminder"
    assert reminder.utilization_percent == 93.7
    assert reminder.billing is not None
    assert reminder.billing.billable_peak == 250
    assert reminder.message == ("281 of 300 concurrent licenses in use (93.7%), warning "
                                "threshold 90%; breached since 25 Nov 23:00 UTC")


def test_a_warning_threshold_of_zero_is_named_as_the_problem() -> None:
    with pytest.raises(ValueError, match="invalid alert policy") as raised:
        Policy(capacity=10, warning_percent=0)
    assert str(raised.value) == (
        "invalid alert policy: the warning percent must be above 0 and at most the critical "
        "percent (got warning 0, critical 95); the clear margin must be at least 0 and below "
        "the warning percent (got 5)")


def test_announced_overages_are_read_from_older_states_too() -> None:
    current = AlertState.from_dict({"overage_announced": [["2026-10-01", "502"],
                                                          ["2026-11-01", 507]]})
    assert current.overage_announced == (("2026-10-01", 502), ("2026-11-01", 507))
    older = AlertState.from_dict({"overage_period": "2026-11-01", "overage_peak": "507"})
    assert older.overage_announced == (("2026-11-01", 507),)
    assert AlertState.from_dict({"overage_period": "2026-11-01"}).overage_announced == ()
    assert AlertState.from_dict({"overage_peak": 507}).overage_announced == ()


def test_the_idle_holders_sentence_survives_json() -> None:
    with_idle = replace(usage(461), idle="12 license holders have been idle for 30 days")
    data = json.loads(json.dumps(with_idle.to_dict()))
    assert data["idle"] == "12 license holders have been idle for 30 days"
    assert Usage.from_dict(data) == with_idle
    assert Usage.from_dict({**data, "idle": None}).idle is None


def test_an_overage_completed_in_an_ended_period_says_so() -> None:
    ended = Billing("2026-10-01", 507, minutes_over_capacity=41)
    figures = replace(usage(400, billable_peak=300), earlier=(ended,))
    [overage] = decide(figures, AlertState(), POLICY, NOW).events
    assert overage.alert_id == "overage-20261001"
    assert overage.billing == ended
    assert overage.message == (
        "Billable peak of the period from 2026-10-01 (ended, its last minutes measured now) is "
        "507 concurrent licenses, 7 over the 500 purchased; 41 minutes over capacity in the "
        "period")


def test_a_held_reminder_released_after_the_level_fell_names_the_level_now() -> None:
    policy = Policy(capacity=500, remind_every_minutes=10)
    start = breached("critical", escalated=True, notified=NOW - timedelta(minutes=60))
    held = decide(usage(480), start, policy, NOW, quiet=True).state
    [reminder] = decide(usage(440), held, policy, NOW + timedelta(minutes=5)).events
    assert (reminder.event, reminder.level, reminder.previous_level) == (
        "reminder", "warning", "warning")


def test_an_ended_period_without_overage_does_not_hide_the_current_one() -> None:
    figures = replace(usage(400, billable_peak=507, minutes_over=41),
                      earlier=(Billing("2026-10-01", 480),))
    [overage] = decide(figures, AlertState(), POLICY, NOW).events
    assert overage.alert_id == "overage-20261101"


def test_a_breach_names_the_idle_license_holders() -> None:
    idle = "12 license holders have been idle for 30 days"
    [breach] = decide(replace(usage(461), idle=idle), AlertState(), POLICY, NOW).events
    assert breach.message == ("461 of 500 concurrent licenses in use (92.2%), warning "
                              f"threshold 90%; {idle}")
