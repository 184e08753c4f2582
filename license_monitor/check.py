"""The steps of one license check, each called by one activity with small JSON in and out."""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from license_monitor import (
    alerting,
    billing,
    deadline,
    ledger,
    measure,
    metrics,
    notify,
    roster_refresh,
)
from license_monitor.forecast import Forecast, NoForecast, Sample, day_bounds
from license_monitor.genesys.errors import GenesysError
from license_monitor.quiet_hours import is_quiet
from license_monitor.roster import Roster
from license_monitor.runtime import Services
from license_monitor.settings import Settings
from license_monitor.state import AlertStateUnreadable, StorageUnavailable
from license_monitor.times import format_check_time, format_time, parse_time

logger = logging.getLogger(__name__)

PARALLEL_DETAIL_PAGES = 8  # within the request budget; fewer round trips for large orgs
# The presence gauge's reconciliation may use this share of the check's time left, so a
# storage stall there never leaves the evaluation without time to record the check.
GAUGE_SHARE_OF_TIME_LEFT = 0.25
# A check stamped further ahead of the storage service's clock fails (a machine's clock running
# fast would otherwise stamp state in the future and block every check until time catches up).
MAX_CLOCK_AHEAD = timedelta(seconds=60)


@dataclass(frozen=True)
class CheckRequest:
    """What every step of one check knows: its time, whether it is a dry run, and its id."""

    checked_at: datetime
    dry_run: bool = False
    check_id: str | None = None  # from begin_check: tells a retried step from another check
    # The latest check time that can be true: the storage service's clock + MAX_CLOCK_AHEAD.
    trusted_until: datetime | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckRequest:
        """Parse the orchestrator's input to an activity."""
        check_id = data.get("check_id")
        return cls(
            checked_at=parse_time(str(data["checked_at"])),
            dry_run=bool(data.get("dry_run", False)),
            check_id=None if check_id is None else str(check_id),
        )


def begin_check() -> dict[str, Any]:
    """A new id for one check, random: kept in the orchestration history, so a retried step
    of this check is told from another check at the same second (the replay gives it back)."""
    return {"check_id": uuid.uuid4().hex}


def acquire_token(services: Services) -> dict[str, Any]:
    """Make sure this process holds a token (fails fast with AuthError); returns no token."""
    services.client.ensure_token()
    return {"ok": True}


def _needs_organization(services: Services, request: CheckRequest) -> bool:
    """True when the org id must be asked of Genesys before the org's state can be found."""
    state = services.state
    if state is None or state.table.org_known:  # known: by the client's pointer, or in process
        return False
    # A dry run moves nothing, so its state may stay under the client key: ask only once.
    return not (request.dry_run and services.organization is not None)


def _learn_organization(services: Services, request: CheckRequest) -> None:
    """Read the client's org and key the state by its id (moving the client's rows there)."""
    organization = services.client.organization()
    services.organization = organization
    if services.state is None:
        return
    if request.dry_run:
        services.state.organization.follow(organization.id)
    else:
        services.state.organization.adopt(organization.id, organization.name,
                                          request.checked_at)


def _cached_roster(services: Services) -> Roster | None:
    """The org's roster as stored (any worker may have refreshed it), else this process's.

    Read after the org is known: the cache is one of the org's rows.
    """
    if services.state is not None:
        cached = services.state.roster.load()
        if cached is not None:
            return Roster.from_dict(cached)
    return services.roster


class RosterUnavailable(Exception):  # noqa: N818 - reads as what happened
    """The roster has expired and cannot be read again; the message says why."""


def measure_usage(services: Services, request: CheckRequest) -> dict[str, Any]:
    """Measure the window with one roster (rebuilt at most once) and keep that roster."""
    settings = services.settings
    requests_before = services.client.request_count
    learned = _needs_organization(services, request)
    if learned:
        _learn_organization(services, request)
    cached = _cached_roster(services)

    def keep(built: Roster) -> None:
        # As soon as it is built: a check that then runs out of time leaves it to the next.
        services.roster = built
        if not request.dry_run and services.state is not None:
            services.state.roster.save(built.to_dict(), request.checked_at)

    def full_roster() -> Roster | None:
        # Without a roster (or with new hires) the full one is built in the background; a
        # small org's is done within a few seconds and this check uses it.
        services.roster_refresh.start(services, request.checked_at, cached,
                                      store=not request.dry_run)
        return services.roster_refresh.built(roster_refresh.grace_seconds())

    if (cached is not None and not request.dry_run and services.state is not None
            and not cached.is_fresh(request.checked_at, settings.roster_ttl_minutes)):
        # The last refresh failed for a lasting reason (a permission, the license data): this
        # check tries again, and fails naming it unless the roster is read within its wait.
        lasting = services.state.roster.refresh_error()
        if lasting is not None:
            cached = full_roster()
            if cached is None:
                raise RosterUnavailable(
                    services.roster_refresh.last_error or lasting)

    report, roster = measure.measure(
        services.client,
        now=request.checked_at,
        window_minutes=settings.window_minutes,
        license_pattern=settings.concurrent_license_pattern,
        roster=cached,
        parallel_pages=PARALLEL_DETAIL_PAGES,
        concurrent_pool=settings.concurrent_pool,
        on_roster=keep,
        full_roster=full_roster,
        idle_after_minutes=settings.idle_after_minutes,
    )
    refreshing = roster_refresh.needs_refresh(
        roster, request.checked_at, settings.roster_ttl_minutes) and (
        # The classes (and a roster older than ROSTER_TTL_MINUTES) are read in the background,
        # under a share of the request budget: no check waits for them.
        services.roster_refresh.start(services, request.checked_at, roster,
                                      store=not request.dry_run))
    if refreshing and roster == cached and not learned and services.state is not None:
        # The org id is read again once per roster (one request), as below for a new one.
        try:
            _learn_organization(services, request)
        except GenesysError as err:
            logger.warning("The organization was not read again with the roster: %s", err)
    logger.info("Measured %s with %d Genesys requests", format_time(request.checked_at),
                services.client.request_count - requests_before)
    if roster != cached:
        if not learned and services.state is not None:
            # The org id is read again with every new roster: it confirms the client's pointer
            # and moves rows written under the client key meanwhile. The org is known already,
            # so a failed read is not worth failing the check for.
            try:
                _learn_organization(services, request)
            except GenesysError as err:
                logger.warning("The organization was not read again with the roster: %s", err)
        if roster != services.roster:  # not kept yet (keep() saved a cold build as built)
            keep(roster)
        logger.info("Roster saved: %d pool users (%d agents, %d admins), %s, %d unresolved",
                    len(roster.agents) + len(roster.admins), len(roster.agents),
                    len(roster.admins), roster.pool_source, len(roster.unresolved))
    measured = report.to_dict()
    # The minutes are recorded here, in the ledger's span: they never cross the history.
    del measured["minutes"]
    if not request.dry_run and services.state is not None and _clock_ahead(
            request.checked_at, _service_time(services)):
        measured["backfilled_minutes"] = 0  # nothing is recorded from a clock running fast
    elif not request.dry_run and services.state is not None:
        measured.update(ledger.record_span(
            services, request.checked_at, roster, report.minutes, report.window_start))
        # The presence gauge takes the exact figures at the check time (never fails a check,
        # nor costs it more than a share of its deadline: the storage calls carry it).
        limit = deadline.current()
        try:
            with deadline.at_most(
                    (limit.work_left() if limit else 0) * GAUGE_SHARE_OF_TIME_LEFT,
                    "reconciling the presence gauge"):
                reconciled = services.state.gauge.reconcile(
                    report.now_users, roster, request.checked_at)
        except StorageUnavailable as err:
            logger.warning("The presence gauge was not reconciled: %s", err)
        else:
            if reconciled is not None:
                measured["gauge"] = reconciled.to_dict()
    return measured


def _service_time(services: Services) -> datetime | None:
    """The storage service's clock; None when it cannot be read (the storage error shows later)."""
    assert services.state is not None  # noqa: S101 (the caller checked)
    try:
        return services.state.table.service_time()
    except StorageUnavailable:
        return None


def _clock_ahead(checked_at: datetime, storage_now: datetime | None) -> str | None:
    """Why a check's time cannot be trusted (ahead of the storage service's clock), or None."""
    if storage_now is None or checked_at - storage_now <= MAX_CLOCK_AHEAD:
        return None
    ahead = (checked_at - storage_now).total_seconds()
    return (f"this machine's clock is {ahead:.0f} s ahead of Table Storage's "
            f"({format_time(storage_now)}); fix its time synchronisation: a check stamped in "
            "the future records nothing")


def _policy(services: Services) -> alerting.Policy:
    settings = services.settings
    return alerting.Policy(
        capacity=settings.license_capacity,
        warning_percent=settings.warning_percent,
        critical_percent=settings.critical_percent,
        clear_margin_percent=settings.clear_margin_percent,
        failure_alert_after=settings.failure_alert_after,
        remind_every_minutes=settings.remind_every_minutes,
        forecast_margin_percent=settings.forecast_alert_margin_percent,
    )


def _billing(
    services: Services, request: CheckRequest
) -> tuple[dict[str, Any], tuple[alerting.Billing, ...]]:
    """The current billing period's figures (30-minute rule) as the ledger holds them, and
    the previous period's when it holds any.

    The previous period's last minutes may be recorded by the first checks of this one (or
    hours of them after an outage across the boundary): its overage is decided too.
    """
    settings = services.settings
    anchor = settings.billing_anchor_day
    period = billing.billing_period_start(request.checked_at, anchor)
    if services.state is None:
        # A dry run without storage knows only this window, never 30 minutes of the period:
        # the billable peak is unknown, not zero.
        return {"period_start": period.isoformat(), "billable_peak": None,
                "billable_peak_upper": None, "seconds_over_capacity": None,
                "minutes_over_capacity": None}, ()
    current = services.state.billing.summary(period)
    day_before = datetime.combine(period, time(), UTC) - timedelta(days=1)
    previous = services.state.billing.summary(billing.billing_period_start(day_before, anchor))
    earlier = () if previous.minutes_recorded == 0 else (
        alerting.Billing.from_dict(previous.figures(settings.license_capacity)),)
    return current.figures(settings.license_capacity), earlier


def evaluate(
    services: Services, request: CheckRequest, measurement: dict[str, Any] | None,
    failure: str | None,
) -> dict[str, Any]:
    """Record billing minutes, decide the alert level and claim the notifications to send.

    A check that cannot be evaluated is a failed check like one that cannot measure: whatever
    the error (an alert state or billing row this version cannot read or store, an invalid
    policy), it is recorded with its cause and counts towards monitor_failing. Only when even
    that cannot be stored (Table Storage down) is the check remembered in this process (the
    store counts it at its next successful evaluation) and the error raised for Durable to
    retry and report.
    """
    if not request.dry_run and services.state is not None:
        # Checks are ordered by their time: one stamped ahead of the storage service's clock
        # fails (recorded at the service's time), and a state stamped ahead is repaired.
        storage_now = _service_time(services)
        if storage_now is not None:
            skewed = _clock_ahead(request.checked_at, storage_now)
            request = CheckRequest(
                storage_now if skewed else request.checked_at, request.dry_run,
                request.check_id, trusted_until=storage_now + MAX_CLOCK_AHEAD)
            if skewed:
                measurement, failure = None, skewed
    try:
        return _evaluate(services, request, measurement, failure)
    except Exception as err:
        if request.dry_run or services.state is None:
            raise
        reason = failure or _evaluation_failure(err)
        if measurement is not None:
            logger.warning("The check of %s could not be evaluated: %s",
                           format_time(request.checked_at), reason, exc_info=True)
        if measurement is None and isinstance(err, StorageUnavailable):
            # Recording this failed check is what just failed.
            services.state.alerts.note_unrecorded(request.checked_at, reason)
            raise
        try:
            return _evaluate(services, request, None, reason)
        except StorageUnavailable:
            services.state.alerts.note_unrecorded(request.checked_at, reason)
            raise


def _claim_time(services: Services, checked_at: datetime) -> datetime:
    """When this check claims: the wall time, within its deadline (a clock far off the check
    time, as when replaying an old check, never makes a lease longer than a check can run)."""
    latest = checked_at + timedelta(
        seconds=services.check_timeout_seconds or services.settings.check_timeout_seconds)
    return min(max(services.clock(), checked_at), latest)


def _evaluation_failure(err: Exception) -> str:
    """One sentence for a check that measured but could not be evaluated."""
    if isinstance(err, StorageUnavailable | AlertStateUnreadable):
        return str(err)  # written for people, without secrets
    return f"the check could not be evaluated ({type(err).__name__}: {err})"


def _failure_policy(services: Services) -> alerting.Policy:
    """The policy a failed check is recorded with, even when the configured one is the failure.

    Counting failed checks needs only FAILURE_ALERT_AFTER and the capacity the alerts show.
    """
    try:
        return _policy(services)
    except ValueError:
        settings = services.settings
        return alerting.Policy(capacity=max(1, settings.license_capacity),
                               failure_alert_after=max(1, settings.failure_alert_after))


def _evaluate(
    services: Services, request: CheckRequest, measurement: dict[str, Any] | None,
    failure: str | None,
) -> dict[str, Any]:
    settings = services.settings
    now = request.checked_at
    policy = _policy(services) if measurement is not None else _failure_policy(services)
    report: dict[str, Any] = {"checked_at": format_check_time(now)}
    outcome: alerting.Usage | alerting.CheckFailure
    ahead: Forecast | NoForecast | None = None
    if measurement is None:
        outcome = alerting.CheckFailure(failure or "the check failed for an unknown reason")
    else:
        usage = measure.UsageReport.from_dict(measurement)
        if "ledger_error" in measurement:
            raise ValueError(measurement["ledger_error"])  # a failed check, with its cause
        billed, earlier = _billing(services, request)
        pending = usage.split_pending  # the roster's classes are not built yet
        outcome = alerting.Usage(
            concurrent=usage.peak.total, agents=None if pending else usage.peak.agents,
            admins=None if pending else usage.peak.admins,
            window_distinct=usage.window_distinct,
            billable_peak=billed["billable_peak"],
            period_start=billed["period_start"],
            minutes_over_capacity=billed["minutes_over_capacity"],
            billable_peak_upper=billed["billable_peak_upper"],
            seconds_over_capacity=billed["seconds_over_capacity"],
            pool=usage.pool_source,
            idle=None if usage.idle is None else usage.idle.line(usage.now.total, now),
            earlier=earlier,
        )
        report.update({
            "window": measurement["window"],
            "capacity": settings.license_capacity,
            "concurrent": measurement["concurrent"],
            "peak_at": measurement["peak_at"],
            "window_distinct": usage.window_distinct,
            "utilization_percent": round(policy.utilization_percent(usage.peak.total), 1),
            "pool": usage.pool_source,
            "unclassified": usage.unclassified,
            "backfilled_minutes": int(measurement.get("backfilled_minutes", 0)),
            "billing": billed,
        })
        for key in ("unmeasured_from", "backfill_error", "lost_minutes"):
            if key in measurement:  # the ledger's span was not all recorded: never silent
                report[key] = measurement[key]
        if pending:
            report["split"] = "pending"
        if "gauge" in measurement:
            report["gauge"] = measurement["gauge"]
        ahead = _forecast(services, now, usage.peak.total)
        if isinstance(ahead, Forecast):
            report["forecast"] = ahead.to_dict()
        else:
            report["no_forecast"] = ahead.reason
        if "idle" in measurement:
            report["idle"] = measurement["idle"]

    quiet = is_quiet(now, settings.quiet_hours, settings.quiet_hours_timezone)
    to_send: list[dict[str, Any]] = []
    channel_errors: list[dict[str, str]] = []
    if request.dry_run or services.state is None:
        previous = services.state.alerts.load_state() if services.state else alerting.AlertState()
        decision = alerting.decide(outcome, previous, policy, now, quiet=quiet,
                                   forecast=ahead if isinstance(ahead, Forecast) else None)
        events = decision.events
    else:
        evaluation = services.state.alerts.evaluate(
            outcome, policy, now, settings.channels, quiet=quiet, check_id=request.check_id,
            quiet_hours=(settings.quiet_hours, settings.quiet_hours_timezone),
            trusted_until=request.trusted_until, claimed_at=_claim_time(services, now),
            forecast=ahead if isinstance(ahead, Forecast) else None)
        decision, events = evaluation.decision, evaluation.events
        to_send = [n.to_dict() for n in evaluation.to_send]
        channel_errors = [dict(item) for item in evaluation.channel_errors]
    report["level"] = decision.level
    if isinstance(outcome, alerting.CheckFailure):
        report["error"] = alerting.one_line(outcome.reason)
        report["cause"] = alerting.failure_cause(outcome.reason)
    report["events"] = [event.event for event in events]
    if channel_errors:
        report["channel_errors"] = channel_errors
    if quiet:
        report["quiet_hours"] = True
        report["held"] = [event.event for event in decision.state.held]
    if request.dry_run:
        report["dry_run"] = True
    elif services.state is not None:
        # One row per check (idempotent on the check time): the usage history in storage.
        # Losing one history row is better than failing a check whose alerts are claimed.
        try:
            services.state.samples.save(report, now)
        except (StorageUnavailable, ValueError) as err:  # ValueError: a sample too large
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


def _forecast(services: Services, now: datetime, concurrent: int) -> Forecast | NoForecast:
    """Today's remaining peak from the stored samples (docs/forecast.md); never fails a check."""
    if services.state is None:
        return NoForecast("no stored history (a dry run without storage)")
    zone = ZoneInfo(services.settings.forecast_timezone)
    day = now.astimezone(zone).date()
    try:
        history = services.state.samples.weekday_history(day, zone)
        today = services.state.samples.peaks(day_bounds(day, zone)[0], now)
    except StorageUnavailable as err:
        logger.warning("No forecast: %s", err)
        return NoForecast("the usage history could not be read")
    return history.forecast([*today, Sample(now, concurrent)], now)


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
    """Send one claimed notification, then those chained after it on its channel, in order
    (their results under "then"); record each delivered, failed (retried by the next check) or
    rejected (refused for good: not retried; the next check tells the other channels once).

    Never raises for a failed delivery: one channel down must not fail the others' activities.
    Once one fails, the channel's next ones are not tried: recorded failed, retried next check.
    """
    item = notify.Notification.from_dict(notification)
    head = result = _deliver_one(services, item)
    after: list[dict[str, Any]] = []
    for follower in item.then:
        if result["delivered"] or result.get("rejected"):
            result = _deliver_one(services, follower)
        else:
            result = {"event": follower.event, "channel": follower.channel, "delivered": False,
                      "error": "not sent: the message before it on this channel failed"}
            if services.state is not None:
                with contextlib.suppress(StorageUnavailable):  # its lease runs out instead
                    services.state.alerts.mark_failed(follower.id, result["error"],
                                                      services.clock())
        after.append(result)
    return {**head, "then": after} if after else head


def _deliver_one(services: Services, item: notify.Notification) -> dict[str, Any]:
    now = services.clock()  # the check's clock: outbox times and rejection ids follow it
    try:
        # Signatures carry the real time of sending: receivers compare it with their clock.
        notify.send(item.channel, channel_target(services.settings, item.channel), item,
                    session=services.http, now=datetime.now(UTC), sleep=services.sleep)
    except Exception as err:
        # Channel errors are written without secrets; anything else shows only its type, as
        # its text could quote a URL or a body.
        reason = str(err) if isinstance(err, notify.DeliveryError | ValueError) else (
            f"the {item.channel} channel failed unexpectedly ({type(err).__name__})")
        rejected = isinstance(err, notify.DeliveryError) and not err.retryable
        logger.warning("Alert %s on %s not delivered: %s", item.event, item.channel, reason)
        if services.state is not None:
            try:
                if rejected:
                    services.state.alerts.mark_rejected(item.id, reason, now)
                else:
                    services.state.alerts.mark_failed(item.id, reason, now)
            except StorageUnavailable:
                logger.exception("Could not record the failed delivery of %s", item.id)
        result = {"event": item.event, "channel": item.channel, "delivered": False,
                  "error": reason}
        return {**result, "rejected": True} if rejected else result
    if services.state is not None:
        try:
            services.state.alerts.mark_delivered(item.id, now)
        except StorageUnavailable:
            # Sent but not recorded: its lease expires and it may be sent once more; the
            # receivers de-duplicate on the notification id / alert id.
            logger.exception("Could not record the delivery of %s", item.id)
    logger.info("Alert %s delivered on %s", item.event, item.channel)
    return {"event": item.event, "channel": item.channel, "delivered": True}


def record_metrics(services: Services, report: dict[str, Any]) -> dict[str, Any]:
    """One point per metric for this check (docs/operations.md "Metrics"); none without a
    connection."""
    settings = services.settings
    metrics.record_check(
        report, org=settings.org_name or settings.client_key, capacity=settings.license_capacity,
        connection_string=settings.appinsights_connection_string,
        authentication_string=settings.appinsights_authentication_string)
    return {"metrics": settings.appinsights_connection_string is not None}
