"""A client-side request budget: at most N requests in any rolling 60-second window."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

WINDOW_SECONDS = 60.0


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

    def acquire(self) -> float:
        """Wait until one more request fits in the window, record it, and return its time."""
        while True:
            with self._lock:
                now = self._clock()
                self._forget_before(now)
                if len(self._granted) < self.per_minute:
                    bisect.insort(self._granted, now)
                    return now
                wait = self._granted[0] + WINDOW_SECONDS - now
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
