"""Alert channels: the notification record, the delivery error and dispatch by channel name.

Channels: webhook (generic, signed), teams (Workflows + Adaptive Card), slack (incoming
webhook), pagerduty (Events API v2), email (Microsoft Graph sendMail, token by msal).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests


class DeliveryError(Exception):
    """A notification could not be delivered; the message names only the receiver's host."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class Notification:
    """One event for one channel, claimed in state before it is sent.

    `id` is stable across retries ("{alert_id}:{event}:{channel}"); receivers may use it (the
    webhook-id header) or the payload's alert_id to drop duplicates.
    """

    id: str
    channel: str
    payload: dict[str, Any]

    @property
    def event(self) -> str:
        """The event name (breach, escalation, resolved, ...)."""
        return str(self.payload.get("event", ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"id": self.id, "channel": self.channel, "payload": self.payload}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """Inverse of to_dict."""
        return cls(id=str(data["id"]), channel=str(data["channel"]), payload=dict(data["payload"]))


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
