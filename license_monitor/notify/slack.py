"""Slack channel: an incoming webhook message, `text` (the notification fallback) plus `blocks`.

The webhook URL is the secret (its path): only its host is ever logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests

from license_monitor.notify import Notification
from license_monitor.notify.http import post_json
from license_monitor.notify.message import AlertMessage, compose

# Slack's documented block limits.
MAX_HEADER = 150
MAX_SECTION = 3_000
MAX_FIELDS = 10
MAX_FIELD = 2_000


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def slack_message(message: AlertMessage, alert_id: str) -> dict[str, Any]:
    """The incoming-webhook body."""
    blocks: list[dict[str, Any]] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": _clip(message.title, MAX_HEADER)}},
        {"type": "section",
         "text": {"type": "mrkdwn", "text": _clip(escape(message.line), MAX_SECTION)}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": _clip(f"*{escape(title)}*\n{escape(value)}", MAX_FIELD)}
            for title, value in message.facts[:MAX_FIELDS]]},
    ]
    if message.link:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Run the manual check"},
            "url": message.link}]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": escape(f"alert {alert_id}")}]})
    return {"text": _clip(escape(message.line), MAX_SECTION), "blocks": blocks}


def deliver(
    target: Mapping[str, Any],
    notification: Notification,
    *,
    session: requests.Session,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Channel entry point: target {"url", "org_name", "link"}."""
    url = target.get("url")
    if not url:
        raise ValueError("the Slack channel needs an incoming webhook URL (SLACK_WEBHOOK_URL)")
    message = compose(notification.payload, org_name=target.get("org_name"),
                      link=target.get("link"))
    body = slack_message(message, str(notification.payload.get("alert_id", "")))
    post_json(str(url), body, session=session, what="the Slack webhook",
              notification_id=notification.id, sleep=sleep)
