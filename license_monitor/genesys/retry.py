"""Pure retry policy for Genesys Cloud requests: which failures to retry and how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass

# The statuses Genesys documents as transient (the .NET SDK's RetryConfiguration does the same).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

# Genesys' own SDKs wait 3 s when a 429 arrives without Retry-After.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the client retries transient failures.

    max_attempts counts every try (the first one included); max_total_seconds caps the sum of
    all retry waits of one request; a wait that would cross it ends the retries instead.
    """

    max_attempts: int = 5
    max_total_seconds: float = 60.0
    base_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    # Added to every wait so parallel workers that got the same Retry-After do not retry in step.
    jitter_seconds: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.max_total_seconds, self.base_seconds, self.max_backoff_seconds) < 0:
            raise ValueError("retry durations must not be negative")
        if self.jitter_seconds < 0:
            raise ValueError("jitter_seconds must not be negative")


def should_retry(status: int | None, attempt: int, policy: RetryPolicy) -> bool:
    """Whether a request whose `attempt`-th try (1-based) failed with `status` may be tried again.

    A status of None means no response at all (connection error or timeout): retried too.
    """
    if attempt >= policy.max_attempts:
        return False
    return status is None or status in RETRYABLE_STATUSES


def backoff_seconds(
    attempt: int,
    retry_after: float | None,
    rng: random.Random,
    policy: RetryPolicy,
    *,
    status: int | None = None,
) -> float:
    """Seconds to wait after the `attempt`-th failed try (1-based).

    Retry-After is honoured (never waited less), plus jitter; a 429 without it waits 3 s plus
    jitter; anything else backs off exponentially from base_seconds with jitter. The result never
    exceeds max_backoff_seconds unless the server itself asked for a longer Retry-After.
    """
    jitter = rng.uniform(0.0, policy.jitter_seconds)
    if retry_after is not None and retry_after >= 0:
        return min(retry_after + jitter, max(retry_after, policy.max_backoff_seconds))
    if status == 429:
        wait = DEFAULT_RATE_LIMIT_WAIT_SECONDS + jitter
    else:
        # Exponent capped so a huge attempt number cannot overflow the float.
        exponential = policy.base_seconds * 2.0 ** min(max(attempt - 1, 0), 32)
        wait = exponential + jitter
    return min(wait, policy.max_backoff_seconds)
