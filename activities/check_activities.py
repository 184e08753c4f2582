"""Activities of license_check: thin adapters from JSON to one domain call and back.

Inputs and outputs are annotated with the bare `dict` class: the Functions worker refuses to
index an app whose binding annotations are neither classes nor typing generics, and
`dict[str, Any]` is neither on Python 3.11.

The Genesys token never crosses these boundaries: each activity gets the client (and its
per-process token cache) from license_monitor.runtime. Inputs and outputs are small JSON:
figures and versions, never user lists, because Durable stores them in the task hub history.
"""

from __future__ import annotations

import azure.durable_functions as df

from license_monitor import check, runtime

bp = df.Blueprint()


@bp.activity_trigger(input_name="request")
def begin_check(request: dict) -> dict:
    """A new id for this check (kept in the history: retried steps keep it)."""
    return check.begin_check()


@bp.activity_trigger(input_name="request")
def acquire_token(request: dict) -> dict:
    """Fail fast on bad credentials or an unreachable login host."""
    return check.acquire_token(runtime.services())


@bp.activity_trigger(input_name="request")
def measure_usage(request: dict) -> dict:
    """Window activity, exact concurrency and the agent/admin split, from one roster."""
    return check.measure_usage(runtime.services(), check.CheckRequest.from_dict(request))


@bp.activity_trigger(input_name="request")
def evaluate(request: dict) -> dict:
    """Billing minutes, alert decision and claimed notifications, in Table Storage."""
    return check.evaluate(runtime.services(), check.CheckRequest.from_dict(request),
                          request.get("measurement"), request.get("failure"))


@bp.activity_trigger(input_name="notification")
def notify(notification: dict) -> dict:
    """Deliver one claimed notification on its channel and record the outcome."""
    return check.deliver(runtime.services(), notification)


@bp.activity_trigger(input_name="report")
def record_metrics(report: dict) -> dict:
    """Send the check's figures to Application Insights (when configured); never fails."""
    return check.record_metrics(runtime.services(), report)
