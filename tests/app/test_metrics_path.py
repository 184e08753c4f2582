"""Metrics as the Function App sends them: the real exporter, through the real orchestration,
to a local Application Insights ingestion endpoint."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from license_monitor import metrics
from tests.fixtures.app_insights import IngestionEndpoint
from tests.fixtures.monitor import WEBHOOK_SECRET, World

USAGE = {metrics.CONCURRENT_PEAK, metrics.CONCURRENT_NOW, metrics.CONCURRENT_PEAK_AGENTS,
         metrics.CONCURRENT_PEAK_ADMINS, metrics.WINDOW_DISTINCT, metrics.UTILIZATION_PERCENT}


@pytest.fixture(autouse=True)
def _restore_exporter_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """record_check sets the exporter's environment switches; undo that for the other tests."""
    for name in metrics._EXPORTER_SWITCHES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ingestion() -> Iterator[IngestionEndpoint]:
    endpoint = IngestionEndpoint()
    yield endpoint
    endpoint.stop()


def points(endpoint: IngestionEndpoint) -> list[dict[str, Any]]:
    """Every metric point received: name, value, count and dimensions."""
    return [{**envelope["data"]["baseData"]["metrics"][0],
             "properties": envelope["data"]["baseData"]["properties"]}
            for envelope in endpoint.envelopes]


def test_each_check_sends_one_point_per_metric_with_the_org(
    world: Callable[..., World], ingestion: IngestionEndpoint,
) -> None:
    w = world(ORG_NAME="Contoso",
              APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string)
    w.at_level(93)
    first = w.check()
    w.at_level(60)
    w.check()

    received = points(ingestion)
    counts = Counter(point["name"] for point in received)
    # Two checks: two points of each figure; one breach and one resolved delivered.
    assert {name: counts[name] for name in USAGE | {metrics.CAPACITY, metrics.CHECK_FAILED}} \
        == dict.fromkeys(USAGE | {metrics.CAPACITY, metrics.CHECK_FAILED}, 2)
    assert counts[metrics.ALERT_DELIVERED] == 2
    assert all(point["properties"]["org"] == "Contoso" for point in received)
    firsts = {p["name"]: p for p in received[: len(received) // 2]}
    assert firsts[metrics.CONCURRENT_PEAK]["value"] == first["concurrent"]["peak"]["total"] == 93
    assert firsts[metrics.CAPACITY]["value"] == 100
    assert firsts[metrics.CHECK_FAILED]["value"] == 0
    delivered = [p for p in received if p["name"] == metrics.ALERT_DELIVERED]
    assert [(p["properties"]["event"], p["properties"]["channel"]) for p in delivered] == [
        ("breach", "webhook"), ("resolved", "webhook")]
    body = b"".join(track.raw for track in ingestion.tracks)
    assert WEBHOOK_SECRET.encode() not in body
    assert b"s3cr3t-path" not in body  # the webhook URL's secret path


def test_a_failed_check_sends_failed_and_capacity_but_no_usage(
    world: Callable[..., World], ingestion: IngestionEndpoint,
) -> None:
    w = world(APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string)
    w.at_level(50)
    w.simulator.stop()  # Genesys unreachable: the measurement fails
    output = w.check()
    assert output["level"] == "unknown"

    by_name = {p["name"]: p for p in points(ingestion)}
    assert set(by_name) == {metrics.CHECK_FAILED, metrics.CAPACITY}
    assert by_name[metrics.CHECK_FAILED]["value"] == 1


def test_dry_runs_and_unconfigured_apps_send_nothing(
    world: Callable[..., World], ingestion: IngestionEndpoint,
) -> None:
    w = world(APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string)
    w.at_level(93)
    w.check(dry_run=True)
    assert ingestion.tracks == []

    quiet = world()
    quiet.at_level(93)
    quiet.check()
    assert ingestion.tracks == []
