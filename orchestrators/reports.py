"""HTTP routes that answer questions about users (function key): who made up a day's peak."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, date, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from license_monitor import peak_users, runtime
from license_monitor.genesys.errors import GenesysError
from license_monitor.settings import ConfigError

logger = logging.getLogger(__name__)
bp = df.Blueprint()


def _json(body: Any, status_code: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status_code,
                             mimetype="application/json")


def _day_and_level(req: func.HttpRequest) -> tuple[date, int | None]:
    """The `day` and optional `level` parameters; ValueError with one sentence when wrong."""
    text = req.params.get("day", "")
    if not text:
        raise ValueError("name the day: ?day=YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"day {text[:40]!r} is not a date (YYYY-MM-DD)") from None
    raw_level = req.params.get("level")
    if raw_level is None or raw_level == "":
        return day, None
    if not raw_level.isdigit() or int(raw_level) < 1:
        raise ValueError(f"level {raw_level[:20]!r} is not a whole number of at least 1")
    return day, int(raw_level)


@bp.route(route="peak-users", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def peak_users_of_day(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/peak-users?day=YYYY-MM-DD[&level=N]: the `peak-users --day --json` answer."""
    try:
        services = runtime.services()
    except ConfigError as err:
        return _json({"error": str(err)}, 500)
    now = datetime.now(UTC)
    try:
        day, level = _day_and_level(req)
        span = peak_users.day_span(day, now)
    except ValueError as err:
        return _json({"error": str(err)}, 400)
    try:
        # Minutes of paged reads: off the event loop, within the shared request budget.
        result = await asyncio.to_thread(peak_users.peak_users, services, span, level=level,
                                         now=now)
    except GenesysError as err:
        logger.warning("peak-users for %s failed: %s", day.isoformat(), err)
        return _json({"error": str(err)}, 502)
    return _json(result, 200)
