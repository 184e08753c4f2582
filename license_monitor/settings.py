"""Typed settings parsed once from the environment (app settings in Azure, env vars locally)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from license_monitor.genesys.regions import REGION_DOMAINS, base_urls
from license_monitor.metrics import parse_authentication_string
from license_monitor.notify.webhook import KEY_PREFIX, signing_key
from license_monitor.roster import AgentRule, parse_agent_rule

T = TypeVar("T")

ConcurrentPool = Literal["licenses", "all_users"]
CONCURRENT_POOLS: tuple[ConcurrentPool, ...] = get_args(ConcurrentPool)

# Every integer setting with the range an admin can choose from (docs/settings.md). The upper
# bounds keep absurd values (a 30-digit reminder interval overflowed timedelta in every check)
# out; they are generous enough for the largest orgs.
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "LICENSE_CAPACITY": (1, 1_000_000),
    "WINDOW_MINUTES": (1, 24 * 60),
    "ROSTER_TTL_MINUTES": (0, 24 * 60),
    "REQUEST_BUDGET_PER_MINUTE": (10, 10_000),
    # Azure ends an HTTP request at 230 s; the answer must leave well before that.
    "MANUAL_CHECK_WAIT_SECONDS": (0, 200),
    # A day past the end of a short month bills from its last day (billing.billing_period_start).
    "BILLING_ANCHOR_DAY": (1, 31),
    "FAILURE_ALERT_AFTER": (1, 100),
    "REMIND_EVERY_MINUTES": (0, 7 * 24 * 60),
    "RETENTION_DAYS": (1, 3650),
    "HISTORY_RETENTION_DAYS": (1, 365),
    "CHECK_TIMEOUT_SECONDS": (10, 600),
    # At most one check started by the presence gauge per this many seconds.
    "GAUGE_CHECK_MIN_INTERVAL_SECONDS": (10, 3600),
    # A pool user logged in this long without working holds a license for nothing (idle.py).
    "IDLE_AFTER_MINUTES": (1, 24 * 60),
}

_RANGE_REASONS = {"MANUAL_CHECK_WAIT_SECONDS": " (Azure ends an HTTP request at 230 s)"}

# Where a plain http:// URL would send a token, a secret or an alert over the network.
HTTPS_ONLY = frozenset(
    {
        "GENESYS_API_URL",
        "GENESYS_LOGIN_URL",
        "STATE_ACCOUNT_URL",
        "ALERT_WEBHOOK_URL",
        "TEAMS_WEBHOOK_URL",
        "SLACK_WEBHOOK_URL",
        "PAGERDUTY_EVENTS_URL",
        "GRAPH_AUTHORITY_URL",
        "GRAPH_API_URL",
    }
)

SECRET_FIELDS = frozenset(
    {
        "client_secret",
        "alert_webhook_url",
        "alert_webhook_secret",
        "teams_webhook_url",
        "slack_webhook_url",
        "pagerduty_routing_key",
        "graph_client_secret",
        "state_connection",
        "appinsights_connection_string",
    }
)

AZURE_CREDENTIALS = ("managed_identity", "default")

_NCRONTAB = re.compile(r"^\S+(\s+\S+){5}$")
_QUIET_RANGE = re.compile(
    r"^(?:(?P<days>[A-Za-z]{3}(?:-[A-Za-z]{3})?(?:,[A-Za-z]{3}(?:-[A-Za-z]{3})?)*)\s+)?"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$"
)
QUEUE_RULE = AgentRule("queue", ())
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _shown(text: str, limit: int = 20) -> str:
    """A value as quoted in a problem line; a long one is cut to `limit` characters and "…"."""
    return repr(text if len(text) <= limit else text[:limit] + "\u2026")


def _is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: plain http never leaves the machine there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """One or more settings are missing or invalid; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} setting problem(s):\n{lines}")


@dataclass(frozen=True)
class QuietWindow:
    """A weekly window in which notifications are held: days (0=Mon) and minutes of day."""

    days: frozenset[int]
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class Settings:
    """Every setting of DESIGN.md section 9, validated; secrets masked in repr."""

    client_id: str
    client_secret: str = field(repr=False)
    region: str
    api_url: str
    login_url: str
    license_capacity: int
    warning_percent: float = 90.0
    critical_percent: float = 95.0
    clear_margin_percent: float = 5.0
    window_minutes: int = 15
    agent_rule: AgentRule = QUEUE_RULE
    concurrent_license_pattern: re.Pattern[str] = re.compile(r"(?i)^cloudcx\d")
    roster_ttl_minutes: int = 60
    request_budget_per_minute: int = 300
    state_connection: str | None = field(default=None, repr=False)
    state_account_url: str | None = None
    # STATE_CONNECTION came from AzureWebJobsStorage (the Functions host's storage): a dry run
    # from the CLI does not open it, so a local.settings.json made for `func start` runs one.
    state_from_host_storage: bool = False
    # The credential for STATE_ACCOUNT_URL: the managed identity, or "default" (developer logins).
    azure_credential: str = "managed_identity"
    azure_client_id: str | None = None  # a user-assigned identity's client id
    state_table: str = "licensemonitor"
    monitor_schedule: str = "0 */5 * * * *"
    manual_check_wait_seconds: int = 30
    gauge_check_min_interval_seconds: int = 60
    billing_anchor_day: int = 1
    failure_alert_after: int = 3
    remind_every_minutes: int = 0
    idle_after_minutes: int = 60
    quiet_hours: tuple[QuietWindow, ...] = ()
    quiet_hours_timezone: str = "UTC"
    forecast_timezone: str = "UTC"  # the org's day for the forecast (docs/forecast.md)
    forecast_alert_margin_percent: float = 0.0  # forecast_breach needs the peak this far over
    retention_days: int = 90
    history_retention_days: int = 7
    org_name: str | None = None
    alert_link_url: str | None = None
    alert_webhook_url: str | None = field(default=None, repr=False)
    alert_webhook_secret: str | None = field(default=None, repr=False)
    teams_webhook_url: str | None = field(default=None, repr=False)
    slack_webhook_url: str | None = field(default=None, repr=False)
    pagerduty_routing_key: str | None = field(default=None, repr=False)
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    alert_email_to: tuple[str, ...] = ()
    alert_email_from: str | None = None
    graph_tenant_id: str | None = None
    graph_client_id: str | None = None
    graph_client_secret: str | None = field(default=None, repr=False)
    graph_authority_url: str = "https://login.microsoftonline.com"
    graph_api_url: str = "https://graph.microsoft.com/v1.0"
    check_timeout_seconds: int = 120
    concurrent_pool: ConcurrentPool = "licenses"
    appinsights_connection_string: str | None = field(default=None, repr=False)
    appinsights_authentication_string: str | None = None

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                shown = "None" if value is None else "'***'"
            elif isinstance(value, re.Pattern):
                shown = repr(value.pattern)
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    @property
    def client_key(self) -> str:
        """Region + OAuth client id as a key (no secret in it): the singleton instance id, and
        where the state lives until the organization id is known (see state/organization.py)."""
        label = re.sub(r"[^A-Za-z0-9]+", "-", f"{self.region}-{self.client_id}").strip("-")
        return label.lower()[:80]

    @property
    def channels(self) -> tuple[str, ...]:
        """The alert channels switched on by their settings."""
        on = []
        if self.alert_webhook_url:
            on.append("webhook")
        if self.teams_webhook_url:
            on.append("teams")
        if self.slack_webhook_url:
            on.append("slack")
        if self.pagerduty_routing_key:
            on.append("pagerduty")
        if self.alert_email_to:
            on.append("email")
        return tuple(on)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Parse and validate every setting; raise one ConfigError listing every problem."""
        return _Parser(environ).parse()


class _Parser:
    """Collects problems while reading settings, so one error can list them all."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = environ
        self.problems: list[str] = []
        self.refused: set[str] = set()

    def problem(self, name: str, text: str) -> None:
        self.problems.append(text)
        self.refused.add(name)

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def required(self, name: str, what: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problem(name, f"{name} is missing: set it to {what}.")
            return ""
        return value

    def number(
        self, name: str, default: T, convert: Callable[[str], T], check: Callable[[T], bool],
        expect: str,
    ) -> T:
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = convert(text)
        except ValueError:  # also int() of a string longer than Python's digit limit
            self.problem(name, f"{name} must be {expect}, got {_shown(text)}.")
            return default
        if not check(value):
            self.problem(name, f"{name} must be {expect}, got {_shown(text)}.")
            return default
        return value

    def integer(self, name: str, default: int) -> int:
        minimum, maximum = INTEGER_RANGES[name]
        why = _RANGE_REASONS.get(name, "")
        return self.number(name, default, int, lambda v: minimum <= v <= maximum,
                           f"a whole number from {minimum} to {maximum}{why}")

    def percent(self, name: str, default: float) -> float:
        return self.number(name, default, float, lambda v: 0 < v <= 100,
                           "a percentage above 0 and at most 100")

    def url(self, name: str, default: str | None = None, secret: bool = False) -> str | None:
        """An http(s) URL without credentials; https for HTTPS_ONLY names unless on loopback."""
        text = self.raw(name)
        if text is None:
            return default
        try:
            parts = urlsplit(text)
            host, _ = parts.hostname, parts.port  # .port raises on a port out of range
        except ValueError:  # e.g. an unclosed IPv6 bracket or a port that is not a number
            parts, host = None, None
        if parts is not None and "@" in parts.netloc:
            # Never echo any part of it: the user name or password is right there.
            self.problem(name, f"{name} must not carry a user name or password (user:pass@host); "
                               "remove them from the URL.")
            return default
        if (parts is None or parts.scheme not in ("http", "https") or not host
                or any(c.isspace() for c in text)):
            shown = "" if secret or "@" in text else f", got {_shown(text, 60)}"
            self.problem(name, f"{name} must be an http(s) URL{shown}.")
            return default
        if name in HTTPS_ONLY and parts.scheme == "http" and not _is_loopback(host):
            self.problem(name, f"{name} must use https:// (plain http:// only on a loopback "
                               "address such as 127.0.0.1 or localhost).")
            return default
        return text.rstrip("/")

    def webhook_secret(self) -> str | None:
        secret = self.raw("ALERT_WEBHOOK_SECRET")
        if secret is None:
            return None
        # The signer's own decoding, so a secret that passes here signs every alert.
        try:
            key = signing_key(secret)
        except ValueError:
            self.problem("ALERT_WEBHOOK_SECRET",
                         f"ALERT_WEBHOOK_SECRET starts with {KEY_PREFIX!r} but the rest is not "
                         "valid base64: copy the secret exactly as the receiver issued it.")
            return None
        if not key:
            self.problem("ALERT_WEBHOOK_SECRET",
                         f"ALERT_WEBHOOK_SECRET has no key after {KEY_PREFIX!r}.")
            return None
        return secret

    def app_insights(self) -> dict[str, str | None]:
        """Application Insights: the connection string and, for a managed identity, AAD auth."""
        connection = self.raw("APPLICATIONINSIGHTS_CONNECTION_STRING")
        authentication = self.raw("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
        if connection is not None and not re.search(
                r"(?i)(^|;)\s*(InstrumentationKey|IngestionEndpoint)\s*=", connection):
            self.problem("APPLICATIONINSIGHTS_CONNECTION_STRING",
                         "APPLICATIONINSIGHTS_CONNECTION_STRING must hold InstrumentationKey=... "
                         "(copy it from the Application Insights resource)")
        if authentication is not None:
            try:
                parse_authentication_string(authentication)
            except ValueError as err:
                self.problem("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", str(err))
        return {"appinsights_connection_string": connection,
                "appinsights_authentication_string": authentication}

    def concurrent_pool(self) -> ConcurrentPool:
        text = self.raw("CONCURRENT_POOL")
        if text is None:
            return "licenses"
        for pool in CONCURRENT_POOLS:
            if text.lower() == pool:
                return pool
        self.problem("CONCURRENT_POOL",
                     f"CONCURRENT_POOL must be {' or '.join(map(repr, CONCURRENT_POOLS))}, "
                     f"got {_shown(text)}.")
        return "licenses"

    def thresholds(self) -> tuple[float, float, float]:
        """Warning, critical and clear margin; the levels must be ordered to be reachable."""
        warning = self.percent("WARNING_PERCENT", 90.0)
        critical = self.percent("CRITICAL_PERCENT", 95.0)
        margin = self.number("CLEAR_MARGIN_PERCENT", 5.0, float, lambda v: 0 <= v < 100,
                             "a percentage from 0 to below 100")
        if self.refused.isdisjoint({"WARNING_PERCENT", "CRITICAL_PERCENT"}) and (
                critical <= warning):
            self.problem("CRITICAL_PERCENT",
                         f"CRITICAL_PERCENT ({critical:g}) must be above WARNING_PERCENT "
                         f"({warning:g}).")
        # A margin at or above the warning percent would need a utilization below 0% to clear.
        if self.refused.isdisjoint({"WARNING_PERCENT", "CLEAR_MARGIN_PERCENT"}) and (
                margin >= warning):
            self.problem("CLEAR_MARGIN_PERCENT",
                         f"CLEAR_MARGIN_PERCENT ({margin:g}) must be below WARNING_PERCENT "
                         f"({warning:g}), or no alert could ever clear.")
        return warning, critical, margin

    def parse(self) -> Settings:
        client_id = self.required("GENESYS_CLIENT_ID", "the OAuth client id")
        client_secret = self.required("GENESYS_CLIENT_SECRET", "the OAuth client secret")
        region = (self.raw("GENESYS_REGION") or "mypurecloud.com").lower()
        api_override = self.url("GENESYS_API_URL")
        login_override = self.url("GENESYS_LOGIN_URL")
        login_url = api_url = ""
        try:
            login_url, api_url = base_urls(region, api_override, login_override)
        except ValueError:
            self.problem(
                "GENESYS_REGION",
                f"GENESYS_REGION {_shown(region, 60)} is not a Genesys Cloud region; use one of: "
                + ", ".join(REGION_DOMAINS) + ".")

        capacity_text = self.raw("LICENSE_CAPACITY")
        capacity = 0
        if capacity_text is None:
            self.problem(
                "LICENSE_CAPACITY",
                "LICENSE_CAPACITY is missing: set it to the number of concurrent licenses "
                "purchased.")
        else:
            capacity = self.integer("LICENSE_CAPACITY", 0)

        warning, critical, margin = self.thresholds()

        rule = QUEUE_RULE
        rule_text = self.raw("AGENT_RULE")
        if rule_text is not None:
            try:
                rule = parse_agent_rule(rule_text)
            except ValueError as err:
                text = str(err)
                if not text.startswith("AGENT_RULE"):
                    text = f"AGENT_RULE: {text}"
                self.problem("AGENT_RULE", text)

        pattern = re.compile(r"(?i)^cloudcx\d")
        pattern_text = self.raw("CONCURRENT_LICENSE_PATTERN")
        if pattern_text is not None:
            try:
                pattern = re.compile(pattern_text)
            except re.error as err:
                self.problem(
                    "CONCURRENT_LICENSE_PATTERN",
                    f"CONCURRENT_LICENSE_PATTERN is not a valid regular expression ({err}).")

        state_connection = self.raw("STATE_CONNECTION")
        state_from_host_storage = state_connection is None and (
            self.raw("AzureWebJobsStorage") is not None)
        if state_connection is None:
            state_connection = self.raw("AzureWebJobsStorage")
        state_account_url = self.url("STATE_ACCOUNT_URL")
        azure_credential = (self.raw("AZURE_CREDENTIAL") or "managed_identity").lower()
        if azure_credential not in AZURE_CREDENTIALS:
            self.problem("AZURE_CREDENTIAL",
                         f"AZURE_CREDENTIAL must be one of {', '.join(AZURE_CREDENTIALS)}, "
                         f"got {_shown(azure_credential)}.")
        if state_connection and "=" not in state_connection and state_connection != (
                "UseDevelopmentStorage=true"):
            self.problem(
                "STATE_CONNECTION",
                "STATE_CONNECTION must be a storage connection string (Key=Value;...).")

        schedule = self.raw("MONITOR_SCHEDULE") or "0 */5 * * * *"
        if not _NCRONTAB.match(schedule):
            self.problem(
                "MONITOR_SCHEDULE",
                f"MONITOR_SCHEDULE must be an NCRONTAB expression with six fields "
                f"(seconds first), got {_shown(schedule, 60)}.")
        elif any(field != "*" for field in schedule.split()[3:]):
            # A check measures at most a day back: checks further apart leave minutes unbilled.
            self.problem(
                "MONITOR_SCHEDULE",
                f"MONITOR_SCHEDULE must run every day (day of month, month and day of week "
                f"'*'): checks more than 24 hours apart would leave minutes unmeasured, got "
                f"{_shown(schedule, 60)}.")

        quiet_zone = self.raw("QUIET_HOURS_TIMEZONE") or "UTC"
        try:
            ZoneInfo(quiet_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
            self.problem(
                "QUIET_HOURS_TIMEZONE",
                f"QUIET_HOURS_TIMEZONE must be an IANA time zone such as Europe/Berlin, "
                f"got {_shown(quiet_zone, 60)}.")
        quiet = self.quiet_hours(self.raw("QUIET_HOURS"))
        # The org's day; by default the quiet hours' zone (whose own problem is listed above).
        forecast_zone = self.raw("FORECAST_TIMEZONE") or quiet_zone
        try:
            if self.raw("FORECAST_TIMEZONE"):
                ZoneInfo(forecast_zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.problem(
                "FORECAST_TIMEZONE",
                f"FORECAST_TIMEZONE must be an IANA time zone such as America/Chicago, "
                f"got {_shown(forecast_zone, 60)}.")
        forecast_margin = self.number(
            "FORECAST_ALERT_MARGIN_PERCENT", 0.0, float, lambda v: 0 <= v <= 50,
            "a percentage of the capacity from 0 to 50")

        email_to = tuple(
            a.strip() for a in (self.raw("ALERT_EMAIL_TO") or "").split(",") if a.strip())
        for address in email_to:
            if "@" not in address:
                self.problem("ALERT_EMAIL_TO",
                             f"ALERT_EMAIL_TO has an invalid address {_shown(address, 60)}.")
        graph: dict[str, Any] = {
            "alert_email_from": self.raw("ALERT_EMAIL_FROM"),
            "graph_tenant_id": self.raw("GRAPH_TENANT_ID"),
            "graph_client_id": self.raw("GRAPH_CLIENT_ID"),
            "graph_client_secret": self.raw("GRAPH_CLIENT_SECRET"),
        }
        if email_to:
            for key, value in graph.items():
                if value is None:
                    self.problem(
                        key.upper(),
                        f"{key.upper()} is missing: email alerts (ALERT_EMAIL_TO) need it.")

        values: dict[str, Any] = {
            "client_id": client_id,
            "client_secret": client_secret,
            "region": region,
            "api_url": api_url,
            "login_url": login_url,
            "license_capacity": capacity,
            "warning_percent": warning,
            "critical_percent": critical,
            "clear_margin_percent": margin,
            "window_minutes": self.integer("WINDOW_MINUTES", 15),
            "agent_rule": rule,
            "concurrent_license_pattern": pattern,
            "roster_ttl_minutes": self.integer("ROSTER_TTL_MINUTES", 60),
            "request_budget_per_minute": self.integer("REQUEST_BUDGET_PER_MINUTE", 300),
            "state_connection": state_connection,
            "state_account_url": state_account_url,
            "state_from_host_storage": state_from_host_storage,
            "azure_credential": azure_credential,
            "azure_client_id": self.raw("AZURE_CLIENT_ID"),
            "state_table": self.table_name(),
            "monitor_schedule": schedule,
            "manual_check_wait_seconds": self.integer("MANUAL_CHECK_WAIT_SECONDS", 30),
            "gauge_check_min_interval_seconds": self.integer(
                "GAUGE_CHECK_MIN_INTERVAL_SECONDS", 60),
            "billing_anchor_day": self.integer("BILLING_ANCHOR_DAY", 1),
            "failure_alert_after": self.integer("FAILURE_ALERT_AFTER", 3),
            "remind_every_minutes": self.integer("REMIND_EVERY_MINUTES", 0),
            "idle_after_minutes": self.integer("IDLE_AFTER_MINUTES", 60),
            "quiet_hours": quiet,
            "quiet_hours_timezone": quiet_zone,
            "forecast_timezone": forecast_zone,
            "forecast_alert_margin_percent": forecast_margin,
            "retention_days": self.integer("RETENTION_DAYS", 90),
            "history_retention_days": self.integer("HISTORY_RETENTION_DAYS", 7),
            "org_name": self.raw("ORG_NAME"),
            "alert_link_url": self.url("ALERT_LINK_URL"),
            "alert_webhook_url": self.url("ALERT_WEBHOOK_URL", secret=True),
            "alert_webhook_secret": self.webhook_secret(),
            "teams_webhook_url": self.url("TEAMS_WEBHOOK_URL", secret=True),
            "slack_webhook_url": self.url("SLACK_WEBHOOK_URL", secret=True),
            "pagerduty_routing_key": self.raw("PAGERDUTY_ROUTING_KEY"),
            "pagerduty_events_url": self.url(
                "PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue"),
            "alert_email_to": email_to,
            "graph_authority_url": self.url(
                "GRAPH_AUTHORITY_URL", "https://login.microsoftonline.com"),
            "graph_api_url": self.url("GRAPH_API_URL", "https://graph.microsoft.com/v1.0"),
            **graph,
            "check_timeout_seconds": self.integer("CHECK_TIMEOUT_SECONDS", 120),
            "concurrent_pool": self.concurrent_pool(),
            **self.app_insights(),
        }
        if self.problems:
            raise ConfigError(self.problems)
        return Settings(**values)

    def table_name(self) -> str:
        name = self.raw("STATE_TABLE") or "licensemonitor"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", name):
            self.problem(
                "STATE_TABLE",
                f"STATE_TABLE must be 3-63 letters or digits starting with a letter, "
                f"got {_shown(name, 60)}.")
            return "licensemonitor"
        return name

    def quiet_hours(self, text: str | None) -> tuple[QuietWindow, ...]:
        if text is None:
            return ()
        windows = []
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            window = _parse_quiet_window(part)
            if window is None:
                self.problem(
                    "QUIET_HOURS",
                    f"QUIET_HOURS entry {_shown(part, 60)} is not like 'Mon-Fri 22:00-06:00' or "
                    f"'Sat-Sun 00:00-24:00'.")
            else:
                windows.append(window)
        return tuple(windows)


def _parse_quiet_window(text: str) -> QuietWindow | None:
    match = _QUIET_RANGE.match(text)
    if match is None:
        return None
    days: set[int] = set()
    for span in (match.group("days") or "Mon-Sun").lower().split(","):
        first, _, last = span.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            return None
        start, end = _DAYS.index(first), _DAYS.index(last or first)
        index = start
        while True:
            days.add(index)
            if index == end:
                break
            index = (index + 1) % 7
    minutes = []
    for clock in (match.group("start"), match.group("end")):
        hours, mins = int(clock[:2]), int(clock[3:])
        if hours > 24 or mins > 59 or (hours == 24 and mins):
            return None
        minutes.append(hours * 60 + mins)
    if minutes[0] == minutes[1]:
        return None
    return QuietWindow(frozenset(days), minutes[0], minutes[1])
