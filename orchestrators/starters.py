"""Starters: the timer and the manual HTTP check start license_check as a singleton per org."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import azure.durable_functions as df
import azure.functions as func

from license_monitor import runtime
from license_monitor.settings import ConfigError
from orchestrators.license_check import ORCHESTRATOR

logger = logging.getLogger(__name__)
bp = df.Blueprint()

BUSY = frozenset({
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Suspended,
})
FINISHED = [
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
]

HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
# Flex Consumption's functionTimeout when host.json sets none (or -1, unbounded).
DEFAULT_FUNCTION_TIMEOUT = timedelta(minutes=30)
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)$")


def function_timeout(host_json: Path) -> timedelta:
    """host.json's functionTimeout ("[d.]hh:mm:ss"), or the Flex Consumption default."""
    try:
        text = json.loads(host_json.read_text(encoding="utf-8")).get("functionTimeout")
    except (OSError, ValueError, AttributeError):
        return DEFAULT_FUNCTION_TIMEOUT
    match = _TIMESPAN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return DEFAULT_FUNCTION_TIMEOUT
    return timedelta(days=int(match["days"] or 0), hours=int(match["h"]),
                     minutes=int(match["m"]), seconds=float(match["s"]))


# Every activity of a check ends within functionTimeout: an instance still busy after twice
# that is stuck (a lost worker, a wedged task hub) and must not block checks for ever.
STUCK_AFTER = 2 * function_timeout(HOST_JSON)
# Termination is asynchronous: the instance stays Running until the task hub processes it,
# and until then the extension refuses start_new. Wait this long, then leave it to the next start.
TERMINATION_WAIT_SECONDS = 10.0
TERMINATION_POLL_SECONDS = 0.25


# The instance ids are per region + OAuth client, not per organization: a starter runs before
# any Genesys call, so it cannot know the org id without a table read on every timer tick, and
# the ids of the status route stay as they were. Two clients of one org running at once (an
# overlap during a rotation) are safe all the same: their state is the org's, and every state
# write is conditional on the ETag read.
def singleton_id(client_key: str) -> str:
    """The fixed instance id of the scheduled/manual check of one OAuth client."""
    return f"license-check-{client_key}"


def dry_run_id(client_key: str) -> str:
    """The fixed instance id of one client's dry run: at most one at a time, like the real check."""
    return f"license-check-dry-run-{client_key}"


def _is_busy(status: df.DurableOrchestrationStatus | None) -> bool:
    return status is not None and bool(status) and status.runtime_status in BUSY


def _age(status: df.DurableOrchestrationStatus, now: datetime) -> timedelta | None:
    created = status.created_time
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return now - created


async def _terminate_stuck(
    client: df.DurableOrchestrationClient, instance_id: str, age: timedelta
) -> bool:
    """Terminate a stuck instance and wait until it has stopped; True when it has."""
    logger.warning(
        "License check %s has been busy for %.0f min (over %.0f min, twice functionTimeout): "
        "terminating it and starting a new check", instance_id, age.total_seconds() / 60,
        STUCK_AFTER.total_seconds() / 60)
    await client.terminate(instance_id, f"stuck for {age.total_seconds() / 60:.0f} min")
    deadline = time.monotonic() + TERMINATION_WAIT_SECONDS
    while True:
        if not _is_busy(await client.get_status(instance_id)):
            return True
        if time.monotonic() >= deadline:
            logger.warning(
                "License check %s is not terminated yet after %.0f s; the next start retries",
                instance_id, TERMINATION_WAIT_SECONDS)
            return False
        await asyncio.sleep(TERMINATION_POLL_SECONDS)


async def start_singleton(
    client: df.DurableOrchestrationClient, instance_id: str, trigger: str, *,
    dry_run: bool = False, now: datetime | None = None,
) -> bool:
    """Start the check unless one is busy (and not stuck); True when this call started it.

    Busy is Pending/Running/Suspended. A busy instance older than STUCK_AFTER is terminated and
    replaced by a new check.
    """
    status = await client.get_status(instance_id)
    if status is not None and _is_busy(status):
        age = _age(status, now or datetime.now(UTC))
        if age is None or age <= STUCK_AFTER:
            logger.info("A license check is already running (%s); %s start skipped",
                        instance_id, trigger)
            return False
        if not await _terminate_stuck(client, instance_id, age):
            return False
    try:
        await client.start_new(ORCHESTRATOR, instance_id, {"dry_run": dry_run, "trigger": trigger})
    except Exception as err:
        # Lost the race: another starter created the instance between our status read and start.
        if _is_busy(await client.get_status(instance_id)):
            logger.info("A license check started concurrently (%s); %s start skipped",
                        instance_id, trigger)
            return False
        raise RuntimeError(f"could not start the license check: {err}") from err
    logger.info("License check %s started by %s", instance_id, trigger)
    return True


@bp.timer_trigger(schedule="%MONITOR_SCHEDULE%", arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def scheduled_check(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Every MONITOR_SCHEDULE tick: one check per org, never two at once."""
    settings = runtime.settings()
    if timer.past_due:
        logger.warning("The scheduled license check is running late")
    await start_singleton(client, singleton_id(settings.client_key), "timer")


def _json(body: Any, status_code: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status_code,
                             mimetype="application/json", headers=headers)


def _settings_error(err: ConfigError) -> func.HttpResponse:
    return _json({"level": "unknown", "error": str(err)}, 500)


def _without_query(req: func.HttpRequest) -> str:
    # The caller's function key may ride in the query (code=): never echo it back.
    url = urlsplit(req.url)
    return f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"


def status_url(req: func.HttpRequest, instance_id: str) -> str:
    """Our status route for an instance, beside the POST route, without any key or query."""
    return f"{_without_query(req)}/{quote(instance_id, safe='')}"


def _accepted(req: func.HttpRequest, instance_id: str) -> func.HttpResponse:
    """202: the check goes on; poll our status route (no Durable system key in the answer)."""
    location = status_url(req, instance_id)
    return _json({"id": instance_id, "statusUri": location}, 202,
                 {"Location": location, "Retry-After": "10"})


def _finished(status: df.DurableOrchestrationStatus) -> func.HttpResponse:
    if status.runtime_status == df.OrchestrationRuntimeStatus.Completed:
        return _json(status.output, 200)
    reason = status.output if isinstance(status.output, str) else "the check did not finish"
    return _json({"level": "unknown", "error": reason,
                  "runtimeStatus": status.runtime_status.value}, 500)


@bp.route(route="license-check", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def manual_check(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """POST /api/license-check[?dryRun=true]: run a check now; the result or a 202 status link."""
    try:
        settings = runtime.settings()
    except ConfigError as err:
        return _settings_error(err)
    dry_run = req.params.get("dryRun", "").lower() in ("1", "true", "yes")
    # A dry run writes no state, so it never races a real check; but it costs Genesys requests
    # like one, so it is a singleton of its own with the same busy rule.
    make_id = dry_run_id if dry_run else singleton_id
    instance_id = make_id(settings.client_key)
    await start_singleton(client, instance_id, "http", dry_run=dry_run)
    deadline = time.monotonic() + settings.manual_check_wait_seconds
    while True:
        status = await client.get_status(instance_id)
        if status and status.runtime_status in FINISHED:
            return _finished(status)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _accepted(req, instance_id)
        await asyncio.sleep(min(0.5, remaining))


@bp.route(route="license-check/{instance_id}", methods=["GET"],
          auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def check_status(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """GET /api/license-check/{id}: a check's runtime status, custom status and output."""
    try:
        settings = runtime.settings()
    except ConfigError as err:
        return _settings_error(err)
    instance_id = req.route_params.get("instance_id", "")
    # Only this org's two checks: the route is no window onto other instances of the hub.
    ours = (singleton_id(settings.client_key), dry_run_id(settings.client_key))
    status = await client.get_status(instance_id) if instance_id in ours else None
    if not status or status.runtime_status is None:
        return _json({"error": f"no license check {instance_id!r}"}, 404)
    body = {
        "id": instance_id,
        "runtimeStatus": status.runtime_status.value,
        "createdTime": status.created_time.isoformat() if status.created_time else None,
        "lastUpdatedTime": (status.last_updated_time.isoformat()
                            if status.last_updated_time else None),
        "customStatus": status.custom_status,
        "output": status.output,
    }
    if status.runtime_status in BUSY:
        return _json(body, 202, {"Location": _without_query(req), "Retry-After": "10"})
    return _json(body, 200)


@bp.timer_trigger(schedule="0 30 3 * * *", arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def purge_history(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Daily: drop finished orchestration history and usage rows past their retention."""
    settings = runtime.settings()
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=settings.history_retention_days)
    result = await client.purge_instance_history_by(
        created_time_from=datetime(2020, 1, 1, tzinfo=UTC), created_time_to=cutoff,
        runtime_status=FINISHED)
    state = runtime.services().state
    cutoff = now - timedelta(days=settings.retention_days)
    removed = state.retention.purge_older_than(cutoff) if state else 0
    logger.info("Purged %s orchestration instance(s) and %s usage row(s)",
                result.instances_deleted, removed)
