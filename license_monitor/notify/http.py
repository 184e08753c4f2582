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
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from license_monitor import deadline
from license_monitor.notify import DeliveryError, host_of

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY_SECONDS = 10.0  # a longer Retry-After ends this check's tries (the next retries)
DEFAULT_TIMEOUT = (5.0, 10.0)  # connect, read: every outbound request has one (DESIGN.md §12)
ATTEMPTS = 3
# A POST whose answer did not come in time may have arrived all the same: it is sent once more
# at most within a check. One that never connected was not sent and is retried like a 5xx.
MAX_UNANSWERED_SENDS = 2
# The longest one delivery may take: every attempt waiting out both its timeouts, and the
# longest pause between attempts (3 x 15 + 2 x 10 = 65 s). The notify activity holds a delivery
# to it, whatever the channel (e-mail's token requests included), so a claim's lease follows.
ONE_TRY_SECONDS = sum(DEFAULT_TIMEOUT)  # what a delivery gets past the check's deadline
LONGEST_DELIVERY_SECONDS = (
    ATTEMPTS * sum(DEFAULT_TIMEOUT) + (ATTEMPTS - 1) * MAX_RETRY_DELAY_SECONDS)
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


def surely_not_sent(err: requests.RequestException) -> bool:
    """Whether a failed POST never reached the receiver: no connection was ever made.

    A read timeout, or a connection dropped while waiting for the answer, may come after the
    receiver got the whole request.
    """
    if isinstance(err, requests.ConnectTimeout | requests.exceptions.SSLError
                  | requests.exceptions.ProxyError):
        return True
    if isinstance(err, requests.Timeout):
        return False
    reason = err.args[0] if err.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def timeout_within_deadline(timeout: tuple[float, float]) -> tuple[float, float]:
    """`timeout` cut to the time the check has left (unchanged outside a check)."""
    limit = deadline.current()
    return timeout if limit is None else deadline.bounded(timeout, limit.work_left())


def post_json(
    url: str,
    body: Mapping[str, Any] | bytes,
    *,
    session: requests.Session,
    what: str,
    notification_id: str,
    headers: Mapping[str, str] | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, str]:
    """POST `body` as JSON to `url`; return (status, response text) of the 2xx answer.

    429, 5xx and connection errors are retried briefly (`attempts` in all), honouring
    Retry-After; any other answer fails at once. A POST left unanswered (read timeout) is sent
    MAX_UNANSWERED_SENDS times at most. Under a check's deadline each try's timeouts are cut
    to the time left, and no try starts, nor pause, that would end past it.

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
    unanswered = 0
    limit = deadline.current()
    for attempt in range(1, max(1, attempts) + 1):
        if limit is not None and limit.work_left() <= 0:
            raise _deadline_passed(limit, what, host, problem, attempt - 1)
        retry_after: str | None = None
        try:
            # No redirects: a redirect would carry the body (and a bearer token) to a host
            # nobody configured.
            response = session.post(
                url, data=data, headers=sent_headers, timeout=timeout_within_deadline(timeout),
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            status = None
            if surely_not_sent(err):
                problem = f"{what} at {host} could not be reached ({type(err).__name__})"
            else:
                unanswered += 1
                problem = f"{what} at {host} did not answer in time ({type(err).__name__})"
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
        if unanswered >= MAX_UNANSWERED_SENDS:
            # Each of those may have arrived: the receiver de-duplicates on the id, but a
            # slow receiver must not get a copy per attempt.
            raise DeliveryError(
                f"{problem}, sent {unanswered} times without an answer; not sent again in "
                "this check", status=status, retryable=True)
        if attempt < attempts:
            delay = retry_delay(attempt, retry_after)
            if limit is not None and delay >= limit.work_left():
                raise _deadline_passed(limit, what, host, problem, attempt)
            logger.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                notification_id, problem, delay, attempt, attempts,
            )
            sleep(delay)
    raise DeliveryError(f"{problem}, after {attempts} attempts", status=status, retryable=True)


def _deadline_passed(
    limit: deadline.Deadline, what: str, host: str, problem: str, tries: int
) -> DeliveryError:
    """The error of a delivery the check's deadline ended (the last try's problem kept)."""
    message = str(limit.passed(f"{what} at {host}"))
    if tries:
        message += f"; last try: {problem}"
    return DeliveryError(message, retryable=True)
