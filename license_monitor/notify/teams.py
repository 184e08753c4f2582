"""Microsoft Teams channel: an Adaptive Card POSTed to a Workflows ("Teams webhook") URL.

The classic Office 365 connectors are retired; Workflows accept Adaptive Cards only, in the
message envelope below. The URL carries its secret (the signature in the query): only its host
is ever logged.
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

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
MAX_TEXT = 2_000  # a card stays far below the ~28 KB a Workflows webhook accepts
MAX_FACT = 400
_COLORS = {"bad": "Attention", "warning": "Warning", "good": "Good"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def card_message(message: AlertMessage) -> dict[str, Any]:
    """The Workflows webhook body: a message with one Adaptive Card attachment."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _clip(message.subject, MAX_FACT), "size": "Medium",
         "weight": "Bolder", "wrap": True, "color": _COLORS.get(message.tone, "Default")},
        {"type": "TextBlock", "text": _clip(message.line, MAX_TEXT), "wrap": True},
        {"type": "FactSet", "facts": [
            {"title": title, "value": _clip(value, MAX_FACT)} for title, value in message.facts]},
    ]
    actions: list[dict[str, Any]] = []
    if message.link:
        actions.append({"type": "Action.OpenUrl", "title": "Run the manual check",
                        "url": message.link})
    return {
        "type": "message",
        "attachments": [{
            "contentType": CARD_TYPE,
            "contentUrl": None,
            "content": {
                "$schema": CARD_SCHEMA,
                "type": "AdaptiveCard",
                "version": CARD_VERSION,
                "msteams": {"width": "Full"},
                "body": body,
                "actions": actions,
            },
        }],
    }


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
        raise ValueError("the Teams channel needs a Workflows webhook URL (TEAMS_WEBHOOK_URL)")
    message = compose(notification.payload, org_name=target.get("org_name"),
                      link=target.get("link"))
    post_json(str(url), card_message(message), session=session, what="the Teams webhook",
              notification_id=notification.id, sleep=sleep)
