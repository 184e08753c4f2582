"""The full roster (pool and agent/admin classes) refreshed in the background, off every check.

A check needs only who is in the pool (measure.py reads the license listing when there is no
roster yet). The classes cost the users listing and the queue sweep: at 50,000 users about
1,200 requests, four minutes of the whole 300/min budget. They are read here, on a thread of
the worker process, with the budget's background lane (genesys/budget.py: at most a third of
the window, so checks never wait behind it), and stored as soon as built. One refresh at a
time per process, and across workers one at a time by a lease row in Table Storage.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

from license_monitor.deadline import ROSTER_BUILD_SECONDS
from license_monitor.deadline import current as current_deadline
from license_monitor.genesys import budget
from license_monitor.genesys.errors import GenesysError, PermissionDenied
from license_monitor.roster import Roster, load_roster
from license_monitor.state import StorageUnavailable

if TYPE_CHECKING:
    from license_monitor.runtime import Services

logger = logging.getLogger(__name__)


# How long a check without a roster (or with new hires) waits for the background build before
# it reads only the pool: a small org's roster is done by then, a large one's is not.
GRACE_SECONDS = 3.0


def grace_seconds() -> float:
    """GRACE_SECONDS, or a quarter of what is left of the check's deadline if that is less."""
    limit = current_deadline()
    if limit is None:
        return GRACE_SECONDS
    return max(0.0, min(GRACE_SECONDS, limit.work_left() / 4))


def needs_refresh(roster: Roster, now: datetime, ttl_minutes: int) -> bool:
    """True when the roster's classes are missing or older than ROSTER_TTL_MINUTES."""
    return not roster.classified or not roster.is_fresh(now, ttl_minutes)


class RosterRefresh:
    """This process's background roster refresh: started by checks, awaited by nobody but the
    CLI (which waits before exiting, so a one-off check still leaves the roster built)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._built: Roster | None = None  # what the last refresh of this process built
        self.completed = 0  # refreshes stored by this process (for tests and benchmarks)
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        """True while a refresh of this process is under way."""
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def start(self, services: Services, built_at: datetime, known: Roster | None, *,
              store: bool = True) -> bool:
        """Start a refresh unless one runs here or, per the lease, in another worker.

        `built_at` is the check's time (the roster's age counts from it); `known` the roster
        the check used, whose unresolved users the new one keeps; `store` False (a dry run)
        keeps it in this process only. Never raises: a refresh that cannot start is tried
        again by the next check.
        """
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._built = None
            lease = None
            if store and services.state is not None:
                try:
                    lease = services.state.roster.claim_refresh(time.time(), ROSTER_BUILD_SECONDS)
                except StorageUnavailable as err:
                    logger.warning("The roster refresh was not started: %s", err)
                    return False
                if lease is None:
                    logger.info("Another worker is refreshing the roster")
                    return False
            # A new thread starts with an empty context: no check's deadline follows it.
            self._thread = threading.Thread(
                target=self._run, args=(services, built_at, known, lease, store),
                name="roster-refresh", daemon=True)
            self._thread.start()
            return True

    def built(self, timeout: float) -> Roster | None:
        """The roster of the refresh under way (or just done), if done within `timeout` s."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return None
        thread.join(max(timeout, 0.0))
        with self._lock:
            return None if thread.is_alive() else self._built

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running refresh; True when none is running any more."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self, services: Services, built_at: datetime, known: Roster | None,
             lease: str | None, store: bool) -> None:
        settings = services.settings
        started = time.monotonic()
        lasting: str | None = None
        try:
            with budget.background():
                roster = load_roster(
                    services.client, settings.agent_rule, settings.concurrent_license_pattern,
                    built_at, concurrent_pool=settings.concurrent_pool).succeeding(known)
            if known is not None:
                # Users seen logged in but in no listing stay remembered (no rebuild for them).
                roster = dataclasses.replace(roster, unresolved=frozenset(
                    user_id for user_id in known.unresolved if not roster.knows(user_id)))
            services.roster = roster
            if store and services.state is not None:
                services.state.roster.save(roster.to_dict(), built_at)
            with self._lock:
                self._built = roster
            self.completed += 1
            self.last_error = None
            logger.info("Roster refreshed in the background in %.0f s: %d agents, %d admins",
                        time.monotonic() - started, len(roster.agents), len(roster.admins))
        except (GenesysError, StorageUnavailable, ValueError) as err:
            self.last_error = str(err)
            # A permission or the license data does not mend by itself: kept for the checks.
            lasting = str(err) if isinstance(err, PermissionDenied | ValueError) else None
            logger.warning("The background roster refresh failed (the next check tries "
                           "again): %s", err)
        except Exception as err:  # a background thread must never die silently
            self.last_error = type(err).__name__
            logger.exception("The background roster refresh failed unexpectedly")
        finally:
            if lease is not None and services.state is not None:
                try:
                    services.state.roster.release_refresh(lease, lasting)
                except StorageUnavailable:
                    logger.debug("The roster refresh lease was not released; it expires")
