"""Generic webhook channel: POST the event JSON, signed (Standard Webhooks) when a secret is set."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests

from license_monitor.notify import DeliveryError, Notification, host_of

logger = logging.getLogger(__name__)

KEY_PREFIX = "whsec_"
MAX_RETRY_DELAY_SECONDS = 30.0


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


def should_retry(status: int) -> bool:
    """Whether an HTTP answer is worth another attempt (throttled or a server-side problem)."""
    return status == 429 or 500 <= status <= 599


def retry_delay(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before attempt `attempt + 1`: Retry-After when given, else 1, 2, 4 ..."""
    delay = float(2 ** (attempt - 1))
    if retry_after is not None:
        # An HTTP-date Retry-After is not worth parsing: keep the exponential delay then.
        with contextlib.suppress(ValueError):
            delay = max(0.0, float(retry_after))
    return min(delay, MAX_RETRY_DELAY_SECONDS)


def send_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str | None,
    session: requests.Session,
    timeout: tuple[float, float] = (5, 10),
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
    host = host_of(url)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "concurrent-license-monitor"}
    if secret:
        headers.update(signature_headers(secret, webhook_id, int(now.timestamp()), body))
    problem = f"the webhook at {host} was not tried"
    status: int | None = None
    for attempt in range(1, max(1, attempts) + 1):
        retry_after: str | None = None
        try:
            # No redirects: a redirect would carry the signed body to a host nobody configured.
            response = session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            problem = f"the webhook at {host} could not be reached ({type(err).__name__})"
            status = None
        except requests.RequestException as err:
            # `from None`: requests' messages quote the whole URL, path and all.
            raise DeliveryError(
                f"the webhook URL for {host} is not usable ({type(err).__name__})"
            ) from None
        else:
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            response.close()
            if 200 <= status < 300:
                logger.info("Webhook %s delivered to %s (HTTP %d)", webhook_id, host, status)
                return
            problem = f"the webhook at {host} answered HTTP {status}"
            if not should_retry(status):
                raise DeliveryError(problem, status=status, retryable=False)
        if attempt < attempts:
            delay = retry_delay(attempt, retry_after)
            logger.warning(
                "Webhook %s: %s; retrying in %.1f s (attempt %d of %d)",
                webhook_id, problem, delay, attempt, attempts,
            )
            sleep(delay)
    raise DeliveryError(f"{problem}, after {attempts} attempts", status=status, retryable=True)


def deliver(
    target: Mapping[str, Any],
    notification: Notification,
    *,
    session: requests.Session,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Channel entry point: target {"url": ..., "secret": optional}."""
    url = target.get("url")
    if not url:
        raise ValueError("the webhook channel needs a target URL (ALERT_WEBHOOK_URL)")
    send_webhook(
        str(url),
        notification.payload,
        secret=target.get("secret") or None,
        session=session,
        sleep=sleep,
        webhook_id=notification.id,
        now=now,
    )
