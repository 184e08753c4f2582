"""A month's hard parts against ground truth (tests/fixtures/month.py), through the real
orchestration: every period's milliseconds at each level, billable peak and upper bound equal
an independent sweep of the scenario's timelines; every overage is announced once, for its
period; no notification is delivered twice; a purge and a rebuild change nothing.

In the suite: seeds drawn by hypothesis with the hourly schedules (about 20 checks a seed);
`python -m benchmarks.month_soak --seeds N` runs every schedule/window pair.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.azurite import Azurite
from tests.fixtures.month import build, run

HOURLY = [(60, 15), (60, 60)]


@settings(max_examples=1, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=1000, max_value=10_000))
def test_a_month_of_checks_bills_what_the_timelines_say(azurite: Azurite, seed: int) -> None:
    scenario = build(seed, HOURLY)

    outcome = run(scenario, azurite_port=azurite.port, table=f"month{seed}")

    assert outcome.mismatches == []
    assert outcome.seconds_compared > 12 * 3600
