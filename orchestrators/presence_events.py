"""POST /api/presence-events: presence events feed the real-time gauge; a rise to the warning
line starts the exact check (the same singleton license_check the timer starts) at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from license_monitor import gauge, runtime
from license_monitor.settings import ConfigError
from license_monitor.state import StorageUnavailable
from orchestrators.starters import singleton_id, start_singleton

logger = logging.getLogger(__name__)
bp = df.Blueprint()

# The cached roster as this process read it: one read a minute, not two requests per event.
ROSTERS = gauge.RosterMemo(ttl_seconds=60)


def _json(body: Any, status_code: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status_code,
                             mimetype="application/json")


def _ingest(services: runtime.Services, events: list[gauge.PresenceEvent],
            now: datetime) -> gauge.Ingested:
    settings = services.settings
    state = services.state
    if state is None:
        raise StorageUnavailable("Table Storage is not configured (STATE_CONNECTION).")
    table = state.table
    roster = ROSTERS.get((table.client.url, table.client.table_name, table.org),
                         state.roster.load)
    return gauge.ingest(
        state.gauge, state.alerts, roster, events, capacity=settings.license_capacity,
        warning_percent=settings.warning_percent, now=now,
        min_interval=timedelta(seconds=settings.gauge_check_min_interval_seconds))


@bp.route(route="presence-events", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def presence_events(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """One presence event or an array of up to 1,000: 202 when applied, 400 when refused."""
    try:
        settings = runtime.settings()
    except ConfigError as err:
        return _json({"error": str(err)}, 500)
    try:
        events = gauge.parse_events(req.get_body())
    except gauge.BadEvents as err:
        return _json({"error": str(err)}, 400)
    try:
        # Storage calls block: keep them off the event loop other requests share.
        outcome = await asyncio.to_thread(_ingest, runtime.services(), events, datetime.now(UTC))
    except StorageUnavailable as err:
        # 503: EventBridge API destinations retry it (with backoff), as do data actions.
        return _json({"error": str(err)}, 503)
    body = outcome.to_dict()
    body["check_started"] = False
    if outcome.claim is not None:
        state = runtime.services().state
        try:
            body["check_started"] = await start_singleton(
                client, singleton_id(settings.client_key), "gauge")
        finally:
            if not body["check_started"] and state is not None:
                # A check is running already: give the claim back so the next rise retries.
                await asyncio.to_thread(state.gauge.release_claim, outcome.claim)
        if body["check_started"]:
            logger.warning("The presence gauge reached %s of %s licenses: exact check started",
                           body["gauge"]["value"], settings.license_capacity)
    return _json(body, 202)
