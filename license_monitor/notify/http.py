"""One JSON POST to an alert receiver with brief retries; errors name only the receiver's host."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from license_monitor.notify import DeliveryError, host_of

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY_SECONDS = 30.0
DEFAULT_TIMEOUT = (5.0, 10.0)  # connect, read: every outbound request has one (DESIGN.md §12)
# An error detail a service sends back is shown only when it looks like an error code
# ('invalid_payload', 'ErrorAccessDenied'): free text could quote what it was sent.
_SAFE_DETAIL = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")


def should_retry(status: int) -> bool:
    """Whether an HTTP answer is worth another attempt (timed out, throttled or server-side).

    Any other answer is the receiver refusing what we send (a deleted webhook, a revoked key,
    a payload it does not accept): trying again would get the same answer.
    """
    return status in (408, 429) or 500 <= status <= 599


def retry_delay(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before attempt `attempt + 1`: Retry-After when given, else 1, 2, 4 ..."""
    delay = float(2 ** (attempt - 1))
    if retry_after is not None:
        # An HTTP-date Retry-After is not worth parsing: keep the exponential delay then.
        with contextlib.suppress(ValueError):
            delay = max(0.0, float(retry_after))
    return min(delay, MAX_RETRY_DELAY_SECONDS)


def safe_detail(text: str | None) -> str:
    """' (code)' when `text` is a bare error code, else ''."""
    if text is None:
        return ""
    text = text.strip()
    return f" ({text})" if _SAFE_DETAIL.match(text) else ""


def error_code(response_text: str) -> str | None:
    """The error code of a JSON error body ({"error": {"code"}} or {"error": "code"}), if any."""
    try:
        body = json.loads(response_text)
    except ValueError:
        return response_text.strip() or None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("code")
    if error is None:
        error = body.get("status")  # PagerDuty: {"status": "invalid event", ...}
    return None if error is None else str(error)


def post_json(
    url: str,
    body: Mapping[str, Any] | bytes,
    *,
    session: requests.Session,
    what: str,
    notification_id: str,
    headers: Mapping[str, str] | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str]:
    """POST `body` as JSON to `url`; return (status, response text) of the 2xx answer.

    429, 5xx and connection errors are retried briefly (`attempts` in all), honouring
    Retry-After; any other answer fails at once.

    Raises:
        DeliveryError: naming `what` and the URL's host, never its path, query or headers.
    """
    host = host_of(url)
    data = body if isinstance(body, bytes) else json.dumps(
        body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sent_headers = {"Content-Type": "application/json", "User-Agent": "concurrent-license-monitor"}
    sent_headers.update(headers or {})
    problem = f"{what} at {host} was not tried"
    status: int | None = None
    for attempt in range(1, max(1, attempts) + 1):
        retry_after: str | None = None
        try:
            # No redirects: a redirect would carry the body (and a bearer token) to a host
            # nobody configured.
            response = session.post(
                url, data=data, headers=sent_headers, timeout=timeout, allow_redirects=False
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            problem = f"{what} at {host} could not be reached ({type(err).__name__})"
            status = None
        except requests.RequestException as err:
            # `from None`: requests' messages quote the whole URL, path and all.
            raise DeliveryError(f"the URL of {what} for {host} is not usable "
                                f"({type(err).__name__})") from None
        else:
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
            text = response.text
            response.close()
            if 200 <= status < 300:
                logger.info("%s: %s delivered to %s (HTTP %d)", notification_id, what, host,
                            status)
                return status, text
            problem = f"{what} at {host} answered HTTP {status}{safe_detail(error_code(text))}"
            if not should_retry(status):
                raise DeliveryError(problem, status=status, retryable=False)
        if attempt < attempts:
            delay = retry_delay(attempt, retry_after)
            logger.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                notification_id, problem, delay, attempt, attempts,
            )
            sleep(delay)
    raise DeliveryError(f"{problem}, after {attempts} attempts", status=status, retryable=True)
