"""The in-process host drives orchestrators through the SDK's replay engine like the extension."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from orchestrators.license_check import activity_message
from orchestrators.replay_host import NonDeterminismError, ReplayHost

app = df.DFApp()
calls: list[str] = []
flaky: dict[str, int] = {}


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    numbers = context.get_input()["numbers"]
    retry = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
    squares = yield context.task_all(
        [context.call_activity_with_retry("square", retry, n) for n in numbers])
    total = yield context.call_activity("add", squares)
    context.set_custom_status({"total": total})
    return {"squares": squares, "total": total, "at": context.current_utc_datetime.isoformat()}


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    try:
        yield context.call_activity("explode", None)
    except Exception as err:
        return {"caught": str(err)}
    return {"caught": None}


wall_clock_toggle = {"value": 0}


@app.orchestration_trigger(context_name="context")
def nondeterministic(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    wall_clock_toggle["value"] += 1  # deliberately not deterministic
    name = "square" if wall_clock_toggle["value"] == 1 else "add"
    yield context.call_activity(name, 2)
    yield context.call_activity("square", 3)


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    calls.append(f"square:{n}")
    remaining = flaky.get(str(n), 0)
    if remaining:
        flaky[str(n)] = remaining - 1
        raise RuntimeError(f"transient failure for {n}")
    return n * n


@app.activity_trigger(input_name="values")
def add(values: Any) -> int:
    calls.append("add")
    return sum(values) if isinstance(values, list) else int(values)


@app.activity_trigger(input_name="unused")
def explode(unused: Any) -> None:
    raise ValueError("Genesys Cloud was unavailable (HTTP 503)")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=10)
        return self.now


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    flaky.clear()


def test_fan_out_runs_every_activity_and_then_the_follow_up() -> None:
    result = ReplayHost(app, clock=Clock()).run("fan_out", {"numbers": [1, 2, 3]})
    assert result.runtime_status == "Completed"
    assert result.output["squares"] == [1, 4, 9]
    assert result.output["total"] == 14
    assert result.custom_status == {"total": 14}
    assert sorted(calls[:3]) == ["square:1", "square:2", "square:3"]
    assert calls[3] == "add"
    # Time inside the orchestrator comes from the history, not the wall clock.
    assert result.output["at"].startswith("2026-11-26T12:00:00")


def test_retry_then_success_follows_the_extension_history_shape() -> None:
    flaky["2"] = 2
    result = ReplayHost(app, clock=Clock()).run("fan_out", {"numbers": [1, 2]})
    assert result.output["squares"] == [1, 4]
    assert calls.count("square:2") == 3
    kinds = [e["EventType"] for e in result.history]
    assert kinds.count(6) == 2  # two TaskFailed
    assert kinds.count(10) == kinds.count(11) == 2  # a retry timer per failure


def test_an_activity_failing_every_attempt_reaches_the_orchestrator_as_an_exception() -> None:
    flaky["5"] = 10
    result = ReplayHost(app, clock=Clock()).run("fan_out", {"numbers": [5]})
    assert result.runtime_status == "Failed"
    assert "transient failure for 5" in (result.error or "")
    assert calls.count("square:5") == 3


def test_caught_activity_failure_is_worded_as_in_azure() -> None:
    result = ReplayHost(app, clock=Clock()).run("catches")
    lines = result.output["caught"].splitlines()
    assert lines[0] == "Activity function 'explode' failed: Result: Failure"
    assert lines[1] == "Exception: ValueError: Genesys Cloud was unavailable (HTTP 503)"
    assert lines[2].startswith("Stack: ")


@pytest.mark.parametrize(("text", "expected"), [
    ("Activity function 'acquire_token' failed: Result: Failure\n"
     "Exception: AuthError: Genesys Cloud rejected the client id or secret at login.x (401)\n"
     "Stack:   File ...\n \n AuthError",
     "Genesys Cloud rejected the client id or secret at login.x (401)"),
    ("Activity function 'evaluate' failed: the alert state is unavailable \n details",
     "the alert state is unavailable"),
    ("plain message \n details", "plain message"),
])
def test_the_orchestrator_reads_the_activity_message_out_of_the_failure(
    text: str, expected: str,
) -> None:
    assert activity_message(Exception(text)) == expected


def test_replaying_the_recorded_history_gives_the_same_actions() -> None:
    result = ReplayHost(app, clock=Clock()).run("fan_out", {"numbers": [3, 4]})
    assert result.episodes >= 3
    stored = json.loads(json.dumps(result.history))
    assert stored == result.history


def test_non_deterministic_orchestrator_is_caught() -> None:
    wall_clock_toggle["value"] = 0
    with pytest.raises(NonDeterminismError):
        ReplayHost(app, clock=Clock()).run("nondeterministic")
