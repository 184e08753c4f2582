"""A client-side request budget: at most N requests in any rolling 60-second window."""

from __future__ import annotations

import bisect
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

WINDOW_SECONDS = 60.0
# Background work (the roster refresh) may fill the window up to this share of the budget and
# no further: the rest stays free for checks, which then never wait behind a refresh.
BACKGROUND_SHARE = 1 / 3

_BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "background_requests", default=False)


@contextmanager
def background() -> Iterator[None]:
    """Requests sent inside (and in context-copying thread pools started inside) yield to
    checks: they are granted only while the window is under BACKGROUND_SHARE of the budget."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


class RequestBudget:
    """Thread-safe rolling-window limiter; acquire() blocks via the injected sleep until allowed.

    A request holds its place in the window from when it was granted; settle() moves that
    place to when its answer came back. The platform counts a request when it arrives, which
    is after the grant, so a window kept by grant times alone can let request N+1 reach the
    platform less than 60 s after request 1 did and be refused with 429.
    """

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"request budget must be at least 1 per minute (got {per_minute})")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._granted: list[float] = []  # ascending; at most per_minute entries

    def _forget_before(self, now: float) -> None:
        expired = bisect.bisect_right(self._granted, now - WINDOW_SECONDS)
        del self._granted[:expired]

    @property
    def background_limit(self) -> int:
        """How full the window may be when a background request is granted (at least 1)."""
        return max(1, int(self.per_minute * BACKGROUND_SHARE))

    def acquire(self) -> float:
        """Wait until one more request fits in the window, record it, and return its time.

        A background request (inside `background()`) waits until the window holds fewer than
        `background_limit` requests, whoever sent them.
        """
        limit = self.background_limit if _BACKGROUND.get() else self.per_minute
        while True:
            with self._lock:
                now = self._clock()
                self._forget_before(now)
                if len(self._granted) < limit:
                    bisect.insort(self._granted, now)
                    return now
                wait = self._granted[len(self._granted) - limit] + WINDOW_SECONDS - now
            # Sleep outside the lock so other threads can still see the window; they re-check.
            self._sleep(max(wait, 0.0))

    def settle(self, granted_at: float) -> None:
        """Count the request granted at `granted_at` from now on: its answer has come back."""
        with self._lock:
            now = self._clock()
            index = bisect.bisect_left(self._granted, granted_at)
            if index < len(self._granted) and self._granted[index] == granted_at:
                del self._granted[index]
                bisect.insort(self._granted, max(now, granted_at))

    def __repr__(self) -> str:
        return f"RequestBudget(per_minute={self.per_minute})"
