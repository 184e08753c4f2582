"""The license_check orchestrator: check id, token, measure, evaluate, notify, metrics.

The measurement is one activity: its three reads (aggregates, details pages, roster) run in
parallel inside it, so every figure comes from one roster rebuilt at most once, and every
Genesys request of a check goes through one process's request budget.

Every activity works under the check's deadline (CHECK_TIMEOUT_SECONDS from checked_at, see
license_monitor.deadline) and returns by then: a slow step fails the check as "unknown".
"""

from __future__ import annotations

import re
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from license_monitor import deadline
from license_monitor.times import format_check_time

bp = df.Blueprint()

ORCHESTRATOR = "license_check"

# Whole-activity retries (the Genesys client already retried each request briefly); none once
# the check's deadline has passed.
MEASURE_RETRY = df.RetryOptions(
    first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=2)
STATE_RETRY = df.RetryOptions(
    first_retry_interval_in_milliseconds=2_000, max_number_of_attempts=3)


_WORKER_EXCEPTION = re.compile(r"^\s*Exception: (?P<type>[\w.]+): (?P<message>.+)$")

# Failures a whole-activity retry cannot mend: the Genesys client already retried them
# (Unavailable, RateLimited: their message counts its attempts and seconds, and a second round
# would make that count wrong), or trying again gets the same answer (AuthError,
# PermissionDenied). One retry layer per failure.
NOT_RETRIED = frozenset({"Unavailable", "RateLimited", "AuthError", "PermissionDenied"})
_WORKER_STACK = re.compile(r"^\s*Stack:")
_ACTIVITY_PREFIX = re.compile(r"^Activity function '[^']*' failed:\s*")


def call_with_retry(
    context: df.DurableOrchestrationContext, name: str, retry: df.RetryOptions, payload: Any,
) -> Generator[Any, Any, Any]:
    """call_activity_with_retry, except that a check past its deadline is not tried again.

    A later attempt would fail at once, and with the wrong reason: the first step it reached,
    not the step that was slow. Pauses between attempts are durable timers.
    """
    attempt = 1
    while True:
        try:
            return (yield context.call_activity(name, payload))
        except Exception as err:
            if (attempt >= retry.max_number_of_attempts
                    or activity_message(err).startswith(deadline.PASSED)
                    or activity_error_type(err) in NOT_RETRIED):
                raise
        pause = timedelta(milliseconds=retry.first_retry_interval_in_milliseconds)
        yield context.create_timer(context.current_utc_datetime + pause)
        attempt += 1


def activity_error_type(error: Exception) -> str | None:
    """The class name of the exception an activity raised ("Unavailable"), when it says."""
    for line in str(error).splitlines():
        match = _WORKER_EXCEPTION.match(line)
        if match:
            return match.group("type").rpartition(".")[2]
    return None


def activity_message(error: Exception) -> str:
    """The activity's own message out of the failure Durable hands back.

    In Azure the text reads "Activity function 'x' failed: Result: Failure\\nException:
    AuthError: <message>\\nStack: ..." (the SDK appends the details): take <message>, every
    line of it up to "Stack:" (a ConfigError lists one setting problem a line).
    """
    text = str(error)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _WORKER_EXCEPTION.match(line)
        if match:
            message = [match.group("message").strip()]
            for more in lines[index + 1:]:
                if _WORKER_STACK.match(more):
                    break
                message.append(more.rstrip())
            return "\n".join(message).strip()
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = _ACTIVITY_PREFIX.sub("", lines[0]) if lines else ""
    return first or type(error).__name__


@bp.orchestration_trigger(context_name="context")
def license_check(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """One check. Deterministic: time from the history, no settings, no I/O, no token."""
    request = context.get_input(expected_type=dict) or {}
    check = {
        "checked_at": format_check_time(context.current_utc_datetime),
        "dry_run": bool(request.get("dry_run")),
    }
    measurement: dict[str, Any] | None = None
    failure: str | None = None
    try:
        # A random id from an activity (an orchestrator has none of its own that two checks
        # in the same second could not share): evaluate knows its own retries by it.
        started = yield from call_with_retry(context, "begin_check", STATE_RETRY, check)
        check["check_id"] = started["check_id"]
        yield from call_with_retry(context, "acquire_token", MEASURE_RETRY, check)
        measurement = yield from call_with_retry(context, "measure_usage", MEASURE_RETRY, check)
    except Exception as err:  # a failed measurement is a result ("unknown"), not a crash
        failure = activity_message(err)

    try:
        verdict = yield from call_with_retry(
            context, "evaluate", STATE_RETRY,
            {**check, "measurement": measurement, "failure": failure})
    except Exception as err:
        # Storage is down: nothing can be decided or claimed; report it and change nothing.
        reason = failure or activity_message(err)
        context.set_custom_status({"checked_at": check["checked_at"], "level": "unknown"})
        output: dict[str, Any] = {"checked_at": check["checked_at"], "level": "unknown",
                                  "error": reason, "events": [], "notifications": []}
    else:
        context.set_custom_status(verdict["status"])
        deliveries: list[dict[str, Any]] = []
        if verdict["notifications"]:
            deliveries = yield context.task_all([
                context.call_activity("notify", {**notification, "checked_at": check["checked_at"]})
                for notification in verdict["notifications"]
            ])
        output = {**verdict["report"], "notifications": deliveries}
    if not check["dry_run"]:
        # One point per metric per check: no retry (a retried send could count twice).
        yield context.call_activity("record_metrics", output)
    return output
