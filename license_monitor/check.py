"""The steps of one license check, each called by one activity with small JSON in and out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from license_monitor import alerting, billing, measure, notify, usage
from license_monitor.genesys.models import parse_timestamp
from license_monitor.roster import Roster, split
from license_monitor.roster import load_roster as fetch_roster
from license_monitor.runtime import Services, roster_version
from license_monitor.settings import Settings
from license_monitor.state import StorageUnavailable

logger = logging.getLogger(__name__)

PARALLEL_DETAIL_PAGES = 8  # within the request budget; fewer round trips for large orgs


def iso(moment: datetime) -> str:
    """Format an aware datetime as the contracts do: '2026-11-26T12:00:00Z'."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CheckRequest:
    """What every step of one check knows: its time, whether it is a dry run, the roster."""

    checked_at: datetime
    dry_run: bool = False
    roster_version: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckRequest:
        """Parse the orchestrator's input to an activity."""
        return cls(
            checked_at=parse_timestamp(str(data["checked_at"])),
            dry_run=bool(data.get("dry_run", False)),
            roster_version=data.get("roster_version"),
        )

    def window(self, services: Services) -> tuple[datetime, datetime]:
        """The measurement window [t - W, t]."""
        minutes = services.settings.window_minutes
        return self.checked_at - timedelta(minutes=minutes), self.checked_at


def acquire_token(services: Services) -> dict[str, Any]:
    """Make sure this process holds a token (fails fast with AuthError); returns no token."""
    services.client.ensure_token()
    return {"ok": True}


def _current_roster(services: Services, request: CheckRequest) -> Roster:
    """The roster of this check: memory, then the Table Storage cache, then the platform."""
    settings = services.settings
    if request.roster_version and request.roster_version in services.rosters:
        return services.rosters[request.roster_version]
    cached = services.state.load_roster() if services.state is not None else None
    if cached is not None:
        roster = Roster.from_dict(cached)
        # The version this check loaded, or any fresh one (a concurrent check may have
        # refreshed it since): either way no rebuild is needed.
        if roster_version(roster) == request.roster_version or roster.is_fresh(
                request.checked_at, settings.roster_ttl_minutes):
            services.remember(roster)
            return roster
    return _refresh_roster(services, request)


def _refresh_roster(services: Services, request: CheckRequest) -> Roster:
    settings = services.settings
    roster = fetch_roster(services.client, settings.agent_rule,
                          settings.concurrent_license_pattern, request.checked_at)
    if not request.dry_run and services.state is not None:
        services.state.save_roster(roster.to_dict(), request.checked_at)
    services.remember(roster)
    logger.info("Roster rebuilt: %d pool users (%d agents, %d admins), %s",
                len(roster.agents) + len(roster.admins), len(roster.agents),
                len(roster.admins), roster.pool_source)
    return roster


def load_roster(services: Services, request: CheckRequest) -> dict[str, Any]:
    """Refresh the roster when stale; return its version and counts (never the user ids)."""
    roster = _current_roster(services, CheckRequest(request.checked_at, request.dry_run))
    return {
        "version": roster_version(roster),
        "pool": len(roster.agents) + len(roster.admins),
        "agents": len(roster.agents),
        "admins": len(roster.admins),
        "pool_source": roster.pool_source,
    }


def query_window_activity(services: Services, request: CheckRequest) -> dict[str, Any]:
    """window_distinct: pool users with any logged-in time in the window."""
    roster = _current_roster(services, request)
    start, end = request.window(services)
    return {"window_distinct": measure.query_window_distinct(services.client, start, end, roster)}


def query_presence_details(services: Services, request: CheckRequest) -> dict[str, Any]:
    """Concurrency now and at the peak, split into agents and admins, and per-minute levels."""
    settings = services.settings
    roster = _current_roster(services, request)
    start, end = request.window(services)
    segments = measure.fetch_segments(services.client, start, end, PARALLEL_DETAIL_PAGES)
    logged_in = measure.online_users(segments, start, end)
    # New hires logged in since the roster was built are fetched, not dropped.
    refreshed = measure.refresh_for_strangers(
        services.client, roster, logged_in, rule=settings.agent_rule,
        license_pattern=settings.concurrent_license_pattern, now=request.checked_at)
    if refreshed is not roster:
        roster = refreshed
        if not request.dry_run and services.state is not None:
            services.state.save_roster(roster.to_dict(), request.checked_at)
        services.remember(roster)
    concurrency = usage.measure_concurrency(segments, start, end, include=roster.in_pool)
    return {
        "now": split(concurrency.now_users, roster).to_dict(),
        "peak": split(concurrency.peak_users, roster).to_dict(),
        "peak_at": iso(concurrency.peak_at),
        "minute_levels": {
            iso(minute): level for minute, level in concurrency.minute_levels.items()},
        "unclassified": len(roster.unresolved & logged_in),
    }


def _policy(services: Services) -> alerting.Policy:
    settings = services.settings
    return alerting.Policy(
        capacity=settings.license_capacity,
        warning_percent=settings.warning_percent,
        critical_percent=settings.critical_percent,
        clear_margin_percent=settings.clear_margin_percent,
        failure_alert_after=settings.failure_alert_after,
        remind_every_minutes=settings.remind_every_minutes,
    )


def _billing(
    services: Services, request: CheckRequest, minute_levels: dict[str, Any]
) -> dict[str, Any]:
    """Record this window's minutes (idempotent) and summarise the period (30-minute rule)."""
    settings = services.settings
    period = billing.billing_period_start(request.checked_at, settings.billing_anchor_day)
    minutes = {parse_timestamp(k): int(v) for k, v in minute_levels.items()}
    if services.state is None:
        # A dry run without storage knows only this window, never 30 minutes of the period:
        # the billable peak is unknown, not zero.
        return {"period_start": period.isoformat(), "billable_peak": None,
                "minutes_over_capacity": None}
    if request.dry_run:
        summary = services.state.billing_summary(period)
    else:
        # A window that straddles the period start holds minutes of the previous period too:
        # they count there (on its bill), not nowhere.
        by_period: dict[date, dict[datetime, int]] = {}
        for minute, level in minutes.items():
            start = billing.billing_period_start(minute, settings.billing_anchor_day)
            by_period.setdefault(start, {})[minute] = level
        for start in sorted(by_period.keys() - {period}):
            services.state.record_minutes(start, by_period[start])
        summary = services.state.record_minutes(period, by_period.get(period, {}))
    return {
        "period_start": summary.period_start.isoformat(),
        "billable_peak": summary.billable_peak,
        "minutes_over_capacity": summary.minutes_at_or_above(settings.license_capacity + 1),
    }


def evaluate(
    services: Services, request: CheckRequest, measurement: dict[str, Any] | None,
    failure: str | None,
) -> dict[str, Any]:
    """Record billing minutes, decide the alert level and claim the notifications to send.

    When Table Storage fails, the check is remembered in this process (the store counts it as
    a failed check at its next successful evaluation) and the error is raised for Durable to
    retry and report.
    """
    try:
        return _evaluate(services, request, measurement, failure)
    except StorageUnavailable as err:
        if not request.dry_run and services.state is not None:
            services.state.note_unrecorded(request.checked_at, failure or str(err))
        raise


def _evaluate(
    services: Services, request: CheckRequest, measurement: dict[str, Any] | None,
    failure: str | None,
) -> dict[str, Any]:
    settings = services.settings
    now = request.checked_at
    start, end = request.window(services)
    policy = _policy(services)
    report: dict[str, Any] = {"checked_at": iso(now)}
    outcome: alerting.Usage | alerting.CheckFailure
    if measurement is None:
        outcome = alerting.CheckFailure(failure or "the check failed for an unknown reason")
    else:
        presence = measurement["presence"]
        peak = presence["peak"]
        billed = _billing(services, request, presence["minute_levels"])
        outcome = alerting.Usage(
            concurrent=int(peak["total"]), agents=int(peak["agents"]),
            admins=int(peak["admins"]),
            window_distinct=int(measurement["window"]["window_distinct"]),
            billable_peak=billed["billable_peak"],
            period_start=billed["period_start"],
            minutes_over_capacity=billed["minutes_over_capacity"],
        )
        report.update({
            "window": {"start": iso(start), "end": iso(end)},
            "capacity": settings.license_capacity,
            "concurrent": {"now": presence["now"], "peak": peak},
            "peak_at": presence["peak_at"],
            "window_distinct": outcome.window_distinct,
            "utilization_percent": round(policy.utilization_percent(outcome.concurrent), 1),
            "pool": measurement["roster"]["pool_source"],
            "unclassified": presence["unclassified"],
            "billing": billed,
        })

    quiet = alerting.is_quiet(now, settings.quiet_hours, settings.quiet_hours_timezone)
    to_send: list[dict[str, Any]] = []
    if request.dry_run or services.state is None:
        previous = services.state.load_state() if services.state else alerting.AlertState()
        decision = alerting.decide(outcome, previous, policy, now, quiet=quiet)
    else:
        evaluation = services.state.evaluate(outcome, policy, now, settings.channels,
                                             quiet=quiet)
        decision = evaluation.decision
        to_send = [n.to_dict() for n in evaluation.to_send]
    report["level"] = decision.level
    if isinstance(outcome, alerting.CheckFailure):
        report["error"] = outcome.reason
        report["cause"] = alerting.failure_cause(outcome.reason)
    report["events"] = [event.event for event in decision.events]
    if quiet:
        report["quiet_hours"] = True
        report["held"] = [event.event for event in decision.state.held]
    if request.dry_run:
        report["dry_run"] = True
    elif services.state is not None:
        # One row per check (idempotent on the check time): the usage history in storage.
        # Losing one history row is better than failing a check whose alerts are claimed.
        try:
            services.state.save_sample(report, now)
        except StorageUnavailable as err:
            logger.warning("Usage sample of %s not stored: %s", report["checked_at"], err)
    status = {
        "checked_at": report["checked_at"],
        "level": decision.level,
        "concurrent": None if measurement is None else outcome_total(report),
        "capacity": settings.license_capacity,
        "utilization_percent": report.get("utilization_percent"),
        "billable_peak": report.get("billing", {}).get("billable_peak"),
    }
    return {"report": report, "status": status, "notifications": to_send}


def outcome_total(report: dict[str, Any]) -> int:
    """The concurrent peak of a successful check's report."""
    return int(report["concurrent"]["peak"]["total"])


def channel_target(settings: Settings, channel: str) -> dict[str, Any]:
    """Where a channel delivers, from the settings (secrets stay inside this process)."""
    shown = {"org_name": settings.org_name, "link": settings.alert_link_url}
    if channel == "webhook" and settings.alert_webhook_url:
        return {**shown, "url": settings.alert_webhook_url,
                "secret": settings.alert_webhook_secret}
    if channel == "teams" and settings.teams_webhook_url:
        return {**shown, "url": settings.teams_webhook_url}
    if channel == "slack" and settings.slack_webhook_url:
        return {**shown, "url": settings.slack_webhook_url}
    if channel == "pagerduty" and settings.pagerduty_routing_key:
        return {**shown, "routing_key": settings.pagerduty_routing_key,
                "url": settings.pagerduty_events_url,
                "source": settings.org_name or f"genesys-cloud/{settings.region}"}
    if channel == "email" and settings.alert_email_to:
        return {**shown, "to": list(settings.alert_email_to), "from": settings.alert_email_from,
                "tenant_id": settings.graph_tenant_id, "client_id": settings.graph_client_id,
                "client_secret": settings.graph_client_secret,
                "authority_url": settings.graph_authority_url,
                "api_url": settings.graph_api_url}
    raise ValueError(f"the {channel} channel is not configured")


def deliver(services: Services, notification: dict[str, Any]) -> dict[str, Any]:
    """Send one claimed notification; record delivered or failed (retried by the next check).

    Never raises for a failed delivery: one channel down must not fail the others' activities.
    """
    item = notify.Notification.from_dict(notification)
    now = datetime.now(UTC)
    try:
        notify.send(item.channel, channel_target(services.settings, item.channel), item,
                    session=services.http, now=now, sleep=services.sleep)
    except Exception as err:
        # Channel errors are written without secrets; anything else shows only its type, as
        # its text could quote a URL or a body.
        reason = str(err) if isinstance(err, notify.DeliveryError | ValueError) else (
            f"the {item.channel} channel failed unexpectedly ({type(err).__name__})")
        logger.warning("Alert %s on %s not delivered: %s", item.event, item.channel, reason)
        if services.state is not None:
            try:
                services.state.mark_failed(item.id, reason, now)
            except StorageUnavailable:
                logger.exception("Could not record the failed delivery of %s", item.id)
        return {"event": item.event, "channel": item.channel, "delivered": False,
                "error": reason}
    if services.state is not None:
        try:
            services.state.mark_delivered(item.id, now)
        except StorageUnavailable:
            # Sent but not recorded: its lease expires and it may be sent once more; the
            # receivers de-duplicate on the notification id / alert id.
            logger.exception("Could not record the delivery of %s", item.id)
    logger.info("Alert %s delivered on %s", item.event, item.channel)
    return {"event": item.event, "channel": item.channel, "delivered": True}
