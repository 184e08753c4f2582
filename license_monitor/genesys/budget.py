"""A client-side request budget: at most N requests in any rolling 60-second window."""

from __future__ import annotations

import bisect
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

WINDOW_SECONDS = 60.0
# Background work (the roster refresh) may hold at most this share of the window: the rest
# stays free for checks, which then never wait behind a refresh.
BACKGROUND_SHARE = 1 / 3
# Once the background lane holds this share of its limit, it is paced: one request every
# WINDOW_SECONDS / limit seconds. A long refresh then never sends its whole share at once as
# its earlier requests leave the window (beside a check starting then), and a small org's
# roster, well under it, is still read at once.
BACKGROUND_BURST_SHARE = 1 / 2

# With other processes on the same OAuth client (state/budget_shares.py): renew this
# process's share this often while sending, ask again this often while it is used up, and
# give back what the window no longer holds once nothing was sent for IDLE_SECONDS.
RENEW_SECONDS = 5.0
RETRY_SECONDS = 1.0
IDLE_SECONDS = 2.0
REST_EVERY_SECONDS = 15.0


class Coordinator(Protocol):
    """Splits the budget with other processes (state.budget_shares.BudgetShares)."""

    def allowance(self, in_window: int, *, resting: bool = False) -> int:
        """How many requests this process's window may hold; `in_window`: how many it does.
        `resting`: it sends nothing more without asking again."""


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
        self._coordinator: Coordinator | None = None
        self._allowed = per_minute  # this process's share of per_minute
        self._renewed_at: float | None = None  # when the share was last renewed
        self._resting = False  # the last renewal gave back what the window no longer held
        self._last_grant: float | None = None
        self._stop = threading.Event()
        self._rester: threading.Thread | None = None

    def share_with(self, coordinator: Coordinator) -> None:
        """Split the budget with the other processes of the same OAuth client from now on."""
        with self._lock:
            self._coordinator = coordinator
            self._renewed_at = None

    def close(self) -> None:
        """Give back what the window no longer holds (a CLI run that ends)."""
        self._stop.set()
        with self._lock:
            if self._coordinator is None or self._renewed_at is None:
                return  # never took a share
            self._forget_before(self._clock())
            if self._resting and self._allowed <= len(self._granted):
                return  # already given back
            self._allowed = self._coordinator.allowance(len(self._granted), resting=True)
            self._resting = True

    def _limit(self, now: float) -> int:
        """The requests this process's window may hold now (under the lock): all of
        per_minute, or its share, renewed when due or when used up."""
        if self._coordinator is None:
            return self.per_minute
        renewed = self._renewed_at
        if (renewed is None or self._resting or now - renewed >= RENEW_SECONDS
                or (len(self._granted) >= self._allowed and now - renewed >= RETRY_SECONDS)):
            # Held under the lock: the window's count must not change while it is published.
            self._allowed = min(self.per_minute, self._coordinator.allowance(len(self._granted)))
            self._renewed_at, self._resting = now, False
            if self._rester is None or not self._rester.is_alive():
                self._rester = threading.Thread(
                    target=self._rest_loop, name="request-budget-rest", daemon=True)
                self._rester.start()
        return self._allowed

    def _rest_loop(self) -> None:
        """Once nothing was sent for IDLE_SECONDS, give back what the window no longer holds,
        again every REST_EVERY_SECONDS until it holds nothing; then end."""
        while not self._stop.wait(IDLE_SECONDS / 2):
            with self._lock:
                now = self._clock()
                coordinator, last, renewed = self._coordinator, self._last_grant, self._renewed_at
                if coordinator is None or renewed is None:
                    return
                if last is not None and now - last < IDLE_SECONDS:
                    continue
                if now - renewed < (REST_EVERY_SECONDS if self._resting else IDLE_SECONDS):
                    continue
                self._forget_before(now)
                self._allowed = coordinator.allowance(len(self._granted), resting=True)
                self._renewed_at, self._resting = now, True
                if not self._granted:
                    self._rester = None
                    return  # all given back; the next request asks again

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
        `background_limit` background requests, and is paced once it holds half of them.
        """
        background = in_background()
        while True:
            with self._lock:
                now = self._clock()
                self._forget_before(now)
                limit = self._limit(now)
                background_limit = max(1, int(limit * BACKGROUND_SHARE))
                not_before = []  # when each rule lets this request go
                if len(self._granted) >= limit:
                    # A share of 0 waits for a renewal: until the window's oldest leaves.
                    not_before.append(WINDOW_SECONDS + (
                        self._granted[len(self._granted) - limit] if limit
                        else (self._granted[-1] if self._granted else now)))
                if background:
                    held = len(self._background)
                    if held >= background_limit:
                        not_before.append(
                            self._background[held - background_limit] + WINDOW_SECONDS)
                    if held >= max(1, int(background_limit * BACKGROUND_BURST_SHARE)):
                        not_before.append(
                            self._background[-1] + WINDOW_SECONDS / background_limit)
                if all(at <= now for at in not_before):
                    bisect.insort(self._granted, now)
                    if background:
                        bisect.insort(self._background, now)
                    self._last_grant = now
                    return now
                wait = max(not_before) - now
                if self._coordinator is not None:
                    wait = min(wait, RETRY_SECONDS)  # the share may grow at the next renewal
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
