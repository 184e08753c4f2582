"""Metrics through the real Azure Monitor exporter to a local ingestion endpoint."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from azure.identity import ManagedIdentityCredential

from license_monitor import metrics
from tests.fixtures.app_insights import (
    INSTRUMENTATION_KEY,
    IngestionEndpoint,
    ManagedIdentityEndpoint,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
FAKE_WEBHOOK = "https://hooks.slack.test/services/T0001/B0002/s3cr3t-path-token"

SUCCESSFUL = {
    "checked_at": "2026-11-26T12:00:00Z",
    "window": {"start": "2026-11-26T11:45:00Z", "end": "2026-11-26T12:00:00Z"},
    "capacity": 500,
    "concurrent": {"now": {"total": 471, "agents": 420, "admins": 51},
                   "peak": {"total": 480, "agents": 428, "admins": 52}},
    "window_distinct": 493,
    "utilization_percent": 96.0,
    "level": "critical",
    "billing": {"period_start": "2026-11-01", "billable_peak": 470, "seconds_over_capacity": 95},
    "gauge": {"drift": -3},
    "idle": {"count": 14, "agents": 9, "admins": 5, "after_minutes": 60, "users": []},
    "events": ["escalation"],
    "notifications": [{"event": "escalation", "channel": "webhook", "delivered": True}],
}
FAILED = {
    "checked_at": "2026-11-26T12:05:00Z",
    "level": "unknown",
    "error": "Genesys Cloud did not answer within 120 s",
    "events": [],
    "notifications": [],
}


@pytest.fixture(autouse=True)
def _restore_exporter_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """record_check sets the exporter's environment switches; undo that for the other tests."""
    for name in metrics._EXPORTER_SWITCHES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ingestion() -> Iterator[Callable[..., IngestionEndpoint]]:
    """Factory: ingestion(status=200, stall_seconds=0) starts an endpoint stopped after the test."""
    started: list[IngestionEndpoint] = []

    def start(status: int = 200, stall_seconds: float = 0.0) -> IngestionEndpoint:
        endpoint = IngestionEndpoint(status=status, stall_seconds=stall_seconds)
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        endpoint.stop()


def points(endpoint: IngestionEndpoint) -> list[dict[str, Any]]:
    """Every metric point received, flattened: name, value, count, min, max, properties."""
    found = []
    for envelope in endpoint.envelopes:
        assert envelope["name"] == "Microsoft.ApplicationInsights.Metric"
        assert envelope["iKey"] == INSTRUMENTATION_KEY
        assert envelope["data"]["baseType"] == "MetricData"
        base = envelope["data"]["baseData"]
        assert base["ver"] == 2
        assert len(base["metrics"]) == 1  # the service stores the first element only
        found.append({**base["metrics"][0], "properties": base["properties"]})
    return found


def by_name(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(point["name"] for point in found)
    assert all(count == 1 for count in counts.values()), counts
    return {point["name"]: point for point in found}


def record(endpoint: IngestionEndpoint, report: dict[str, Any], **kwargs: Any) -> None:
    metrics.record_check(report, org="contoso", capacity=500,
                         connection_string=endpoint.connection_string, **kwargs)


def test_successful_check_sends_each_figure_once_as_one_point(
    ingestion: Callable[..., IngestionEndpoint],
) -> None:
    endpoint = ingestion()
    record(endpoint, SUCCESSFUL)

    assert len(endpoint.tracks) == 1  # one request per check
    sent = by_name(points(endpoint))
    values = {name: point["value"] for name, point in sent.items()}
    assert values == {
        metrics.CONCURRENT_PEAK: 480,
        metrics.CONCURRENT_NOW: 471,
        metrics.CONCURRENT_PEAK_AGENTS: 428,
        metrics.CONCURRENT_PEAK_ADMINS: 52,
        metrics.WINDOW_DISTINCT: 493,
        metrics.UTILIZATION_PERCENT: 96.0,
        metrics.CAPACITY: 500,
        metrics.BILLABLE_PEAK: 470,
        metrics.SECONDS_OVER_CAPACITY: 95,
        metrics.CHECK_FAILED: 0,
        metrics.ALERT_DELIVERED: 1,
        metrics.GAUGE_DRIFT: -3,
        metrics.IDLE: 14,
    }
    assert set(values) == set(metrics.METRIC_NAMES)
    for name, point in sent.items():
        assert point["count"] == 1
        if name == metrics.GAUGE_DRIFT:  # a gauge (it can be negative): value and count only
            assert "min" not in point
            assert "max" not in point
        else:  # a histogram: one recorded value
            assert point["min"] == point["max"] == point["value"]
        assert point["properties"]["org"] == "contoso"


def test_two_checks_send_two_points_per_metric(
    ingestion: Callable[..., IngestionEndpoint],
) -> None:
    endpoint = ingestion()
    second = {**SUCCESSFUL, "concurrent": {"now": {"total": 300, "agents": 280, "admins": 20},
                                           "peak": {"total": 310, "agents": 288, "admins": 22}},
              "notifications": []}
    record(endpoint, SUCCESSFUL)
    record(endpoint, second)

    assert len(endpoint.tracks) == 2
    first_points = by_name(_track_points(endpoint, 0))
    second_points = by_name(_track_points(endpoint, 1))
    assert first_points[metrics.CONCURRENT_PEAK]["value"] == 480
    assert second_points[metrics.CONCURRENT_PEAK]["value"] == 310  # not 480 + 310, not count 2
    assert second_points[metrics.CONCURRENT_PEAK]["count"] == 1
    # A delivery is reported in its own check only, never repeated by the next collection.
    assert metrics.ALERT_DELIVERED in first_points
    assert metrics.ALERT_DELIVERED not in second_points
    counts = Counter(point["name"] for point in points(endpoint))
    expected = dict.fromkeys(metrics.METRIC_NAMES, 2) | {metrics.ALERT_DELIVERED: 1}
    assert counts == expected


def _track_points(endpoint: IngestionEndpoint, index: int) -> list[dict[str, Any]]:
    return [{**envelope["data"]["baseData"]["metrics"][0],
             "properties": envelope["data"]["baseData"]["properties"]}
            for envelope in endpoint.tracks[index].envelopes]


def test_each_delivered_notification_counts_once_with_event_and_channel(
    ingestion: Callable[..., IngestionEndpoint],
) -> None:
    endpoint = ingestion()
    report = {**SUCCESSFUL, "notifications": [
        {"event": "escalation", "channel": "webhook", "delivered": True},
        {"event": "escalation", "channel": "teams", "delivered": True},
        {"event": "escalation", "channel": "slack", "delivered": False, "error": "HTTP 500"},
        {"event": "reminder", "channel": "pagerduty", "delivered": True},
    ]}
    record(endpoint, report)

    delivered = [p for p in points(endpoint) if p["name"] == metrics.ALERT_DELIVERED]
    assert sorted((p["properties"]["event"], p["properties"]["channel"]) for p in delivered) == [
        ("escalation", "teams"), ("escalation", "webhook"), ("reminder", "pagerduty")]
    for point in delivered:
        assert (point["value"], point["count"]) == (1, 1)
        assert point["properties"]["org"] == "contoso"


def test_concurrent_checks_each_send_their_own_points(
    ingestion: Callable[..., IngestionEndpoint],
) -> None:
    endpoint = ingestion()
    checks = 8
    barrier = threading.Barrier(checks)

    def check(peak: int) -> None:
        report = {**SUCCESSFUL, "concurrent": {"now": SUCCESSFUL["concurrent"]["now"],
                                               "peak": {"total": peak, "agents": 1, "admins": 2}}}
        barrier.wait()
        record(endpoint, report)

    threads = [threading.Thread(target=check, args=(400 + n,)) for n in range(checks)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as much as the interpreter allows
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)

    assert len(endpoint.tracks) == checks
    peaks = [p for p in points(endpoint) if p["name"] == metrics.CONCURRENT_PEAK]
    assert sorted(p["value"] for p in peaks) == [400 + n for n in range(checks)]
    assert all(p["count"] == 1 for p in points(endpoint))


def test_failed_check_sends_failure_and_capacity_only(
    ingestion: Callable[..., IngestionEndpoint],
) -> None:
    endpoint = ingestion()
    report = {**FAILED, "notifications": [
        {"event": "monitor_failing", "channel": "webhook", "delivered": True}]}
    record(endpoint, SUCCESSFUL)  # figures of an earlier check must not be repeated
    record(endpoint, report)

    assert len(endpoint.tracks) == 2
    sent = by_name(_track_points(endpoint, 1))
    assert {name: point["value"] for name, point in sent.items()} == {
        metrics.CHECK_FAILED: 1, metrics.CAPACITY: 500, metrics.ALERT_DELIVERED: 1}
    assert sent[metrics.ALERT_DELIVERED]["properties"] == {
        "org": "contoso", "event": "monitor_failing", "channel": "webhook"}


def test_billable_peak_and_drift_are_left_out_when_unknown(
    ingestion: Callable[..., IngestionEndpoint],
) -> None:
    endpoint = ingestion()
    report = {key: value for key, value in SUCCESSFUL.items() if key != "gauge"}
    report["billing"] = {"period_start": "2026-11-01", "billable_peak": None}
    record(endpoint, report)

    names = set(by_name(points(endpoint)))
    assert metrics.BILLABLE_PEAK not in names
    assert metrics.GAUGE_DRIFT not in names
    assert metrics.CAPACITY in names


def test_no_connection_string_sends_nothing_and_imports_no_opentelemetry() -> None:
    script = (
        "import sys, json\n"
        "from license_monitor import metrics\n"
        f"report = json.loads({json.dumps(json.dumps(SUCCESSFUL))})\n"
        "for value in (None, ''):\n"
        "    metrics.record_check(report, org='contoso', capacity=500, connection_string=value)\n"
        "prefixes = ('opentelemetry', 'azure.monitor')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(prefixes))\n"
        "print(json.dumps(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == []


def test_exporter_starts_no_statsbeat_storage_or_settings_poller(tmp_path: Path) -> None:
    # A fresh process, so the exporter's switches come from record_check, not from this one.
    script = (
        "import json, threading\n"
        "from license_monitor import metrics\n"
        "from tests.fixtures.app_insights import IngestionEndpoint\n"
        "from tests.integration.test_metrics import SUCCESSFUL\n"
        "endpoint = IngestionEndpoint()\n"
        "metrics.record_check(SUCCESSFUL, org='contoso', capacity=500,\n"
        "                     connection_string=endpoint.connection_string)\n"
        "names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]\n"
        "print(json.dumps({'threads': names, 'tracks': len(endpoint.tracks)}))\n"
    )
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("APPLICATIONINSIGHTS_")}
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(result.stdout)

    assert seen["tracks"] == 1
    # Only the endpoint's own threads: no statsbeat or SDK-stats reader, no settings worker.
    assert all(name.endswith(("(serve_forever)", "(process_request_thread)"))
               for name in seen["threads"]), seen["threads"]
    assert list(tmp_path.iterdir()) == []  # no offline storage folder
    assert result.stderr == ""


@pytest.mark.parametrize("status", [500, 503, 429, 400])
def test_endpoint_error_is_one_warning_and_no_retry(
    ingestion: Callable[..., IngestionEndpoint], caplog: pytest.LogCaptureFixture, status: int,
) -> None:
    endpoint = ingestion(status=status)
    with caplog.at_level(logging.DEBUG):
        started = time.monotonic()
        record(endpoint, SUCCESSFUL)
        elapsed = time.monotonic() - started

    assert elapsed < 3
    assert len(endpoint.tracks) == 1  # one attempt: the next check sends the next point
    _assert_one_clean_warning(caplog, endpoint.port)


def test_endpoint_down_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with caplog.at_level(logging.DEBUG):
        started = time.monotonic()
        metrics.record_check(
            SUCCESSFUL, org="contoso", capacity=500,
            connection_string=f"InstrumentationKey={INSTRUMENTATION_KEY};"
                              f"IngestionEndpoint=http://127.0.0.1:{port}/")
        elapsed = time.monotonic() - started

    assert elapsed < 3
    _assert_one_clean_warning(caplog, port)


def test_stalled_endpoint_is_abandoned_after_the_export_timeout(
    ingestion: Callable[..., IngestionEndpoint], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "EXPORT_TIMEOUT_SECONDS", 1.0)
    endpoint = ingestion(stall_seconds=30)
    with caplog.at_level(logging.DEBUG):
        started = time.monotonic()
        record(endpoint, SUCCESSFUL)
        elapsed = time.monotonic() - started

    assert elapsed < 5
    assert len(endpoint.tracks) == 1
    _assert_one_clean_warning(caplog, endpoint.port)


def test_bad_connection_string_is_one_warning_that_does_not_quote_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection_string = "InstrumentationKey=not-a-key-s3cr3t;IngestionEndpoint=http://127.0.0.1:9/"
    with caplog.at_level(logging.DEBUG):
        metrics.record_check(SUCCESSFUL, org="contoso", capacity=500,
                             connection_string=connection_string)

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "license_monitor.metrics"
    assert "s3cr3t" not in caplog.text
    assert "127.0.0.1" not in warnings[0].getMessage()


def _assert_one_clean_warning(caplog: pytest.LogCaptureFixture, port: int) -> None:
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["license_monitor.metrics"], [
        (r.name, r.getMessage()) for r in warnings]
    message = warnings[0].getMessage()
    for secret in (INSTRUMENTATION_KEY, str(port), "/v2.1/track", "http"):
        assert secret not in message


def test_no_secret_or_webhook_url_reaches_the_endpoint(
    ingestion: Callable[..., IngestionEndpoint],
) -> None:
    endpoint = ingestion()
    report = {**SUCCESSFUL, "notifications": [
        {"event": "escalation", "channel": "slack", "delivered": False,
         "error": f"POST {FAKE_WEBHOOK} answered 500"},
        {"event": "escalation", "channel": FAKE_WEBHOOK, "delivered": True},
    ]}
    failed = {**FAILED, "error": f"could not reach {FAKE_WEBHOOK}",
              "notifications": report["notifications"]}
    record(endpoint, report)
    record(endpoint, failed)

    raw = b"".join(track.raw for track in endpoint.tracks)
    assert len(endpoint.tracks) == 2
    assert b"s3cr3t-path-token" not in raw
    assert b"hooks.slack.test" not in raw
    channels = {p["properties"]["channel"] for p in points(endpoint)
                if p["name"] == metrics.ALERT_DELIVERED}
    assert channels == {"other"}


def test_managed_identity_token_is_sent_with_the_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    identity = ManagedIdentityEndpoint(identity_header="platform-header-s3cr3t",
                                       token="token-for-metrics-publisher")
    endpoint = IngestionEndpoint(ca=ca)  # bearer tokens go over TLS only
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
    monkeypatch.setenv("IDENTITY_HEADER", identity.identity_header)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    try:
        record(endpoint, SUCCESSFUL,
               authentication_string="Authorization=AAD;ClientId=11111111-2222-3333-4444-555555555555")
    finally:
        endpoint.stop()
        identity.stop()

    assert [q.get("client_id") for q in identity.queries] == [
        "11111111-2222-3333-4444-555555555555"]
    assert identity.queries[0]["resource"].startswith("https://monitor.azure.com")
    assert len(endpoint.tracks) == 1
    assert endpoint.tracks[0].headers["authorization"] == "Bearer token-for-metrics-publisher"
    assert set(by_name(points(endpoint))) == set(metrics.METRIC_NAMES)


def test_one_exporter_per_connection_and_authentication_string() -> None:
    connection_string = (f"InstrumentationKey={INSTRUMENTATION_KEY};"
                         f"IngestionEndpoint=http://127.0.0.1:{free_port()}/")
    sink = metrics._sink(connection_string, "Authorization=AAD;ClientId=1111-2222")
    credential = sink._exporter._credential
    assert isinstance(credential, ManagedIdentityCredential)
    assert metrics._sink(connection_string, "Authorization=AAD;ClientId=1111-2222") is sink
    without = metrics._sink(connection_string, None)
    assert without is not sink
    assert without._exporter._credential is None


@pytest.mark.parametrize(("value", "client_id"), [
    ("Authorization=AAD", None),
    ("Authorization=AAD;ClientId=1111-2222", "1111-2222"),
    ("ClientId=1111-2222;Authorization=AAD", "1111-2222"),
    ("authorization=AAD;clientid=abc;", "abc"),
])
def test_authentication_string_is_parsed(value: str, client_id: str | None) -> None:
    assert metrics.parse_authentication_string(value) == metrics.AadAuthentication(client_id)


@pytest.mark.parametrize("value", [
    "Authorization=ikey", "Authorization=aad", "ClientId=abc", "Authorization=AAD;Secret=x",
    "Authorization", "Authorization=AAD;ClientId=",
])
def test_bad_authentication_string_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="APPLICATIONINSIGHTS_AUTHENTICATION_STRING") as err:
        metrics.parse_authentication_string(value)
    assert "Secret" not in str(err.value)
