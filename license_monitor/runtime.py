"""Per-process services shared by the activities and starters: built once, lazily, never at import.

In Azure each worker process builds its own from the app settings on first use, so the
Genesys token lives in that process's cache and never travels through orchestration history.
The CLI and the tests install services they built themselves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from azure.core.credentials import TokenCredential

from license_monitor.deadline import Deadline
from license_monitor.genesys import auth
from license_monitor.genesys.budget import RequestBudget
from license_monitor.genesys.client import GenesysClient
from license_monitor.genesys.models import Organization
from license_monitor.roster import Roster
from license_monitor.roster_refresh import RosterRefresh
from license_monitor.settings import ConfigError, Settings
from license_monitor.state import StateStore
from license_monitor.state.budget_shares import BudgetShares

logger = logging.getLogger(__name__)

# Loggers that write request URLs (webhook paths are secrets) at DEBUG/INFO.
HTTP_LOGGERS = ("urllib3", "azure.core.pipeline.policies.http_logging_policy")


def quiet_http_logging() -> None:
    """Keep HTTP libraries at WARNING whatever the app's level: their URLs may carry secrets."""
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@dataclass
class Services:
    """Everything an activity needs, built from Settings."""

    settings: Settings
    client: GenesysClient
    state: StateStore | None  # None only for a dry run with no storage configured
    http: requests.Session
    # The roster this process measured with last: what a dry run without storage reuses.
    roster: Roster | None = None
    # The org this client belongs to, read with the roster; state is keyed by its id.
    organization: Organization | None = None
    # How retries wait (Genesys requests, alert deliveries); tests pass one that records.
    sleep: Callable[[float], None] = time.sleep
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The wall clock a check's deadline is read on: a check that runs at a chosen time (CLI,
    # tests) uses one that starts there (clock_from).
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # A deadline shorter than CHECK_TIMEOUT_SECONDS may be (10 s at least): for tests only.
    check_timeout_seconds: float | None = None
    # The full roster, refreshed in the background (started by checks; the CLI waits for it).
    roster_refresh: RosterRefresh = field(default_factory=RosterRefresh)

    def deadline(
        self, checked_at: datetime, step: str, *, records: bool = False,
        at_least: float | None = None, at_most: float | None = None,
    ) -> Deadline:
        """The deadline of the check of `checked_at` for an activity doing `step`.

        `records`: its Table Storage writes record an outcome (RECORD_GRACE_SECONDS more);
        `at_least`/`at_most`: its work gets this many seconds from now, past the deadline /
        even if the check has more time.
        """
        seconds = self.check_timeout_seconds or self.settings.check_timeout_seconds
        return Deadline.of_check(checked_at, seconds, self.clock(), step, records=records,
                                 at_least=at_least, at_most=at_most)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, require_state: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Services:
        """Build the Genesys client, the state store and an HTTP session for channels."""
        client = GenesysClient(
            sleep=sleep,
            api_url=settings.api_url,
            login_url=settings.login_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            request_budget_per_minute=settings.request_budget_per_minute,
        )
        # A dry run reads state only when it is configured for the monitor itself, not through
        # the host's AzureWebJobsStorage (local.settings.json for `func start` sets that one).
        has_storage = bool(settings.state_account_url or (
            settings.state_connection and not settings.state_from_host_storage))
        state = state_store(settings) if require_state or has_storage else None
        if state is not None:
            # Other processes of this OAuth client (a CLI run beside the app, another
            # instance) take their share of the same budget through the same table.
            client.budget.share_with(BudgetShares(
                state.table, settings.client_key, settings.request_budget_per_minute))
            _sharing.add(client.budget)
        return cls(settings=settings, client=client, state=state, http=channel_session(),
                   sleep=sleep)


_sharing: weakref.WeakSet[RequestBudget] = weakref.WeakSet()


@contextmanager
def budgets_given_back() -> Iterator[None]:
    """Give back, on the way out, the request budget shares taken inside (a CLI command)."""
    before = set(_sharing)
    try:
        yield
    finally:
        for budget in set(_sharing) - before:
            budget.close()


def channel_session() -> requests.Session:
    """An HTTP session for alert channels; proxies from the environment are honoured."""
    session = requests.Session()
    session.headers["User-Agent"] = "concurrent-license-monitor/0.1"
    return session


def storage_credential(settings: Settings) -> TokenCredential:
    """The app's managed identity (AZURE_CLIENT_ID for a user-assigned one).

    DefaultAzureCredential only when AZURE_CREDENTIAL=default: it tries environment secrets,
    workload identity and developer logins too, which an app in Azure should never pick up.
    """
    # Only in Azure: the CLI and the tests use a connection string.
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential  # noqa: PLC0415

    if settings.azure_credential == "default":
        return DefaultAzureCredential()
    return ManagedIdentityCredential(client_id=settings.azure_client_id)


def state_store(settings: Settings) -> StateStore:
    """Table Storage by connection string, or by account URL and managed identity.

    Keyed through this client's pointer: the state is the org's once its id is known.
    """
    if settings.state_account_url:
        return StateStore.from_account_url(
            settings.state_account_url, storage_credential(settings), settings.state_table,
            settings.client_key, by_client=True)
    if not settings.state_connection:
        raise ConfigError([
            "STATE_CONNECTION is missing: set it (or AzureWebJobsStorage) to a Table Storage "
            "connection string, or set STATE_ACCOUNT_URL (a dry run works without).",
        ])
    return StateStore.from_connection_string(
        settings.state_connection, settings.state_table, settings.client_key, by_client=True)


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A wall clock that reads `start` now and runs on in real time from there."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


_lock = threading.Lock()
_services: Services | None = None
_settings: Settings | None = None


def settings() -> Settings:
    """This process's settings, parsed from the environment on first use."""
    global _settings  # noqa: PLW0603 (one per process, by design)
    with _lock:
        if _services is not None:
            return _services.settings
        if _settings is None:
            _settings = Settings.from_env(os.environ)
        return _settings


def services() -> Services:
    """This process's services, built on first use.

    Built outside the lock (creating the table is a network call that must not stall every
    other caller), then installed only if no other thread installed its own meanwhile.
    """
    global _services  # noqa: PLW0603
    current = settings()
    with _lock:
        if _services is not None:
            return _services
    quiet_http_logging()
    built = Services.from_settings(current)
    with _lock:
        if _services is None:
            _services = built
        return _services


def install(new: Services | None) -> None:
    """Use these services in this process (CLI, tests); None forgets them and their tokens."""
    global _services, _settings  # noqa: PLW0603
    auth.clear_cache()
    with _lock:
        _services = new
        _settings = None if new is None else new.settings
