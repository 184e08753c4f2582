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
from license_monitor.deadline import applying
from license_monitor.notify.http import LONGEST_DELIVERY_SECONDS, ONE_TRY_SECONDS
from license_monitor.times import parse_time

bp = df.Blueprint()

# Each activity works under the check's deadline (CHECK_TIMEOUT_SECONDS from checked_at): its
# requests end by then, so it returns by then, and a retried attempt fails at once.


@bp.activity_trigger(input_name="request")
def begin_check(request: dict) -> dict:
    """A new id for this check (kept in the history: retried steps keep it)."""
    return check.begin_check()


@bp.activity_trigger(input_name="request")
def acquire_token(request: dict) -> dict:
    """Fail fast on bad credentials or an unreachable login host."""
    services = runtime.services()
    step = services.deadline(parse_time(request["checked_at"]), "signing in")
    with applying(step):
        return check.acquire_token(services)


@bp.activity_trigger(input_name="request")
def measure_usage(request: dict) -> dict:
    """Window activity, exact concurrency and the agent/admin split, from one roster."""
    services = runtime.services()
    check_request = check.CheckRequest.from_dict(request)
    with applying(services.deadline(check_request.checked_at, "measuring usage")):
        return check.measure_usage(services, check_request)


@bp.activity_trigger(input_name="request")
def evaluate(request: dict) -> dict:
    """Billing minutes, alert decision and claimed notifications, in Table Storage."""
    services = runtime.services()
    check_request = check.CheckRequest.from_dict(request)
    # Records the check's outcome, a failed one too: storage gets the grace past the deadline.
    step = services.deadline(check_request.checked_at, "evaluating", records=True)
    with applying(step):
        return check.evaluate(services, check_request, request.get("measurement"),
                              request.get("failure"))


@bp.activity_trigger(input_name="notification")
def notify(notification: dict) -> dict:
    """Deliver one claimed notification on its channel and record the outcome."""
    services = runtime.services()
    # A claimed alert gets one try even past the deadline (the alert that checks are failing
    # comes from checks that ran out of time); one delivery never takes longer than
    # LONGEST_DELIVERY_SECONDS (a claim's lease follows from it); recording its outcome gets
    # the grace past that.
    checked_at = notification.get("checked_at")
    step = services.deadline(
        parse_time(checked_at) if checked_at else services.clock(), "delivering alerts",
        records=True, at_least=ONE_TRY_SECONDS, at_most=LONGEST_DELIVERY_SECONDS)
    with applying(step):
        return check.deliver(services, notification)


@bp.activity_trigger(input_name="report")
def record_metrics(report: dict) -> dict:
    """Send the check's figures to Application Insights (when configured); never fails."""
    return check.record_metrics(runtime.services(), report)
