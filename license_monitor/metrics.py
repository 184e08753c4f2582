"""Application Insights custom metrics: the names are a contract (README "Metrics").

The workbook and the alert rules in infra/ query these names only; a test checks it.
"""

from __future__ import annotations

CONCURRENT_PEAK = "license.concurrent.peak"
CONCURRENT_NOW = "license.concurrent.now"
CONCURRENT_PEAK_AGENTS = "license.concurrent.peak.agents"
CONCURRENT_PEAK_ADMINS = "license.concurrent.peak.admins"
WINDOW_DISTINCT = "license.window_distinct"
UTILIZATION_PERCENT = "license.utilization_percent"
CAPACITY = "license.capacity"
BILLABLE_PEAK = "license.billable_peak"
CHECK_FAILED = "license.check.failed"
ALERT_DELIVERED = "license.alert.delivered"
GAUGE_DRIFT = "license.gauge.drift"

METRIC_NAMES: tuple[str, ...] = (
    CONCURRENT_PEAK, CONCURRENT_NOW, CONCURRENT_PEAK_AGENTS, CONCURRENT_PEAK_ADMINS,
    WINDOW_DISTINCT, UTILIZATION_PERCENT, CAPACITY, BILLABLE_PEAK, CHECK_FAILED,
    ALERT_DELIVERED, GAUGE_DRIFT,
)
