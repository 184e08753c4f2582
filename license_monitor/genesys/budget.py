"""A client-side request budget: at most N requests in any rolling 60-second window."""

from __future__ import annotations

import bisect
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

WINDOW_SECONDS = 60.0
# Background work (the roster refresh) may hold at most this share of the window: the rest
# stays free for checks, which then never wait behind a refresh.
BACKGROUND_SHARE = 1 / 3

_BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "background_requests", default=False)


def in_background() -> bool:
    """True for code running inside `background()` (a refresh's requests)."""
    return _BACKGROUND.get()


@contextmanager
def background() -> Iterator[None]:
    """Requests sent inside (and in context-copying thread pools started inside) yield to
    checks: at most BACKGROUND_SHARE of the window is theirs."""
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
        self._background: list[float] = []  # the background ones among them

    def _forget_before(self, now: float) -> None:
        for times in (self._granted, self._background):
            del times[:bisect.bisect_right(times, now - WINDOW_SECONDS)]

    @property
    def background_limit(self) -> int:
        """How many background requests the window may hold (at least 1)."""
        return max(1, int(self.per_minute * BACKGROUND_SHARE))

    def acquire(self) -> float:
        """Wait until one more request fits in the window, record it, and return its time.

        A background request (inside `background()`) also waits while the window holds
        `background_limit` background requests.
        """
        background = in_background()
        while True:
            with self._lock:
                now = self._clock()
                self._forget_before(now)
                waits = []
                if len(self._granted) >= self.per_minute:
                    waits.append(self._granted[len(self._granted) - self.per_minute])
                if background and len(self._background) >= self.background_limit:
                    waits.append(
                        self._background[len(self._background) - self.background_limit])
                if not waits:
                    bisect.insort(self._granted, now)
                    if background:
                        bisect.insort(self._background, now)
                    return now
                wait = max(waits) + WINDOW_SECONDS - now
            # Sleep outside the lock so other threads can still see the window; they re-check.
            self._sleep(max(wait, 0.0))

    def settle(self, granted_at: float) -> None:
        """Count the request granted at `granted_at` from now on: its answer has come back."""
        with self._lock:
            now = self._clock()
            for times in (self._granted, self._background):
                index = bisect.bisect_left(times, granted_at)
                if index < len(times) and times[index] == granted_at:
                    del times[index]
                    bisect.insort(times, max(now, granted_at))

    def __repr__(self) -> str:
        return f"RequestBudget(per_minute={self.per_minute})"
