"""`billing rebuild`: re-measure billing periods from Genesys's presence history.

The way out of a wrong past figure (a stored minute measured with a wrong pool, a bug, a lost
permission): every minute since a day is measured again from the user details, a day per
query within the request budget, and replaces what is stored: the rebuilt days' share of the
period's histogram becomes what was measured (never the higher of the two), and days before
`--since` keep their share, also when retention has purged their minute rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from license_monitor import billing, measure
from license_monitor.roster import Roster, load_roster
from license_monitor.runtime import Services
from license_monitor.state import BillingSummary
from license_monitor.usage import MinuteProfile

logger = logging.getLogger(__name__)

QUERY_SPAN = timedelta(days=1)
MAX_DAYS_BACK = 62  # two billing periods; Genesys keeps presence history longer
PARALLEL_PAGES = 8


@dataclass(frozen=True)
class PeriodRebuild:
    """One billing period before and after its minutes were measured again."""

    period_start: date
    before: BillingSummary
    after: BillingSummary
    minutes: int


def rebuild_billing(
    services: Services, since: date, now: datetime, until: date | None = None,
) -> list[PeriodRebuild]:
    """Measure every minute from `since` (00:00 UTC) to `until` (00:00 UTC, default: now)
    again and replace the stored ones.

    Raises:
        ValueError: an empty range, or one longer than MAX_DAYS_BACK days.
    """
    if services.state is None:
        raise ValueError("billing rebuild needs Table Storage (STATE_CONNECTION or "
                         "STATE_ACCOUNT_URL)")
    start = datetime.combine(since, time(), UTC)
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    if until is not None:
        end = min(end, datetime.combine(until, time(), UTC))
    if start >= end:
        raise ValueError(f"--since {since.isoformat()} is not before --until or now")
    if end - start > timedelta(days=MAX_DAYS_BACK):
        raise ValueError(f"from --since {since.isoformat()} that is more than {MAX_DAYS_BACK} "
                         "days: rebuild at most two periods at a time")
    settings = services.settings
    services.client.ensure_token()
    minutes = measure.measure_minutes(
        services.client, start, end, _roster(services, now), window=QUERY_SPAN,
        parallel_pages=PARALLEL_PAGES)
    by_period: dict[date, dict[datetime, MinuteProfile]] = {}
    for minute, profile in minutes.items():
        period = billing.billing_period_start(minute, settings.billing_anchor_day)
        by_period.setdefault(period, {})[minute] = profile
    rebuilt = []
    for period, period_minutes in sorted(by_period.items()):
        before = services.state.billing.summary(period)
        after = services.state.billing.replace_minutes(period, period_minutes, now)
        logger.warning("Billing period from %s rebuilt: billable peak %d -> %d (%d minutes)",
                       period.isoformat(), before.billable_peak, after.billable_peak,
                       len(period_minutes))
        rebuilt.append(PeriodRebuild(period, before, after, len(period_minutes)))
    return rebuilt


def _roster(services: Services, now: datetime) -> Roster:
    """Today's pool: the cached roster while fresh, else read again (and cached)."""
    settings = services.settings
    assert services.state is not None  # noqa: S101 (checked by the caller)
    cached = services.state.roster.load()
    if cached is not None:
        roster = Roster.from_dict(cached)
        if (roster.is_fresh(now, settings.roster_ttl_minutes)
                and roster.pool_source == settings.concurrent_pool):
            return roster
    roster = load_roster(services.client, settings.agent_rule,
                         settings.concurrent_license_pattern, now,
                         concurrent_pool=settings.concurrent_pool).succeeding(
        None if cached is None else Roster.from_dict(cached))
    services.state.roster.save(roster.to_dict(), now)
    return roster
