"""The license_check orchestrator driven through the Durable SDK's replay engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from function_app import app
from license_monitor.genesys import auth
from orchestrators.replay_host import (
    EXECUTION_COMPLETED,
    ORCHESTRATOR_STARTED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TIMER_CREATED,
    registry_of,
)
from tests.fixtures.monitor import WEBHOOK_SECRET, World


def episodes_of(history: list[dict[str, Any]]) -> list[list[str]]:
    """Activity names scheduled in each episode, in order."""
    episodes: list[list[str]] = []
    for event in history:
        if event["EventType"] == ORCHESTRATOR_STARTED:
            episodes.append([])
        elif event["EventType"] == TASK_SCHEDULED:
            episodes[-1].append(event["Name"])
    return [names for names in episodes if names]


def test_a_check_is_token_measure_evaluate_notify_metrics(
    world: Callable[..., World],
) -> None:
    w = world()
    w.at_level(93)
    output = w.check()
    assert output["level"] == "warning"
    history = w.results[-1].history
    assert episodes_of(history) == [
        ["begin_check"],  # the check's id, kept in the history for its retried steps
        ["acquire_token"],
        ["measure_usage"],  # aggregates, details and roster in parallel, inside it
        ["evaluate"],
        ["notify"],
        ["record_metrics"],
    ]


def test_a_failing_activity_attempt_is_retried_then_succeeds(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(50)
    failures = {"measure_usage": 1}

    def fail_once(name: str, payload: Any) -> None:
        if failures.get(name):
            failures[name] -= 1
            raise RuntimeError("Genesys Cloud was unavailable (HTTP 503)")

    output = w.check(host=w.host(activity_hook=fail_once))
    assert output["level"] == "ok"
    assert output["concurrent"]["peak"]["total"] == 50
    result = w.results[-1]
    assert result.activity_calls.count("measure_usage") == 2
    kinds = [event["EventType"] for event in result.history]
    assert kinds.count(TASK_FAILED) == 1
    assert kinds.count(TIMER_CREATED) == 1  # the Durable retry timer


def test_a_measurement_that_keeps_failing_reports_unknown_and_keeps_the_alert(
    world: Callable[..., World],
) -> None:
    w = world()
    w.at_level(96)
    assert w.check()["level"] == "critical"
    w.simulator.forbid("/api/v2/analytics/users/details", "analytics:userDetail:view")
    w.at_level(10)
    output = w.check()
    assert output["level"] == "unknown"
    assert "analytics:userDetail:view" in output["error"]
    assert output["events"] == []
    assert "concurrent" not in output
    assert w.services.state is not None
    assert w.services.state.alerts.load_state().level == "critical"
    assert w.results[-1].custom_status["level"] == "unknown"


def test_replaying_the_recorded_history_gives_the_same_result(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(97)
    output = w.check()
    result = w.results[-1]
    # Feed the whole stored history (as the extension would after a restart) to the function
    # the decorator registered: it must reach the same end without scheduling anything new.
    history = [e for e in result.history if e["EventType"] != EXECUTION_COMPLETED]
    history = [dict(e, IsPlayed=True) for e in history[:-1]] + [history[-1]]
    handle = registry_of(app).orchestrators["license_check"]
    state = json.loads(handle(json.dumps({
        "history": history, "instanceId": result.instance_id, "isReplaying": True,
        "parentInstanceId": None, "input": json.dumps({"dry_run": False, "trigger": "test"}),
        "upperSchemaVersion": 1, "upperSchemaVersionNew": 2,
    })))
    assert state["isDone"] is True
    assert state["output"] == output
    assert state["customStatus"] == result.custom_status


def test_no_history_output_or_status_holds_a_secret(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(99)
    w.check()
    result = w.results[-1]
    stored = json.dumps([result.history, result.output, result.custom_status])
    settings = w.settings

    def no_fetch() -> auth.AccessToken:
        raise AssertionError("the check should have left a token in the process cache")

    token = auth.cached_token(
        auth.cache_key(settings.login_url, settings.client_id, settings.client_secret), no_fetch)
    assert len(token) > 8
    for secret in (token, settings.client_secret, WEBHOOK_SECRET, "s3cr3t-path"):
        assert secret not in stored
    assert result.output["notifications"][0]["delivered"] is True


def test_custom_status_shows_the_figures_in_the_portal(world: Callable[..., World]) -> None:
    w = world()
    w.at_level(91)
    w.check()
    status = w.results[-1].custom_status
    assert status == {
        "checked_at": "2026-11-26T08:20:00.000Z", "level": "warning", "concurrent": 91,
        "capacity": 100, "utilization_percent": 91.0, "billable_peak": 0,
    }


def test_a_check_stores_a_small_history(world: Callable[..., World]) -> None:
    w = world(pool_users=1000)
    w.at_level(800)
    w.check()
    assert w.results[-1].history_bytes < 16 * 1024


def test_an_evaluation_retried_after_its_write_committed_sends_its_breach_at_once(
    world: Callable[..., World],
) -> None:
    w = world()
    w.at_level(93)
    evaluate = registry_of(app).activities["evaluate"]
    lost: list[dict[str, Any]] = []

    def answer_lost_once(name: str, payload: Any) -> None:
        if name == "evaluate" and not lost:
            # The first attempt runs to the end (its claims are written), then the worker dies
            # before Durable hears back: Durable runs the activity again with the same input.
            lost.append(evaluate(payload))
            raise RuntimeError("the worker was recycled before it answered")

    output = w.check(host=w.host(activity_hook=answer_lost_once))
    w.at_level(93, minutes_later=5)  # inside the 10-minute claim lease
    later = w.check()

    assert w.results[-2].activity_calls.count("evaluate") == 2
    assert [n["id"] for n in lost[0]["notifications"]] == [
        "breach-20261126T082000Z:breach:webhook"]
    # The retry returned the first attempt's decision and claim: sent in this check, once.
    assert output["events"] == ["breach"] == lost[0]["report"]["events"]
    assert output["notifications"] == [{"event": "breach", "channel": "webhook",
                                        "delivered": True}]
    assert later["events"] == []
    assert later["notifications"] == []
    assert [item.body["event"] for item in w.receiver.delivered] == ["breach"]
    assert w.receiver.delivered[0].body["occurred_at"] == "2026-11-26T08:20:00Z"


def test_racing_checks_in_the_same_second_still_claim_each_notification_once(
    world: Callable[..., World],
) -> None:
    w = world()
    w.at_level(93)
    first, second = w.check(), w.check()  # two orchestrations, the same checked_at

    assert first["events"] == ["breach"]
    assert (second["events"], second["notifications"]) == ([], [])
    assert [item.body["event"] for item in w.receiver.delivered] == ["breach"]
