"""Generic webhook channel: POST the event JSON, signed (Standard Webhooks) when a secret is set."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests

from license_monitor.notify import Notification
from license_monitor.notify.http import (
    DEFAULT_TIMEOUT,
    post_json,
    retry_delay,
    should_retry,
)
from license_monitor.notify.message import compose

__all__ = ["deliver", "retry_delay", "send_webhook", "should_retry", "signature_headers"]

KEY_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: base64-decoded after a 'whsec_' prefix, else its UTF-8 bytes."""
    if not secret.startswith(KEY_PREFIX):
        return secret.encode("utf-8")
    try:
        return base64.b64decode(secret[len(KEY_PREFIX) :], validate=True)
    except binascii.Error:
        # Never echo the secret, not even a part of it.
        raise ValueError(
            "the webhook secret starts with 'whsec_' but the rest is not valid base64"
        ) from None


def signature_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers: id, timestamp and 'v1,<base64 HMAC-SHA256(id.timestamp.body)>'."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii"),
    }


def send_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str | None,
    session: requests.Session,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    webhook_id: str,
    now: datetime,
) -> None:
    """POST `payload` as JSON to `url`; 2xx = delivered.

    429, 5xx and connection errors are retried briefly (`attempts` in all); any other answer
    fails at once. The webhook-id header (the notification id) is the same on every attempt.

    Raises:
        DeliveryError: naming only the URL's host, never its path or the secret.
    """
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = signature_headers(secret, webhook_id, int(now.timestamp()), body) if secret else {}
    post_json(url, body, session=session, what="the webhook", notification_id=webhook_id,
              headers=headers, timeout=timeout, attempts=attempts, sleep=sleep)


def body_of(payload: dict[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook body: the event payload plus the one-line summary, org label and link."""
    message = compose(payload, org_name=target.get("org_name"), link=target.get("link"))
    return {**payload, "summary": message.line, "org": target.get("org_name") or None,
            "link": message.link}


def deliver(
    target: Mapping[str, Any],
    notification: Notification,
    *,
    session: requests.Session,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Channel entry point: target {"url", "secret" (optional), "org_name", "link"}."""
    url = target.get("url")
    if not url:
        raise ValueError("the webhook channel needs a target URL (ALERT_WEBHOOK_URL)")
    send_webhook(
        str(url),
        body_of(notification.payload, target),
        secret=target.get("secret") or None,
        session=session,
        sleep=sleep,
        webhook_id=notification.id,
        now=now,
    )
