"""The deadline of one check (CHECK_TIMEOUT_SECONDS), as every outbound request sees it.

An activity states the deadline for the work it does (`applying`); the Genesys client, the
Table Storage client and the channel POSTs read it (`current`), cut each request's timeouts to
the time left and stop retrying when it has passed, so the activity itself returns by then: in
Azure an activity the orchestrator stopped waiting for would run on to its end.

The deadline travels in a context variable, so it reaches every request of the activity
without a parameter through the measurement code; thread pools that serve a check copy it to
their threads (`ContextThreadPoolExecutor`).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

# Past the deadline a check does no more work, but it still records its outcome (that it
# failed, a delivery's result): those Table Storage writes get this much longer. A healthy
# store answers in milliseconds; one that swallows requests is cut off here.
RECORD_GRACE_SECONDS = 5.0


# How a DeadlinePassed message begins: the orchestrator does not retry such a failure.
PASSED = "the check passed its "


class DeadlinePassed(Exception):  # noqa: N818 - it names the event, like StorageUnavailable
    """The check passed its deadline; the message names the step and the service that was slow."""


@dataclass(frozen=True)
class Deadline:
    """When the work of one check must end, and when recording its outcome must end.

    Genesys Cloud requests and channel deliveries end by `work_until`; Table Storage requests
    by `record_until` (the same, or RECORD_GRACE_SECONDS later for the steps that record).
    """

    seconds: float  # the check's deadline as configured, for messages
    step: str  # what the check is doing: "measuring usage", "delivering alerts"
    work_until: float  # on `clock`
    record_until: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def of_check(
        cls, checked_at: datetime, seconds: float, now: datetime, step: str, *,
        records: bool = False, at_least: float | None = None, at_most: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Deadline:
        """The deadline of the check that started at `checked_at`, as seen at wall time `now`.

        The time left never exceeds `seconds`: a clock behind the orchestration's gives no
        more than a whole check. The work gets `at_least` seconds from now even past the
        deadline, `at_most` at the most; with `records`, storage writes get
        RECORD_GRACE_SECONDS more than the work.
        """
        left = min((checked_at - now).total_seconds() + seconds, seconds)
        if at_least is not None:
            left = max(left, at_least)
        if at_most is not None:
            left = min(left, at_most)
        start = clock()
        grace = RECORD_GRACE_SECONDS if records else 0.0
        return cls(seconds=seconds, step=step, work_until=start + left,
                   record_until=start + left + grace, clock=clock)

    def work_left(self) -> float:
        """Seconds until the work must end (negative once passed)."""
        return self.work_until - self.clock()

    def record_left(self) -> float:
        """Seconds until recording must end (negative once passed)."""
        return self.record_until - self.clock()

    def passed(self, service: str, step: str | None = None) -> DeadlinePassed:
        """The error for a step of this check that ran out of time at `service`."""
        return DeadlinePassed(
            f"{PASSED}{self.seconds:g} s deadline while {step or self.step} "
            f"({service})")


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "check_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the check this code runs for; None outside a check (CLI tools, tests)."""
    return _CURRENT.get()


# Building a roster costs minutes of the request budget at 50,000 users (about 1,400 requests
# at 300 a minute). Cut off at the check's deadline it would be lost, and every check after
# would start it again and fail the same way: it gets a deadline of its own, from its start.
ROSTER_BUILD_SECONDS = 900.0


@contextmanager
def allowing(seconds: float, step: str) -> Iterator[None]:
    """Run the enclosed work under a deadline of `seconds` from now if that is later."""
    current = _CURRENT.get()
    if current is None:
        yield
        return
    until = current.clock() + seconds
    longer = replace(current, step=step, work_until=max(current.work_until, until),
                     record_until=max(current.record_until, until))
    token = _CURRENT.set(longer)
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextmanager
def at_most(seconds: float, step: str) -> Iterator[None]:
    """Run the enclosed work under a deadline of `seconds` from now if that is sooner (for a
    step that must never cost the check its result, such as reconciling the presence gauge)."""
    current = _CURRENT.get()
    if current is None:
        yield
        return
    until = current.clock() + seconds
    shorter = replace(current, step=step, work_until=min(current.work_until, until),
                      record_until=min(current.record_until, until))
    token = _CURRENT.set(shorter)
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextmanager
def applying(deadline: Deadline | None) -> Iterator[None]:
    """Run the enclosed code under `deadline` (None: no deadline)."""
    token = _CURRENT.set(deadline)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def bounded(timeout: tuple[float, float], left: float) -> tuple[float, float]:
    """(connect, read) timeouts cut to `left` seconds (never below a millisecond)."""
    left = max(left, 0.001)
    return min(timeout[0], left), min(timeout[1], left)


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (its deadline)."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Schedule fn(*args, **kwargs) in a copy of the caller's context."""
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)
