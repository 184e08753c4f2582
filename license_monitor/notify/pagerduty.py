"""PagerDuty channel: Events API v2, one incident per alert through a stable dedup_key.

breach / escalation / reminder trigger the episode's key (escalation with a higher severity
updates the open incident), resolved resolves it; monitor_failing triggers its own key with
severity error and monitor_recovered resolves it; overage_locked_in triggers the period's key
with severity info; channel_rejected (another channel refuses our messages) triggers its own key
with severity warning; forecast_breach triggers the day's key (forecast-YYYYMMDD) with severity
warning and is never resolved by the monitor. The routing key is a secret: it is in the body
only, never logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests

from license_monitor.notify import Notification
from license_monitor.notify.http import post_json
from license_monitor.notify.message import compose

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1_024
RESOLVING = frozenset({"resolved", "monitor_recovered"})
_SEVERITY = {"monitor_failing": "error", "overage_locked_in": "info", "channel_rejected": "warning",
             "forecast_breach": "warning"}
DETAIL_KEYS = (
    "message", "level", "previous_level", "concurrent", "capacity", "utilization_percent",
    "agents", "admins", "window_distinct", "billing", "cause", "alert_id", "forecast",
)
_COMPONENT = {"monitor_failing": "license-monitor", "overage_locked_in": "billing",
              "channel_rejected": "license-monitor", "forecast_breach": "forecast"}


def severity_of(payload: Mapping[str, Any]) -> str:
    """PagerDuty severity: the level for usage alerts, error for a failing monitor, info else."""
    event = str(payload.get("event"))
    if event in _SEVERITY:
        return _SEVERITY[event]
    level = payload.get("level")
    return str(level) if level in ("warning", "critical") else "info"


def event_body(
    payload: Mapping[str, Any], routing_key: str, *, source: str,
    org_name: str | None = None, link: str | None = None,
) -> dict[str, Any]:
    """The Events API v2 body for one notification payload."""
    dedup_key = str(payload["alert_id"])
    event = str(payload.get("event"))
    if event in RESOLVING:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    message = compose(dict(payload), org_name=org_name, link=link)
    details = {key: payload.get(key) for key in DETAIL_KEYS if payload.get(key) is not None}
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": message.line[:MAX_SUMMARY],
            "source": source,
            "severity": severity_of(payload),
            "timestamp": str(payload.get("occurred_at")),
            "component": _COMPONENT.get(event, "concurrent-licenses"),
            "group": "genesys-cloud",
            "class": event,
            "custom_details": details,
        },
        "client": "Concurrent License Monitor for Genesys Cloud",
    }
    if link:
        body["links"] = [{"href": link, "text": "Run the manual check"}]
    return body


def deliver(
    target: Mapping[str, Any],
    notification: Notification,
    *,
    session: requests.Session,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Channel entry point: target {"routing_key", "url", "source", "org_name", "link"}."""
    routing_key = target.get("routing_key")
    if not routing_key:
        raise ValueError("the PagerDuty channel needs a routing key (PAGERDUTY_ROUTING_KEY)")
    body = event_body(notification.payload, str(routing_key),
                      source=str(target.get("source") or "genesys-cloud"),
                      org_name=target.get("org_name"), link=target.get("link"))
    post_json(str(target.get("url") or DEFAULT_EVENTS_URL), body, session=session,
              what="PagerDuty", notification_id=notification.id, sleep=sleep)
