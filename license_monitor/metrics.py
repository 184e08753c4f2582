"""Application Insights custom metrics: the names are a contract (docs/operations.md "Metrics").

The workbook and the alert rules in infra/ query these names only; a test checks it.

Metrics: `record_check` sends one check's figures as custom metrics, one point per metric per
check, each with the dimension `org`. It is on when the caller passes the value of
`APPLICATIONINSIGHTS_CONNECTION_STRING`; with `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`
(`Authorization=AAD` or `Authorization=AAD;ClientId=<id>`) the points are sent with a managed
identity token. The caller reads both from the environment; this module reads no setting itself.
The exporter (azure-monitor-opentelemetry-exporter) runs in a private OpenTelemetry
`MeterProvider`, metrics only: no global provider, no log or trace export, no statsbeat or SDK
stats, no offline storage and no remote configuration. Each metric is a delta histogram (the
drift, which can be negative, a delta gauge) read and exported before the call returns, so one
recorded value arrives as one point with count 1, in one request of at most 5 s, not retried.
A telemetry failure is logged once as a warning and never fails a check. Without a connection
string nothing is sent and OpenTelemetry is not imported.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
    from opentelemetry.util.types import Attributes

logger = logging.getLogger(__name__)

CONCURRENT_PEAK = "license.concurrent.peak"
CONCURRENT_NOW = "license.concurrent.now"
CONCURRENT_PEAK_AGENTS = "license.concurrent.peak.agents"
CONCURRENT_PEAK_ADMINS = "license.concurrent.peak.admins"
WINDOW_DISTINCT = "license.window_distinct"
UTILIZATION_PERCENT = "license.utilization_percent"
CAPACITY = "license.capacity"
BILLABLE_PEAK = "license.billable_peak"
SECONDS_OVER_CAPACITY = "license.seconds_over_capacity"
CHECK_FAILED = "license.check.failed"
ALERT_DELIVERED = "license.alert.delivered"
GAUGE_DRIFT = "license.gauge.drift"
IDLE = "license.idle"  # pool users logged in without working for IDLE_AFTER_MINUTES

METRIC_NAMES: tuple[str, ...] = (
    CONCURRENT_PEAK, CONCURRENT_NOW, CONCURRENT_PEAK_AGENTS, CONCURRENT_PEAK_ADMINS,
    WINDOW_DISTINCT, UTILIZATION_PERCENT, CAPACITY, BILLABLE_PEAK, SECONDS_OVER_CAPACITY,
    CHECK_FAILED,
    ALERT_DELIVERED, GAUGE_DRIFT, IDLE,
)

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING_ENV = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"

# One attempt per check, bounded: the next check sends the next point, and a check must not
# wait on telemetry (azure-core's defaults are 10 retries and a 300 s read timeout).
EXPORT_TIMEOUT_SECONDS = 5.0

# The exporter reads these switches from the environment only (exporter 1.0.0b58:
# statsbeat/_state.py, statsbeat/customer/_utils.py, _configuration/_state.py). Statsbeat and SDK
# stats would start their own providers and threads sending to Microsoft's and to our resource;
# the control plane polls a Microsoft settings endpoint.
_EXPORTER_SWITCHES = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}

# Event and channel names are short identifiers; anything else (a URL in a malformed report)
# is not sent as a dimension.
_DIMENSION_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

_AUTHENTICATION_FORM = f"{AUTHENTICATION_STRING_ENV} must be Authorization=AAD[;ClientId=<id>]"


@dataclass(frozen=True)
class AadAuthentication:
    """Entra ID authentication with a managed identity; no client id: the system identity."""

    client_id: str | None = None


def parse_authentication_string(value: str) -> AadAuthentication:
    """Parse `Authorization=AAD[;ClientId=<id>]` (keys case-insensitive, as the host reads it).

    Raises:
        ValueError: the value is not of that form (the message names no part of the value).
    """
    pairs: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        key, sep, item = part.partition("=")
        if not sep or not key.strip() or not item.strip():
            raise ValueError(_AUTHENTICATION_FORM)
        pairs[key.strip().lower()] = item.strip()
    if pairs.get("authorization") != "AAD" or set(pairs) - {"authorization", "clientid"}:
        raise ValueError(_AUTHENTICATION_FORM)
    return AadAuthentication(client_id=pairs.get("clientid"))


def check_points(
    report: Mapping[str, Any], *, capacity: int
) -> list[tuple[str, float, dict[str, str]]]:
    """The points one check report yields: (metric name, value, extra dimensions); pure."""
    failed = report.get("level") == "unknown"
    points: list[tuple[str, float, dict[str, str]]] = [
        (CHECK_FAILED, 1 if failed else 0, {}),
        (CAPACITY, capacity, {}),
    ]
    if not failed:
        concurrent = _mapping(report.get("concurrent"))
        peak = _mapping(concurrent.get("peak"))
        now = _mapping(concurrent.get("now"))
        figures = (
            (CONCURRENT_PEAK, peak.get("total")),
            (CONCURRENT_NOW, now.get("total")),
            (CONCURRENT_PEAK_AGENTS, peak.get("agents")),
            (CONCURRENT_PEAK_ADMINS, peak.get("admins")),
            (WINDOW_DISTINCT, report.get("window_distinct")),
            (UTILIZATION_PERCENT, report.get("utilization_percent")),
            (BILLABLE_PEAK, _mapping(report.get("billing")).get("billable_peak")),
            (SECONDS_OVER_CAPACITY,
             _mapping(report.get("billing")).get("seconds_over_capacity")),
            (GAUGE_DRIFT, _mapping(report.get("gauge")).get("drift")),
            (IDLE, _mapping(report.get("idle")).get("count")),
        )
        points.extend((name, value, {}) for name, value in figures if _is_number(value))
    chains = [item for item in report.get("notifications") or () if isinstance(item, Mapping)]
    for sent in [*chains, *(after for item in chains for after in item.get("then") or ())]:
        if isinstance(sent, Mapping) and sent.get("delivered") is True:
            points.append((ALERT_DELIVERED, 1, {
                "event": _dimension(sent.get("event")),
                "channel": _dimension(sent.get("channel")),
            }))
    return points


def record_check(
    report: Mapping[str, Any],
    *,
    org: str,
    capacity: int,
    connection_string: str | None,
    authentication_string: str | None = None,
) -> None:
    """Send one check's figures to Application Insights; a no-op without a connection string.

    Args:
        report: the check JSON (docs/measurement.md "The check from the command line"),
            successful or failed (`level` "unknown").
        org: the `org` dimension of every point.
        capacity: purchased concurrent licenses, sent on every check (a failed report has none).
        connection_string: the value of APPLICATIONINSIGHTS_CONNECTION_STRING, or None/"" (off).
        authentication_string: the value of APPLICATIONINSIGHTS_AUTHENTICATION_STRING, if any.

    Never raises: a telemetry failure is logged once as a warning (no secret, no URL).
    """
    if not connection_string:
        return
    try:
        points = check_points(report, capacity=capacity)
        sink = _sink(connection_string, authentication_string or None)
        delivered = sink.send(points, org)
    except Exception as err:  # telemetry never fails a check
        # The type only: messages of the parsers and transports may quote the connection string.
        logger.warning("Metrics not sent to Application Insights (%s)", type(err).__name__)
        return
    if not delivered:
        logger.warning(
            "Metrics not sent to Application Insights: the ingestion endpoint was unreachable, "
            "timed out or refused them (with a managed identity: is it a Monitoring Metrics "
            "Publisher on the resource?)"
        )


# Figures that can be below zero (the presence gauge can count fewer than the measurement).
_SIGNED = frozenset({GAUGE_DRIFT})


class _MetricSink:
    """A private MeterProvider, its explicit reader and the exporter, for one destination."""

    def __init__(
        self,
        provider: MeterProvider,
        reader: InMemoryMetricReader,
        exporter: AzureMonitorMetricExporter,
        success: MetricExportResult,
    ) -> None:
        meter = provider.get_meter("license_monitor")
        self._provider = provider
        self._reader = reader
        self._exporter = exporter
        self._success = success
        # Histograms send count, min and max with the value, so a KQL or alert aggregation
        # (sum, max, count) reads one check as one value. They refuse negative values, so a
        # figure that can be negative is a gauge (value and count only).
        self._record: dict[str, Callable[[float, Attributes], None]] = {
            name: meter.create_gauge(name).set if name in _SIGNED
            else meter.create_histogram(name).record
            for name in METRIC_NAMES
        }
        # One check at a time: a collection must hold exactly one check's records, or two
        # concurrent checks with the same org would merge into one point of count 2.
        self._lock = threading.Lock()

    def send(self, points: list[tuple[str, float, dict[str, str]]], org: str) -> bool:
        with self._lock:
            for name, value, dimensions in points:
                self._record[name](value, {"org": org, **dimensions})
            data = self._reader.get_metrics_data()
            if data is None:
                return True
            result = self._exporter.export(data, timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000)
            return result is self._success


_sinks: dict[tuple[str, str | None], _MetricSink] = {}
_sinks_lock = threading.Lock()


def _sink(connection_string: str, authentication_string: str | None) -> _MetricSink:
    """The process's sink for this destination, built on first use."""
    key = (connection_string, authentication_string)
    with _sinks_lock:
        sink = _sinks.get(key)
        if sink is None:
            sink = _build_sink(connection_string, authentication_string)
            _sinks[key] = sink
        return sink


def _build_sink(connection_string: str, authentication_string: str | None) -> _MetricSink:
    # Imported here: without a connection string the app loads no OpenTelemetry at all.
    from azure.core.pipeline.policies import HttpLoggingPolicy  # noqa: PLC0415
    from azure.identity import ManagedIdentityCredential  # noqa: PLC0415
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter  # noqa: PLC0415

    # The synchronous gauge is still named _Gauge in SDK 1.45 (exported under that name; its
    # stabilisation is open-telemetry/opentelemetry-python#3363).
    from opentelemetry.sdk.metrics import Histogram, MeterProvider, _Gauge  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        AggregationTemporality,
        InMemoryMetricReader,
        MetricExportResult,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415

    for name, value in _EXPORTER_SWITCHES.items():
        os.environ[name] = value
    auth = parse_authentication_string(authentication_string) if authentication_string else None
    credential = None if auth is None else ManagedIdentityCredential(client_id=auth.client_id)
    # azure-core logs every request at INFO; keep that out of the function's traces.
    transport_logger = logging.getLogger(f"{__name__}.transport")
    transport_logger.setLevel(logging.WARNING)
    exporter = AzureMonitorMetricExporter(
        connection_string=connection_string,
        # Passed even when None: the exporter would otherwise read the environment itself.
        credential=credential,
        disable_offline_storage=True,
        timeout=EXPORT_TIMEOUT_SECONDS,
        read_timeout=EXPORT_TIMEOUT_SECONDS,
        retry_total=0,
        http_logging_policy=HttpLoggingPolicy(logger=transport_logger),
    )
    # The exporter logs its own view of each failure (quoting request errors, URLs included,
    # and dropped envelopes); record_check logs the one warning. An explicit level is kept.
    exporter_logger = logging.getLogger("azure.monitor.opentelemetry.exporter")
    if exporter_logger.level == logging.NOTSET:
        exporter_logger.setLevel(logging.CRITICAL)
    # Delta: a collection holds only what this check recorded; with the default (cumulative)
    # a gauge would repeat its last value, e.g. a drift among the points of a failed check.
    reader = InMemoryMetricReader(preferred_temporality={
        Histogram: AggregationTemporality.DELTA, _Gauge: AggregationTemporality.DELTA,
    })
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({SERVICE_NAME: "concurrent-license-monitor"}),
        shutdown_on_exit=False,  # each check exports before returning: nothing left to flush
    )
    return _MetricSink(provider, reader, exporter, MetricExportResult.SUCCESS)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dimension(value: object) -> str:
    return value if isinstance(value, str) and _DIMENSION_TOKEN.match(value) else "other"
