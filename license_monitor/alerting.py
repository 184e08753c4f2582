"""Alert policy: a check's outcome and the previous state -> the new state and the events to send.

Pure: no clock, no I/O. Levels come from `concurrent.peak / capacity` (DESIGN.md §8) with
hysteresis; a breach episode is announced once, escalated once, resolved once; failed checks are
counted apart and never change the usage level.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

Level = Literal["ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")
EVENTS = ("breach", "escalation", "resolved", "reminder", "monitor_failing", "monitor_recovered")
_RANK: dict[str, int] = {"ok": 0, "warning": 1, "critical": 2}


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a naive datetime is ambiguous here; pass an aware UTC time ({moment})")
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime as '2026-11-26T12:00:00Z' (whole seconds, UTC)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 timestamp with a zone ('...Z' or '+00:00') as aware UTC."""
    return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _optional_time(text: Any) -> datetime | None:
    return None if text is None else parse_time(str(text))


def _optional_format(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _compact(moment: datetime) -> str:
    return _utc(moment).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Policy:
    """Thresholds and timing of the alert policy (settings of DESIGN.md §9)."""

    capacity: int
    warning_percent: float = 90
    critical_percent: float = 95
    clear_margin_percent: float = 5
    failure_alert_after: int = 3
    remind_every_minutes: int = 0

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
class Usage:
    """The figures a decision needs, from a successful check.

    `concurrent` is the window's exact concurrent peak (DESIGN.md §3), the figure levels use;
    `agents` and `admins` split it.
    """

    concurrent: int
    agents: int
    admins: int
    window_distinct: int
    billable_peak: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "concurrent": self.concurrent,
            "agents": self.agents,
            "admins": self.admins,
            "window_distinct": self.window_distinct,
            "billable_peak": self.billable_peak,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        """Inverse of to_dict."""
        billable = data.get("billable_peak")
        return cls(
            concurrent=int(data["concurrent"]),
            agents=int(data["agents"]),
            admins=int(data["admins"]),
            window_distinct=int(data["window_distinct"]),
            billable_peak=None if billable is None else int(billable),
        )


@dataclass(frozen=True)
class CheckFailure:
    """A check that could not measure usage; `reason` is one clear sentence for people."""

    reason: str


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
        )


@dataclass(frozen=True)
class AlertEvent:
    """What receivers get; to_payload() is the webhook JSON of DESIGN.md §9."""

    event: str  # breach | escalation | resolved | reminder | monitor_failing | monitor_recovered
    level: str
    previous_level: str
    alert_id: str
    occurred_at: datetime
    usage: Usage | None
    capacity: int
    utilization_percent: float | None
    message: str

    @property
    def key(self) -> str:
        """Identity of this notification within its alert: one per event, one per reminder."""
        if self.event == "reminder":
            return f"{self.alert_id}:reminder-{_compact(self.occurred_at)}"
        return f"{self.alert_id}:{self.event}"

    def to_payload(self) -> dict[str, Any]:
        """The generic webhook body (DESIGN.md §9), plus billable_peak when known."""
        usage = self.usage
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
            "billable_peak": None if usage is None else usage.billable_peak,
            "alert_id": self.alert_id,
            "occurred_at": format_time(self.occurred_at),
            "message": self.message,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> AlertEvent:
        """Inverse of to_payload."""
        usage = None
        if payload.get("concurrent") is not None:
            usage = Usage.from_dict(payload)
        utilization = payload.get("utilization_percent")
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


def _usage_message(usage: Usage, policy: Policy, level: Level) -> str:
    utilization = policy.utilization_percent(usage.concurrent)
    head = (
        f"{usage.concurrent} of {policy.capacity} concurrent licenses in use ({utilization:.1f}%)"
    )
    if level == "ok":
        clear_level = policy.warning_percent - policy.clear_margin_percent
        return f"{head}, below the {clear_level:g}% clear level"
    return f"{head}, {level} threshold {policy.threshold(level):g}%"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _failure_alert_id(failing_since: datetime) -> str:
    return f"failing-{_compact(failing_since)}"


def decide(
    outcome: Usage | CheckFailure, previous: AlertState, policy: Policy, now: datetime
) -> Decision:
    """Apply the alert policy of DESIGN.md §8 to one check's outcome."""
    now = _utc(now)
    if isinstance(outcome, CheckFailure):
        return _decide_failure(outcome, previous, policy, now)
    return _decide_usage(outcome, previous, policy, now)


def _decide_failure(
    failure: CheckFailure, previous: AlertState, policy: Policy, now: datetime
) -> Decision:
    failures = previous.consecutive_failures + 1
    failing_since = previous.failing_since or now
    reason = _one_line(failure.reason)
    alert_now = not previous.failing_notified and failures >= policy.failure_alert_after
    events: list[AlertEvent] = []
    if alert_now:
        events.append(
            AlertEvent(
                event="monitor_failing",
                level="unknown",
                previous_level=previous.level,
                alert_id=_failure_alert_id(failing_since),
                occurred_at=now,
                usage=None,
                capacity=policy.capacity,
                utilization_percent=None,
                message=f"License checks failed {failures} times in a row; last error: {reason}",
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

    def event(name: str, alert_id: str, previous_level: str, message: str) -> AlertEvent:
        return AlertEvent(
            event=name,
            level=level,
            previous_level=previous_level,
            alert_id=alert_id,
            occurred_at=now,
            usage=usage,
            capacity=policy.capacity,
            utilization_percent=utilization,
            message=message,
        )

    message = _usage_message(usage, policy, level)
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
                _failure_alert_id(failing_since),
                "unknown",
                f"License checks work again after {previous.consecutive_failures} failures: "
                + message,
            )
        )

    was_breached = previous.level != "ok"
    is_breached = level != "ok"
    episode_id = previous.episode_id or f"breach-{_compact(previous.episode_started_at or now)}"
    if is_breached and not was_breached:
        episode_id = f"breach-{_compact(now)}"
        events.append(event("breach", episode_id, previous.level, message))
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
            events.append(event("escalation", episode_id, previous.level, message))
            state = replace(state, escalated=True, last_notified_at=now)
        elif _reminder_due(previous, policy, now):
            since = format_time(previous.episode_started_at or now)
            events.append(
                event("reminder", episode_id, previous.level, f"{message}; breached since {since}")
            )
            state = replace(state, last_notified_at=now)
    return Decision(state=state, events=tuple(events), level=level)


def _reminder_due(previous: AlertState, policy: Policy, now: datetime) -> bool:
    if policy.remind_every_minutes <= 0:
        return False
    last = previous.last_notified_at or previous.episode_started_at
    return last is None or now - last >= timedelta(minutes=policy.remind_every_minutes)
