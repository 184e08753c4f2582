"""The retry policy: which failures are retried, and how long each wait is."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from license_monitor.genesys.retry import RetryPolicy, backoff_seconds, should_retry

POLICY = RetryPolicy(
    max_attempts=5, max_total_seconds=60, base_seconds=1, max_backoff_seconds=30, jitter_seconds=0.5
)


class FixedRandom(random.Random):
    """A Random whose uniform() always returns the low end plus a fixed share of the range."""

    def __init__(self, share: float) -> None:
        super().__init__(0)
        self.share = share

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.share


@pytest.mark.parametrize(
    ("status", "attempt", "expected"),
    [
        (429, 1, True),
        (502, 1, True),
        (503, 1, True),
        (504, 4, True),
        (None, 1, True),  # connection error or timeout: no response at all
        (503, 5, False),  # the fifth try was the last
        (429, 5, False),
        (None, 5, False),
        (500, 1, False),  # a server bug, not a transient condition
        (400, 1, False),
        (401, 1, False),  # handled by token renewal, not by the retry policy
        (403, 1, False),
        (404, 1, False),
        (200, 1, False),
    ],
)
def test_should_retry(status: int | None, attempt: int, expected: bool) -> None:
    assert should_retry(status, attempt, POLICY) is expected


def test_single_attempt_policy_never_retries() -> None:
    assert not should_retry(503, 1, RetryPolicy(max_attempts=1))


@pytest.mark.parametrize(
    ("attempt", "retry_after", "status", "share", "expected"),
    [
        (1, 7.0, 429, 0.0, 7.0),  # Retry-After honoured exactly with no jitter
        (1, 7.0, 429, 1.0, 7.5),  # plus at most jitter_seconds
        (3, 2.0, 503, 0.0, 2.0),  # a 503 with Retry-After honours it too
        (1, 0.0, 429, 0.5, 0.25),
        (1, 120.0, 429, 1.0, 120.0),  # a longer Retry-After than the cap is still honoured
        (1, None, 429, 0.0, 3.0),  # 429 without Retry-After: 3 s
        (4, None, 429, 1.0, 3.5),  # ... whatever the attempt
        (1, None, 503, 0.0, 1.0),  # 5xx: exponential from base_seconds
        (2, None, 502, 0.0, 2.0),
        (3, None, 504, 0.0, 4.0),
        (4, None, None, 0.0, 8.0),  # connection errors back off the same way
        (4, None, 503, 1.0, 8.5),
        (6, None, 503, 0.0, 30.0),  # 32 s capped at max_backoff_seconds
        (60, None, 503, 1.0, 30.0),
    ],
)
def test_backoff_seconds(
    attempt: int, retry_after: float | None, status: int | None, share: float, expected: float
) -> None:
    wait = backoff_seconds(attempt, retry_after, FixedRandom(share), POLICY, status=status)
    assert wait == pytest.approx(expected)


def test_jitter_spreads_waits_for_the_same_retry_after() -> None:
    rng = random.Random(7)
    waits = {backoff_seconds(1, 5.0, rng, POLICY, status=429) for _ in range(20)}
    assert len(waits) > 1
    assert all(5.0 <= wait <= 5.5 for wait in waits)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_seconds": -1}, {"max_total_seconds": -1}, {"jitter_seconds": -1}],
)
def test_nonsense_policies_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    max_total_seconds=st.floats(0, 600),
    base_seconds=st.floats(0, 10),
    max_backoff_seconds=st.floats(0, 120),
    jitter_seconds=st.floats(0, 5),
)


@given(
    policy=policies,
    attempt=st.integers(1, 1000),
    retry_after=st.one_of(st.none(), st.floats(0, 3600)),
    status=st.sampled_from([429, 502, 503, 504, None]),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_never_exceeds_the_cap_and_honours_retry_after(
    policy: RetryPolicy,
    attempt: int,
    retry_after: float | None,
    status: int | None,
    seed: int,
) -> None:
    wait = backoff_seconds(attempt, retry_after, random.Random(seed), policy, status=status)
    assert wait >= 0
    if retry_after is None:
        assert wait <= policy.max_backoff_seconds
    else:
        # Never sooner than the server asked; never later than the cap, unless it asked for more.
        assert wait >= retry_after
        assert wait <= max(retry_after, policy.max_backoff_seconds)
        assert wait <= retry_after + policy.jitter_seconds
