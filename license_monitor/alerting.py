"""Alert policy: a check's outcome and the previous state -> the new state and the events to send.

Pure: no clock, no I/O. Levels come from `concurrent.peak / capacity` (DESIGN.md §8) with
hysteresis; a breach episode is announced once, escalated once, resolved once; failed checks are
counted apart and never change the usage level; the billing period's billable peak is announced
once per new peak above capacity. During quiet hours the state advances but events are held,
and released when the window ends only while they still matter (see `_release`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from license_monitor.forecast import Forecast, breach_expected
from license_monitor.roster import ALL_USERS_NOTE, POOL_ALL_USERS, POOL_FROM_LICENSES
from license_monitor.times import (
    clock_time,
    compact_time,
    format_check_time,
    format_time,
    parse_time,
    utc,
)

Level = Literal["ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")
EVENTS = (
    "breach", "escalation", "resolved", "reminder", "monitor_failing", "monitor_recovered",
    "overage_locked_in", "channel_rejected", "forecast_breach",
)
_RANK: dict[str, int] = {"ok": 0, "warning": 1, "critical": 2}

# Why a check failed, from the failing activity's one-line error (the only thing that crosses
# the orchestration boundary): a stable code for receivers and a phrase for people.
CAUSES: dict[str, str] = {
    "bad_credentials": "bad credentials",
    "permission_missing": "permission missing",
    "platform_unavailable": "Genesys Cloud unavailable",
    "storage_unavailable": "storage unavailable",
    "clock_skew": "clock running fast",
    "check_failed": "check failed",
}
_PERMISSION = re.compile(r"missing the permission\(?s?\)? ([^\s()]+)", re.IGNORECASE)
_SERVER_STATUS = re.compile(r"\bHTTP 5\d\d\b")
# A failure reason is kept in the alert state, the check JSON and every failure alert: a long
# one (a platform error quoted at length) would make the state row too large to store, and a
# check that cannot be stored is never counted.
MAX_REASON_CHARS = 500


def _optional_time(text: Any) -> datetime | None:
    return None if text is None else parse_time(str(text))


def _optional_format(moment: datetime | None) -> str | None:
    return None if moment is None else format_check_time(moment)


OVERAGE_PERIODS_KEPT = 3  # periods whose announced overage the state remembers


def _announced(data: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """The announced overage peaks per period as stored (older states: only the last one)."""
    stored = data.get("overage_announced")
    if stored:
        return tuple((str(period), int(peak)) for period, peak in stored)
    period, peak = data.get("overage_period"), _optional_int(data.get("overage_peak"))
    return () if period is None or peak is None else ((str(period), peak),)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Policy:
    """Thresholds and timing of the alert policy (settings of DESIGN.md §9)."""

    capacity: int
    warning_percent: float = 90
    critical_percent: float = 95
    clear_margin_percent: float = 5
    failure_alert_after: int = 3
    remind_every_minutes: int = 0
    # forecast_breach only when the forecast peak is over capacity by more than this share
    forecast_margin_percent: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.capacity <= 0:
            problems.append(f"the capacity must be a positive number of licenses: {self.capacity}")
        if not 0 < self.warning_percent <= self.critical_percent:
            problems.append(
                "the warning percent must be above 0 and at most the critical percent "
                f"(got warning {self.warning_percent:g}, critical {self.critical_percent:g})"
            )
        if not 0 <= self.clear_margin_percent < self.warning_percent:
            problems.append(
                "the clear margin must be at least 0 and below the warning percent "
                f"(got {self.clear_margin_percent:g})"
            )
        if self.failure_alert_after < 1:
            problems.append(f"failure_alert_after must be 1 or more: {self.failure_alert_after}")
        if self.remind_every_minutes < 0:
            problems.append(f"remind_every_minutes cannot be negative: {self.remind_every_minutes}")
        if not 0 <= self.forecast_margin_percent <= 50:
            problems.append("the forecast alert margin must be from 0 to 50 percent "
                            f"(got {self.forecast_margin_percent:g})")
        if problems:
            raise ValueError("invalid alert policy: " + "; ".join(problems))

    def threshold(self, level: Level) -> float:
        """The utilization percent at which `level` is entered (0 for ok)."""
        if level == "ok":
            return 0.0
        return self.warning_percent if level == "warning" else self.critical_percent

    def utilization_percent(self, concurrent: int) -> float:
        """Concurrent licenses in use as a percent of capacity, unrounded."""
        return concurrent * 100 / self.capacity


@dataclass(frozen=True)
class Billing:
    """The billing period's figures as recorded so far (30-minute rule, DESIGN.md §2)."""

    period_start: str  # ISO date of the period's first day
    billable_peak: int  # exact to the second
    minutes_over_capacity: int | None = None  # whole minutes of seconds_over_capacity
    billable_peak_upper: int | None = None  # the same rule over each minute's highest level
    seconds_over_capacity: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the `billing` object of payloads and check JSON)."""
        return {
            "period_start": self.period_start,
            "billable_peak": self.billable_peak,
            "billable_peak_upper": self.billable_peak_upper,
            "seconds_over_capacity": self.seconds_over_capacity,
            "minutes_over_capacity": self.minutes_over_capacity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Billing:
        """Inverse of to_dict."""
        return cls(
            period_start=str(data["period_start"]),
            billable_peak=int(data["billable_peak"]),
            minutes_over_capacity=_optional_int(data.get("minutes_over_capacity")),
            billable_peak_upper=_optional_int(data.get("billable_peak_upper")),
            seconds_over_capacity=_optional_int(data.get("seconds_over_capacity")),
        )


@dataclass(frozen=True)
class Usage:
    """The figures a decision needs, from a successful check.

    `concurrent` is the window's exact concurrent peak (DESIGN.md §3), the figure levels use;
    `agents` and `admins` split it (None while the roster's classes are not built yet). The
    billing figures are the period's so far, when known. `pool` is the counting basis
    (CONCURRENT_POOL); every message says when it is every user.
    """

    concurrent: int
    agents: int | None
    admins: int | None
    window_distinct: int
    billable_peak: int | None = None
    period_start: str | None = None
    minutes_over_capacity: int | None = None
    billable_peak_upper: int | None = None
    seconds_over_capacity: int | None = None
    pool: str = POOL_FROM_LICENSES
    idle: str | None = None  # one sentence on idle license holders (idle.py), for breaches
    # Earlier billing periods whose minutes the check may have recorded (the previous period's
    # last minutes, measured after its end): their overage is decided too. Not serialised.
    earlier: tuple[Billing, ...] = field(default=(), compare=False)

    @property
    def billing(self) -> Billing | None:
        """The billing figures, when the period and its billable peak are known."""
        if self.billable_peak is None or self.period_start is None:
            return None
        return Billing(self.period_start, self.billable_peak, self.minutes_over_capacity,
                       self.billable_peak_upper, self.seconds_over_capacity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "concurrent": self.concurrent,
            "agents": self.agents,
            "admins": self.admins,
            "window_distinct": self.window_distinct,
            "billable_peak": self.billable_peak,
            "period_start": self.period_start,
            "minutes_over_capacity": self.minutes_over_capacity,
            "billable_peak_upper": self.billable_peak_upper,
            "seconds_over_capacity": self.seconds_over_capacity,
            "pool": self.pool,
            "idle": self.idle,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        """Inverse of to_dict."""
        period = data.get("period_start")
        return cls(
            concurrent=int(data["concurrent"]),
            agents=_optional_int(data.get("agents")),
            admins=_optional_int(data.get("admins")),
            window_distinct=int(data["window_distinct"]),
            billable_peak=_optional_int(data.get("billable_peak")),
            period_start=None if period is None else str(period),
            minutes_over_capacity=_optional_int(data.get("minutes_over_capacity")),
            billable_peak_upper=_optional_int(data.get("billable_peak_upper")),
            seconds_over_capacity=_optional_int(data.get("seconds_over_capacity")),
            pool=str(data.get("pool") or POOL_FROM_LICENSES),
            idle=None if data.get("idle") is None else str(data["idle"]),
        )


@dataclass(frozen=True)
class CheckFailure:
    """A check that could not measure usage; `reason` is one clear sentence for people."""

    reason: str


def failure_cause(reason: str) -> str:
    """Classify a failed check's one-line reason: a key of CAUSES.

    The reason is the failing activity's message (the Genesys client's and the store's errors
    are written for people); the patterns below are those messages' fixed wording.
    """
    text = reason.lower()
    if "clock is" in text and "ahead of" in text:
        return "clock_skew"
    if "table storage" in text:
        return "storage_unavailable"
    if "permission" in text and ("missing" in text or "lacks" in text):
        return "permission_missing"
    if any(words in text for words in (
            "rejected the client", "refused the token request", "freshly issued access token",
            "invalid_client")):
        return "bad_credentials"
    if any(words in text for words in (
            "unavailable", "rate-limiting", "could not be reached", "timed out",
            "deadline while signing in (genesys cloud)",
            "deadline while measuring usage (genesys cloud)")) or (
            _SERVER_STATUS.search(reason)):
        return "platform_unavailable"
    return "check_failed"


def describe_cause(reason: str) -> str:
    """The cause of a failed check for people, naming the missing permission when known."""
    cause = failure_cause(reason)
    match = _PERMISSION.search(reason)
    if cause == "permission_missing" and match is not None:
        return f"permission {match.group(1)} missing"
    return CAUSES[cause]


@dataclass(frozen=True)
class AlertEvent:
    """What receivers get; to_payload() is the webhook JSON of DESIGN.md §9."""

    event: str  # one of EVENTS
    level: str
    previous_level: str
    alert_id: str
    occurred_at: datetime
    usage: Usage | None
    capacity: int
    utilization_percent: float | None
    message: str
    billing: Billing | None = None
    cause: str | None = None  # monitor_failing / monitor_recovered: a key of CAUSES
    forecast: dict[str, Any] | None = None  # forecast_breach: the check JSON's forecast

    @property
    def key(self) -> str:
        """Identity of this notification within its alert: one per event, reminder and peak."""
        if self.event == "reminder":
            return f"{self.alert_id}:reminder-{compact_time(self.occurred_at)}"
        if self.event == "overage_locked_in" and self.billing is not None:
            return f"{self.alert_id}:overage-{self.billing.billable_peak}"
        return f"{self.alert_id}:{self.event}"

    def to_payload(self) -> dict[str, Any]:
        """The generic webhook body (DESIGN.md §9), plus billing figures and the failure cause."""
        usage = self.usage
        billing = self.billing
        return {
            "event": self.event,
            "level": self.level,
            "previous_level": self.previous_level,
            "concurrent": None if usage is None else usage.concurrent,
            "capacity": self.capacity,
            "utilization_percent": self.utilization_percent,
            "agents": None if usage is None else usage.agents,
            "admins": None if usage is None else usage.admins,
            "window_distinct": None if usage is None else usage.window_distinct,
            "pool": None if usage is None else usage.pool,
            "billable_peak": (
                billing.billable_peak if billing is not None
                else None if usage is None else usage.billable_peak),
            "billing": None if billing is None else billing.to_dict(),
            "alert_id": self.alert_id,
            "occurred_at": format_time(self.occurred_at),
            "message": self.message,
            "cause": self.cause,
            **({} if self.forecast is None else {"forecast": dict(self.forecast)}),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> AlertEvent:
        """Inverse of to_payload."""
        billing_data = payload.get("billing")
        billing = None if billing_data is None else Billing.from_dict(billing_data)
        usage = None
        if payload.get("concurrent") is not None:
            usage = Usage(
                concurrent=int(payload["concurrent"]),
                agents=_optional_int(payload.get("agents")),
                admins=_optional_int(payload.get("admins")),
                window_distinct=int(payload["window_distinct"]),
                billable_peak=_optional_int(payload.get("billable_peak")),
                period_start=None if billing is None else billing.period_start,
                minutes_over_capacity=None if billing is None else billing.minutes_over_capacity,
                billable_peak_upper=None if billing is None else billing.billable_peak_upper,
                seconds_over_capacity=None if billing is None else billing.seconds_over_capacity,
                pool=str(payload.get("pool") or POOL_FROM_LICENSES),
            )
        utilization = payload.get("utilization_percent")
        cause = payload.get("cause")
        forecast = payload.get("forecast")
        return cls(
            event=str(payload["event"]),
            level=str(payload["level"]),
            previous_level=str(payload["previous_level"]),
            alert_id=str(payload["alert_id"]),
            occurred_at=parse_time(str(payload["occurred_at"])),
            usage=usage,
            capacity=int(payload["capacity"]),
            utilization_percent=None if utilization is None else float(utilization),
            message=str(payload["message"]),
            billing=billing,
            cause=None if cause is None else str(cause),
            forecast=dict(forecast) if isinstance(forecast, dict) else None,
        )


@dataclass(frozen=True)
class AlertState:
    """What the policy remembers between checks, one per org; JSON-serialisable."""

    level: Level = "ok"
    episode_id: str | None = None
    episode_started_at: datetime | None = None
    escalated: bool = False
    last_notified_at: datetime | None = None
    consecutive_failures: int = 0
    failing_notified: bool = False
    last_error: str | None = None
    last_usage: Usage | None = None
    # Start of the current run of failed checks: the failure alert's id derives from it, so
    # monitor_failing and monitor_recovered of one outage share an alert_id.
    failing_since: datetime | None = None
    # The newest check decided: an older or repeated one (a retried activity, a slow manual
    # check finishing after the timer's) changes nothing.
    last_checked_at: datetime | None = None
    # The billable peak last announced by overage_locked_in, and its period.
    overage_period: str | None = None
    overage_peak: int | None = None
    # The highest billable peak announced per billing period (the newest few periods).
    overage_announced: tuple[tuple[str, int], ...] = ()
    # Events decided during quiet hours, not yet sent (see _release).
    held: tuple[AlertEvent, ...] = ()
    # The day (in the forecast's zone) forecast_breach was last announced: once a day.
    forecast_day: str | None = None

    @property
    def announced_overages(self) -> dict[str, int]:
        """The highest billable peak announced per period (the last one too, as older
        versions stored only that)."""
        announced = dict(self.overage_announced)
        if self.overage_period is not None and self.overage_peak is not None:
            announced[self.overage_period] = max(
                self.overage_peak, announced.get(self.overage_period, self.overage_peak))
        return announced

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (ISO 'Z' timestamps)."""
        return {
            "level": self.level,
            "episode_id": self.episode_id,
            "episode_started_at": _optional_format(self.episode_started_at),
            "escalated": self.escalated,
            "last_notified_at": _optional_format(self.last_notified_at),
            "consecutive_failures": self.consecutive_failures,
            "failing_notified": self.failing_notified,
            "last_error": self.last_error,
            "last_usage": None if self.last_usage is None else self.last_usage.to_dict(),
            "failing_since": _optional_format(self.failing_since),
            "last_checked_at": _optional_format(self.last_checked_at),
            "overage_period": self.overage_period,
            "overage_peak": self.overage_peak,
            "overage_announced": [list(item) for item in self.overage_announced],
            "held": [event.to_payload() for event in self.held],
            "forecast_day": self.forecast_day,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertState:
        """Inverse of to_dict; missing keys take their defaults."""
        level = data.get("level", "ok")
        if level not in _RANK:
            raise ValueError(f"unknown alert level {level!r} in stored state")
        usage = data.get("last_usage")
        return cls(
            level=cast(Level, level),
            episode_id=data.get("episode_id"),
            episode_started_at=_optional_time(data.get("episode_started_at")),
            escalated=bool(data.get("escalated", False)),
            last_notified_at=_optional_time(data.get("last_notified_at")),
            consecutive_failures=int(data.get("consecutive_failures", 0)),
            failing_notified=bool(data.get("failing_notified", False)),
            last_error=data.get("last_error"),
            last_usage=None if usage is None else Usage.from_dict(usage),
            failing_since=_optional_time(data.get("failing_since")),
            last_checked_at=_optional_time(data.get("last_checked_at")),
            overage_period=data.get("overage_period"),
            overage_peak=_optional_int(data.get("overage_peak")),
            overage_announced=_announced(data),
            held=tuple(AlertEvent.from_payload(item) for item in data.get("held") or ()),
            forecast_day=data.get("forecast_day"),
        )


@dataclass(frozen=True)
class Decision:
    """The new state, the events to notify (in order) and the level the check reports."""

    state: AlertState
    events: tuple[AlertEvent, ...]
    level: Level | Literal["unknown"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for activity outputs."""
        return {
            "state": self.state.to_dict(),
            "events": [event.to_payload() for event in self.events],
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """Inverse of to_dict."""
        level = data["level"]
        if level not in (*LEVELS, "unknown"):
            raise ValueError(f"unknown check level {level!r}")
        return cls(
            state=AlertState.from_dict(data["state"]),
            events=tuple(AlertEvent.from_payload(event) for event in data["events"]),
            level=level,
        )


# ---- the policy -------------------------------------------------------------------------------

def level_for(concurrent: int, previous: Level, policy: Policy) -> Level:
    """The level for `concurrent` given the previous level (hysteresis).

    A level is entered at its threshold and held, once reached, until utilization falls below
    its threshold minus the clear margin: 88 % stays warning after a warning, 93 % stays
    critical after a critical.
    """
    # Compare in integers-times-100 so 450 of 500 is exactly 90 %, not 89.999...
    scaled = concurrent * 100
    entered: Level = "ok"
    breached: tuple[Level, ...] = ("warning", "critical")
    for level in breached:
        if scaled >= policy.threshold(level) * policy.capacity:
            entered = level
    held: Level = "ok"
    for level in breached:
        if _RANK[level] <= _RANK[previous] and scaled >= (
            policy.threshold(level) - policy.clear_margin_percent
        ) * policy.capacity:
            held = level
    return entered if _RANK[entered] >= _RANK[held] else held


def _usage_message(usage: Usage, policy: Policy, level: str) -> str:
    utilization = policy.utilization_percent(usage.concurrent)
    head = (
        f"{usage.concurrent} of {policy.capacity} concurrent licenses in use ({utilization:.1f}%)"
    )
    if level == "ok":
        clear_level = policy.warning_percent - policy.clear_margin_percent
        return f"{head}, below the {clear_level:g}% clear level"
    return f"{head}, {level} threshold {policy.threshold(cast(Level, level)):g}%"


def _with_pool(message: str, usage: Usage | None) -> str:
    """The message, saying so when the figures count every user (CONCURRENT_POOL=all_users)."""
    if usage is not None and usage.pool == POOL_ALL_USERS:
        return f"{message}; {ALL_USERS_NOTE}"
    return message


def one_line(text: str) -> str:
    """A failure reason as one line of at most MAX_REASON_CHARS characters."""
    line = " ".join(text.split())
    if len(line) > MAX_REASON_CHARS:
        line = line[: MAX_REASON_CHARS - 3].rstrip() + "..."
    return line


def failure_alert_id(failing_since: datetime) -> str:
    """The alert id of a run of failed checks: 'failing-20261126T120000Z'."""
    return f"failing-{compact_time(failing_since)}"


def _failed_checks(count: int) -> str:
    return "The license check failed" if count == 1 else (
        f"License checks failed {count} times in a row")


def decide(
    outcome: Usage | CheckFailure,
    previous: AlertState,
    policy: Policy,
    now: datetime,
    *,
    quiet: bool = False,
    missed: Sequence[tuple[datetime, CheckFailure]] = (),
    trusted_until: datetime | None = None,
    forecast: Forecast | None = None,
) -> Decision:
    """Apply the alert policy of DESIGN.md §8 to one check's outcome.

    Args:
        quiet: the check runs in quiet hours: the state advances, the events are held.
        missed: earlier failed checks the state could not record (storage was down), oldest
            first; those newer than the last decided check are counted before this one.
        trusted_until: the latest check time that can be true (the storage service's clock
            plus the tolerated skew): a state stamped later was decided on a clock running
            fast, and is repaired (its time dropped), not obeyed.
        forecast: today's forecast (forecast.py): `forecast_breach` when it says capacity will
            be crossed while the level is ok, once a day; outside quiet hours only.
    """
    now = utc(now)
    if (trusted_until is not None and previous.last_checked_at is not None
            and previous.last_checked_at > trusted_until):
        previous = replace(previous, last_checked_at=None)
    if previous.last_checked_at is not None and now <= previous.last_checked_at:
        # A repeated or out-of-order check: deciding it again would count a failure twice or
        # let old figures overrule newer ones.
        level: Level | Literal["unknown"] = "unknown"
        if isinstance(outcome, Usage):
            level = level_for(outcome.concurrent, previous.level, policy)
        return Decision(state=previous, events=(), level=level)
    state = previous
    events: list[AlertEvent] = []
    for when, failure in sorted(missed, key=lambda item: item[0]):
        moment = utc(when)
        if (state.last_checked_at is None or moment > state.last_checked_at) and moment < now:
            step = _decide_failure(failure, state, policy, moment)
            state = replace(step.state, last_checked_at=moment)
            events += step.events
    if isinstance(outcome, CheckFailure):
        current = _decide_failure(outcome, state, policy, now)
    else:
        current = _decide_usage(outcome, state, policy, now)
    state = replace(current.state, last_checked_at=now)
    ahead = None if quiet or not isinstance(outcome, Usage) else _forecast_breach(
        forecast, outcome, state, policy, now)
    if ahead is not None:
        state = replace(state, forecast_day=ahead.alert_id.removeprefix("forecast-"))
    pending = (*previous.held, *events, *current.events, *(() if ahead is None else (ahead,)))
    if quiet:
        return Decision(state=replace(state, held=_compact_held(pending)), events=(),
                        level=current.level)
    if previous.held:
        state, released = _release(pending, replace(state, held=()), policy, now)
        return Decision(state=state, events=released, level=current.level)
    return Decision(state=state, events=pending, level=current.level)


def _decide_failure(
    failure: CheckFailure, previous: AlertState, policy: Policy, now: datetime
) -> Decision:
    failures = previous.consecutive_failures + 1
    failing_since = previous.failing_since or now
    reason = one_line(failure.reason)
    alert_now = not previous.failing_notified and failures >= policy.failure_alert_after
    events: list[AlertEvent] = []
    if alert_now:
        last = previous.last_usage
        events.append(
            AlertEvent(
                event="monitor_failing",
                level="unknown",
                previous_level=previous.level,
                alert_id=failure_alert_id(failing_since),
                occurred_at=now,
                usage=None,
                capacity=policy.capacity,
                utilization_percent=None,
                # The billing figures it carries are the last check's, counted on its basis.
                message=_with_pool(
                    f"{_failed_checks(failures)} ({describe_cause(reason)}); "
                    f"last error: {reason}", last),
                billing=None if last is None else last.billing,
                cause=failure_cause(reason),
            )
        )
    # The usage level, the episode and the reminder clock stay as they were: missing data is
    # never read as "usage went down".
    state = replace(
        previous,
        consecutive_failures=failures,
        failing_since=failing_since,
        failing_notified=previous.failing_notified or alert_now,
        last_error=reason,
    )
    return Decision(state=state, events=tuple(events), level="unknown")


def _decide_usage(usage: Usage, previous: AlertState, policy: Policy, now: datetime) -> Decision:
    level = level_for(usage.concurrent, previous.level, policy)
    utilization = round(policy.utilization_percent(usage.concurrent), 1)

    def event(name: str, alert_id: str, previous_level: str, message: str,
              cause: str | None = None) -> AlertEvent:
        return AlertEvent(
            event=name,
            level=level,
            previous_level=previous_level,
            alert_id=alert_id,
            occurred_at=now,
            usage=usage,
            capacity=policy.capacity,
            utilization_percent=utilization,
            message=_with_pool(message, usage),
            billing=usage.billing,
            cause=cause,
        )

    message = _usage_message(usage, policy, level)
    # Breaches and escalations say who holds a license without working: the first place to
    # look for licenses to free.
    breach_message = f"{message}; {usage.idle}" if usage.idle else message
    events: list[AlertEvent] = []
    state = replace(
        previous,
        level=level,
        last_usage=usage,
        consecutive_failures=0,
        failing_since=None,
        failing_notified=False,
        last_error=None,
    )
    if previous.failing_notified:
        failing_since = previous.failing_since or now
        events.append(
            event(
                "monitor_recovered",
                failure_alert_id(failing_since),
                "unknown",
                f"License checks work again after {previous.consecutive_failures} failures: "
                + message,
                cause=failure_cause(previous.last_error or ""),
            )
        )

    was_breached = previous.level != "ok"
    is_breached = level != "ok"
    episode_id = previous.episode_id or f"breach-{compact_time(previous.episode_started_at or now)}"
    if is_breached and not was_breached:
        episode_id = f"breach-{compact_time(now)}"
        events.append(event("breach", episode_id, previous.level, breach_message))
        # A breach straight to critical has already told people it is critical: the episode
        # has no escalation left to announce.
        state = replace(
            state,
            episode_id=episode_id,
            episode_started_at=now,
            escalated=level == "critical",
            last_notified_at=now,
        )
    elif was_breached and not is_breached:
        events.append(event("resolved", episode_id, previous.level, message))
        state = replace(
            state, episode_id=None, episode_started_at=None, escalated=False, last_notified_at=now
        )
    elif is_breached:
        state = replace(state, episode_id=episode_id)
        if level == "critical" and previous.level == "warning" and not previous.escalated:
            events.append(event("escalation", episode_id, previous.level, breach_message))
            state = replace(state, escalated=True, last_notified_at=now)
        elif _reminder_due(previous, policy, now):
            since = clock_time(previous.episode_started_at or now, now)
            events.append(
                event("reminder", episode_id, previous.level, f"{message}; breached since {since}")
            )
            state = replace(state, last_notified_at=now)

    announced = dict(previous.announced_overages)
    current_period = usage.billing
    for figures in (*usage.earlier, current_period):
        overage = None if figures is None else _overage(
            figures, announced, policy, closed=figures is not current_period)
        if overage is None or figures is None:
            continue
        events.append(replace(event("overage_locked_in", overage[0], previous.level, overage[1]),
                              billing=figures))
        announced[figures.period_start] = figures.billable_peak
        state = replace(
            state, overage_period=figures.period_start, overage_peak=figures.billable_peak,
            overage_announced=tuple(sorted(announced.items())[-OVERAGE_PERIODS_KEPT:]))
    return Decision(state=state, events=tuple(events), level=level)


def _forecast_breach(
    forecast: Forecast | None, usage: Usage, state: AlertState, policy: Policy, now: datetime,
) -> AlertEvent | None:
    """forecast_breach when the forecast crosses capacity while usage is below the warning
    line, once per day (the forecast's day): it warns, it never resolves or escalates."""
    if forecast is None or state.level != "ok" or not breach_expected(
            forecast, policy.capacity, margin_percent=policy.forecast_margin_percent):
        return None
    day = forecast.day.strftime("%Y%m%d")
    if state.forecast_day == day:
        return None
    utilization = round(policy.utilization_percent(usage.concurrent), 1)
    return AlertEvent(
        event="forecast_breach", level="ok", previous_level="ok", alert_id=f"forecast-{day}",
        occurred_at=now, usage=usage, capacity=policy.capacity,
        utilization_percent=utilization,
        message=_with_pool(
            f"Forecast: {forecast.describe(policy.capacity, now)}; now {usage.concurrent} of "
            f"{policy.capacity} in use ({utilization:.1f}%)", usage),
        billing=usage.billing, forecast=forecast.to_dict())


def overage_alert_id(period_start: str) -> str:
    """The alert id of a billing period's overage alerts: 'overage-20261101'."""
    return "overage-" + period_start.replace("-", "")


def _overage(
    figures: Billing, announced: Mapping[str, int], policy: Policy, *, closed: bool = False,
) -> tuple[str, str] | None:
    """(alert id, message) when a period's billable peak rose to a new height over capacity.

    Genesys bills the period's highest level held for 30 minutes in total: once the billable
    peak passes capacity, that overage is on the invoice whatever happens next; only a higher
    billable peak costs more, so each new height is announced once per period.
    """
    peak, period = figures.billable_peak, figures.period_start
    if peak <= policy.capacity:
        return None
    if period in announced and peak <= announced[period]:
        return None
    over = peak - policy.capacity
    seconds, minutes = figures.seconds_over_capacity, figures.minutes_over_capacity
    so_far = "in the period" if closed else "so far"
    spent = (f"; {seconds // 60} minutes ({seconds} s) over capacity {so_far}"
             if seconds is not None
             else "" if minutes is None else f"; {minutes} minutes over capacity {so_far}")
    if figures.billable_peak_upper is not None and figures.billable_peak_upper != peak:
        spent += f"; by whole minutes it could read up to {figures.billable_peak_upper}"
    ended = " (ended, its last minutes measured now)" if closed else ""
    message = (
        f"Billable peak of the period from {period}{ended} is {peak} concurrent licenses, "
        f"{over} over the {policy.capacity} purchased{spent}"
    )
    return overage_alert_id(period), message


def _reminder_due(previous: AlertState, policy: Policy, now: datetime) -> bool:
    if policy.remind_every_minutes <= 0:
        return False
    last = previous.last_notified_at or previous.episode_started_at
    return last is None or now - last >= timedelta(minutes=policy.remind_every_minutes)


# ---- releasing what quiet hours held ----------------------------------------------------------

def _compact_held(events: Sequence[AlertEvent]) -> tuple[AlertEvent, ...]:
    """Keep only what _release can still use, so a long quiet window stays small in storage.

    Per alert, the latest event of each kind; alerts that opened and closed inside the window
    (breach and resolved, or failing and recovered) release nothing and are dropped.
    """
    latest: dict[tuple[str, str], AlertEvent] = {}
    for event in events:
        latest.pop((event.alert_id, event.event), None)
        latest[(event.alert_id, event.event)] = event
    names: dict[str, set[str]] = {}
    for alert_id, name in latest:
        names.setdefault(alert_id, set()).add(name)
    closed = {alert_id for alert_id, seen in names.items()
              if {"breach", "resolved"} <= seen or {"monitor_failing", "monitor_recovered"} <= seen}
    return tuple(event for (alert_id, _), event in latest.items() if alert_id not in closed)


def _release(
    pending: Sequence[AlertEvent], state: AlertState, policy: Policy, now: datetime
) -> tuple[AlertState, tuple[AlertEvent, ...]]:
    """The events still worth sending once a quiet window is over, and the state after them.

    Per alert, what people have not heard about is reconciled with the present:
    - an episode whose breach was held: one breach at the current level and figures if it is
      still open; nothing at all if it opened and closed inside the window;
    - an episode announced before the window: its resolution if it resolved; otherwise the
      escalation if it is still critical, else the latest reminder;
    - a failure alert: monitor_failing if the checks still fail (nothing if they recovered
      inside the window); monitor_recovered if the failure had been announced before;
    - overage: the latest peak (it stays on the invoice).
    """
    groups: dict[str, list[AlertEvent]] = {}
    for event in pending:
        groups.setdefault(event.alert_id, []).append(event)
    released: list[AlertEvent] = []
    for alert_id, events in groups.items():
        names = [event.event for event in events]
        latest = {event.event: event for event in events}
        if alert_id.startswith("breach-"):
            still_open = state.episode_id == alert_id
            # An escalation nobody heard of, and no longer true: a later critical in this
            # episode must be announced, so the episode is not escalated any more.
            dropped_escalation = (still_open and "escalation" in names
                                  and "breach" not in names and state.level != "critical")
            if "breach" in names:
                if still_open:
                    released.append(refreshed(latest["breach"], "breach", "ok",
                                              state=state, policy=policy, now=now))
                    # The released breach told the current level: escalate only beyond it.
                    state = replace(state, escalated=state.level == "critical",
                                    last_notified_at=now)
            elif "resolved" in names:
                released.append(latest["resolved"])
            elif still_open and "escalation" in names and state.level == "critical":
                released.append(refreshed(latest["escalation"], "escalation", "warning",
                                          state=state, policy=policy, now=now))
                state = replace(state, last_notified_at=now)
            elif still_open and "reminder" in names:
                released.append(refreshed(latest["reminder"], "reminder", state.level,
                                          state=state, policy=policy, now=now))
                state = replace(state, last_notified_at=now)
            if dropped_escalation:
                state = replace(state, escalated=False)
        elif alert_id.startswith("failing-"):
            if "monitor_failing" in names:
                if "monitor_recovered" not in names:
                    released.append(latest["monitor_failing"])
            elif "monitor_recovered" in names:
                released.append(latest["monitor_recovered"])
        elif alert_id.startswith("overage-"):
            released.append(events[-1])
        else:
            released.extend(events)
    return state, tuple(released)


def refreshed(
    held: AlertEvent, name: str, previous_level: str, *, state: AlertState, policy: Policy,
    now: datetime,
) -> AlertEvent:
    """A held usage event re-issued now as `name` with the latest level and figures."""
    usage = state.last_usage
    if usage is None or (held.occurred_at == now and held.event == name):
        return held
    message = _usage_message(usage, policy, state.level)
    if state.episode_started_at is not None:
        message += f"; breached since {clock_time(state.episode_started_at, now)}"
    return replace(
        held,
        event=name,
        level=state.level,
        previous_level=previous_level,
        occurred_at=now,
        usage=usage,
        utilization_percent=round(policy.utilization_percent(usage.concurrent), 1),
        message=message,
        billing=usage.billing,
    )
