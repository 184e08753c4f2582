"""Alert channels: the notification record, the delivery error and dispatch by channel name.

Channels: webhook (generic, signed), teams (Workflows + Adaptive Card), slack (incoming
webhook), pagerduty (Events API v2), email (Microsoft Graph sendMail, token by msal).
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests


class DeliveryError(Exception):
    """A notification could not be delivered; the message names only the receiver's host.

    `retryable` is False when the receiver refused it for good (an HTTP 4xx other than 408 and
    429, a token request with bad credentials, an unusable URL): the same message would be
    refused again, so it is not retried.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


# Each channel as people call it, and the settings to check when it refuses our messages.
CHANNEL_TITLES = {
    "webhook": "The alert webhook",
    "teams": "Microsoft Teams",
    "slack": "Slack",
    "pagerduty": "PagerDuty",
    "email": "Email (Microsoft Graph)",
}
CHANNEL_SETTINGS = {
    "webhook": "ALERT_WEBHOOK_URL",
    "teams": "TEAMS_WEBHOOK_URL",
    "slack": "SLACK_WEBHOOK_URL",
    "pagerduty": "PAGERDUTY_ROUTING_KEY and PAGERDUTY_EVENTS_URL",
    "email": "the GRAPH_* and ALERT_EMAIL_* settings",
}
_HTTP_STATUS = re.compile(r"\bHTTP \d{3}\b(?: \([^)]*\))?")


def rejection_message(channel: str, error: str) -> str:
    """One line for people: 'Slack rejects our messages: HTTP 404; check SLACK_WEBHOOK_URL'."""
    title = CHANNEL_TITLES.get(channel, channel)
    status = _HTTP_STATUS.search(error)
    # The HTTP answer says it all; other refusals (a token request, a URL) say more in words.
    detail = status.group(0) if status else error.partition("; check ")[0].rstrip(".")
    setting = CHANNEL_SETTINGS.get(channel, "its settings")
    return f"{title} rejects our messages: {detail}; check {setting}"


@dataclass(frozen=True)
class Notification:
    """One event for one channel, claimed in state before it is sent.

    `id` is stable across retries ("{alert_id}:{event}:{channel}"); receivers may use it (the
    webhook-id header) or the payload's alert_id to drop duplicates. `then` holds the same
    channel's next notifications of this check, sent after this one, in order.
    """

    id: str
    channel: str
    payload: dict[str, Any]
    then: tuple[Notification, ...] = ()

    @property
    def event(self) -> str:
        """The event name (breach, escalation, resolved, ...)."""
        return str(self.payload.get("event", ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        data: dict[str, Any] = {"id": self.id, "channel": self.channel, "payload": self.payload}
        if self.then:
            data["then"] = [notification.to_dict() for notification in self.then]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """Inverse of to_dict."""
        return cls(id=str(data["id"]), channel=str(data["channel"]), payload=dict(data["payload"]),
                   then=tuple(cls.from_dict(item) for item in data.get("then") or ()))


class ChannelSender(Protocol):
    """Delivers one notification to one target, raising DeliveryError when it cannot."""

    def __call__(
        self,
        target: Mapping[str, Any],
        notification: Notification,
        *,
        session: requests.Session,
        now: datetime,
        sleep: Callable[[float], None],
    ) -> None:
        """Send `notification` to the receiver described by `target`."""


# Channel modules are imported on first use: a run with only a webhook never imports msal.
# Each module exposes `deliver` with the ChannelSender signature.
_CHANNEL_MODULES: dict[str, str] = {
    name: f"license_monitor.notify.{name}"
    for name in ("webhook", "teams", "slack", "pagerduty", "email")
}
_SENDERS: dict[str, ChannelSender] = {}


def channel_names() -> tuple[str, ...]:
    """Names of the channels send() knows."""
    return tuple(sorted(set(_CHANNEL_MODULES) | set(_SENDERS)))


def _sender(name: str) -> ChannelSender:
    if name in _SENDERS:
        return _SENDERS[name]
    module_name = _CHANNEL_MODULES.get(name)
    if module_name is None:
        raise ValueError(
            f"there is no alert channel called {name!r}; known: {', '.join(channel_names())}"
        )
    sender: ChannelSender = importlib.import_module(module_name).deliver
    _SENDERS[name] = sender
    return sender


def send(
    channel: str,
    target: Mapping[str, Any],
    notification: Notification,
    *,
    session: requests.Session,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Deliver `notification` through the channel called `channel` to `target`.

    Raises:
        DeliveryError: the receiver refused or could not be reached (after brief retries).
        ValueError: unknown channel or unusable target configuration.
    """
    _sender(channel)(target, notification, session=session, now=now, sleep=sleep)


def host_of(url: str) -> str:
    """The host of a receiver URL, the only part safe to log (paths and queries carry secrets)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return host or "an invalid URL"
