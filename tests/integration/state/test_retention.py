"""Usage samples and retention in Azurite."""

from __future__ import annotations

from datetime import date, timedelta

from license_monitor.state import (
    StateStore,
)
from tests.fixtures.azurite import stored_samples
from tests.integration.state.helpers import (
    NOW,
    PERIOD,
    minutes,
)

# ---- samples and retention ------------------------------------------------------------------

def test_samples_are_idempotent_and_purged_with_old_minutes(store: StateStore) -> None:
    july, august = NOW - timedelta(days=130), NOW - timedelta(days=95)
    recent = NOW - timedelta(days=1)
    store.samples.save({"concurrent": 1, "checked_at": july}, july)
    store.samples.save({"concurrent": 2}, recent)
    store.samples.save({"concurrent": 3}, recent)  # the same check re-run: overwrites
    store.billing.record_minutes(date(2026, 7, 1), minutes(july, 3, 5), july)
    store.billing.record_minutes(date(2026, 8, 1), minutes(august, 2, 5), august)
    store.billing.record_minutes(PERIOD, minutes(recent, 3, 5), recent)
    cutoff = NOW - timedelta(days=90)  # 2026-08-28: August's period may not be over yet

    assert stored_samples(store, july, NOW) == [
        {"concurrent": 1, "checked_at": "2026-07-19T12:00:00Z"}, {"concurrent": 3},
    ]
    removed = store.retention.purge_older_than(cutoff)

    # One sample, 3 + 2 minute rows, and July's histogram; August keeps its histogram.
    assert removed == 1 + 5 + 1
    assert stored_samples(store, july, NOW) == [{"concurrent": 3}]
    assert store.billing.summary(date(2026, 7, 1)).minutes_recorded == 0
    assert store.billing.summary(date(2026, 8, 1)).minutes_recorded == 2
    assert store.billing.summary(PERIOD).minutes_recorded == 3
    assert store.retention.purge_older_than(cutoff) == 0


