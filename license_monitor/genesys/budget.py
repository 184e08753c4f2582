"""A client-side request budget: at most N requests in any rolling 60-second window."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RequestBudget:
    """Thread-safe rolling-window limiter; acquire() blocks via the injected sleep until allowed."""

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
        self._granted: deque[float] = deque()

    def acquire(self) -> float:
        """Wait until one more request fits in the window, record it, and return its time."""
        while True:
            with self._lock:
                now = self._clock()
                while self._granted and now - self._granted[0] >= WINDOW_SECONDS:
                    self._granted.popleft()
                if len(self._granted) < self.per_minute:
                    self._granted.append(now)
                    return now
                wait = self._granted[0] + WINDOW_SECONDS - now
            # Sleep outside the lock so other threads can still see the window; they re-check.
            self._sleep(max(wait, 0.0))

    def __repr__(self) -> str:
        return f"RequestBudget(per_minute={self.per_minute})"
