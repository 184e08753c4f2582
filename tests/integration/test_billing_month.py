"""A whole generated month through the simulator: the billable peak measured the way a rebuild
measures it (user details, a day per query, minute step functions merged into the period's
histogram) equals a count made independently from the simulated presence timelines.

Storage is left out here (it only keeps what is merged; tests/integration/state covers it):
a month is 38,880 minute rows, minutes of batches against the local emulator."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from license_monitor.billing import MinuteRecord, merge_minutes
from license_monitor.genesys.client import GenesysClient
from license_monitor.measure import measure_minutes
from license_monitor.roster import load_roster, parse_agent_rule
from simulator import GenesysSimulator, SimOrg, generate_org

MONTH_END = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
MONTH_START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
CX = re.compile(r"(?i)^cloudcx\d")


def independent_ms_at(org: SimOrg, start: datetime, end: datetime) -> dict[int, int]:
    """Milliseconds at each concurrency level over [start, end), straight from the timelines."""
    changes: dict[datetime, int] = {}
    for user in org.users:
        if user.state != "active" or not any(CX.match(lic) for lic in user.licenses):
            continue
        spans: list[tuple[datetime, datetime]] = []
        for segment in user.segments:
            if segment.presence == "OFFLINE":
                continue
            begin, finish = max(segment.start, start), min(segment.end or end, end)
            if begin >= finish:
                continue
            if spans and begin <= spans[-1][1]:  # touching or overlapping: one login
                spans[-1] = (spans[-1][0], max(spans[-1][1], finish))
            else:
                spans.append((begin, finish))
        for begin, finish in spans:
            changes[begin] = changes.get(begin, 0) + 1
            changes[finish] = changes.get(finish, 0) - 1
    ms_at: dict[int, int] = {}
    level, since = 0, start
    for moment in sorted(changes):
        ms_at[level] = ms_at.get(level, 0) + (moment - since) // timedelta(milliseconds=1)
        level += changes[moment]
        since = moment
    ms_at[level] = ms_at.get(level, 0) + (end - since) // timedelta(milliseconds=1)
    return {lvl: ms for lvl, ms in ms_at.items() if ms}


def billable(ms_at: dict[int, int]) -> int:
    held = 0
    for level in sorted(ms_at, reverse=True):
        held += ms_at[level]
        if level > 0 and held >= 30 * 60_000:
            return level
    return 0


@pytest.mark.slow
def test_a_generated_month_bills_what_its_timelines_say(
    simulator: Callable[..., GenesysSimulator],
) -> None:
    org = generate_org(150, seed=11, now=MONTH_END, history_hours=27 * 24)
    sim = simulator(org, rate_limit_per_minute=None)
    client = GenesysClient(api_url=sim.api_url, login_url=sim.login_url,
                           client_id=sim.client_id, client_secret=sim.client_secret)
    roster = load_roster(client, parse_agent_rule("queue"), CX, MONTH_END)

    minutes = measure_minutes(client, MONTH_START, MONTH_END, roster, window=timedelta(days=1))
    _, histogram = merge_minutes({}, {minute: MinuteRecord(profile, MONTH_END)
                                      for minute, profile in minutes.items()})

    expected = independent_ms_at(org, MONTH_START, MONTH_END)
    assert dict(histogram.exact_ms) == expected
    assert histogram.billable_peak == billable(expected) > 0
    assert len(minutes) == 27 * 24 * 60
    assert histogram.billable_peak_upper >= histogram.billable_peak
