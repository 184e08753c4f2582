"""`python -m license_monitor doctor`: is this org and this configuration ready for a real check?

One line per requirement, in the order a check needs them: credentials and region, then one
cheap call per thing the monitor reads (organization, users, licenses, the agent rule's
listing, analytics aggregates and details), Table Storage when configured, and each alert
channel. A line is `ok`, `MISSING` (naming the exact permission to grant or setting to fix),
`skipped` (it could not be tried because something before it is missing) or `note` (worth
knowing, not blocking). The doctor passes only when nothing is missing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Literal, TypeVar

import requests

from license_monitor import notify
from license_monitor.genesys.client import GenesysClient
from license_monitor.genesys.errors import AuthError, GenesysError, PermissionDenied
from license_monitor.roster import LICENSE_PERMISSION, POOL_ALL_USERS
from license_monitor.settings import Settings
from license_monitor.state import StorageUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

Status = Literal["ok", "MISSING", "skipped", "note"]

# The permissions a check needs, as Genesys Cloud's API documentation lists them per endpoint.
AGGREGATES_PERMISSION = "analytics:userAggregate:view"
DETAILS_PERMISSION = "analytics:userDetail:view"
QUEUE_PERMISSION = "routing:queue:view"
ROLE_PERMISSION = "authorization:role:view"

ROLE_HINT = "grant the OAuth client's role the permission"
CHANNEL_SETTINGS_ALL = ("ALERT_WEBHOOK_URL, TEAMS_WEBHOOK_URL, SLACK_WEBHOOK_URL, "
                        "PAGERDUTY_ROUTING_KEY or ALERT_EMAIL_TO")


@dataclass(frozen=True)
class Finding:
    """One requirement and how it stands."""

    status: Status
    requirement: str
    detail: str

    def line(self) -> str:
        """`ok       analytics user details: ...`: the status padded so the names align."""
        return f"{self.status:<8} {self.requirement}: {self.detail}"


@dataclass(frozen=True)
class Report:
    """Every finding, in order; it passes when none is missing."""

    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        """True when a real check would work."""
        return all(finding.status != "MISSING" for finding in self.findings)

    def lines(self) -> list[str]:
        """The findings, one line each, then the verdict."""
        missing = sum(1 for finding in self.findings if finding.status == "MISSING")
        verdict = ("ready: a real check will work with these settings" if not missing else
                   f"not ready: {missing} requirement(s) missing (see MISSING above)")
        return [finding.line() for finding in self.findings] + [verdict]


def _first(items: Iterator[T], count: int = 1) -> list[T]:
    """The first `count` items of a lazily paged listing (only page 1 is requested)."""
    return list(islice(items, count))


def _denied(err: PermissionDenied, fallback: str, why: str) -> str:
    """The line for a 403: the permission the platform named (or the documented one)."""
    permission = err.permission or fallback
    return f"{ROLE_HINT} {permission} ({why}; Genesys Cloud answered HTTP 403)"


def _failed(err: GenesysError) -> str:
    return f"the call failed: {err}"


class _Doctor:
    """Runs the findings in order, keeping what later ones need."""

    def __init__(self, settings: Settings, client: GenesysClient, now: datetime) -> None:
        self.settings = settings
        self.client = client
        self.now = now
        self.findings: list[Finding] = []

    def add(self, status: Status, requirement: str, detail: str) -> None:
        self.findings.append(Finding(status, requirement, detail))

    def credentials(self) -> bool:
        settings = self.settings
        name = "credentials and region"
        try:
            self.client.ensure_token()
        except AuthError:
            self.add("MISSING", name,
                     f"{settings.login_url} refused the client id and secret: check "
                     "GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET, and that GENESYS_REGION "
                     f"({settings.region}) is the region the OAuth client was created in")
            return False
        except GenesysError as err:
            self.add("MISSING", name,
                     f"no token from {settings.login_url} ({err}): check GENESYS_REGION "
                     f"({settings.region}) and this machine's way out to it")
            return False
        self.add("ok", name, f"token issued by {settings.login_url} (region {settings.region})")
        return True

    def organization(self) -> None:
        name = "organization"
        try:
            org = self.client.organization()
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        self.add("ok", name, f"{org.name} (id {org.id})")

    def users(self) -> None:
        name = "users (GET /api/v2/users)"
        try:
            first = _first(self.client.iter_users(page_size=25))
        except PermissionDenied as err:
            self.add("MISSING", name, _denied(err, "directory:user:view", "to list active users"))
            return
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        if not first:
            self.add("MISSING", name,
                     "the OAuth client sees no active users: give its role every division "
                     "your users are in")
            return
        self.add("ok", name, "active users are listed")

    def licenses(self) -> None:
        name = "licenses (GET /api/v2/license/users)"
        settings = self.settings
        if settings.concurrent_pool == POOL_ALL_USERS:
            self.add("note", name,
                     "not read: CONCURRENT_POOL=all_users counts every active user")
            return
        try:
            holders = Counter(
                license_id
                for entry in self.client.iter_user_licenses(parallel=4)
                for license_id in set(entry.licenses))
        except PermissionDenied as err:
            self.add("MISSING", name, _denied(
                err, LICENSE_PERMISSION,
                "to count only concurrent license holders; or set CONCURRENT_POOL=all_users"))
            return
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        pattern = settings.concurrent_license_pattern
        counted = {lic: n for lic, n in holders.items() if pattern.search(lic)}
        others = {lic: n for lic, n in holders.items() if lic not in counted}

        def listed(ids: dict[str, int]) -> str:
            ranked = sorted(ids.items(), key=lambda item: (-item[1], item[0]))
            return ", ".join(f"{lic} ({n} user{'s' if n != 1 else ''})"
                             for lic, n in ranked) or "none"

        if not holders:
            self.add("MISSING", name,
                     "the license listing is empty: no user holds a license the OAuth client "
                     "can see; check its divisions, or set CONCURRENT_POOL=all_users")
            return
        if not counted:
            self.add("MISSING", name,
                     f"no license id matches CONCURRENT_LICENSE_PATTERN {pattern.pattern}; "
                     f"ids found: {listed(others)}; set CONCURRENT_LICENSE_PATTERN to match "
                     "your concurrent tier ids")
            return
        self.add("ok", name,
                 f"license ids matching CONCURRENT_LICENSE_PATTERN {pattern.pattern}: "
                 f"{listed(counted)}; not counted: {listed(others)}")

    def agent_rule(self) -> None:
        rule = self.settings.agent_rule
        if rule.kind == "queue":
            self._queues()
        elif rule.kind == "role":
            self._roles(rule.names)
        else:
            self._groups(rule.names)

    def _queues(self) -> None:
        name = "agent rule (AGENT_RULE=queue: routing queues and members)"
        try:
            queues = _first(self.client.iter_queues(page_size=25), 25)
            busy = next((queue for queue in queues if queue.member_count != 0), None)
            if busy is not None:
                _first(self.client.iter_queue_member_ids(busy.id, page_size=25))
        except PermissionDenied as err:
            self.add("MISSING", name, _denied(err, QUEUE_PERMISSION,
                                              "to tell agents (queue members) from admins"))
            return
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        if not queues:
            self.add("note", name,
                     "the org has no routing queues: every pool user will count as an admin; "
                     "AGENT_RULE=role:<name> or group:<name> tells agents apart otherwise")
            return
        shown = f"members of queue {busy.name!r} readable" if busy else "no queue has members"
        self.add("ok", name, f"queues readable; {shown}")

    def _roles(self, names: tuple[str, ...]) -> None:
        name = f"agent rule (AGENT_RULE=role:{','.join(names)})"
        try:
            roles = list(self.client.iter_roles())
        except PermissionDenied as err:
            self.add("MISSING", name, _denied(err, ROLE_PERMISSION,
                                              "to find the roles AGENT_RULE names"))
            return
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        self._named(name, "role", names, {role.name.casefold() for role in roles})

    def _groups(self, names: tuple[str, ...]) -> None:
        name = f"agent rule (AGENT_RULE=group:{','.join(names)})"
        try:
            groups = list(self.client.iter_groups())
        except PermissionDenied as err:
            self.add("MISSING", name, _denied(err, "directory:group:view",
                                              "to find the groups AGENT_RULE names"))
            return
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        self._named(name, "group", names, {group.name.casefold() for group in groups})

    def _named(self, name: str, kind: str, names: tuple[str, ...], known: set[str]) -> None:
        unknown = [wanted for wanted in names if wanted.casefold() not in known]
        if unknown:
            self.add("MISSING", name,
                     f"no {kind} called {', '.join(repr(n) for n in unknown)} in the org: fix "
                     "AGENT_RULE")
            return
        self.add("ok", name, f"every {kind} named is found")

    def aggregates(self) -> None:
        name = "analytics user aggregates"
        try:
            logged_in = self.client.users_logged_in(self.now - timedelta(minutes=1), self.now)
        except PermissionDenied as err:
            self.add("MISSING", name, _denied(err, AGGREGATES_PERMISSION,
                                              "to count the users active in the window"))
            return
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        self.add("ok", name, f"{len(logged_in)} users logged in during the last minute")

    def details(self) -> None:
        name = "analytics user details"
        try:
            _first(self.client.iter_presence_details(
                self.now - timedelta(minutes=1), self.now, page_size=1))
        except PermissionDenied as err:
            self.add("MISSING", name, _denied(err, DETAILS_PERMISSION,
                                              "to measure who is logged in at each instant"))
            return
        except GenesysError as err:
            self.add("MISSING", name, _failed(err))
            return
        self.add("ok", name, "presence records readable")


def storage(settings: Settings) -> Finding:
    """Table Storage: reachable with these settings (only when configured)."""
    from license_monitor import runtime  # noqa: PLC0415 (azure SDKs only when asked)

    name = "storage (Table Storage)"
    if not (settings.state_account_url or settings.state_connection):
        return Finding("note", name, "not configured: `check --dry-run` needs none; a real "
                                     "check needs STATE_CONNECTION or STATE_ACCOUNT_URL")
    where = settings.state_account_url or (
        "AzureWebJobsStorage" if settings.state_from_host_storage else "STATE_CONNECTION")
    try:
        runtime.state_store(settings).table.service_time()
    except Exception as err:
        # Storage errors are worded without secrets; any other text could quote the
        # connection string, so only its type is shown.
        reason = str(err) if isinstance(err, StorageUnavailable) else type(err).__name__
        return Finding("MISSING", name, f"cannot read the table {settings.state_table} "
                                        f"through {where}: {reason}")
    return Finding("ok", name, f"table {settings.state_table} readable through {where}")


def channels(settings: Settings, *, send_test: bool, session: requests.Session,
             now: datetime, sleep: Callable[[float], None]) -> list[Finding]:
    """Each alert channel: configured and well-formed; with send_test, a test message sent."""
    from license_monitor.check import channel_target  # noqa: PLC0415 (pulls the app's domain)

    if not settings.channels:
        return [Finding("note", "alert channels",
                        f"none configured: alerts go nowhere; set {CHANNEL_SETTINGS_ALL}")]
    found = []
    for channel in settings.channels:
        name = f"channel {channel}"
        target = channel_target(settings, channel)
        where = notify.host_of(str(target.get("url") or target.get("api_url") or ""))
        if not send_test:
            found.append(Finding("ok", name, f"configured, well-formed, to {where} "
                                             "(--send-test sends a test message)"))
            continue
        try:
            for payload in _test_payloads(settings, channel, now):
                notify.send(channel, target, notify.Notification(
                    id=f"{payload['alert_id']}:{payload['event']}:{channel}", channel=channel,
                    payload=payload), session=session, now=now, sleep=sleep)
        except (notify.DeliveryError, ValueError) as err:
            found.append(Finding("MISSING", name, notify.rejection_message(channel, str(err))))
            continue
        found.append(Finding("ok", name, f"test message delivered to {where}"))
    return found


def _test_payloads(settings: Settings, channel: str, now: datetime) -> list[dict[str, object]]:
    """A test message; PagerDuty's incident is resolved right after, so none stays open."""
    alert_id = f"doctor-test-{uuid.uuid4().hex[:12]}"
    test = {
        "event": "test", "level": "ok", "alert_id": alert_id,
        "occurred_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "capacity": settings.license_capacity,
        "message": "A test message from the Concurrent License Monitor (python -m "
                   "license_monitor doctor --send-test): this channel works.",
    }
    if channel == "pagerduty":
        return [test, {**test, "event": "resolved"}]
    return [test]


def run_doctor(
    settings: Settings,
    *,
    send_test: bool = False,
    client: GenesysClient | None = None,
    session: requests.Session | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Check every requirement of a real check against the org and the configured services."""
    from license_monitor import runtime  # noqa: PLC0415

    moment = now or datetime.now(UTC)
    services_client = client or GenesysClient(
        api_url=settings.api_url, login_url=settings.login_url, client_id=settings.client_id,
        client_secret=settings.client_secret,
        request_budget_per_minute=settings.request_budget_per_minute, sleep=sleep)
    doctor = _Doctor(settings, services_client, moment)
    if doctor.credentials():
        doctor.organization()
        doctor.users()
        doctor.licenses()
        doctor.agent_rule()
        doctor.aggregates()
        doctor.details()
    else:
        for requirement in ("organization", "users", "licenses", "agent rule",
                            "analytics user aggregates", "analytics user details"):
            doctor.add("skipped", requirement, "needs working credentials first")
    findings = [*doctor.findings, storage(settings)]
    findings += channels(settings, send_test=send_test,
                         session=session or runtime.channel_session(), now=moment,
                         sleep=sleep)
    return Report(tuple(findings))
