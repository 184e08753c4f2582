"""Starters: the timer and the manual HTTP check start license_check as a singleton per org."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

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


def singleton_id(org_key: str) -> str:
    """The fixed instance id of the scheduled/manual check of one org."""
    return f"license-check-{org_key}"


async def _is_busy(client: df.DurableOrchestrationClient, instance_id: str) -> bool:
    status = await client.get_status(instance_id)
    return status is not None and status.runtime_status in BUSY


async def start_singleton(
    client: df.DurableOrchestrationClient, instance_id: str, trigger: str
) -> bool:
    """Start the check unless one is Pending/Running/Suspended; True when this call started it."""
    if await _is_busy(client, instance_id):
        logger.info("A license check is already running (%s); %s start skipped",
                    instance_id, trigger)
        return False
    try:
        await client.start_new(ORCHESTRATOR, instance_id, {"dry_run": False, "trigger": trigger})
    except Exception as err:
        # Lost the race: another starter created the instance between our status read and start.
        if await _is_busy(client, instance_id):
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
    await start_singleton(client, singleton_id(settings.org_key), "timer")


@bp.route(route="license-check", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def manual_check(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """POST /api/license-check[?dryRun=true]: run a check now; the result or a 202 status link."""
    try:
        settings = runtime.settings()
    except ConfigError as err:
        return func.HttpResponse(
            json.dumps({"level": "unknown", "error": str(err)}), status_code=500,
            mimetype="application/json")
    dry_run = req.params.get("dryRun", "").lower() in ("1", "true", "yes")
    if dry_run:
        # A dry run writes no state, so it needs no singleton: it never races a real check.
        instance_id = f"license-check-dry-run-{uuid.uuid4().hex}"
        await client.start_new(ORCHESTRATOR, instance_id, {"dry_run": True, "trigger": "http"})
    else:
        instance_id = singleton_id(settings.org_key)
        await start_singleton(client, instance_id, "http")
    wait_ms = settings.manual_check_wait_seconds * 1000
    if wait_ms <= 0:
        return client.create_check_status_response(req, instance_id)
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=wait_ms,
        retry_interval_in_milliseconds=min(500, wait_ms))


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
